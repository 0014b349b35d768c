"""Fréchet distance, FAD and FAD∞: exact cases, symmetry, singular covariances, the 1/n extrapolation."""
import numpy as np
import pytest

from melody_lab.metrics import embedding_statistics, fad, fad_infinity, frechet_distance
from melody_lab.metrics.fad import sqrt_product_trace


def random_spd(rng, dim, rank=None):
    a = rng.standard_normal((dim, rank or dim))
    return a @ a.T / dim + (0 if rank else 0.1 * np.eye(dim))


def stable_trace_sqrt_product(s1, s2):
    """tr √(Σ₁Σ₂) = Σ √eig(√Σ₁ Σ₂ √Σ₁) through symmetric eigendecompositions (independent of sqrtm)."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None))))


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(12), random_spd(rng, 12)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    var1, var2 = rng.uniform(0.1, 4, 10), rng.uniform(0.1, 4, 10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)
    # one dimension: (μ₁ − μ₂)² + (σ₁ − σ₂)²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_symmetric_and_matches_an_independent_formula():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    s1, s2 = random_spd(rng, 16), random_spd(rng, 16)
    forward, backward = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert forward == pytest.approx(backward, rel=1e-9)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * stable_trace_sqrt_product(s1, s2)
    assert forward == pytest.approx(expected, rel=1e-8)


def test_singular_covariances_take_the_regularised_fallback_and_stay_accurate():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 20)), rng.standard_normal((5, 20)) + 0.5  # n < dim: rank-deficient
    a[:, 0], b[:, 0] = 1.0, 2.0  # and a dead (constant) dimension, as ReLU embeddings often have
    (_, s1), (_, s2) = embedding_statistics(a), embedding_statistics(b)
    trace, eps_used = sqrt_product_trace(s1, s2)
    assert eps_used > 0, "the ε·I fallback should be exercised for rank-deficient covariances"
    assert trace == pytest.approx(stable_trace_sqrt_product(s1, s2), rel=1e-3)
    result = fad(a, b, embedder="test", reference="b")
    assert result.regularised and np.isfinite(result.score) and result.score >= 0
    assert fad(a, a, embedder="test", reference="a").score == pytest.approx(0.0, abs=1e-4)


def test_fad_result_names_what_it_measured():
    rng = np.random.default_rng(4)
    result = fad(rng.standard_normal((50, 3)), rng.standard_normal((70, 3)), embedder="features", reference="tiny/test")
    assert (result.n_eval, result.n_reference, result.embedder, result.reference) == (50, 70, "features", "tiny/test")
    assert set(result.to_dict()) >= {"score", "n_eval", "n_reference", "embedder", "reference"}
    with pytest.raises(TypeError):
        fad(rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))  # names are required
    with pytest.raises(ValueError, match="NaN"):
        fad(np.full((5, 3), np.nan), rng.standard_normal((5, 3)), embedder="x", reference="y")
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_fad_infinity_recovers_a_zero_limit():
    """Eval and reference both ~ N(0, I): the true FAD is 0; FAD at n = 100 is biased well above it."""
    rng = np.random.default_rng(5)
    reference, evaluation = rng.standard_normal((100_000, 8)), rng.standard_normal((2000, 8))
    result = fad_infinity(evaluation, reference, embedder="gaussian", reference="N(0, I)", min_n=100, num_points=12)
    small_n = fad(evaluation[:100], reference, embedder="gaussian", reference="N(0, I)").score
    assert abs(result.score) < 0.02 < 0.1 < small_n
    assert result.slope > 0 and result.r2 > 0.9
    assert result.ns[0] == 100 and result.ns[-1] == 2000 and len(result.fads) == len(result.ns) == 12
    assert (result.n_eval, result.n_reference, result.embedder, result.reference) == (2000, 100_000, "gaussian", "N(0, I)")
    again = fad_infinity(evaluation, reference, embedder="gaussian", reference="N(0, I)", min_n=100, num_points=12)
    assert again.score == result.score  # seeded


def test_fad_infinity_recovers_a_known_nonzero_limit():
    """Eval ~ N(m, I) with ‖m‖² = 0.5: averaged over 6 seeds FAD∞ ≈ 0.5 (one set's FAD∞ has ±0.05
    sampling noise at N = 2000), whereas FAD at n = 100 carries a bias of ≈ +0.17."""
    infinities, small = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        shift = np.zeros(8)
        shift[0] = np.sqrt(0.5)
        reference, evaluation = rng.standard_normal((100_000, 8)), rng.standard_normal((2000, 8)) + shift
        infinities.append(fad_infinity(evaluation, reference, embedder="g", reference="r", min_n=100).score)
        small.append(fad(evaluation[:100], reference, embedder="g", reference="r").score)
    assert abs(np.mean(infinities) - 0.5) < 0.04
    assert np.mean(small) - 0.5 > 0.1
