"""Quality gate for every clip: non-finite, silent, clipped or mostly-silent clips are rejected.

:func:`normalise_and_check` is the only way a rendered clip reaches the disk: it levels the clip to
a target RMS (never above a peak ceiling) and returns the reason when the clip must be rejected.
"""
from __future__ import annotations

import numpy as np

from ..audio import rms_db

SILENCE_DB = -60.0  # raw render quieter than this is silent
FRAME_SECONDS = 0.05
ACTIVE_DB_BELOW_PEAK = 40.0  # a 50 ms frame is "active" when within 40 dB of the loudest frame
MIN_ACTIVE_FRACTION = 0.5
CLIP_LEVEL = 0.999


def rejection_reason(audio: np.ndarray, sample_rate: int) -> str | None:
    """Why ``audio`` (``[T]`` float, after levelling) must not be written, or None if it is fine."""
    if not np.isfinite(audio).all():
        return "non-finite samples (NaN or inf)"
    level = rms_db(audio)
    if level < SILENCE_DB:
        return f"silent (RMS {level:.1f} dBFS)"
    clipped = int(np.sum(np.abs(audio) >= CLIP_LEVEL))
    if clipped > 0:
        return f"clipped ({clipped} samples at full scale)"
    frame = max(1, int(FRAME_SECONDS * sample_rate))
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    frame_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    active = float(np.mean(frame_db > frame_db.max() - ACTIVE_DB_BELOW_PEAK))
    if active < MIN_ACTIVE_FRACTION:
        return f"mostly silent ({active:.0%} of 50 ms frames active)"
    return None


def normalise_and_check(audio: np.ndarray, sample_rate: int, target_rms_db: float = -20.0,
                        max_peak: float = 0.9) -> tuple[np.ndarray, str | None]:
    """Level ``[T]`` audio to ``target_rms_db`` (peak ≤ ``max_peak``) → ``(audio, reason or None)``.

    A silent or non-finite input is returned unchanged with its reason (no gain is applied to it).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all() or rms_db(audio) < SILENCE_DB:
        return audio, rejection_reason(audio, sample_rate)
    gain = 10 ** ((target_rms_db - rms_db(audio)) / 20)
    peak = float(np.max(np.abs(audio)))
    gain = min(gain, max_peak / peak)
    leveled = (audio * gain).astype(np.float32)
    return leveled, rejection_reason(leveled, sample_rate)
