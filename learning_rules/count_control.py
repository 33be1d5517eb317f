"""Controls that see spike counts only: what a dataset gives away without millisecond timing.

Every sample becomes the counts :math:`n_{i,b}` of each channel :math:`i` in :math:`B` equal time
bins (``n_bins``; :math:`B = 1` is the total count), transformed as

.. math:: x_{i,b} = \\frac{\\log(1 + n_{i,b}) - \\mu_{i,b}}{s_{i,b}}

with the training mean and standard deviation, and read out by a ridge classifier
(scikit-learn's ``RidgeClassifier``: least squares onto :math:`\\pm 1` class codes with penalty
:math:`\\alpha \\lVert W \\rVert^2`, prediction by the largest output). :func:`fit_count_control`
chooses :math:`B` (from one bin up to 5 ms bins) and :math:`\\alpha` on the validation split, never
on the test split. For the choice it solves ridge in its dual form on the training Gram matrix
:math:`K = X X^\\top = Q \\Lambda Q^\\top`, so every :math:`\\alpha` costs one product,

.. math:: \\hat Y_\\mathrm{val} = X_\\mathrm{val} X^\\top Q (\\Lambda + \\alpha)^{-1} Q^\\top (Y - \\bar Y) + \\bar Y,

which is what ``RidgeClassifier`` computes (with :math:`p > n` it uses the same kernel form), so
200 bins of 700 channels (140,000 features) stay cheap.

If a readout of counts in time bins does about as well as a spiking network, the dataset does not
test spike timing (Cramer et al. 2020, IEEE TNNLS 33:2744, make this point for SHD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, second
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import LabelBinarizer

from datasets.records import SpikeSample, spike_counts

#: Bin counts tried for 1 s samples: total count up to 5 ms bins.
N_BINS_OPTIONS = (1, 2, 4, 10, 20, 50, 100, 200)
#: Ridge penalties tried, in units of the number of features (the trace of the Gram matrix per sample).
ALPHA_FACTORS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def count_features(samples: list[SpikeSample], n_channels: int, n_bins: int, duration: Quantity) -> np.ndarray:
    """``log1p`` of the counts per channel and time bin, ``(sample, bin * channel)``, float32."""
    return np.log1p(spike_counts(samples, n_channels, n_bins, duration))


class CountReadout(ClassifierMixin, BaseEstimator):
    """Ridge readout of standardised ``log1p`` spike counts in ``n_bins`` time bins; X is a list of samples."""

    def __init__(self, n_channels: int = 700, duration: Quantity = 1 * second, n_bins: int = 1, alpha: float = 1.0):
        self.n_channels = n_channels
        self.duration = duration
        self.n_bins = n_bins
        self.alpha = alpha

    def _features(self, samples) -> np.ndarray:
        x = count_features(samples, self.n_channels, self.n_bins, self.duration)
        return (x - self.mean_) / self.scale_

    def fit(self, samples: list[SpikeSample], y) -> "CountReadout":
        x = count_features(samples, self.n_channels, self.n_bins, self.duration)
        self.mean_, self.scale_ = _standardiser(x)
        self.ridge_ = RidgeClassifier(alpha=self.alpha).fit((x - self.mean_) / self.scale_, np.asarray(y))
        self.classes_ = self.ridge_.classes_
        return self

    def decision_function(self, samples: list[SpikeSample]) -> np.ndarray:
        return self.ridge_.decision_function(self._features(samples))

    def predict(self, samples: list[SpikeSample]) -> np.ndarray:
        return self.ridge_.predict(self._features(samples))


@dataclass(frozen=True)
class CountControlResult:
    """The chosen readout and the validation accuracy of every option."""

    model: CountReadout  # fitted on the training split with the chosen n_bins and alpha
    n_bins: int  # chosen number of time bins
    alpha: float  # chosen ridge penalty
    n_bins_options: tuple[int, ...]  # bin counts tried
    alpha_factors: tuple[float, ...]  # penalties tried, in units of the number of features
    val_accuracy: np.ndarray  # (n_bins option, alpha factor) validation accuracy

    @property
    def best_val_accuracy(self) -> float:
        return float(self.val_accuracy.max())

    def predict(self, samples: list[SpikeSample]) -> np.ndarray:
        return self.model.predict(samples)

    def score(self, samples: list[SpikeSample], y) -> float:
        return float(self.model.score(samples, y))


def fit_count_control(train_samples: list[SpikeSample], y_train, val_samples: list[SpikeSample], y_val,
                      n_channels: int, duration: Quantity = 1 * second, n_bins_options=N_BINS_OPTIONS,
                      alpha_factors=ALPHA_FACTORS) -> CountControlResult:
    """The best count readout on the validation split over ``n_bins_options`` x ``alpha_factors``.

    Ties go to fewer bins, then to the stronger penalty. ``n_bins_options=(1,)`` gives the
    total-count control.
    """
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    n_bins_options, alpha_factors = tuple(int(b) for b in n_bins_options), tuple(float(a) for a in alpha_factors)
    binariser = LabelBinarizer(pos_label=1, neg_label=-1).fit(y_train)
    codes = binariser.transform(y_train).astype(np.float64)
    if codes.shape[1] == 1:  # two classes: RidgeClassifier fits one output
        codes = np.hstack([-codes, codes])
    code_mean = codes.mean(axis=0)
    scores = np.zeros((len(n_bins_options), len(alpha_factors)))
    for row, n_bins in enumerate(n_bins_options):
        x = count_features(train_samples, n_channels, n_bins, duration)
        mean, scale = _standardiser(x)
        x = (x - mean) / scale
        x_val = (count_features(val_samples, n_channels, n_bins, duration) - mean) / scale
        gram = (x @ x.T).astype(np.float64)
        cross = (x_val @ x.T).astype(np.float64)
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        eigenvalues = np.clip(eigenvalues, 0, None)
        projected = eigenvectors.T @ (codes - code_mean)
        left = cross @ eigenvectors
        for column, factor in enumerate(alpha_factors):
            outputs = left @ (projected / (eigenvalues + factor * x.shape[1])[:, None]) + code_mean
            scores[row, column] = np.mean(binariser.classes_[outputs.argmax(axis=1)] == y_val)
    # Stable argmax over the flattened grid: first best -> fewest bins; reversed alphas -> strongest penalty.
    flipped = scores[:, ::-1]
    row, column = np.unravel_index(int(np.argmax(flipped)), flipped.shape)
    column = len(alpha_factors) - 1 - column
    n_bins = n_bins_options[row]
    alpha = alpha_factors[column] * n_channels * n_bins
    model = CountReadout(n_channels, duration, n_bins, alpha).fit(train_samples, y_train)
    return CountControlResult(model, n_bins, alpha, n_bins_options, alpha_factors, scores)


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0).astype(x.dtype)
