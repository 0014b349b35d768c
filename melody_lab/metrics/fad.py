"""Fréchet Audio Distance (FAD) and FAD∞, computed carefully in float64.

FAD is the Fréchet (2-Wasserstein) distance between two Gaussians fitted to embeddings:

    FAD = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 · tr( (Σ₁ Σ₂)^{1/2} )

It depends on the embedder, the reference set and the number of samples (it is biased upwards at
small n), so every result here carries all three: never report a bare FAD number.
FAD∞ (Gui et al. 2024, microsoft/fadtk) removes the sample-size bias by computing FAD on random
subsets of n evaluation embeddings, fitting FAD(n) = slope · (1/n) + intercept, and reporting the
intercept. Two variants: :func:`fad_infinity_fadtk` is fadtk's algorithm (per-frame embeddings,
drawn with replacement, 25 sizes from 500 frames); :func:`fad_infinity` works on per-clip embeddings
and draws subsets without replacement (what the ablation tables use at n ≈ 100 clips). Per-clip FAD
(fadtk's ``--indiv``): :func:`fad_per_clip`.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

#: Relative size of the imaginary part of √(Σ₁Σ₂) above which the square root is distrusted.
IMAGINARY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FADResult:
    """One FAD score with what it was measured with.

    ``n_eval`` / ``n_reference``: embeddings in each set; ``regularised``: the ε·I fallback was used.
    """

    score: float
    n_eval: int
    n_reference: int
    embedder: str
    reference: str
    regularised: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FADInfinityResult:
    """FAD∞: the intercept of FAD(n) against 1/n, with the fit and the points it came from."""

    score: float
    slope: float
    r2: float
    ns: tuple[int, ...]
    fads: tuple[float, ...]
    n_eval: int
    n_reference: int
    embedder: str
    reference: str
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def embedding_statistics(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings ``[N, E]`` → (mean ``[E]``, unbiased covariance ``[E, E]``), both float64."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be [N, E]; got shape {emb.shape}")
    if emb.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings for a covariance; got {emb.shape[0]}")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return emb.mean(axis=0), np.cov(emb, rowvar=False).reshape(emb.shape[1], emb.shape[1])


def _sqrtm_checked(matrix: np.ndarray) -> np.ndarray | None:
    """√matrix, or None when scipy reports it singular, it is not finite, or it is markedly complex."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            root = scipy.linalg.sqrtm(matrix)
        except (scipy.linalg.LinAlgWarning, scipy.linalg.LinAlgError, ValueError):
            return None
    if not np.isfinite(root).all():
        return None
    if np.iscomplexobj(root):
        scale = max(1.0, float(np.abs(root.real).max()))
        if float(np.abs(root.imag).max()) > IMAGINARY_TOLERANCE * scale:
            return None
        root = root.real
    return root


def sqrt_product_trace(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6,
                       max_tries: int = 6) -> tuple[float, float]:
    """``tr((Σ₁Σ₂)^{1/2})`` and the ε actually added to both diagonals (0.0 when none was needed).

    When the product is singular or its square root is not finite / has a significant imaginary
    part, ``ε·I`` is added to both covariances (ε = 1e-6, then ×10 up to ``max_tries`` times), the
    usual fallback of the FID/FAD reference code.
    """
    root = _sqrtm_checked(sigma1 @ sigma2)
    if root is not None:
        return float(np.trace(root)), 0.0
    eye = np.eye(sigma1.shape[0])
    for attempt in range(max_tries):
        used = eps * 10.0**attempt
        root = _sqrtm_checked((sigma1 + used * eye) @ (sigma2 + used * eye))
        if root is not None:
            return float(np.trace(root)), used
    raise FloatingPointError(f"matrix square root failed even with eps={used:g} added to the covariances")


def _frechet(mu1, sigma1, mu2, sigma2, eps: float) -> tuple[float, float]:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    trace_root, used = sqrt_product_trace(sigma1, sigma2, eps)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
    return max(value, 0.0), used  # tiny negative values are rounding error


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (``[E]``, ``[E, E]``), computed in float64.

    Uses ``scipy.linalg.sqrtm`` with the ε-regularised fallback of :func:`sqrt_product_trace`.
    Always finite and ≥ 0.
    """
    return _frechet(mu1, sigma1, mu2, sigma2, eps)[0]


def fad(emb_eval: np.ndarray, emb_reference: np.ndarray, *, embedder: str, reference: str,
        eps: float = 1e-6) -> FADResult:
    """FAD between evaluation embeddings ``[N₁, E]`` and reference embeddings ``[N₂, E]``.

    ``embedder`` and ``reference`` name what was measured (e.g. ``"features"``,
    ``"tiny/test"``); they are required so that no FAD leaves without them.
    """
    mu1, sigma1 = embedding_statistics(emb_eval)
    mu2, sigma2 = embedding_statistics(emb_reference)
    score, used = _frechet(mu1, sigma1, mu2, sigma2, eps)
    return FADResult(score, len(emb_eval), len(emb_reference), embedder, reference, used > 0)


def fad_infinity(emb_eval: np.ndarray, emb_reference: np.ndarray, *, embedder: str, reference: str,
                 ns: list[int] | None = None, num_points: int = 15, min_n: int | None = None,
                 seed: int = 0, eps: float = 1e-6) -> FADInfinityResult:
    """FAD∞ on per-clip embeddings, subsets drawn *without* replacement — not fadtk's algorithm
    (that is :func:`fad_infinity_fadtk`: per-frame embeddings, with replacement, its sample sizes).

    For each n in ``ns`` (default: ``num_points`` values evenly spaced from ``min_n`` — default
    max(2, N/5) — to N = len(emb_eval)), draw n evaluation embeddings without replacement (seeded),
    compute FAD against the statistics of the *whole* reference set, then fit FAD = slope/n +
    intercept by least squares. Returns the intercept as ``score``, with slope, R² and the points.
    """
    emb_eval = np.asarray(emb_eval, dtype=np.float64)
    total = len(emb_eval)
    if ns is None:
        low = max(2, total // 5) if min_n is None else min_n
        ns = sorted({int(n) for n in np.linspace(low, total, num_points)})
    ns = [int(n) for n in ns]
    if len(set(ns)) < 2 or min(ns) < 2 or max(ns) > total:
        raise ValueError(f"need ≥ 2 distinct sample sizes in [2, {total}]; got {ns}")
    mu_ref, sigma_ref = embedding_statistics(emb_reference)
    rng = np.random.default_rng(seed)
    fads = []
    for n in ns:
        subset = emb_eval[rng.choice(total, size=n, replace=False)]
        mu, sigma = embedding_statistics(subset)
        fads.append(_frechet(mu, sigma, mu_ref, sigma_ref, eps)[0])
    return FADInfinityResult(*_fit_inverse_n(ns, fads), tuple(ns), tuple(float(f) for f in fads),
                             total, len(emb_reference), embedder, reference, seed)


def _fit_inverse_n(ns, fads) -> tuple[float, float, float]:
    """Least-squares FAD = slope/n + intercept → (intercept, slope, R²)."""
    xs, ys = 1.0 / np.asarray(ns, dtype=np.float64), np.asarray(fads, dtype=np.float64)
    slope, intercept = np.polyfit(xs, ys, 1)
    spread = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ys - (slope * xs + intercept)) ** 2)) / spread if spread > 0 else 1.0
    return float(intercept), float(slope), r2


def fad_infinity_fadtk(frames_eval: np.ndarray, frames_reference: np.ndarray, *, embedder: str,
                       reference: str, steps: int = 25, min_n: int = 500, seed: int = 0,
                       eps: float = 1e-6) -> FADInfinityResult:
    """FAD∞ exactly as microsoft/fadtk's ``FrechetAudioDistance.score_inf`` computes it.

    ``frames_eval`` ``[F₁, E]``: the per-frame embeddings of all evaluation clips concatenated;
    ``frames_reference`` ``[F₂, E]``: the same for the reference set (its statistics are computed
    once, on all frames). For each n of ``steps`` sizes ``np.linspace(min_n, F₁, steps)`` (fadtk's
    defaults 25 and 500), draw n frames *with replacement* (seeded here; fadtk uses numpy's global
    state), take FAD to the reference statistics, and fit FAD = slope/n + intercept; FAD∞ is the
    intercept. ``min_n`` must not exceed F₁. ``n_eval`` / ``n_reference`` count frames.
    """
    frames_eval = np.asarray(frames_eval, dtype=np.float64)
    if not 2 <= min_n <= len(frames_eval):
        raise ValueError(f"min_n = {min_n} must lie in [2, {len(frames_eval)}] (the number of eval frames)")
    mu_ref, sigma_ref = embedding_statistics(frames_reference)
    ns = [int(n) for n in np.linspace(min_n, len(frames_eval), steps)]
    rng = np.random.default_rng(seed)
    fads = []
    for n in ns:
        mu, sigma = embedding_statistics(frames_eval[rng.choice(len(frames_eval), size=n, replace=True)])
        fads.append(_frechet(mu_ref, sigma_ref, mu, sigma, eps)[0])
    return FADInfinityResult(*_fit_inverse_n(ns, fads), tuple(ns), tuple(float(f) for f in fads),
                             len(frames_eval), len(frames_reference), embedder, reference, seed)


def fad_per_clip(frames_per_clip: list[np.ndarray], frames_reference: np.ndarray, *, embedder: str,
                 reference: str, eps: float = 1e-6) -> list[FADResult]:
    """Per-clip FAD (fadtk's ``--indiv``): each clip's own frames ``[F_i, E]`` (F_i ≥ 2) against the
    reference frames' statistics — for finding the worst clips. A clip with fewer frames than E has
    a singular covariance; the ε fallback then applies (``regularised``), as in fadtk."""
    mu_ref, sigma_ref = embedding_statistics(frames_reference)
    out = []
    for frames in frames_per_clip:
        mu, sigma = embedding_statistics(frames)
        score, used = _frechet(mu, sigma, mu_ref, sigma_ref, eps)
        out.append(FADResult(score, len(frames), len(frames_reference), embedder, reference, used > 0))
    return out
