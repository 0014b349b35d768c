"""One corpus split in memory: every clip's audio, captions and attributes (``load_split``).

Read through :class:`melody_lab.data.ClipDataset` (the corpus contract); used by the semantic
trainers and by ``melody_lab.semantic.evaluate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError


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
    from .dataset import ClipDataset

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
