"""The statistics of the comparison, against values worked out by hand or from their definitions."""

import numpy as np
import pytest

from analysis.stats import binomial_interval, holm, paired_over_samples, paired_over_seeds


def test_holm_adjusts_step_down_and_keeps_the_order():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4*0.01, 3*0.03, max(0.09, 2*0.04), max(0.09, 0.5)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan, 0.5]), [0.04, 0.09, 0.09, np.nan, 0.5])
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])  # capped at 1, never below an earlier step


def test_the_wilson_interval_matches_its_formula():
    k, n, z = 80, 100, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    ci = binomial_interval(k, n)
    assert ci.estimate == 0.8 and ci.low == pytest.approx(centre - half) and ci.high == pytest.approx(centre + half)


def test_the_seed_paired_interval_is_the_t_interval_of_the_differences():
    a, b = np.array([0.80, 0.82, 0.79, 0.85, 0.81]), np.array([0.70, 0.75, 0.72, 0.74, 0.70])
    d = a - b
    half = 2.7764451051977987 * d.std(ddof=1) / np.sqrt(5)  # t(0.975, 4 degrees of freedom)
    ci = paired_over_seeds(a, b)
    assert ci.estimate == pytest.approx(d.mean()) and ci.low == pytest.approx(d.mean() - half)
    assert ci.excludes_zero() and ci.p_value < 0.01
    # unpaired noise that pairing removes: a shared per-seed offset
    offsets = np.array([0.0, 0.2, -0.2, 0.1, -0.1])
    assert paired_over_seeds(b + offsets + 0.02 + np.array([0, 0.001, -0.001, 0.002, 0]), b + offsets).excludes_zero()


def test_the_sample_paired_bootstrap_separates_a_real_difference_and_not_noise():
    rng = np.random.default_rng(1)
    better = rng.random((5, 400)) < 0.8
    worse = rng.random((5, 400)) < 0.6
    clear = paired_over_samples(better, worse)
    assert clear.excludes_zero() and clear.p_value < 0.01 and clear.low < clear.estimate < clear.high
    same = paired_over_samples(better, rng.permuted(better, axis=1))
    assert not same.excludes_zero() and same.p_value > 0.05
    with pytest.raises(ValueError, match="different samples"):
        paired_over_samples(better, worse[:, :10])


def test_seeds_that_agree_exactly_are_only_as_certain_as_their_signs():
    """With no spread the t statistic is undefined; five seeds with the same difference give the exact
    sign test's 2 / 2**5, which is not below 0.05 (it was 0: 'significant' from five numbers)."""
    a, b = np.full(5, 0.8), np.full(5, 0.7)
    ci = paired_over_seeds(a, b)
    assert ci.estimate == pytest.approx(0.1) and ci.p_value == pytest.approx(0.0625)
    assert paired_over_seeds(a, a).p_value == 1.0
    assert paired_over_seeds(np.full(8, 0.8), np.full(8, 0.7)).p_value == pytest.approx(2 / 2 ** 8)
    assert paired_over_samples(np.ones((1, 3)), np.zeros((1, 3))).p_value == pytest.approx(0.25)
