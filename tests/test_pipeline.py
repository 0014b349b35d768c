"""The assembled MeLoDy pipeline on a random-weight micro model (and the shipped tiny bundle)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from melody_lab.errors import BundleError
from melody_lab.debug import build_debug_pipeline
from melody_lab.errors import UserError
from melody_lab.pipeline import MeLoDy

TINY = Path(__file__).resolve().parents[1] / "melody_lab" / "assets" / "bundles" / "tiny"


@pytest.fixture(scope="module")
def micro():
    return build_debug_pipeline(seed=0)


def test_generate_length_determinism_and_prompts(micro):
    audio = micro.generate(["a fast reel on fiddle", "a slow chorale on organ"], 2.3, steps=3, seed=1)
    assert audio.shape == (2, round(2.3 * micro.sample_rate)) and audio.dtype == torch.float32
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1
    again = micro.generate(["a fast reel on fiddle", "a slow chorale on organ"], 2.3, steps=3, seed=1)
    assert torch.equal(audio, again)
    assert not torch.equal(audio[0], audio[1])
    assert not torch.equal(audio, micro.generate(["a fast reel on fiddle", "a slow chorale on organ"],
                                                 2.3, steps=3, seed=2))
    t = micro.last_timings
    assert {"mulan", "lm", "diffusion", "decode", "total", "rtf"} <= set(t)
    assert t["total"] == pytest.approx(t["mulan"] + t["lm"] + t["diffusion"] + t["decode"])
    # real-time factor: compute seconds per second of audio produced (2 clips of 2.3 s)
    assert t["audio_seconds"] == pytest.approx(4.6) and t["rtf"] == pytest.approx(t["total"] / 4.6)


def test_longer_than_window_uses_continuation(micro):
    audio = micro.generate(["a jig"], 3.5 * micro.config.window_seconds, steps=2)
    assert audio.shape[1] == round(3.5 * micro.config.window_seconds * micro.sample_rate)


def test_continuation_keeps_the_input_sample_for_sample(micro):
    source = micro.generate(["a hornpipe"], 1.5, steps=2, seed=3)[0]
    out = micro.continue_audio(source.numpy(), micro.sample_rate, 0.7, steps=2)
    assert out.shape == (1, len(source) + round(0.7 * micro.sample_rate))
    assert torch.equal(out[0, :len(source)], source)


def test_inpainting_keeps_everything_outside_the_range(micro):
    source = micro.generate(["an air on harp"], 2.0, steps=2, seed=4)[0]
    sr = micro.sample_rate
    out = micro.inpaint(source, sr, 0.5, 1.2, prompt="a reel", steps=2)
    assert out.shape == (1, len(source))
    assert torch.equal(out[0, :sr // 2], source[:sr // 2])
    assert torch.equal(out[0, round(1.2 * sr):], source[round(1.2 * sr):])
    assert not torch.equal(out[0, sr // 2:round(1.2 * sr)], source[sr // 2:round(1.2 * sr)])


def test_audio_prompt_and_resampling(micro):
    clip = micro.generate(["a reel"], 1.0, steps=2)[0].numpy()
    from melody_lab.audio import resample
    out = micro.generate_from_audio(resample(clip, micro.sample_rate, 22050), 22050, 1.0, steps=2)
    assert out.shape == (1, micro.sample_rate)


@pytest.mark.parametrize("call", [
    lambda m: m.generate([""], 1.0),
    lambda m: m.generate(["a reel"], 0.0),
    lambda m: m.generate(["a reel"], float("nan")),
    lambda m: m.generate(["a reel"], 1.0, steps=0),
    lambda m: m.generate(["a reel"], 1.0, schedule="nope"),
    lambda m: m.inpaint(np.zeros(16000, np.float32), 16000, 0.8, 0.2),
    lambda m: m.inpaint(np.zeros(16000, np.float32), 16000, 0.5, 3.0),
    lambda m: m.continue_audio(np.full(100, np.nan, np.float32), 16000, 1.0),
])
def test_bad_input_is_a_clear_error(micro, call):
    with pytest.raises((UserError, KeyError)):
        call(micro)


def test_bundle_round_trip_and_tamper_detection(micro, tmp_path):
    folder = micro.save_pretrained(tmp_path / "bundle")
    loaded = MeLoDy.from_pretrained(folder)
    a = micro.generate(["a reel"], 1.0, steps=2, seed=5)
    b = loaded.generate(["a reel"], 1.0, steps=2, seed=5)
    assert a.shape == b.shape and (a - b).abs().max() < 0.05  # fp16 weights in the bundle
    weights = folder / "denoiser" / "denoiser.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupted"):
        MeLoDy.from_pretrained(folder)
    weights.unlink()
    with pytest.raises(BundleError, match="missing"):
        MeLoDy.from_pretrained(folder)
    with pytest.raises(BundleError, match="no bundle"):
        MeLoDy.from_pretrained(tmp_path / "nowhere")


@pytest.mark.skipif(not (TINY / "manifest.json").exists(),
                    reason="the shipped tiny bundle (melody_lab/assets/bundles/tiny) is not built yet")
def test_shipped_tiny_bundle_generates():
    model = MeLoDy.from_pretrained("tiny")
    prompts = ["a lively Irish jig on fiddle", "a slow Bach chorale on church organ"]
    audio = model.generate(prompts, 4.0, steps=4, seed=0)
    assert audio.shape == (2, 4 * model.sample_rate) and torch.isfinite(audio).all()
    assert audio.pow(2).mean(dim=1).sqrt().min() > 1e-3  # not silent
    assert not torch.equal(audio[0], audio[1])
    assert torch.equal(audio, model.generate(prompts, 4.0, steps=4, seed=0))


def test_plan_returns_the_lm_tokens_deterministically(micro):
    micro_model = micro
    tokens = micro_model.plan(["a reel on fiddle", "a slow air"], duration_s=1.0, seed=3)
    assert tokens.dtype == torch.long and tokens.shape == (2, math.ceil(micro_model.token_rate))
    assert 0 <= int(tokens.min()) and int(tokens.max()) < micro_model.lm.config.semantic_vocab
    assert torch.equal(tokens, micro_model.plan(["a reel on fiddle", "a slow air"], 1.0, seed=3))
    with pytest.raises(UserError):
        micro_model.plan([" "], 1.0)


@pytest.mark.parametrize("context_chunks", [None, 1])
def test_diffusion_windows_counts_the_denoiser_calls(micro, context_chunks):
    calls = []
    hook = micro.denoiser.register_forward_hook(lambda *_: calls.append(1))
    saved = micro.config.context_chunks
    micro.config.context_chunks = context_chunks
    try:
        seconds, steps = 2.5 * micro.config.window_seconds, 3
        frames = math.ceil(round(seconds * micro.sample_rate) / micro.codec.hop_length)
        audio = micro.generate(["a reel"], seconds, steps=steps, guidance=2.0)
        assert len(calls) == micro.diffusion_windows(frames) * steps
        calls.clear()
        micro.continue_audio(audio[0], micro.sample_rate, 1.0, steps=steps)
        total = math.ceil((audio.shape[1] + micro.sample_rate) / micro.codec.hop_length)
        assert len(calls) == micro.diffusion_windows(total, frames) * steps
    finally:
        hook.remove()
        micro.config.context_chunks = saved
    assert micro.diffusion_windows(micro.window_frames) == 1


def test_a_unet_pipeline_saves_and_loads_as_a_unet(micro, tmp_path):
    """The denoiser's own registry name goes into the bundle (not a default from the config)."""
    from melody_lab.denoisers import build_denoiser

    unet = build_denoiser("unet", "micro", latent_dim=micro.codec.latent_dim)
    model = MeLoDy(micro.codec, unet, micro.mulan, micro.rvq, micro.tokenizer, micro.lm,
                   micro.config)
    loaded = MeLoDy.from_pretrained(model.save_pretrained(tmp_path / "bundle", half=False))
    assert type(loaded.denoiser) is type(unet)
    a = model.generate(["a reel"], 1.0, steps=2, seed=5)
    assert torch.equal(a, loaded.generate(["a reel"], 1.0, steps=2, seed=5))
