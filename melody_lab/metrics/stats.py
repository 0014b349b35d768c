"""Seeded percentile-bootstrap confidence intervals for a mean and for FAD."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .fad import FADResult, embedding_statistics, fad, frechet_distance


@dataclass(frozen=True)
class ConfidenceInterval:
    """``estimate`` (on the full sample) with a ``confidence`` percentile-bootstrap interval [low, high]."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _interval(estimate: float, replicates: np.ndarray, confidence: float, n: int, seed: int) -> ConfidenceInterval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return ConfidenceInterval(float(estimate), float(low), float(high), confidence, n, len(replicates), seed)


def bootstrap_mean_ci(values, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> ConfidenceInterval:
    """CI of the mean of ``values`` ``[N]`` by resampling values with replacement (seeded)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2:
        raise ValueError("need at least 2 values for a bootstrap interval")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    return _interval(values.mean(), means, confidence, len(values), seed)


def bootstrap_fad_ci(emb_eval: np.ndarray, emb_reference: np.ndarray, *, embedder: str, reference: str,
                     confidence: float = 0.95, n_resamples: int = 200, seed: int = 0,
                     resample_reference: bool = True) -> tuple[FADResult, ConfidenceInterval]:
    """FAD on the full sets plus a CI from resampling the embeddings with replacement.

    Both sets are resampled (or only the evaluation set with ``resample_reference=False``).
    Returns ``(fad_result, interval)``; the :class:`FADResult` names embedder, reference and n.
    Note that resampling with replacement duplicates rows, which itself inflates FAD a little:
    read the interval as the spread due to the finite sample, around the full-sample estimate.
    """
    emb_eval, emb_reference = np.asarray(emb_eval, np.float64), np.asarray(emb_reference, np.float64)
    full = fad(emb_eval, emb_reference, embedder=embedder, reference=reference)
    rng = np.random.default_rng(seed)
    ref_stats = embedding_statistics(emb_reference)
    replicates = []
    for _ in range(n_resamples):
        mu1, s1 = embedding_statistics(emb_eval[rng.integers(0, len(emb_eval), len(emb_eval))])
        if resample_reference:
            ref_stats = embedding_statistics(emb_reference[rng.integers(0, len(emb_reference), len(emb_reference))])
        replicates.append(frechet_distance(mu1, s1, *ref_stats))
    return full, _interval(full.score, np.asarray(replicates), confidence, len(emb_eval), seed)
