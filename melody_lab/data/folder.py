"""Bring your own data: a folder of audio files + a captions table → a melody_lab corpus.

The table is CSV (header ``path,caption``) or JSONL (``{"path": …, "caption": …}`` per line);
paths are relative to the table's folder (or absolute). The MusicCaps layout works once you have
downloaded the clips yourself: one row per clip with its caption. Each file is mixed to mono,
resampled, cut into non-overlapping clips of ``clip_seconds`` (a last piece shorter than half a
clip is dropped, a longer one is zero-padded), checked like our own corpus (silent, clipped or
non-finite clips are rejected and listed in ``corpus.json``) and written as 16-bit FLAC.
Splits are by *source file* (no file in two splits), from a seeded hash, so they are stable.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..audio import AudioFileError, load_audio, save_audio
from ..errors import UserError
from .checks import rejection_reason

TABLE_NAMES = ("captions.csv", "captions.jsonl", "metadata.csv")
MAX_CLIP_SAMPLES = 600 * 48000  # 600 s at 48 kHz: 115 MB of float32 per clip


def find_captions_table(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"data folder {folder} does not exist")
    for name in TABLE_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder} is neither a built corpus (metadata.jsonl + corpus.json) nor an "
                    f"audio folder with a captions table ({' or '.join(TABLE_NAMES)}, columns "
                    f"path, caption)")


def read_captions_table(table: str | Path) -> list[dict[str, str]]:
    """Rows ``{"path": absolute path, "caption": text}``; a clear error for missing columns."""
    table = Path(table)
    if not table.is_file():
        raise UserError(f"captions table {table} is not a file")
    try:
        text = table.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"captions table {table} is not UTF-8 text (byte {err.start}: "
                        f"{err.reason}); save it as UTF-8") from None
    if table.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise UserError(f"{table}: line {i} is not JSON ({err.msg})") from None
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as err:
            raise UserError(f"{table}: not a readable CSV table ({err})") from None
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("path") or not isinstance(row["path"], str) \
                or not str(row.get("caption", "")).strip():
            raise UserError(f"{table}: row {i} needs a non-empty 'path' and 'caption'")
    return [{"path": str((table.parent / row["path"]).resolve()), "caption": str(row["caption"]).strip()}
            for row in rows]


def _split_of(source: str, seed: int, valid: float, test: float) -> str:
    u = int(hashlib.sha256(f"{seed}:{source}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def import_audio_folder(folder: str | Path, table: str | Path, out: str | Path,
                        sample_rate: int = 16000, clip_seconds: float = 5.0, seed: int = 0,
                        valid_fraction: float = 0.05, test_fraction: float = 0.05,
                        progress: bool = True) -> Path:
    """Import (or finish importing) into corpus folder ``out``; returns ``out``."""
    out = Path(out)
    rows = read_captions_table(table)
    clip = round(clip_seconds * sample_rate)
    if not (clip >= 1 and clip <= MAX_CLIP_SAMPLES):
        raise UserError(f"clips of {clip_seconds} s at {sample_rate} Hz are {clip} samples; use "
                        f"1 to {MAX_CLIP_SAMPLES:,} (e.g. 0.1 to 600 s at 48 kHz)")
    created = [p for p in (*reversed(out.parents), out, out / "audio") if not p.exists()]
    (out / "audio").mkdir(parents=True, exist_ok=True)
    try:
        return _import_rows(rows, folder, out, sample_rate, clip_seconds, clip, seed,
                            valid_fraction, test_fraction, progress)
    except BaseException:
        for path in reversed(created):  # a failed first import leaves no empty folders behind
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise


def _import_rows(rows, folder, out: Path, sample_rate: int, clip_seconds: float, clip: int,
                 seed: int, valid_fraction: float, test_fraction: float, progress: bool) -> Path:
    metadata, rejected = [], []
    for index, row in enumerate(tqdm(rows, desc="import audio", disable=not progress)):
        source = Path(row["path"])
        work_id = f"file{index:06d}_{source.stem}"[:80]
        try:
            audio, _ = load_audio(source, sample_rate=sample_rate)
        except AudioFileError as err:
            rejected.append({"clip_id": work_id, "reason": str(err)})
            continue
        pieces = max(1, (len(audio) + clip // 2) // clip)
        for k in range(pieces):
            clip_id = f"{work_id}_c{k}"
            piece = np.zeros(clip, dtype=np.float32)
            chunk = audio[k * clip:(k + 1) * clip]
            piece[:len(chunk)] = chunk
            reason = rejection_reason(piece, sample_rate)
            if reason:
                rejected.append({"clip_id": clip_id, "reason": reason})
                continue
            path = out / "audio" / f"{clip_id}.flac"
            if not path.exists():
                save_audio(path, piece, sample_rate)
            metadata.append({"clip_id": clip_id, "work_id": work_id, "audio": f"audio/{clip_id}.flac",
                             "caption": row["caption"], "captions": [row["caption"]],
                             "source": row["path"], "start_seconds": k * clip_seconds,
                             "split": _split_of(row["path"], seed, valid_fraction, test_fraction)})
    if not metadata:
        raise UserError(f"no usable audio in {folder} (every file was unreadable or rejected)")
    tmp = out / "metadata.jsonl.partial"
    tmp.write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in metadata), encoding="utf-8")
    os.replace(tmp, out / "metadata.jsonl")
    info = {"preset": "folder", "source": str(Path(folder).resolve()), "sample_rate": sample_rate,
            "clip_seconds": clip_seconds, "clip_samples": clip, "clips": len(metadata),
            "seed": seed, "rejected_clips": rejected}
    (out / "corpus.json").write_text(json.dumps(info, indent=1))
    return out
