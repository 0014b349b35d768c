"""The stage diagnostic (issue 13): MeLoDy.render, and every path measured end to end on micro."""
from __future__ import annotations

import csv
import importlib.util
import math

import numpy as np
import pytest
import torch

from melody_lab.ablation.diagnostic import (DIAGNOSTIC_ATTRIBUTES, PATHS, TEMPO_MEASURES,
                                            TRANSCRIPTION_MEASURES, difference_interval, names_key,
                                            onset_rate, path_audio, run_diagnostic, write_diagnostic)
from melody_lab.cli import main
from melody_lab.debug import build_debug_pipeline
from melody_lab.errors import UserError
from melody_lab.metrics.embedders import EVALCLAP_TINY_DIR

HAVE_EVAL = all(importlib.util.find_spec(m) for m in ("onnxruntime", "basic_pitch", "librosa"))
needs_eval = pytest.mark.skipif(
    not HAVE_EVAL or not (EVALCLAP_TINY_DIR / "config.json").is_file(),
    reason="needs the [eval] extra (pip install 'melody-lab[eval]' && pip install --no-deps "
    "basic-pitch==0.4.0) and the shipped evaluation CLAP asset")


@pytest.fixture(scope="module")
def micro():
    return build_debug_pipeline(seed=0)


def test_render_is_the_second_stage_of_generate(micro):
    prompts = ["a fast reel on fiddle", "a slow air"]
    tokens = micro.plan(prompts, 1.5, seed=4)
    assert torch.equal(micro.render(tokens, 1.5, seed=4), micro.generate(prompts, 1.5, seed=4))
    clip = micro.generate(["a jig"], 1.0, seed=0)
    own = micro.render(micro.tokenizer.tokenize(clip))          # default: the tokens' length
    assert own.shape == (1, round(micro.tokenizer.tokenize(clip).shape[1] / micro.token_rate
                                  * micro.sample_rate))
    assert {"diffusion", "decode", "total", "rtf"} <= set(micro.last_timings)
    with pytest.raises(UserError, match="integer tensor"):
        micro.render(tokens.float(), 1.5)
    with pytest.raises(UserError, match="semantic vocabulary"):
        micro.render(tokens + micro.lm.config.semantic_vocab, 1.5)
    with pytest.raises(UserError, match="needs"):
        micro.render(tokens, 3.0)


def test_names_key_reads_the_captions_key_phrase():
    row = {"tonic": "B", "mode": "minor"}
    assert names_key(row, "A jig in B minor, played on fiddle.")
    assert not names_key(row, "A jig in Bb minor.") and not names_key(row, "A jig in B major.")
    assert names_key({"tonic": "G", "mode": "dorian"}, "An air in the key of G Dorian.")
    assert not names_key({"tonic": None, "mode": "major"}, "A reel.")


def test_onset_rate_counts_a_chord_once():
    chord = [[0.0, 1.0, p, 0.5] for p in (60, 64, 67, 72)]
    jittered = [[0.51, 1.0, 60, 0.5], [0.53, 1.0, 64, 0.5], [1.0, 1.5, 62, 0.5], [1.5, 2.0, 60, 0.5]]
    assert onset_rate(np.array(chord + jittered), 2.0) == 2.0       # onsets at 0, 0.51, 1.0, 1.5 s
    assert onset_rate(np.zeros((0, 4)), 2.0) == 0.0


def test_difference_interval_of_two_groups():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5.0, 0.5, 40), np.append(rng.normal(2.0, 0.5, 30), np.nan)
    value, lo, hi, n = difference_interval(a, b)
    assert value == pytest.approx(a.mean() - np.nanmean(b)) and lo < value < hi and n == 70
    assert 2.5 < lo and hi < 3.5
    assert math.isnan(difference_interval(a, b[:1])[1])     # one clip in a group: no interval


@needs_eval
def test_diagnostic_end_to_end_on_micro(micro, micro_corpus, tmp_path):
    result = run_diagnostic(micro, micro_corpus, split="all", n=3)
    measures = [f"attr_{k}" for k in DIAGNOSTIC_ATTRIBUTES] + list(TRANSCRIPTION_MEASURES) + list(TEMPO_MEASURES)
    by = {(r["path"], r["measure"]): r for r in result.rows}
    assert set(by) == {(p, m) for p in PATHS for m in measures} and len(result.rows) == len(by)
    assert len(result.clip_ids) == 3 and result.info["n"] == 3
    real = by[("real", "key_match")]
    assert math.isfinite(real["value"]) and 0 <= real["value"] <= 1 and 1 <= real["n"] <= 3
    for p in PATHS:
        rate = by[(p, "notes_per_s")]
        assert rate["n"] == 3 and math.isfinite(rate["value"]) and rate["lo"] <= rate["value"] <= rate["hi"]
        assert by[(p, "attr_genre")]["n"] == 3 and 0 <= by[(p, "attr_genre")]["value"] <= 1
        assert all(len(v) == 3 for v in result.per_clip[p].values())
    # the real path is the clip itself; the codec path its round trip (a random codec: not equal)
    clip = torch.zeros(1, 2 * micro.sample_rate)
    assert torch.equal(path_audio(micro, "real", clip, "", 0), clip)
    assert path_audio(micro, "codec", clip + 0.1, "", 0).shape == clip.shape

    files = write_diagnostic(result, tmp_path / "diag")
    with open(files["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "measure", "value", "lo", "hi", "n"] and len(rows) == len(result.rows)
    table = files["markdown"].read_text()
    assert table.count("| real |") == 3 and table.count("| text_plan |") == 3
    assert "key match named" in table and "instrument" in table and "Majority-class rate" in table
    assert all(0 < r <= 1 for r in result.info["majority_rates"].values())
    assert sum(1 for _ in open(files["per_clip"])) == 1 + 3 * len(PATHS)


@needs_eval
def test_diagnose_command(micro, micro_corpus, tmp_path, capsys):
    bundle = str(micro.save_pretrained(tmp_path / "bundle"))
    out = tmp_path / "out"
    assert main(["diagnose", "--bundle", bundle, "--corpus", str(micro_corpus), "--split", "all",
                 "--n", "2", "--paths", "real", "codec", "--no-progress", "--save-audio",
                 "--out", str(out)]) == 0
    assert "| codec |" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"diagnostic.csv", "diagnostic.md", "per_clip.csv",
                                               "diagnostic.json", "audio"}
    assert sorted(p.parent.name for p in (out / "audio").rglob("*.flac")) == ["codec"] * 2 + ["real"] * 2
    missing = tmp_path / "missing"
    assert main(["diagnose", "--bundle", bundle, "--corpus", str(tmp_path / "nope"), "--out", str(missing)]) == 2
    assert "not a built corpus" in capsys.readouterr().err and not missing.exists()


def test_names_key_caption_choice_picks_a_caption_naming_the_key(micro_corpus):
    from melody_lab.ablation.diagnostic import diagnostic_clips

    first, audio, _ = diagnostic_clips(micro_corpus, "all", 40)
    named, again, _ = diagnostic_clips(micro_corpus, "all", 40, caption="names_key")
    assert torch.equal(audio, again) and [r["clip_id"] for r, _ in first] == [r["clip_id"] for r, _ in named]
    for (row, c_first), (_, c_named) in zip(first, named):
        assert c_named in row["captions"]
        if any(names_key(row, c) for c in row["captions"]):
            assert names_key(row, c_named)  # the first caption that names it
            assert c_named == next(c for c in row["captions"] if names_key(row, c))
        else:
            assert c_named == c_first
    assert sum(names_key(r, c) for r, c in named) > sum(names_key(r, c) for r, c in first)
    with pytest.raises(UserError, match="caption choice"):
        diagnostic_clips(micro_corpus, "all", 40, caption="longest")
