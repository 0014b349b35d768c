"""``melody-lab ablate GRID.yaml --out DIR [--quick] [--shard i/N]``: run (or resume) an ablation grid."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from . import _args


def shard(text: str) -> tuple[int, int]:
    """An argparse type: ``i/N`` with integers 0 <= i < N (``--shard 1/4``)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"shard: expected i/N with integers 0 <= i < N, got {text!r}")
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text}: need 0 <= i < N (shards 0 … N-1 of N >= 1)")
    return index, count


shard.__name__ = "shard"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="train/evaluate a grid of configurations; CSV, plots and a summary table",
        description="Expand GRID.yaml (schedule × steps × denoiser × codec × guidance), train or reuse "
        "what each configuration needs, generate from a fixed prompt set and write one row per "
        "configuration to OUT/results.csv (+ results.json, plots, summary.md). Re-running the same "
        "command resumes: finished rows are kept and never recomputed. See docs/ablations.md.")
    p.add_argument("grid", type=_args.utf8_text_file, help="grid file, e.g. ablations/schedules.yaml")
    p.add_argument("--out", required=True, type=_args.out_folder,
                   help="output folder (resumed if it exists)")
    p.add_argument("--quick", action="store_true", help="apply the grid's quick: section (smoke run)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="an already built corpus to use instead of the grid's data section")
    p.add_argument("--runs", type=_args.out_folder, default=None,
                   help="folder for trained stages (default OUT/runs); grids may share one")
    p.add_argument("--train-only", action="store_true",
                   help="only train what the unfinished configurations need, then stop")
    p.add_argument("--shard", type=shard, default=None, metavar="i/N",
                   help="compute only the rows whose config hash falls to shard i of N "
                   "(int(key, 16) %% N == i) into the shared OUT; run i = 0 … N-1 as separate "
                   "processes or jobs, each rebuilds the tables from every finished row")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..ablation import run_ablation
    from ..ablation.report import write_summary
    from ..ablation.runner import tables_lock

    run_ablation(args.grid, args.out, quick=args.quick, corpus=args.corpus, runs_dir=args.runs,
                 progress=args.progress, train_only=args.train_only, shard=args.shard)
    if args.train_only:
        print("[ablate] training finished (--train-only); run again without it to evaluate")
        return 0
    with tables_lock(args.out):  # other shards may be rewriting the tables meanwhile
        if not args.no_plots:
            from ..ablation.plots import render_plots

            for path in render_plots(args.out):
                print(f"[ablate] plot: {path}")
        summary = write_summary(args.out)
    print(summary.read_text())
    print(f"[ablate] table: {args.out / 'results.csv'}; summary: {summary}")
    return 0
