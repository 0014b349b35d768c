"""Metric validity on real corpus clips: does every metric get worse as the audio is degraded?

    .venv/bin/python -m pytest benchmarks/test_metric_validity.py -s --quick   # micro corpus (CI)
    .venv/bin/python -m pytest benchmarks/test_metric_validity.py -s           # 104 clips of 5 s

The real clips are split in two halves by a hash of their ids; one half is scored clean and at every
rung of the noise / low-pass / time-shuffle ladders (``melody_lab.metrics.degradations``) against
two references: ``vs other`` — the other half (real clips the evaluated ones are not: the strict
test, since a degradation has to beat the real-vs-real sampling difference) and ``vs same`` — the
clean versions of the evaluated clips themselves (clean = the same-set value). Metrics: FAD under
every embedder (``features``, ``evalclap-tiny``, ``basic-pitch``), the note-statistics distance
``notes_fd``, and the prompt adherence rates ``key_match`` / ``tempo_acc2`` of the basic-pitch
transcription against each clip's own attributes (their ceiling; no reference). The table is
printed and written to OUT/validity.{md,json}; the test fails when a metric of :data:`MUST_PASS`
fails, and (full run) when the failures differ from :data:`EXPECTED_FAILURES_FULL` (the list
docs/metrics.md shows), so a metric can neither start failing nor be fixed silently.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from melody_lab.data import ClipDataset
from melody_lab.metrics import build_embedder, fad
from melody_lab.metrics.validity import degradation_check, validity_table

ROOT = Path(__file__).resolve().parent.parent
#: (metric, ladder) pairs measured to fail on the full set (104 clips of 5 s) — keep in step with
#: docs/metrics.md. The quick set (micro corpus, 16 + 16 clips of 2 s) is too small and too dependent
#: on the renderer for an exact list: there only MUST_PASS is asserted, everything is printed.
EXPECTED_FAILURES_FULL = {
    # basic-pitch is built to ignore noise and timbre: mild noise / low-pass barely move its pooled
    # activations, less than the sampling difference between two halves of real clips
    ("FAD basic-pitch vs other", "noise"), ("FAD basic-pitch vs other", "lowpass"),
    ("notes_fd vs other", "noise"), ("notes_fd vs other", "lowpass"), ("notes_fd vs other", "shuffle"),
    # rates over 51–52 clips move in steps of one clip and do not respond to mild degradations
    ("key_match", "noise"), ("key_match", "lowpass"), ("key_match", "shuffle"),
    ("tempo_acc2", "noise"), ("tempo_acc2", "lowpass"), ("tempo_acc2", "shuffle"),
}
#: every embedder's FAD must rank every ladder against the clean versions of the same clips
MUST_PASS = {(f"FAD {name} vs same", ladder) for name in ("features", "evalclap-tiny", "basic-pitch")
             for ladder in ("noise", "lowpass", "shuffle")}


def _corpus(quick: bool, tmp_path_factory) -> Path:
    from melody_lab.data.build import build_corpus
    from melody_lab.data.presets import ALL_GROUPS, CorpusConfig, get_preset

    if not quick and os.environ.get("MELODY_LAB_VALIDITY_CORPUS"):
        return Path(os.environ["MELODY_LAB_VALIDITY_CORPUS"])
    root = tmp_path_factory.mktemp("validity_corpus")
    config = get_preset("micro") if quick else CorpusConfig(
        preset="tiny", group_clips={g: 8 for g in ALL_GROUPS}, max_clips_per_work=1, captions_per_clip=2)
    build_corpus(root, config, seed=0, progress=False)
    return root


def test_every_metric_gets_worse_with_degradation(request, tmp_path_factory):
    quick = request.config.getoption("--quick")
    dataset = ClipDataset(_corpus(quick, tmp_path_factory), "all")
    audio, sr = dataset.load_all_audio().numpy(), dataset.sample_rate
    order = np.argsort([hashlib.sha256(r["clip_id"].encode()).hexdigest() for r in dataset.rows])
    ref_idx, eval_idx = order[0::2], order[1::2]
    reference, clean = audio[ref_idx], audio[eval_idx]
    attributes = [dataset.rows[i] for i in eval_idx]

    embedders = {name: build_embedder(name) for name in ("features", "evalclap-tiny")}
    try:
        from melody_lab.metrics.transcribed import reference_statistics, transcription_scores

        embedders["basic-pitch"] = build_embedder("basic-pitch")
        transcriber = embedders["basic-pitch"].transcriber
        ref_stats = reference_statistics(transcriber.transcribe(reference, sr))
    except Exception as err:  # the [eval] extra is missing: say so, measure the rest
        if "[eval]" not in str(err):
            raise
        transcriber = None
        print(f"\nbasic-pitch measures not run: {err}")
    references = {"other": {name: e.embed(reference, sr) for name, e in embedders.items()},
                  "same": {name: e.embed(clean, sr) for name, e in embedders.items()}}
    if transcriber is not None:
        stats = {"other": ref_stats, "same": reference_statistics(transcriber.transcribe(clean, sr))}

    def score(batch: np.ndarray) -> dict[str, float]:
        out = {}
        for name, e in embedders.items():
            emb = e.embed(batch, sr)
            for ref in ("other", "same"):
                out[f"FAD {name} vs {ref}"] = fad(emb, references[ref][name], embedder=name,
                                                  reference=f"real, {ref}").score
        if transcriber is not None:
            transcriptions = transcriber.transcribe(batch, sr)
            for ref in ("other", "same"):
                columns, _ = transcription_scores(transcriptions, attributes, stats[ref])
                out[f"notes_fd vs {ref}"] = columns["notes_fd"]
            out.update({k: columns[k] for k in ("key_match", "tempo_acc2")})
        return out

    results = degradation_check(score, clean, sr, higher_is_better={"key_match": True, "tempo_acc2": True})
    table = validity_table(results)
    out = tmp_path_factory.mktemp("validity") if quick else ROOT / "results" / "validity"
    out.mkdir(parents=True, exist_ok=True)
    (out / "validity.md").write_text(table)
    (out / "validity.json").write_text(json.dumps({"n_reference": len(reference), "n_eval": len(clean),
                                                   "clip_seconds": audio.shape[1] / sr,
                                                   "results": [r.to_dict() for r in results]}, indent=1))
    print(f"\n{len(clean)} clips vs {len(reference)} reference clips of {audio.shape[1] / sr:g} s\n{table}")

    assert len(results) == 3 * len({r.metric for r in results})  # every metric on every ladder
    failures = {(r.metric, r.ladder) for r in results if not r.passed}
    measured = {(r.metric, r.ladder) for r in results}
    assert not failures & MUST_PASS, f"failing: {sorted(failures & MUST_PASS)}"
    if not quick and transcriber is not None:
        assert failures == EXPECTED_FAILURES_FULL, \
            f"pass/fail changed: now failing {sorted(failures - EXPECTED_FAILURES_FULL)}, " \
            f"now passing {sorted(EXPECTED_FAILURES_FULL & measured - failures)}"
