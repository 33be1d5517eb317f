"""Statistics over seeds and test samples that can rank rules: paired over seeds and over test samples, corrected across pairs.

Every rule of a comparison is tested on the same test samples with the same seeds (the same
training and validation samples per seed), so differences are paired twice over:

- **over seeds**: the per-seed accuracy differences, with a Student-t interval on their mean
  (``scipy.stats.ttest_rel``); with K seeds it has K - 1 degrees of freedom;
- **over test samples**: a paired bootstrap of the difference in accuracy (resampling test samples,
  each sample's correctness averaged over seeds; ``scipy.stats.bootstrap``) and a sign-flip
  permutation test of it (``scipy.stats.permutation_test``);
- **across pairs**: Holm's step-down correction of the p-values (Holm 1979), which controls the
  family-wise error rate for any dependence between the pairs;
- **one accuracy**: a Wilson binomial interval over the test samples (``scipy.stats.binomtest``).

A pair is *distinguishable* when its Holm-adjusted p-value of the seed-paired test lies below
``alpha`` and the bootstrap interval excludes zero; otherwise the report says "not distinguishable".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    p_value: float = float("nan")

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two-sided Student-t confidence interval of the mean (NaNs ignored).

    With one value the interval is undefined (NaN, NaN); with none everything is NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def binomial_interval(correct: int, n: int, confidence: float = 0.95) -> Interval:
    """Accuracy ``correct / n`` with its Wilson score interval."""
    if n < 1:
        return Interval(float("nan"), float("nan"), float("nan"))
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(correct / n, float(ci.low), float(ci.high))


def paired_over_seeds(a, b, confidence: float = 0.95) -> Interval:
    """Mean of the per-seed differences ``a - b`` with its t interval and two-sided p-value."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    diff = a - b
    if len(diff) < 2:
        return Interval(float(diff.mean()) if len(diff) else float("nan"), float("nan"), float("nan"))
    if np.all(diff == diff[0]):  # no spread: the t statistic is undefined
        return Interval(float(diff[0]), float(diff[0]), float(diff[0]), _sign_test(len(diff), diff[0]))
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence_level=confidence)
    return Interval(float(diff.mean()), float(ci.low), float(ci.high), float(result.pvalue))


def _sign_test(n: int, difference: float) -> float:
    """Two-sided p of ``n`` paired differences all equal to ``difference``: the exact sign test (every
    sign the same; 1 when there is no difference). Five seeds that agree give 0.0625, not 0: with no
    spread a t test has nothing to say, and so few pairs cannot be more certain than their signs."""
    if difference == 0:
        return 1.0
    return float(stats.binomtest(n, n, 0.5).pvalue)


def paired_over_samples(correct_a, correct_b, *, confidence: float = 0.95, n_resamples: int = 2000,
                        seed: int = 0) -> Interval:
    """Difference in accuracy of two rules on the same test samples: paired bootstrap interval and
    sign-flip permutation p-value. ``correct_*``: (samples,) or (seeds, samples) of 0/1 (averaged
    over seeds first)."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=float)).mean(axis=0)
    b = np.atleast_2d(np.asarray(correct_b, dtype=float)).mean(axis=0)
    if a.shape != b.shape:
        raise ValueError(f"the two rules were tested on different samples ({a.shape} vs {b.shape})")
    diff = a - b
    if len(diff) < 2 or np.all(diff == diff[0]):
        value = float(diff.mean()) if len(diff) else float("nan")
        return Interval(value, value, value, _sign_test(len(diff), value) if len(diff) else float("nan"))
    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                           method="percentile", random_state=rng)
    perm = stats.permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                  alternative="two-sided", random_state=rng)
    return Interval(float(diff.mean()), float(boot.confidence_interval.low), float(boot.confidence_interval.high),
                    float(perm.pvalue))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted
