"""Codecs (VAE-GAN, VQ-VAE): shapes, latent range, codes, training, resume, checkpoint config guard."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from melody_lab.cli import main as cli_main
from melody_lab.codecs import (CodecConfigMismatchError, build_codec, load_codec,
                               reconstruction_metrics, save_codec)
from melody_lab.train.codec import CodecTask, evaluate_codec, load_split_audio, train_config
from melody_lab.train.loop import LoopConfig, NonFiniteLossError, run_training

CODECS = ["vaegan", "vqvae"]


def synthetic_clips(n: int, samples: int, seed: int, sr: int = 16000) -> torch.Tensor:
    """``[n, samples]``: notes of 5 harmonics with random pitch, length and decay."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, samples)
    for i in range(n):
        note = int(sr * (0.1 + 0.2 * torch.rand(1, generator=g).item()))
        for start in range(0, samples, note):
            t = torch.arange(min(note, samples - start)) / sr
            f0 = 110 * 2 ** (torch.randint(0, 36, (1,), generator=g).item() / 12)
            env = torch.exp(-t * (3 + 10 * torch.rand(1, generator=g).item()))
            out[i, start: start + t.numel()] = 0.3 * env * sum(
                torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 6))
    return out


@pytest.fixture(scope="module")
def clips(request):
    """(train [N, T], valid [M, T]) from the micro corpus when its fixture exists, else synthetic."""
    try:
        root = request.getfixturevalue("micro_corpus")
    except pytest.FixtureLookupError:
        return synthetic_clips(8, 16000, seed=1), synthetic_clips(2, 16000, seed=2)
    return load_split_audio(root, "train", 16000), load_split_audio(root, "valid", 16000)


def make_task(name, clips, **overrides):
    torch.manual_seed(0)
    return CodecTask(build_codec(name, "micro"), train_config("micro", **overrides), *clips)


def params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", CODECS)
@settings(max_examples=8, deadline=None)
@given(length=st.integers(min_value=1, max_value=2000), batch=st.integers(1, 2))
def test_any_length_round_trips(name, length, batch):
    codec = build_codec(name, "micro").eval()
    audio = torch.rand(batch, length) * 2 - 1
    with torch.no_grad():
        z = codec.encode(audio)
        assert z.shape == (batch, math.ceil(length / codec.hop_length), codec.latent_dim)
        assert codec.decode(z).shape == (batch, z.shape[1] * codec.hop_length)
        assert codec.decode(z, length=length).shape == audio.shape
        assert codec.reconstruct(audio).shape == audio.shape


@pytest.mark.parametrize("name", CODECS)
def test_latent_is_clipped_to_unit_range(name):
    codec = build_codec(name, "micro").eval()
    with torch.no_grad():  # blow up the encoder's output so clipping must act
        last = codec.encoder.net[-1].conv.parametrizations.weight.original0
        last.mul_(1e3)
        audio = torch.rand(2, 3000) * 2 - 1
        if name == "vqvae":  # codebooks start empty; one training pass fills them
            codec.forward_train(audio)
        z = codec.encode(audio)
    assert z.abs().max() <= 1.0
    assert z.abs().max() > 0.99


def test_vq_codes_in_range_and_decode_codes_equals_decode_embedding(clips):
    task = make_task("vqvae", clips)
    codec = task.codec
    codec.train()
    for _ in range(3):  # initialise and update the EMA codebooks
        codec.forward_train(clips[0][:2, :4096])
    codec.eval()
    with torch.no_grad():
        z, codes = codec.encode_with_codes(clips[1])
        assert codes.dtype == torch.long
        assert codes.shape == (*z.shape[:2], codec.config.num_quantizers)
        assert 0 <= codes.min() and codes.max() < codec.config.codebook_size
        assert len(codes.unique()) > 1
        assert torch.equal(codec.encode(clips[1]), z)
        assert torch.allclose(codec.decode_codes(codes), codec.decode(z), atol=1e-6)


@pytest.mark.parametrize("name", CODECS)
def test_micro_training_lowers_reconstruction_loss(name, clips, tmp_path):
    task = make_task(name, clips, gan_start_step=110)
    before = evaluate_codec(task.codec, clips[1])
    state = run_training(task, tmp_path, LoopConfig(max_steps=120, val_every=120, progress=False))
    after = state["val"]
    assert after["mr_stft"] < 0.85 * before["mr_stft"], (before, after)
    assert set(state["train"]) >= {"stft", "adv", "fm", "disc", "loss"}


@pytest.mark.parametrize("name", CODECS)
def test_interrupt_and_resume_equals_uninterrupted(name, clips, tmp_path):
    loop = LoopConfig(max_steps=6, val_every=100, ckpt_every=100, progress=False)
    straight = make_task(name, clips)  # gan_start_step=3: the resume crosses the GAN switch-on
    run_training(straight, tmp_path / "a", loop)
    run_training(make_task(name, clips), tmp_path / "b", loop.replace(max_steps=4))
    resumed = make_task(name, clips)
    assert run_training(resumed, tmp_path / "b", loop)["step"] == 6
    for module in ("codec", "discriminator"):
        a, b = params(straight.modules()[module]), params(resumed.modules()[module])
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), module


def test_non_finite_loss_stops_training(clips, tmp_path):
    bad = clips[0].clone()
    bad[:, ::1000] = float("nan")  # every crop holds a NaN
    task = make_task("vaegan", (bad, clips[1]))
    with pytest.raises(NonFiniteLossError, match="step 0"):
        run_training(task, tmp_path, LoopConfig(max_steps=3, progress=False))


def test_checkpoint_config_mismatch_is_a_clear_error(tmp_path):
    codec = build_codec("vaegan", "micro")
    save_codec(codec, tmp_path / "exported", preset="micro", dtype=torch.float16)
    with pytest.raises(CodecConfigMismatchError, match=r"preset 'micro'.*'tiny'.*enc_channels"):
        load_codec(tmp_path / "exported", preset="tiny")
    with pytest.raises(CodecConfigMismatchError, match="'vaegan' codec, not 'vqvae'"):
        load_codec(tmp_path / "exported", name="vqvae")
    loaded = load_codec(tmp_path / "exported", name="vaegan", preset="micro")
    audio = torch.rand(1, 1000) * 2 - 1
    with torch.no_grad():  # fp16 weights load into a float32 model and decode nearly the same
        assert torch.allclose(loaded.reconstruct(audio), codec.eval().reconstruct(audio), atol=2e-2)


def test_metrics_rank_reconstructions_above_different_clips():
    audio = synthetic_clips(4, 8000, seed=3)
    same = reconstruction_metrics(audio, 0.7 * audio + 1e-3 * torch.randn_like(audio), 16000)
    other = reconstruction_metrics(audio, audio.roll(1, dims=0), 16000)
    assert same["mr_stft"] < other["mr_stft"] and same["log_mel_l1"] < other["log_mel_l1"]
    assert same["si_sdr"] > 15 > other["si_sdr"]


def test_cli_trains_resumes_and_loads(tmp_path, request):
    try:
        root = request.getfixturevalue("micro_corpus")
    except pytest.FixtureLookupError:
        pytest.skip("needs the micro_corpus fixture (tests/conftest.py, written by the corpus helper)")
    args = ["train", "codec", "--codec", "vqvae", "--preset", "micro", "--data", str(root),
            "--out", str(tmp_path / "run"), "--steps", "4", "--ckpt-every", "2"]
    assert cli_main(args) == 0
    assert cli_main(args[:-4] + ["--steps", "6", "--ckpt-every", "2"]) == 0  # resumes
    assert load_codec(tmp_path / "run", preset="micro").name == "vqvae"
    with pytest.raises(CodecConfigMismatchError):
        load_codec(tmp_path / "run", preset="tiny")


def test_decoder_only_fine_tuning_keeps_the_latent_space(micro_corpus, tmp_path):
    """--init-from + --freeze-encoder: the encoder (so every latent) stays, the decoder moves."""
    from melody_lab.codecs import load_codec
    from melody_lab.train.codec import CodecStageConfig, train_codec
    from melody_lab.train.loop import LoopConfig

    loop = LoopConfig(max_steps=4, progress=False, val_every=4, ckpt_every=4)
    train_codec(CodecStageConfig("vaegan", "micro"), micro_corpus, tmp_path / "a", loop)
    config = CodecStageConfig("vaegan", "micro", train_config("micro", freeze_encoder=True),
                              init_from=str(tmp_path / "a"))
    train_codec(config, micro_corpus, tmp_path / "b", loop.replace(max_steps=8))
    before, after = load_codec(tmp_path / "a"), load_codec(tmp_path / "b")
    audio = torch.randn(2, 4096).clamp(-1, 1) * 0.3
    with torch.no_grad():
        assert torch.equal(before.encode(audio), after.encode(audio))
        assert not torch.equal(before.decode(before.encode(audio)), after.decode(after.encode(audio)))


@pytest.mark.parametrize("name", CODECS)
def test_load_tiny_reconstructs_corpus_clips_far_better_than_a_different_clip(name, micro_corpus):
    from melody_lab.codecs import different_clip_baseline, load_tiny

    codec = load_tiny(name)
    assert not codec.training and codec.name == name and codec.hop_length == 128
    audio = load_split_audio(micro_corpus, "train", 16000)[:4, :16000]
    with torch.no_grad():
        z = codec.encode(audio)
        recon = codec.decode(z, length=audio.shape[-1])
    assert z.shape == (4, 125, 16) and z.abs().max() <= 1.0
    ours = reconstruction_metrics(audio, recon, codec.sample_rate)
    assert ours["mr_stft"] < 0.75 * different_clip_baseline(audio, codec.sample_rate)["mr_stft"]
    with pytest.raises(Exception, match="choose one of: vaegan, vqvae"):
        load_tiny("wavenet")
