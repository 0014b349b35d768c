"""Fine-tuning the shipped ``tiny`` bundle (``--init-from``) and the model card in every bundle.

The micro corpus is 16 kHz like the tiny bundle's codec; its 2-s clips fit the tiny denoiser's
2-s window and the tiny LM's 125-token context. A few steps each, < 60 s on one core.
"""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from melody_lab.cli import main
from melody_lab.diffusion import multichunk_target, velocity_loss
from melody_lab.errors import BundleError
from melody_lab.io import (SHIPPED_BUNDLES, latest_checkpoint, load_init, load_pretrained,
                           load_weights, resolve, sha256)
from melody_lab.pipeline import MeLoDy
from melody_lab.semantic import SemanticLM
from melody_lab.train.denoiser import DenoiserTrainConfig, train_denoiser
from melody_lab.train.lm import LM_TRAIN_PRESETS, LMStageConfig, train_lm
from melody_lab.train.latent_cache import build_latent_cache

TINY = SHIPPED_BUNDLES / "tiny"
pytestmark = pytest.mark.skipif(not (TINY / "manifest.json").is_file(),
                                reason="this checkout has no shipped tiny bundle")


@torch.no_grad()
def _lm_loss(lm, cache):
    lm.eval()
    return lm.loss(cache["audio_codes"], cache["tokens"][:, : lm.config.max_tokens]).item()


@torch.no_grad()
def _denoiser_loss(net, cache, num_chunks=5):
    """Velocity MSE on the whole train cache with fixed angles and noise (seed 0)."""
    net.eval()
    z, tokens = cache["latents"].float(), cache["tokens"].long()
    target = multichunk_target(z, num_chunks, torch.Generator().manual_seed(0))
    return velocity_loss(net(target.noisy, target.angles, tokens), target.velocity).item()


@pytest.fixture(scope="module")
def new_style(tmp_path_factory):
    """A style the tiny model has not heard: micro-corpus works rendered by the built-in
    synthesiser (the tiny corpus was rendered with a General-MIDI soundfont), 16 kHz, 2-s clips."""
    from melody_lab.data.build import build_corpus
    from melody_lab.data.presets import get_preset

    root = tmp_path_factory.mktemp("new_style")
    build_corpus(root, get_preset("micro"), seed=3, renderer="builtin", progress=False)
    return root


@pytest.fixture(scope="module")
def finetuned(new_style, tmp_path_factory):
    """LM and denoiser runs fine-tuned from the shipped bundle on the new style."""
    micro_corpus = new_style
    root = tmp_path_factory.mktemp("finetune")
    lm_config = LMStageConfig("tiny", LM_TRAIN_PRESETS["tiny"].replace(
        batch_size=16, lr=1e-3, warmup_steps=2), init_from="tiny")
    train_lm(lm_config, micro_corpus, root / "lm", lm_config.loop(25, progress=False),
             mulan="tiny", tokenizer="tiny")
    dn_config = DenoiserTrainConfig(batch_size=8, lr=5e-4, warmup_steps=2, crop_seconds=2.0,
                                    init_from="tiny")
    train_denoiser(dn_config, micro_corpus, root / "denoiser",
                   dn_config.loop(25, progress=False).replace(val_every=25, ckpt_every=25),
                   codec="tiny", tokenizer="tiny")
    return root


def test_finetune_lowers_the_loss_and_records_the_source(finetuned):
    lm_cache = load_file(str(finetuned / "lm" / "cache" / "train.safetensors"))
    before, after = (_lm_loss(load_pretrained("lm", TINY), lm_cache),
                     _lm_loss(SemanticLM.from_pretrained(finetuned / "lm"), lm_cache))
    assert after < before - 0.05, (before, after)

    codec, tok = load_pretrained("codec", TINY), load_pretrained("tokenizer", TINY)
    record = json.loads((finetuned / "denoiser" / "config.json").read_text())
    cache = build_latent_cache(record["data"], "train", codec, tok, finetuned / "denoiser" / "cache",
                               provenance={"codec": record["codec"], "tokenizer": record["tokenizer"]},
                               progress=False)
    before = _denoiser_loss(load_pretrained("denoiser", TINY), cache)
    net = load_pretrained("denoiser", finetuned / "denoiser")  # its EMA: now the raw weights
    load_weights(net, latest_checkpoint(finetuned / "denoiser") / "denoiser.safetensors")
    after = _denoiser_loss(net, cache)
    assert after < before, (before, after)
    # the architecture is the shipped one (an older tiny preset: GRU, FFN x4), not today's preset
    shipped = json.loads((TINY / "denoiser" / "config.json").read_text())["config"]
    assert all(record["model"]["config"][k] == v for k, v in shipped.items())
    for run in ("lm", "denoiser"):
        rec = json.loads((finetuned / run / "config.json").read_text())
        assert rec["init_from"] == str(TINY.resolve())
        assert rec["init_manifest_sha256"] == sha256(TINY / "manifest.json")


def test_rebundle_mixed_sources_loads_and_generates(finetuned, tmp_path):
    out = tmp_path / "bundle"
    assert main(["bundle", f"--codec={TINY / 'codec'}", f"--mulan={TINY / 'mulan'}",
                 "--tokenizer=tiny", f"--lm={finetuned / 'lm'}",
                 f"--denoiser={finetuned / 'denoiser'}", "--context-chunks", "1",
                 "--out", str(out)]) == 0
    model = MeLoDy.from_pretrained(out)
    assert model.config.window_seconds == 2.0 and model.config.num_chunks == 5
    audio = model.generate(["a chorale"], 1.0, steps=2, seed=0)
    assert audio.shape == (1, model.sample_rate) and torch.isfinite(audio).all()
    # the model card lists every component and its settings, names the run each came from,
    # and is covered by the manifest
    card = (out / "MODEL_CARD.md").read_text()
    for part in ("codec", "denoiser", "mulan", "rvq", "tokenizer", "lm"):
        assert f"| {part} | " in card
    assert '"num_layers": 4' in card and "non-commercial" in card
    assert str((finetuned / "lm").resolve()) in card and "init_manifest_sha256" in card
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert files["MODEL_CARD.md"] == sha256(out / "MODEL_CARD.md")
    (out / "MODEL_CARD.md").write_text(card + "edited\n")
    with pytest.raises(BundleError, match="MODEL_CARD.md"):
        MeLoDy.from_pretrained(out)
    # a denoiser taken from the shipped bundle keeps the bundle's window and sampling defaults
    assert main(["bundle", "--codec=tiny", "--mulan=tiny", "--tokenizer=tiny",
                 f"--lm={finetuned / 'lm'}", "--denoiser=tiny", "--out", str(tmp_path / "b2")]) == 0
    # (the LM here is a run, not the bundle's: it samples with `bundle --lm-guidance`, default 1)
    rebundled = MeLoDy.from_pretrained(tmp_path / "b2").config
    assert rebundled.lm_guidance == 1.0
    assert rebundled.replace(lm_guidance=3.0) == MeLoDy.from_pretrained("tiny").config


def test_the_shipped_bundle_has_a_verified_model_card():
    card = (TINY / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "Known limits" in card and "FAD" in card
    assert json.loads((TINY / "manifest.json").read_text())["files"]["MODEL_CARD.md"] == sha256(
        TINY / "MODEL_CARD.md")


def test_save_pretrained_writes_a_model_card(tmp_path):
    out = MeLoDy.from_pretrained("tiny").save_pretrained(tmp_path / "b")
    card = (out / "MODEL_CARD.md").read_text()
    assert "| lm | lm |" in card and "Not evaluated" in card and "Known limits" in card
    assert "MODEL_CARD.md" in json.loads((out / "manifest.json").read_text())["files"]


def test_resolve_reads_a_whole_bundle_and_the_name_tiny():
    record, weights = resolve("tiny", "lm")
    assert weights == TINY / "lm" / "lm.safetensors" and record["kind"] == "lm"
    module, provenance = load_init("denoiser", TINY)
    assert module.training and provenance["init_from"] == str(TINY.resolve())


def _train(*args):
    return main(["train", *args, "--no-progress"])


def test_bad_init_from_is_one_line_and_writes_nothing(micro_corpus, tmp_path, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(TINY, tampered)
    weights = tampered / "lm" / "lm.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    lm = ["lm", "--data", str(micro_corpus), "--mulan", "tiny", "--tokenizer", "tiny",
          "--max-steps", "2"]
    dn = ["denoiser", "--data", str(micro_corpus), "--codec", "tiny", "--tokenizer", "tiny",
          "--steps", "2"]
    cases = {
        "corrupted or was modified": [*lm, "--init-from", str(tampered)],
        "config mismatch in 'dim'": [*lm, "--preset", "micro", "--init-from", "tiny"],
        "config mismatch in 'width'": [*dn, "--preset", "micro", "--init-from", "tiny"],
        "config mismatch in 'architecture'": [*dn, "--denoiser", "unet", "--init-from", "tiny"],
        "no such folder": [*lm, "--init-from", str(tmp_path / "missing")],
        "config mismatch in the denoiser": ["all", "--data", str(micro_corpus), "--init-from",
                                            "tiny", "--denoiser", "unet"],
        "not a bundle folder": ["all", "--data", str(micro_corpus), "--init-from",
                                str(tmp_path / "missing")],
        "modified": ["all", "--data", str(micro_corpus), "--init-from", str(tampered),
                     "--steps", "2"],
    }
    for i, (message, args) in enumerate(cases.items()):
        out = tmp_path / f"out{i}"
        assert _train(*args, "--out", str(out)) == 2, message
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err, err
        assert not out.exists(), message
