"""Seeded percentile-bootstrap intervals: for a mean, for FAD, and for paired differences between rows
that share prompts and seeds; rank agreement (Kendall's τ) for control rows."""
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


@dataclass(frozen=True)
class PairedDifference:
    """``estimate`` = metric(row) − metric(baseline) on the full paired sample, with a
    ``confidence`` paired-bootstrap interval [low, high]; ``excludes_zero`` marks a difference the
    interval separates from 0. ``n_groups``: the resampled units (prompts), ``n``: clips per row."""

    estimate: float
    low: float
    high: float
    excludes_zero: bool
    confidence: float
    n: int
    n_groups: int
    n_resamples: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimate:+.3g} [{self.low:+.3g}, {self.high:+.3g}]{' *' if self.excludes_zero else ''}"


def paired_bootstrap(difference, n: int, *, groups=None, confidence: float = 0.95, n_resamples: int = 1000,
                     seed: int = 0) -> PairedDifference:
    """Paired percentile bootstrap of ``difference(indices) -> float`` over ``n`` paired items.

    ``difference`` receives an index array into the items (the same indices for both rows: that is
    the pairing) and returns metric(row[indices]) − metric(baseline[indices]). ``groups`` ``[n]``
    (e.g. the prompt of each clip when every prompt is generated under several seeds) makes the
    bootstrap resample whole groups jointly; default: each item is its own group. Replicates that
    come out NaN (e.g. a resample with too few valid clips) are dropped; all NaN gives a NaN interval.
    """
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} items")
    labels, inverse = np.unique(groups, return_inverse=True)
    if len(labels) < 2:
        raise ValueError("need at least 2 groups (prompts) for a paired bootstrap")
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(labels), len(labels))
        replicates.append(float(difference(np.concatenate([members[g] for g in chosen]))))
    replicates = np.asarray(replicates)
    replicates = replicates[np.isfinite(replicates)]
    estimate = float(difference(np.arange(n)))
    if len(replicates) == 0:
        nan = float("nan")
        return PairedDifference(estimate, nan, nan, False, confidence, n, len(labels), 0, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(replicates, [alpha, 1.0 - alpha]))
    return PairedDifference(estimate, low, high, bool(low > 0 or high < 0), confidence, n, len(labels),
                            len(replicates), seed)


def paired_mean_difference(values, baseline, **kwargs) -> PairedDifference:
    """Paired bootstrap of mean(values) − mean(baseline), per-item ``[n]`` values of two rows on the
    same prompts and seeds (NaN = not applicable, left out of both means of a resample)."""
    values, baseline = np.asarray(values, np.float64), np.asarray(baseline, np.float64)
    if values.shape != baseline.shape or values.ndim != 1:
        raise ValueError(f"paired values must be two [n] arrays of one length; got {values.shape}, {baseline.shape}")

    def difference(idx):
        a, b = values[idx], baseline[idx]
        if not (np.isfinite(a).any() and np.isfinite(b).any()):
            return float("nan")
        return float(np.nanmean(a) - np.nanmean(b))

    return paired_bootstrap(difference, len(values), **kwargs)


def paired_fad_difference(emb, emb_baseline, emb_reference, *, resample_reference: bool = True,
                          seed: int = 0, **kwargs) -> PairedDifference:
    """Paired bootstrap of FAD(emb, ref) − FAD(emb_baseline, ref): both rows' embeddings ``[n, E]``
    are resampled with the same indices; with ``resample_reference`` the reference ``[M, E]`` is
    resampled too, once per replicate and shared by both FADs (so its noise cancels in the pair)."""
    emb, emb_baseline = np.asarray(emb, np.float64), np.asarray(emb_baseline, np.float64)
    emb_reference = np.asarray(emb_reference, np.float64)
    if emb.shape != emb_baseline.shape:
        raise ValueError(f"paired embeddings must have one shape; got {emb.shape}, {emb_baseline.shape}")
    rng = np.random.default_rng(seed + 1)
    full_ref = embedding_statistics(emb_reference)

    def difference(idx):
        if len(np.unique(idx)) < 2:
            return float("nan")
        full = len(idx) == len(emb) and (idx == np.arange(len(emb))).all()
        ref = full_ref if full or not resample_reference else \
            embedding_statistics(emb_reference[rng.integers(0, len(emb_reference), len(emb_reference))])
        return (frechet_distance(*embedding_statistics(emb[idx]), *ref)
                - frechet_distance(*embedding_statistics(emb_baseline[idx]), *ref))

    return paired_bootstrap(difference, len(emb), seed=seed, **kwargs)


def rank_agreement(expected_rank, observed, higher_is_better: bool = False) -> float:
    """Kendall-style rank agreement (−1 … 1) between the expected quality order of some rows
    (``expected_rank`` ``[R]``: 0 = best, ties allowed) and a metric's values ``[R]`` for them.

    Kendall's τ over the pairs the expected order ranks (Somers' D of the metric given the
    expectation): (concordant − discordant) / pairs with different expected ranks; a metric tie
    counts as neither. +1: every such pair is in the expected order. NaN values are dropped.
    """
    expected, observed = np.asarray(expected_rank, np.float64), np.asarray(observed, np.float64)
    keep = np.isfinite(observed)
    expected, badness = expected[keep], (-observed if higher_is_better else observed)[keep]
    i, j = np.triu_indices(len(expected), k=1)
    ranked = expected[i] != expected[j]
    if not ranked.any():
        return float("nan")
    sign = np.sign(expected[i] - expected[j]) * np.sign(badness[i] - badness[j])
    return float(sign[ranked].sum() / ranked.sum())
