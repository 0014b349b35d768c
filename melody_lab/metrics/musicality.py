"""Note-level musicality statistics of a transcribed clip, and how far a set of clips is from real ones.

Input: a clip's notes ``[K, 4]`` (onset s, offset s, MIDI pitch, amplitude) — e.g. from
:class:`~melody_lab.metrics.transcription.BasicPitchTranscriber` — and its duration. Pure numpy: no
optional dependency. Per clip (:func:`note_statistics`, keys of :data:`STATISTICS`):

- ``notes_per_s``: notes / clip duration.
- ``polyphony``: mean number of sounding notes over the time where at least one sounds.
- ``note_coverage``: fraction of the clip during which at least one note sounds.
- ``pitch_range``: 95th − 5th percentile of the notes' pitches (semitones; robust to stray notes).
- ``pitch_class_entropy``: entropy (bits, 0 … log2 12 = 3.58) of the duration-weighted pitch-class histogram.
- ``key_clarity``: the best Pearson correlation of that histogram with the 24 Krumhansl–Kessler key
  profiles (Krumhansl 1990); the best profile is the estimated key (:func:`estimate_key`).
- ``onset_regularity``: the highest normalised autocorrelation of the onset train (10-ms grid,
  Gaussian σ = 20 ms) at lags 0.2 s … min(2 s, duration / 2): 1 = perfectly periodic onsets.

A clip with fewer than 2 notes gets NaN for the pitch statistics and regularity (never a made-up
value); :func:`statistics_distance` drops such clips and says how many it dropped, and compares the
heavy-tailed statistics (notes/s, polyphony, pitch range) on a log scale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

STATISTICS = ("notes_per_s", "polyphony", "note_coverage", "pitch_range", "pitch_class_entropy",
              "key_clarity", "onset_regularity")
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
#: Krumhansl & Kessler (1982) probe-tone ratings, tonic first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
GRID_HZ = 100.0  # time grid of the onset train and the sounding-note count


def _check_notes(notes) -> np.ndarray:
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4) if np.size(notes) else np.zeros((0, 4))
    if not np.isfinite(notes).all():
        raise ValueError("notes contain NaN or infinite values")
    return notes


def pitch_class_histogram(notes) -> np.ndarray:
    """Notes ``[K, 4]`` → duration-weighted pitch-class histogram ``[12]`` (C = 0), summing to 1 (or all 0)."""
    notes = _check_notes(notes)
    hist = np.zeros(12)
    np.add.at(hist, np.round(notes[:, 2]).astype(int) % 12, np.maximum(notes[:, 1] - notes[:, 0], 0.0))
    return hist / hist.sum() if hist.sum() > 0 else hist


def key_correlations(histogram) -> np.ndarray:
    """Pitch-class histogram ``[12]`` → Pearson correlations ``[24]`` with the KK profiles:
    index ``tonic`` for tonic major, ``12 + tonic`` for tonic minor."""
    histogram = np.asarray(histogram, dtype=np.float64)
    out = np.full(24, np.nan)
    if np.ptp(histogram) == 0:
        return out
    for mode, profile in enumerate((KK_MAJOR, KK_MINOR)):
        for tonic in range(12):
            out[12 * mode + tonic] = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
    return out


def estimate_key(notes) -> tuple[str | None, float]:
    """Notes → (``"D major"``-style key of the best-correlated KK profile, its correlation);
    (None, NaN) without pitch content."""
    corr = key_correlations(pitch_class_histogram(notes))
    if np.isnan(corr).all():
        return None, float("nan")
    best = int(np.nanargmax(corr))
    return f"{PITCH_CLASSES[best % 12]} {'major' if best < 12 else 'minor'}", float(corr[best])


def onset_autocorrelation(onsets, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Onset times (s) → (lags s ``[L]``, autocorrelation normalised by lag 0 ``[L]``) of the
    onset train on a 10-ms grid smoothed with a Gaussian of σ = 20 ms (mean removed)."""
    n = max(int(np.ceil(duration_s * GRID_HZ)), 1)
    train = np.zeros(n)
    idx = np.clip(np.round(np.asarray(onsets) * GRID_HZ).astype(int), 0, n - 1)
    np.add.at(train, idx, 1.0)
    kernel_t = np.arange(-6, 7) / GRID_HZ
    train = np.convolve(train, np.exp(-0.5 * (kernel_t / 0.02) ** 2), mode="same")
    train = train - train.mean()
    full = np.correlate(train, train, mode="full")[n - 1:]
    ac = full / full[0] if full[0] > 0 else np.zeros_like(full)
    return np.arange(n) / GRID_HZ, ac


def _sounding_counts(notes: np.ndarray, duration_s: float) -> np.ndarray:
    n = max(int(np.ceil(duration_s * GRID_HZ)), 1)
    delta = np.zeros(n + 1)
    starts = np.clip(np.round(notes[:, 0] * GRID_HZ).astype(int), 0, n)
    ends = np.clip(np.round(notes[:, 1] * GRID_HZ).astype(int), 0, n)
    np.add.at(delta, starts, 1.0)
    np.add.at(delta, ends, -1.0)
    return np.cumsum(delta)[:n]


def note_statistics(notes, duration_s: float) -> dict[str, float]:
    """One clip's notes ``[K, 4]`` and duration (s) → ``{statistic: value}`` (see module docstring)."""
    notes = _check_notes(notes)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    counts = _sounding_counts(notes, duration_s)
    sounding = counts > 0
    stats = {"notes_per_s": len(notes) / duration_s,
             "polyphony": float(counts[sounding].mean()) if sounding.any() else 0.0,
             "note_coverage": float(sounding.mean())}
    nan = float("nan")
    if len(notes) < 2:
        return {**stats, "pitch_range": nan, "pitch_class_entropy": nan, "key_clarity": nan,
                "onset_regularity": nan}
    hist = pitch_class_histogram(notes)
    nonzero = hist[hist > 0]
    lags, ac = onset_autocorrelation(np.unique(np.round(notes[:, 0], 2)), duration_s)
    window = (lags >= 0.2) & (lags <= min(2.0, duration_s / 2))
    low, high = np.percentile(notes[:, 2], [5, 95])
    return {**stats, "pitch_range": float(high - low),
            "pitch_class_entropy": float(-(nonzero * np.log2(nonzero)).sum()),
            "key_clarity": estimate_key(notes)[1],
            "onset_regularity": float(ac[window].max()) if window.any() else nan}


def statistics_matrix(per_clip: list[dict[str, float]]) -> np.ndarray:
    """``[N]`` dicts of :func:`note_statistics` → ``[N, len(STATISTICS)]`` float64 (NaN kept)."""
    return np.array([[clip[k] for k in STATISTICS] for clip in per_clip], dtype=np.float64).reshape(-1, len(STATISTICS))


#: heavy-tailed statistics compared on a log scale in :func:`statistics_distance`: name → offset
LOG_SCALED = {"notes_per_s": 0.5, "polyphony": 1.0, "pitch_range": 1.0}


def _log_scaled(matrix: np.ndarray) -> np.ndarray:
    out = matrix.copy()
    for name, offset in LOG_SCALED.items():
        j = STATISTICS.index(name)
        if j < out.shape[1]:
            out[:, j] = np.log(np.maximum(out[:, j], 0.0) + offset)
    return out


@dataclass(frozen=True)
class StatisticsDistance:
    """How far generated clips' note statistics are from real ones.

    ``frechet``: Fréchet distance between Gaussians fitted to the statistics — the heavy-tailed ones
    of :data:`LOG_SCALED` as log(value + offset) — standardised by the *real* set's mean and std (so
    each statistic counts in units of its real spread); ``effect_sizes``: per statistic (mean
    generated − mean real) / std real on that same scale; ``means_*``: raw means;
    ``n_*``: clips used (clips with any NaN statistic dropped: ``dropped_*``).
    """

    frechet: float
    effect_sizes: dict[str, float]
    means_generated: dict[str, float]
    means_real: dict[str, float]
    n_generated: int
    n_real: int
    dropped_generated: int
    dropped_real: int

    def to_dict(self) -> dict:
        return asdict(self)


def statistics_distance(generated: np.ndarray, real: np.ndarray) -> StatisticsDistance:
    """``[N₁, S]`` and ``[N₂, S]`` matrices of :func:`statistics_matrix` → :class:`StatisticsDistance`."""
    from .fad import embedding_statistics, frechet_distance

    generated, real = np.asarray(generated, np.float64), np.asarray(real, np.float64)
    keep_g, keep_r = np.isfinite(generated).all(1), np.isfinite(real).all(1)
    g, r = generated[keep_g], real[keep_r]
    if len(g) < 2 or len(r) < 2:
        raise ValueError(f"need ≥ 2 clips with notes in each set; got {len(g)} generated, {len(r)} real")
    gl, rl = _log_scaled(g), _log_scaled(r)
    mean, std = rl.mean(0), rl.std(0, ddof=1)
    std = np.where(std > 0, std, 1.0)
    frechet = frechet_distance(*embedding_statistics((gl - mean) / std), *embedding_statistics((rl - mean) / std))
    names = list(STATISTICS)[:generated.shape[1]]
    return StatisticsDistance(frechet, dict(zip(names, ((gl.mean(0) - mean) / std).tolist())),
                              dict(zip(names, g.mean(0).tolist())), dict(zip(names, r.mean(0).tolist())),
                              len(g), len(r), int((~keep_g).sum()), int((~keep_r).sum()))
