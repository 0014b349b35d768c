"""``melody-lab train STAGE``: every stage's trainer registers itself here.

A module under ``melody_lab/train/`` that defines ``register_cli(subparsers)`` becomes a
``melody-lab train <stage>`` sub-command. The stages define their own arguments; this module gives
every argument with a known name (``--steps``, ``--batch-size``, ``--out``, …) its checked type
from :mod:`melody_lab.commands._args`, so a bad value is refused when the command line is parsed.
"""
from __future__ import annotations

import importlib
import pkgutil

from . import _args

# dest → argparse type, for every stage that has an argument of that name
CHECKED = {
    "steps": _args.positive_int("steps"),
    "max_steps": _args.positive_int("max-steps"),
    "batch_size": _args.positive_int("batch-size", 4096),
    "max_minutes": _args.positive_float("max-minutes", 60 * 24 * 365),
    "val_every": _args.positive_int("val-every"),
    "ckpt_every": _args.positive_int("ckpt-every"),
    "gan_start_step": _args.bounded(int, 0, 10**9, "gan-start-step"),
    "chunks": _args.positive_int("chunks", 64),
    "lr": _args.positive_float("lr", 10.0),
    "crop_seconds": _args.positive_float("crop-seconds", 600.0),
    "seed": _args.seed,
    "out": _args.out_folder,
}


def check_arguments(parser) -> None:
    """Give the arguments of ``parser`` whose names are in CHECKED their checked types."""
    for action in parser._actions:  # argparse's list of the parser's arguments
        if action.dest in CHECKED and action.type in (None, int, float, str):
            action.type = CHECKED[action.dest]


def register(subparsers) -> None:
    from .. import train

    parser = subparsers.add_parser(
        "train", help="train one stage (codec, mulan, tokenizer, lm, denoiser) or all of them",
        description="Train a stage. Every stage resumes from the newest checkpoint in --out, "
        "writes safetensors + JSON, and shows a progress bar.",
    )
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for info in sorted(pkgutil.iter_modules(train.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{train.__name__}.{info.name}")
        if hasattr(module, "register_cli"):
            module.register_cli(stages)
    for stage in stages.choices.values():
        check_arguments(stage)
