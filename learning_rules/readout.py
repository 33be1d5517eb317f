"""The readouts every rule ends in, chosen on the validation split only and scored alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

#: Inverse regularisation strengths tried for the logistic readout.
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class ReadoutFit:
    model: object  # fitted scikit-learn pipeline
    C: float  # chosen inverse regularisation strength
    val_accuracy: float
    train_accuracy: float


def fit_logistic_readout(x_train, y_train, x_val, y_val, Cs=DEFAULT_CS, seed: int = 0) -> ReadoutFit:
    """The readout every rule ends in: ``log1p`` of the counts, standardised, then multinomial
    logistic regression, with the inverse regularisation ``C`` of the best validation accuracy
    (ties go to the stronger regularisation). The test set is never seen here.

    With at least :data:`SPAN_FEATURES_PER_SAMPLE` times as many features as training samples (a
    reservoir's neurons times bins, the input's channels times bins) the regression is solved in the
    span of the training samples and mapped back: :func:`_sample_span` says why this is the same model."""
    scale = make_pipeline(FunctionTransformer(np.log1p), StandardScaler()).fit(x_train)
    z_train, z_val = scale.transform(x_train), scale.transform(x_val)
    span = _sample_span(z_train)
    best = None
    for C in sorted(Cs):
        regression = LogisticRegression(C=C, max_iter=500, random_state=seed)
        if span is None:
            regression.fit(z_train, y_train)
        else:  # back to one weight per feature: the model scores raw features as before
            coordinates, basis = span
            regression.fit(coordinates, y_train)
            regression.coef_ = regression.coef_ @ basis.T
            regression.n_features_in_ = z_train.shape[1]
        val = regression.score(z_val, y_val)
        if best is None or val > best.val_accuracy:
            model = make_pipeline(*[step for _, step in scale.steps], regression)
            best = ReadoutFit(model, C, float(val), float(regression.score(z_train, y_train)))
    return best


#: Solve in the span of the training samples only with at least this many features per sample
#: (at 3.5 on FSDD's 2,025 samples it gained nothing: sklearn's per-iteration work is not all in z @ w).
SPAN_FEATURES_PER_SAMPLE = 4
#: Directions of the samples' span kept: variance above this fraction of the largest.
SPAN_MIN_VARIANCE = 1e-6


def _sample_span(z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(z @ V, V)`` with ``V`` (features x rank) an orthonormal basis of the span of the rows of
    ``z``; None with fewer than :data:`SPAN_FEATURES_PER_SAMPLE` features per sample.

    L2-regularised logistic regression depends on its weights ``w`` only through ``z @ w`` and
    ``|w|^2``. The part of ``w`` orthogonal to every training sample changes no ``z @ w`` and only
    adds to ``|w|^2``, so the optimum has none: ``w = V a``, and ``|V a| = |a|``. Fitting ``a`` on
    ``z @ V`` with the same ``C`` is the same problem with rank-many weights per class instead of
    one per feature (the representer theorem). ``V`` comes from the samples' Gram matrix
    ``z z^T = U L U^T``: ``V = z^T U L^(-1/2)``. The Gram matrix squares the condition number, so
    directions of less than :data:`SPAN_MIN_VARIANCE` of the largest variance, whose basis vectors
    it would give inaccurately, are left out (along them the samples' spread is below 1e-3 of the
    largest, so for weights of a given size they move ``z @ w`` by that fraction at most)."""
    n_samples, n_features = z.shape
    if n_features < SPAN_FEATURES_PER_SAMPLE * n_samples:
        return None
    z = np.asarray(z, dtype=np.float64)  # counts come as float32: a basis in float32 is far from orthonormal
    eigenvalues, u = linalg.eigh(z @ z.T)
    keep = eigenvalues > max(eigenvalues[-1], 0.0) * SPAN_MIN_VARIANCE
    if not keep.any():  # every sample the same: nothing to learn from, the intercept alone
        return np.zeros((n_samples, 1)), np.zeros((n_features, 1))
    basis = (z.T @ u[:, keep]) / np.sqrt(eigenvalues[keep])
    return z @ basis, basis


def score_readout(fit: ReadoutFit, x, y) -> float:
    return float(fit.model.score(x, y))


def predict_readout(fit: ReadoutFit, x) -> np.ndarray:
    return fit.model.predict(x)


class LabelAssignment:
    """Diehl & Cook (2015) readout: each neuron votes for the class it answered most in training;
    a sample goes to the class whose neurons fire most on average."""

    def fit(self, counts: np.ndarray, labels: np.ndarray, n_classes: int) -> "LabelAssignment":
        mean = np.stack([counts[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(counts.shape[1])
                         for c in range(n_classes)])
        self.assignments_ = np.argmax(mean, axis=0)
        self.n_classes_ = n_classes
        return self

    def predict(self, counts: np.ndarray) -> np.ndarray:
        votes = np.full((counts.shape[0], self.n_classes_), -np.inf)
        for c in range(self.n_classes_):
            members = self.assignments_ == c
            if members.any():
                votes[:, c] = counts[:, members].mean(axis=1)
        return np.argmax(votes, axis=1)

    def score(self, counts: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(counts) == labels))
