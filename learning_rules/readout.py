"""The readouts every rule ends in, chosen on the validation split only and scored alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def logistic_readout(C: float, seed: int = 0):
    """The readout every rule ends in: ``log1p`` of the counts, standardised, then multinomial
    logistic regression with inverse regularisation ``C``."""
    return make_pipeline(FunctionTransformer(np.log1p), StandardScaler(),
                         LogisticRegression(C=C, max_iter=500, random_state=seed))


def fit_logistic_readout(x_train, y_train, x_val, y_val, Cs=DEFAULT_CS, seed: int = 0) -> ReadoutFit:
    """:func:`logistic_readout` with the ``C`` of the best validation accuracy (ties go to the
    stronger regularisation). The test set is never seen here."""
    best = None
    for C in sorted(Cs):
        model = logistic_readout(C, seed).fit(x_train, y_train)
        val = model.score(x_val, y_val)
        if best is None or val > best.val_accuracy:
            best = ReadoutFit(model, C, float(val), float(model.score(x_train, y_train)))
    return best


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
