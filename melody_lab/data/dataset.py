"""Read a built corpus: :func:`load_metadata` and the torch :class:`ClipDataset`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio
from ..errors import UserError

ATTRIBUTE_KEYS = ("genre", "origin", "key", "tonic", "mode", "meter", "tempo_bpm", "tempo_word",
                  "instruments", "ensemble", "voices", "title", "collection")
SPLITS = ("train", "valid", "test")


def _corpus_file(root: Path, name: str) -> Path:
    path = Path(root) / name
    if not path.is_file():
        raise UserError(f"{root} is not a built corpus ({name} is missing); build one with "
                        f"`melody-lab data build --preset tiny --out {root}`")
    return path


def load_metadata(root: str | Path) -> list[dict]:
    """All rows of ``root/metadata.jsonl`` (one dict per clip, sorted by clip_id)."""
    path = _corpus_file(Path(root), "metadata.jsonl")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_corpus_info(root: str | Path) -> dict:
    """``root/corpus.json``: build config (sample_rate, clip_seconds, …), counts, rejections."""
    return json.loads(_corpus_file(Path(root), "corpus.json").read_text())


class ClipDataset(torch.utils.data.Dataset):
    """Clips of one split. ``ds[i]`` → ``dict(audio=float32 [T], caption, clip_id, attributes)``.

    ``split`` is ``train``, ``valid``, ``test`` or ``all``. ``T`` is ``clip_samples`` for every clip.
    """

    def __init__(self, root: str | Path, split: str = "train"):
        if split not in (*SPLITS, "all"):
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
        self.root = Path(root)
        info = load_corpus_info(self.root)
        self.sample_rate = int(info["sample_rate"])
        self.clip_samples = int(info["clip_samples"])
        self.split = split
        self.rows = [r for r in load_metadata(self.root) if split == "all" or r["split"] == split]
        self._all_audio: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, row: dict) -> np.ndarray:
        audio, _ = load_audio(self.root / row["audio"], sample_rate=self.sample_rate)
        fixed = np.zeros(self.clip_samples, dtype=np.float32)
        fixed[: min(len(audio), self.clip_samples)] = audio[: self.clip_samples]
        return fixed

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        audio = self._all_audio[index] if self._all_audio is not None else torch.from_numpy(self._read(row))
        return {"audio": audio, "caption": row["caption"], "clip_id": row["clip_id"],
                "attributes": {k: row.get(k) for k in ATTRIBUTE_KEYS}}

    def load_all_audio(self) -> torch.Tensor:
        """Every clip of the split as one float32 tensor ``[N, clip_samples]`` (cached in memory)."""
        if self._all_audio is None:
            stacked = np.stack([self._read(r) for r in self.rows]) if self.rows else \
                np.zeros((0, self.clip_samples), dtype=np.float32)
            self._all_audio = torch.from_numpy(stacked)
        return self._all_audio

    @property
    def captions(self) -> list[str]:
        return [r["caption"] for r in self.rows]
