"""The readout every rule ends in: the same model whether it is solved per feature or in the span
of the training samples."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from learning_rules import readout


def _counts(rng, n, n_features, n_classes=4):
    labels = rng.integers(0, n_classes, n)
    rates = rng.gamma(2.0, 1.0, (n_classes, n_features))
    return rng.poisson(rates[labels]), labels


@pytest.mark.parametrize("n_features", [500, 40])  # more features than samples (solved in their span), and fewer
def test_the_readout_is_the_optimum_of_the_full_problem(monkeypatch, n_features):
    rng = np.random.default_rng(0)
    x, y = _counts(rng, 90, n_features)
    x_train, y_train, x_val, y_val, x_test = x[:60], y[:60], x[60:75], y[60:75], x[75:]
    tight = dict(tol=1e-12, max_iter=100_000)
    monkeypatch.setattr(readout, "LogisticRegression", lambda **kw: LogisticRegression(**{**kw, **tight}))
    fit = readout.fit_logistic_readout(x_train, y_train, x_val, y_val, Cs=(0.1,))
    assert (readout._sample_span(StandardScaler().fit_transform(np.log1p(x_train))) is None) == (n_features < 240)
    # the same readout fitted with one weight per feature, to the same tolerance
    full = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(C=0.1, **tight))
    full.fit(x_train, y_train)
    assert fit.model[-1].coef_.shape == (4, n_features)
    np.testing.assert_allclose(fit.model.decision_function(x_test), full.decision_function(x_test), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(readout.predict_readout(fit, x_test), full.predict(x_test))
    assert fit.val_accuracy == full.score(x_val, y_val) and fit.train_accuracy == full.score(x_train, y_train)


def test_the_readout_chooses_its_strength_on_validation_only():
    rng = np.random.default_rng(1)
    x, y = _counts(rng, 120, 300)
    fits = {C: readout.fit_logistic_readout(x[:80], y[:80], x[80:100], y[80:100], Cs=(C,)) for C in readout.DEFAULT_CS}
    chosen = readout.fit_logistic_readout(x[:80], y[:80], x[80:100], y[80:100])
    best = max(fit.val_accuracy for fit in fits.values())
    assert chosen.val_accuracy == best
    assert chosen.C == min(C for C, fit in fits.items() if fit.val_accuracy == best), "ties go to the stronger regularisation"
    assert chosen.val_accuracy > 0.5, "4 classes with distinct rates are separable"
