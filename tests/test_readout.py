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


@pytest.mark.parametrize("n_features, dtype", [(500, np.float64), (500, np.float32), (40, np.float64)])
def test_the_readout_is_the_optimum_of_the_full_problem(monkeypatch, n_features, dtype):
    """Solved in the samples' span (500 features, 60 samples) or per feature (40); float32 as the
    count features come, with near-copies of samples, whose span the Gram matrix resolves poorly."""
    rng = np.random.default_rng(0)
    x, y = _counts(rng, 90, n_features)
    x[1:60:3] = x[0:59:3] + (rng.random(x[0:59:3].shape) < 0.01)  # every third sample nearly repeats the one before
    y[1:60:3] = y[0:59:3]
    x = x.astype(dtype)
    x_train, y_train, x_val, y_val, x_test = x[:60], y[:60], x[60:75], y[60:75], x[75:]
    tight = dict(tol=1e-12, max_iter=100_000)
    monkeypatch.setattr(readout, "LogisticRegression", lambda **kw: LogisticRegression(**{**kw, **tight}))
    fit = readout.fit_logistic_readout(x_train, y_train, x_val, y_val, Cs=(0.1,))
    assert (readout._sample_span(StandardScaler().fit_transform(np.log1p(x_train))) is None) == (n_features < 240)
    # the same readout fitted with one weight per feature, to the same tolerance
    full = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(C=0.1, **tight))
    full.fit(x_train.astype(np.float64), y_train)
    assert fit.model[-1].coef_.shape == (4, n_features)
    tolerance = 1e-6 if dtype == np.float64 else 1e-4  # float32 features: the data themselves differ by 1e-7
    np.testing.assert_allclose(fit.model.decision_function(x_test), full.decision_function(x_test.astype(np.float64)),
                               rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(readout.predict_readout(fit, x_test), full.predict(x_test))
    assert fit.val_accuracy == full.score(x_val, y_val) and fit.train_accuracy == full.score(x_train, y_train)


def test_the_readout_chooses_its_strength_on_validation_only():
    rng = np.random.default_rng(1)
    x, y = _counts(rng, 120, 400)  # 5 features per training sample: solved in their span
    assert readout._sample_span(StandardScaler().fit_transform(np.log1p(x[:80]))) is not None
    fits = {C: readout.fit_logistic_readout(x[:80], y[:80], x[80:100], y[80:100], Cs=(C,)) for C in readout.DEFAULT_CS}
    chosen = readout.fit_logistic_readout(x[:80], y[:80], x[80:100], y[80:100])
    best = max(fit.val_accuracy for fit in fits.values())
    assert chosen.val_accuracy == best
    assert chosen.C == min(C for C, fit in fits.items() if fit.val_accuracy == best), "ties go to the stronger regularisation"
    assert chosen.val_accuracy > 0.5, "4 classes with distinct rates are separable"
