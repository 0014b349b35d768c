"""Paired bootstrap differences and Kendall τ, on synthetic data whose answer is known."""
import numpy as np
import pytest

from melody_lab.metrics.stats import (bootstrap_mean_ci, paired_bootstrap, paired_fad_difference,
                                      paired_mean_difference, rank_agreement)


def test_paired_interval_finds_a_small_shift_that_unpaired_intervals_miss():
    rng = np.random.default_rng(0)
    prompt_effect = rng.normal(0.0, 1.0, 64)                  # shared by both rows: cancels when paired
    baseline = prompt_effect + rng.normal(0.0, 0.05, 64)
    row = prompt_effect + 0.1 + rng.normal(0.0, 0.05, 64)
    diff = paired_mean_difference(row, baseline, seed=1)
    assert diff.excludes_zero and diff.low < 0.1 < diff.high
    assert diff.estimate == pytest.approx(np.mean(row) - np.mean(baseline))
    a, b = bootstrap_mean_ci(row), bootstrap_mean_ci(baseline)
    assert a.low < b.high and b.low < a.high                  # on their own, the intervals overlap


def test_paired_interval_covers_zero_at_the_nominal_rate_when_rows_are_equal():
    rng = np.random.default_rng(1)
    excluded = 0
    for trial in range(100):
        shared = rng.normal(0, 1, 48)
        diff = paired_mean_difference(shared + rng.normal(0, 0.3, 48), shared + rng.normal(0, 0.3, 48),
                                      n_resamples=200, seed=trial)
        excluded += diff.excludes_zero
    assert 1 <= excluded <= 12                                # 5 % of 100 = 5 expected


def test_groups_are_resampled_jointly():
    # 8 prompts × 4 seeds; the difference lives in the prompt: resampling clips as if independent
    # (32 units) understates the spread, resampling prompts (8 units) does not.
    rng = np.random.default_rng(2)
    per_prompt = rng.normal(0, 1, 8)
    values, baseline = np.tile(per_prompt, 4), np.zeros(32)
    groups = np.tile(np.arange(8), 4)
    by_prompt = paired_mean_difference(values, baseline, groups=groups, seed=0)
    by_clip = paired_mean_difference(values, baseline, seed=0)
    assert by_prompt.n_groups == 8 and by_clip.n_groups == 32
    assert (by_prompt.high - by_prompt.low) > 1.5 * (by_clip.high - by_clip.low)
    with pytest.raises(ValueError, match="groups"):
        paired_bootstrap(lambda idx: 0.0, 32, groups=groups[:5])


def test_not_applicable_values_are_left_out():
    values = np.array([1.0, np.nan, 1.0, 0.0, 1.0, np.nan])
    baseline = np.array([0.0, 0.0, np.nan, 0.0, 0.0, 0.0])
    diff = paired_mean_difference(values, baseline, seed=0)
    assert diff.estimate == pytest.approx(0.75 - 0.0)


def test_paired_fad_difference_sign_and_zero():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, (400, 4))
    base = rng.normal(0, 1, (128, 4))
    base -= base.mean(axis=0)                                 # centred, same covariance: FAD grows by
    worse = base + np.array([0.5, 0, 0, 0])                   # the same clips, shifted: FAD + 0.25 + …
    diff = paired_fad_difference(worse, base, reference, n_resamples=200, seed=0)
    assert diff.excludes_zero                                 # (0.5 − r)² − r² = 0.25 − r, r = ref mean
    assert diff.estimate == pytest.approx(0.25 - reference[:, 0].mean(), abs=1e-6)
    same = paired_fad_difference(base, base, reference, n_resamples=50, seed=0)
    assert same.estimate == 0.0 and same.low == same.high == 0.0 and not same.excludes_zero


def test_rank_agreement_is_kendall_tau_over_the_ranked_pairs():
    assert rank_agreement([0, 1, 2, 3], [1.0, 2.0, 5.0, 9.0]) == pytest.approx(1.0)        # a distance
    assert rank_agreement([0, 1, 2, 3], [0.9, 0.5, 0.4, 0.1], higher_is_better=True) == pytest.approx(1.0)
    assert rank_agreement([0, 1, 2, 3], [9.0, 5.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # ties in the expected order are not pairs to rank: a perfect metric still scores 1
    assert rank_agreement([0, 1, 1, 2], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert rank_agreement([0, 1, 1, 2], [1.0, 3.0, 5.0, 4.0]) == pytest.approx(3 / 5)   # one of 5 pairs reversed
    assert np.isnan(rank_agreement([0, 1], [np.nan, 1.0]))
