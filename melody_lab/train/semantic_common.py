"""Helpers shared by the semantic-stage trainers (``train/mulan.py``, ``tokenizer.py``, ``lm.py``).

Not a training loop (that is ``loop.py``): data loading against the corpus contract, the common
command-line arguments, a warm-up + cosine learning-rate schedule, and the run-folder guard.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from .checkpoint import atomic_write_text
from .loop import LoopConfig, check_loop_config


@dataclass
class Split:
    """One corpus split in memory: ``audio [N, T]`` float32 plus per-clip captions and attributes.

    ``captions[i]`` is clip i's main caption; ``caption_lists[i]`` all its captions (the corpus
    writes several per clip, each naming a different random subset of its attributes).
    """

    audio: torch.Tensor
    captions: list[str]
    clip_ids: list[str]
    attributes: list[dict]
    sample_rate: int
    caption_lists: list[list[str]] | None = None

    def __post_init__(self):
        if self.caption_lists is None:
            self.caption_lists = [[c] for c in self.captions]


def load_split(root: str | Path, split: str, sample_rate: int) -> Split:
    """Load every clip of ``split`` from a built corpus (``melody_lab.data.ClipDataset``)."""
    from ..data import ClipDataset

    root = Path(root)
    if not (root / "metadata.jsonl").is_file():
        raise UserError(f"{root} is not a built corpus (no metadata.jsonl); "
                        f"build one with `melody-lab data build`")
    ds = ClipDataset(root, split)
    if len(ds) == 0:
        raise UserError(f"corpus {root} has no clips in split {split!r}")
    if ds.sample_rate != sample_rate:
        raise UserError(f"corpus {root} is at {ds.sample_rate} Hz but the model expects "
                        f"{sample_rate} Hz")
    audio = ds.load_all_audio().float()
    items = [ds[i] for i in range(len(ds))]
    rows = getattr(ds, "rows", None) or [{} for _ in items]
    captions = [it["caption"] for it in items]
    lists = [list(row.get("captions") or [c]) for row, c in zip(rows, captions)]
    lists = [ls if c in ls else [c, *ls] for ls, c in zip(lists, captions)]
    return Split(audio, captions, [it["clip_id"] for it in items],
                 [dict(it.get("attributes") or {}) for it in items], ds.sample_rate, lists)


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


def loop_config(args, steps: int, val_every: int) -> LoopConfig:
    steps = steps if args.max_steps is None else args.max_steps  # 0 is refused, not the preset's
    loop = LoopConfig(max_steps=steps, seed=args.seed, log_every=10,
                      val_every=val_every, ckpt_every=val_every, max_minutes=args.max_minutes,
                      progress=not args.no_progress)
    check_loop_config(loop)  # before the stage loads its data or builds its model
    return loop


def guard_run_folder(out: Path, record: dict) -> bool:
    """Write ``out/config.json`` on first use; True if it exists with the same record.

    A different record is an error (a run folder is never reused with other settings).
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    if path.exists():
        if json.loads(path.read_text()) != json.loads(json.dumps(record)):
            raise UserError(f"{out} holds a run with a different configuration; use a new --out "
                            f"folder or the same settings (see {path})")
        return True
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True))
    return False
