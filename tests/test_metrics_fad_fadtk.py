"""fadtk-compatible FAD∞ (per-frame embeddings, with replacement) and per-clip FAD (fadtk --indiv)."""
import numpy as np
import pytest

from melody_lab.metrics.fad import fad, fad_infinity_fadtk, fad_per_clip, frechet_distance


def fadtk_score_inf(frames_eval, frames_reference, steps, min_n, rng):
    """microsoft/fadtk FrechetAudioDistance.score_inf, transcribed (np.random.choice → rng.choice)."""
    mu_base, cov_base = np.mean(frames_reference, axis=0), np.cov(frames_reference, rowvar=False)
    ns = [int(n) for n in np.linspace(min_n, len(frames_eval), steps)]
    results = []
    for n in ns:
        indices = rng.choice(frames_eval.shape[0], size=n, replace=True)
        embds_eval = frames_eval[indices]
        mu_eval, cov_eval = np.mean(embds_eval, axis=0), np.cov(embds_eval, rowvar=False)
        results.append([n, frechet_distance(mu_base, cov_base, mu_eval, cov_eval)])
    ys = np.array(results)
    xs = 1 / np.array(ns)
    slope, intercept = np.polyfit(xs, ys[:, 1], 1)
    return intercept, slope


def test_matches_fadtks_algorithm_draw_for_draw():
    rng = np.random.default_rng(0)
    frames_eval, frames_ref = rng.normal(0.3, 1.0, (3000, 6)), rng.normal(0, 1, (5000, 6))
    ours = fad_infinity_fadtk(frames_eval, frames_ref, embedder="toy", reference="toy", seed=7)
    intercept, slope = fadtk_score_inf(frames_eval, frames_ref, 25, 500, np.random.default_rng(7))
    assert ours.score == pytest.approx(intercept, rel=1e-9) and ours.slope == pytest.approx(slope, rel=1e-9)
    assert len(ours.ns) == 25 and ours.ns[0] == 500 and ours.ns[-1] == 3000 and ours.n_eval == 3000


def test_recovers_the_true_distance_of_gaussians():
    rng = np.random.default_rng(1)
    dim, shift = 8, 0.25
    frames_ref = rng.normal(0, 1, (40000, dim))                 # reference statistics ≈ exact
    frames_eval = rng.normal(0, 1, (4000, dim)) + np.r_[shift, np.zeros(dim - 1)]
    true = shift ** 2                                           # same covariance: ‖Δμ‖²
    inf = fad_infinity_fadtk(frames_eval, frames_ref, embedder="toy", reference="toy", seed=0)
    at_min_n = fad(frames_eval[:500], frames_ref, embedder="toy", reference="toy").score
    assert abs(inf.score - true) < 0.02 and at_min_n > true + 0.02   # the bias FAD∞ removes
    with pytest.raises(ValueError, match="min_n"):
        fad_infinity_fadtk(frames_eval[:100], frames_ref, embedder="toy", reference="toy")


def test_per_clip_fad_ranks_the_worst_clips():
    rng = np.random.default_rng(2)
    frames_ref = rng.normal(0, 1, (4000, 3))
    clips = [rng.normal(shift, 1, (200, 3)) for shift in (0.0, 1.0, 0.2, 2.0)]
    scores = [r.score for r in fad_per_clip(clips, frames_ref, embedder="toy", reference="toy")]
    assert list(np.argsort(scores)[::-1]) == [3, 1, 2, 0]
    assert scores[3] == pytest.approx(3 * 4.0, rel=0.15)
