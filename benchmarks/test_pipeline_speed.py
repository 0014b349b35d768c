"""End-to-end generation speed: per-stage times, real-time factor and peak memory.

    .venv/bin/python -m pytest benchmarks/test_pipeline_speed.py -s          # tiny: 10 s, 10 steps, w = 2.5
    .venv/bin/python -m pytest benchmarks/test_pipeline_speed.py -s --quick  # micro smoke run (CI)

The model is the shipped tiny bundle when it exists, else a random-weight pipeline of exactly the
tiny sizes (``build_debug_pipeline(preset="tiny")``): speed does not depend on the weights, and the
row says which was timed. Each context setting (``context_chunks``: the paper's M − 1, or 1) is one
CSV row. Timings follow melody_lab.metrics.rtf: a warm-up run, then the median of timed runs.
Nothing here asserts a speed: the numbers go to the README with the hardware and the command.
"""
from __future__ import annotations

import csv
import platform
from pathlib import Path

import pytest
import torch

from melody_lab.debug import build_debug_pipeline
from melody_lab.metrics.rtf import measure_rtf
from melody_lab.pipeline import MeLoDy

TINY = Path(__file__).resolve().parents[1] / "melody_lab" / "assets" / "bundles" / "tiny"


def _model(quick: bool) -> tuple[MeLoDy, str]:
    if quick:
        return build_debug_pipeline(preset="micro"), "micro (random weights)"
    if (TINY / "manifest.json").exists():
        return MeLoDy.from_pretrained("tiny"), "tiny bundle"
    return build_debug_pipeline(preset="tiny"), "tiny sizes (random weights)"


def test_generation_speed(request, tmp_path):
    quick = request.config.getoption("--quick")
    model, label = _model(quick)
    seconds, steps, repeats = (2.0, 2, 1) if quick else (10.0, 10, 3)
    out = tmp_path if quick else Path("results/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for context in (None, 1):
        model.config.context_chunks = context

        def run(timer):
            model.generate(["a lively Irish jig on fiddle"], seconds, steps=steps, guidance=2.5, seed=0)
            for stage, value in model.last_timings.items():
                if stage not in ("total", "rtf", "audio_seconds"):
                    timer.seconds[stage] += value  # the pipeline's own (synchronised) stage times

        result = measure_rtf(run, audio_seconds=seconds, warmup=1, repeats=repeats)
        rows.append({"model": label, "context_chunks": context or model.config.num_chunks - 1,
                     "seconds": seconds, "steps": steps, "guidance": 2.5, "rtf": result.rtf,
                     "total_s": result.total_seconds,
                     **{f"{k}_s": v for k, v in result.stage_seconds.items()},
                     "peak_memory_mb": (result.peak_memory_bytes or 0) / 2**20,
                     "threads": result.threads, "cpu": platform.processor() or platform.machine(),
                     "torch": torch.__version__})
    with (out / "pipeline_speed.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        assert row["rtf"] > 0 and row["diffusion_s"] > 0 and row["total_s"] >= row["diffusion_s"]
