"""``melody-lab train STAGE``: every stage's trainer registers itself here.

A module under ``melody_lab/train/`` that defines ``register_cli(subparsers)`` becomes a
``melody-lab train <stage>`` sub-command.
"""
from __future__ import annotations

import importlib
import pkgutil


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
    for name, stage in stages.choices.items():
        if name == "tokenizer":  # fits k-means in one go: no training loop, nothing to log
            continue
        stage.add_argument("--tensorboard", action="store_true",
                           help="also write TensorBoard event files to OUT/tensorboard/ beside log.jsonl "
                           "(needs the 'tensorboard' extra: pip install -e '.[tensorboard]')")
        stage.set_defaults(func=_with_tensorboard(stage.get_default("func")))


def _with_tensorboard(run):
    def run_stage(args):
        if not args.tensorboard:
            return run(args)
        from ..train.loop import tensorboard_logging

        with tensorboard_logging():
            return run(args)

    return run_stage
