"""The CPU ablation grids (ablations/*.yaml): train, generate, measure, and print the tables.

    .venv/bin/python -m pytest benchmarks/test_ablation_grids.py -s --quick   # micro smoke run (CI, < 1 min)
    MELODY_LAB_CORPUS=/work/data/tiny \\
    .venv/bin/python -m pytest benchmarks/test_ablation_grids.py -s           # full CPU grids (see docs/ablations.md)

Full runs write to results/ablations/<grid>/ and resume there (finished rows are never recomputed);
``--quick`` runs each grid's ``quick:`` micro variant on a micro corpus in a temporary folder. The
corpus of a full run is $MELODY_LAB_CORPUS when set (a built tiny corpus), else the grid's ``data``
section (built under the output folder). This file checks that the tables are well-formed; it never
asserts that one configuration beats another: it measures.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

from melody_lab.ablation import load_grid, run_ablation
from melody_lab.ablation.plots import render_plots
from melody_lab.ablation.report import write_summary
from melody_lab.ablation.runner import columns_for

ROOT = Path(__file__).resolve().parent.parent
CPU_GRIDS = ["schedules", "denoisers", "codecs"]
ALWAYS_FINITE = ["n_eval", "n_reference", "fad_features", "fad_features_low", "fad_features_high",
                 "mcc", "mcc_low", "mcc_high", "rtf", "rtf_diffusion", "speed_x_realtime",
                 "velocity_mse", "si_snri_db", "codec_mr_stft", "codec_si_sdr"]


@pytest.fixture(scope="module")
def quick_corpus(tmp_path_factory):
    from melody_lab.data.build import build_corpus
    from melody_lab.data.presets import get_preset

    root = tmp_path_factory.mktemp("micro_corpus")
    build_corpus(root, get_preset("micro"), seed=0, progress=False)
    return root


@pytest.mark.parametrize("name", CPU_GRIDS)
def test_ablation_grid(name, request, tmp_path):
    quick = request.config.getoption("--quick")
    grid_file = ROOT / "ablations" / f"{name}.yaml"
    if quick:
        corpus, out = request.getfixturevalue("quick_corpus"), tmp_path / name
    else:
        corpus, out = os.environ.get("MELODY_LAB_CORPUS"), ROOT / "results" / "ablations" / name
    grid = load_grid(grid_file, quick=quick, corpus=corpus)
    rows = run_ablation(grid, out)
    plots = render_plots(out)
    summary = write_summary(out)
    print(f"\n{summary.read_text()}\nwritten: {out / 'results.csv'}, {[p.name for p in plots]}")

    assert len(rows) == len(grid.configurations())
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == columns_for(grid)
    assert len({r["key"] for r in table}) == len(table) == len(grid.configurations())
    expected_n = grid.eval.prompts * len(grid.eval.seeds)
    info = json.loads((out / "results.json").read_text())
    for row in table:
        assert int(row["n_eval"]) == expected_n and int(row["n_reference"]) >= 2
        for column in ALWAYS_FINITE:
            assert math.isfinite(float(row[column])), (row["label"], column)
        for embedder in grid.eval.embedders:
            stem = embedder.replace("-", "_")
            measured = info["embedders"][embedder] == "ok"
            assert (row[f"fad_{stem}"] != "") == measured, (row["label"], embedder)
        assert row["clap_model"] == (grid.eval.clap or "")
        assert row["clap_status"] == "ok" or row["clap_status"].startswith("skipped:")
        if row["clap_status"] == "ok":
            assert -1.0 <= float(row["clap_low"]) <= float(row["clap"]) <= float(row["clap_high"]) <= 1.0
    assert set(info["embedders"]) >= set(grid.eval.embedders)
    assert info["reference"]["n"] == int(table[0]["n_reference"]) and info["provenance"]["cpu"]
    assert {p.name for p in plots} >= {"fad_vs_steps.png", "rtf_vs_steps.png", "pareto.png"}
