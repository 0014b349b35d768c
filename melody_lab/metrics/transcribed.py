"""Every transcription-based measure of a set of clips, from one basic-pitch pass per clip.

``transcription_scores(transcriptions, attributes, reference)`` (one
:class:`~melody_lab.metrics.transcription.Transcription` per clip) returns set-level columns and
per-clip values (kept so rows can be compared clip by clip with paired intervals):

- ``notes_fd``: :func:`~melody_lab.metrics.musicality.statistics_distance` (Fréchet distance of the
  standardised note statistics) to the ``reference`` statistics matrix (real clips);
- ``notes_<statistic>``: the set's mean of each statistic of :data:`~melody_lab.metrics.musicality.STATISTICS`;
- ``key_match``, ``key_score``, ``mode_match``, ``tempo_acc1``, ``tempo_acc2``: means over the clips
  where they apply (see :mod:`~melody_lab.metrics.adherence`), against each clip's prompted attributes.
"""
from __future__ import annotations

import math

import numpy as np

from .adherence import clip_adherence
from .musicality import STATISTICS, note_statistics, statistics_distance, statistics_matrix

ADHERENCE = ("key_match", "key_score", "mode_match", "tempo_acc1", "tempo_acc2")


def reference_statistics(transcriptions: list) -> np.ndarray:
    """Transcriptions of real clips → their note-statistics matrix ``[N, S]`` (the reference of ``notes_fd``)."""
    return statistics_matrix([note_statistics(t.notes, t.duration_s) for t in transcriptions])


def transcription_scores(transcriptions: list, attributes: list[dict] | None,
                         reference: np.ndarray) -> tuple[dict[str, float], list[dict]]:
    """N transcriptions (+ one prompt-attribute dict per clip, or None: no adherence) and the
    reference statistics matrix → (columns, per-clip dicts of statistics and adherence values)."""
    if attributes is not None and len(attributes) != len(transcriptions):
        raise ValueError(f"{len(attributes)} attribute rows for {len(transcriptions)} clips")
    per_clip = []
    for index, t in enumerate(transcriptions):
        clip = note_statistics(t.notes, t.duration_s)
        if attributes is not None:
            clip.update(clip_adherence(t.notes, t.duration_s, attributes[index]))
        per_clip.append(clip)
    matrix = statistics_matrix(per_clip)
    columns: dict[str, float] = {}
    try:
        columns["notes_fd"] = statistics_distance(matrix, reference).frechet
    except ValueError:  # fewer than 2 clips with notes: no distance, said as NaN
        columns["notes_fd"] = math.nan
    for j, name in enumerate(STATISTICS):
        finite = matrix[np.isfinite(matrix[:, j]), j]
        columns[f"notes_{name}"] = float(finite.mean()) if len(finite) else math.nan
    for name in ADHERENCE:
        values = np.array([c.get(name, math.nan) for c in per_clip], dtype=np.float64)
        finite = values[np.isfinite(values)]
        columns[name] = float(finite.mean()) if len(finite) else math.nan
    return columns, per_clip
