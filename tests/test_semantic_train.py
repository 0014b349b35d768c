"""The semantic trainers end to end on the micro corpus: `melody-lab train mulan|tokenizer|lm`."""
import json

import pytest
import torch

from melody_lab.cli import main
from melody_lab.semantic import (ASSETS, MuLan, ResidualVQ, SemanticLM, SemanticTokenizer,
                                 load_tiny)


@pytest.fixture(scope="module")
def runs(micro_corpus, tmp_path_factory):
    """Train the three stages from the CLI (micro presets, a few steps) once for this module."""
    out = tmp_path_factory.mktemp("semantic_runs")
    common = ["--preset", "micro", "--data", str(micro_corpus), "--no-progress"]
    assert main(["train", "mulan", *common, "--out", str(out / "mulan"), "--max-steps", "40"]) == 0
    assert main(["train", "tokenizer", "--preset", "micro", "--data", str(micro_corpus),
                 "--out", str(out / "tok")]) == 0
    assert main(["train", "lm", *common, "--out", str(out / "lm"), "--mulan", str(out / "mulan"),
                 "--tokenizer", str(out / "tok"), "--max-steps", "30", "--text-prob", "0.75"]) == 0
    return out


def test_runs_write_the_checkpoint_layout(runs):
    for stage, files in (("mulan", {"mulan.safetensors", "opt.optim.safetensors"}),
                         ("tok", {"tokenizer.safetensors"}),
                         ("lm", {"lm.safetensors", "opt.optim.safetensors"})):
        latest = runs / stage / (runs / stage / "latest").read_text().strip()
        assert files <= {p.name for p in latest.iterdir()}
        assert "model" in json.loads((runs / stage / "config.json").read_text())
    assert not list(runs.rglob("*.partial")) and not list(runs.rglob("*.pkl"))
    log = [json.loads(x) for x in (runs / "lm" / "log.jsonl").read_text().splitlines()]
    val = [x["val"] for x in log if "val" in x][-1]
    assert val["ppl"] < val["ppl_unigram"]  # conditioning + context beat token frequencies
    assert json.loads((runs / "lm" / "config.json").read_text())["train"]["text_prob"] == 0.75
    assert (runs / "lm" / "cache" / "train.safetensors").is_file()


def test_trained_components_load_and_fit_together(runs, micro_corpus):
    from melody_lab.data import ClipDataset

    mulan = MuLan.from_pretrained(runs / "mulan")
    rvq = ResidualVQ.from_pretrained(runs / "mulan" / "rvq")
    tok = SemanticTokenizer.from_pretrained(runs / "tok")
    lm = SemanticLM.from_pretrained(runs / "lm")
    audio = ClipDataset(micro_corpus, "train")[0]["audio"][None]
    codes = rvq.quantize(mulan.embed_text(["a lively reel played on the fiddle"]))
    assert codes.shape == (1, rvq.config.levels)
    tokens = lm.generate(codes, 20, top_k=10, seed=0)
    assert tokens.shape == (1, 20) and tokens.max() < tok.config.vocab_size
    assert tok.tokenize(audio).shape == (1, audio.shape[-1] // 640)
    assert torch.allclose(mulan.embed_audio(audio).norm(dim=-1), torch.ones(1), atol=1e-5)


def test_rerun_resumes_instead_of_retraining(runs, micro_corpus):
    before = (runs / "lm" / "latest").read_text()
    assert main(["train", "lm", "--preset", "micro", "--data", str(micro_corpus), "--out",
                 str(runs / "lm"), "--mulan", str(runs / "mulan"), "--tokenizer",
                 str(runs / "tok"), "--max-steps", "30", "--text-prob", "0.75", "--no-progress"]) == 0
    assert (runs / "lm" / "latest").read_text() == before
    # a different preset into the same folder is refused with a one-line error (exit 2)
    assert main(["train", "tokenizer", "--preset", "tiny", "--data", str(micro_corpus),
                 "--out", str(runs / "tok")]) == 2


@pytest.mark.skipif(not (ASSETS / "lm_tiny").is_dir(), reason="tiny checkpoints not shipped yet")
def test_shipped_tiny_checkpoints_are_consistent():
    mulan, rvq, tok, lm = (load_tiny(n) for n in ("mulan", "rvq", "tokenizer", "lm"))
    assert rvq.config.dim == mulan.config.embed_dim
    assert lm.config.semantic_vocab == tok.config.vocab_size
    assert (lm.config.mulan_levels, lm.config.mulan_codebook_size) == (rvq.config.levels,
                                                                      rvq.config.codebook_size)
    codes = rvq.quantize(mulan.embed_text(["a jig"]))
    assert lm.generate(codes, 10, seed=0).shape == (1, 10)


def test_evaluation_reports_on_the_trained_runs(runs, micro_corpus):
    from melody_lab.semantic.evaluate import evaluate_mulan
    from melody_lab.train.lm import evaluate_lm

    mulan_report = evaluate_mulan(MuLan.from_pretrained(runs / "mulan"), micro_corpus, "train")
    retrieval = mulan_report["retrieval"]
    assert retrieval["chance_r@1"] == pytest.approx(1 / retrieval["n"])
    assert "genre" in mulan_report["zero_shot"]
    lm_report = evaluate_lm(runs / "lm", micro_corpus, "valid", sampling=((1.0, 10),))
    assert lm_report["ppl_audio_codes"] < lm_report["ppl_unigram"]
    stats = lm_report["sampling"]["temperature=1.0,top_k=10"]
    assert 0 <= stats["repeat_rate"] <= 1 and stats["js_divergence_vs_real"] >= 0
