"""``melody-lab bundle``: assemble trained stages into one verified model folder."""
from __future__ import annotations

from pathlib import Path

from . import _args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle", help="assemble trained stages into a model bundle (for --bundle / from_pretrained)",
        description="Collect the codec, MuLan (+ its rvq/), tokenizer, LM and denoiser runs into one "
        "folder of JSON + safetensors with a SHA-256 manifest and a MODEL_CARD.md (components, "
        "settings, data and licence, each run's recipe and wall time, known limits).")
    for stage in ("codec", "mulan", "tokenizer", "lm", "denoiser"):
        p.add_argument(f"--{stage}", required=True, type=Path, help=f"trained {stage} run folder, or its "
                       "export / a bundle folder / 'tiny' (to reuse a bundle's component)")
    p.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: fp16)")
    g = p.add_argument_group("sampling defaults stored in the bundle (each call may override them)")
    g.add_argument("--steps", type=int, default=None, help="diffusion steps (default 10)")
    g.add_argument("--schedule", default=None, help="angle schedule name (default linear)")
    g.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default 2.5)")
    g.add_argument("--lm-guidance", type=_args.lm_guidance, default=None, metavar="G",
                   help="the semantic LM's classifier-free guidance (default 1 = none; other "
                        "values need an LM trained with cond_dropout > 0)")
    g.add_argument("--context-chunks", type=int, default=None, metavar="C",
                   help="chunks of known context per continuation window (default M − 1, the "
                        "paper's slide by one chunk; smaller is faster)")
    g.add_argument("--lm-step", type=int, default=None, metavar="N",
                   help="new semantic tokens per LM call after the first window (1 … the LM's "
                        "max_tokens; default: half of max_tokens; the paper recipe: one chunk)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..diffusion import get_schedule
    from ..errors import UserError
    from ..train.assemble import pipeline_from_runs

    overrides = {k: v for k, v in (("steps", args.steps), ("schedule", args.schedule),
                                   ("guidance", args.guidance),
                                   ("lm_guidance", args.lm_guidance),
                                   ("context_chunks", args.context_chunks),
                                   ("lm_step_tokens", args.lm_step)) if v is not None}
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.schedule is not None:
        get_schedule(args.schedule)  # an unknown name is a one-line error listing the known ones
    model = pipeline_from_runs(args.codec, args.mulan, args.tokenizer, args.lm, args.denoiser,
                               **overrides)
    model.lm.check_guidance(model.config.lm_guidance)  # before anything is written
    chunks = model.config.num_chunks
    if args.context_chunks is not None and not 1 <= args.context_chunks < chunks:
        raise UserError(f"--context-chunks must be between 1 and {chunks - 1} (the denoiser's "
                        f"window has {chunks} chunks), got {args.context_chunks}")
    most = model.lm.config.max_tokens
    if args.lm_step is not None and not 1 <= args.lm_step <= most:
        raise UserError(f"--lm-step must be between 1 and {most} (the LM's max_tokens), "
                        f"got {args.lm_step}")
    folder = model.save_pretrained(args.out, half=not args.fp32)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"wrote bundle {folder} ({size / 1e6:.1f} MB)")
    return 0
