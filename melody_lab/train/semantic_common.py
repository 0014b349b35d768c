"""Helpers shared by the semantic-stage trainers (``train/mulan.py``, ``tokenizer.py``, ``lm.py``).

Not a training loop (that is ``loop.py``): the common command-line arguments, the loop settings
of a semantic stage, and a warm-up + cosine learning-rate schedule. The run-folder check is
``checkpoint.check_run_record``; corpus splits are loaded by :func:`melody_lab.data.splits.load_split`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..config import Config
from ..errors import UserError
from .loop import LoopConfig, check_loop_config


def lr_at(step: int, base: float, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``floor · base`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def add_common_args(parser, presets: list[str]) -> None:
    parser.add_argument("--preset", default="tiny", choices=presets, help="size preset")
    parser.add_argument("--data", required=True, help="built corpus folder (metadata.jsonl, audio/)")
    parser.add_argument("--out", required=True, help="run folder (resumes if it has checkpoints)")
    parser.add_argument("--seed", type=int, default=0)


def add_loop_args(parser) -> None:
    parser.add_argument("--max-steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop (with a checkpoint) after this much wall time")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def loop_config(steps: int, val_every: int, seed: int = 0, max_minutes: float | None = None,
                progress: bool = True) -> LoopConfig:
    """The loop of a semantic stage: ``steps`` steps, validated and checkpointed every
    ``val_every`` steps (its train preset's), logged every 10."""
    loop = LoopConfig(max_steps=steps, seed=seed, log_every=10, val_every=val_every,
                      ckpt_every=val_every, max_minutes=max_minutes, progress=progress)
    check_loop_config(loop)  # before the stage loads its data or builds its model
    return loop


@dataclass
class SemanticStageConfig(Config):
    """A semantic stage's settings: the size ``preset`` and the ``train`` hyper-parameters
    (None: the preset's, from the subclass's ``TRAIN_PRESETS``). Subclasses declare the two
    fields (``preset: str``, ``train: <TrainConfig> | None``) and ``TRAIN_PRESETS``."""

    TRAIN_PRESETS: ClassVar[dict] = {}

    def __post_init__(self):
        if self.preset not in self.TRAIN_PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of: "
                            f"{', '.join(self.TRAIN_PRESETS)}")
        if self.train is None:
            self.train = self.TRAIN_PRESETS[self.preset]

    @classmethod
    def for_preset(cls, preset: str):
        return cls(preset)

    def loop(self, steps: int | None = None, seed: int = 0, max_minutes: float | None = None,
             progress: bool = True) -> LoopConfig:
        """``steps`` (None: the train preset's) steps at the train preset's validation cadence."""
        steps = self.train.steps if steps is None else steps  # 0 is refused, not the preset's
        return loop_config(steps, self.train.val_every, seed, max_minutes, progress)
