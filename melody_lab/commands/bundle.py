"""``melody-lab bundle``: assemble trained stages into one verified model folder."""
from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle", help="assemble trained stages into a model bundle (for --bundle / from_pretrained)",
        description="Collect the codec, MuLan (+ its rvq/), tokenizer, LM and denoiser runs into one "
        "folder of JSON + safetensors with a SHA-256 manifest.")
    for stage in ("codec", "mulan", "tokenizer", "lm", "denoiser"):
        p.add_argument(f"--{stage}", required=True, type=Path, help=f"trained {stage} run folder")
    p.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..train.assemble import pipeline_from_runs

    model = pipeline_from_runs(args.codec, args.mulan, args.tokenizer, args.lm, args.denoiser)
    folder = model.save_pretrained(args.out, half=not args.fp32)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"wrote bundle {folder} ({size / 1e6:.1f} MB)")
    return 0
