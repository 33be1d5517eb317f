"""scikit-learn's contract for every rule: constructors store their arguments and do nothing else,
estimators clone, classifiers derive ``classes_`` from ``y``, learned state has one form."""

import numpy as np
import pytest
from brian2 import Quantity, ms, volt
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone

from learning_rules.bptt import BPTTClassifier, BPTTParams
from learning_rules.eprop import EPropClassifier
from learning_rules.lsm import LiquidTransformer
from learning_rules.stdp import STDPTransformer
from models.engine import devices

ESTIMATORS = [(STDPTransformer, TransformerMixin), (LiquidTransformer, TransformerMixin),
              (EPropClassifier, ClassifierMixin), (BPTTClassifier, ClassifierMixin)]


@pytest.mark.parametrize("cls, kind", ESTIMATORS)
def test_constructors_store_their_arguments_and_do_nothing_else(cls, kind, tmp_path):
    resets = devices.resets()
    estimator = cls()
    assert isinstance(estimator, BaseEstimator) and isinstance(estimator, kind)
    assert devices.resets() == resets, "a constructor must not touch Brian2"
    assert not [name for name in vars(estimator) if name.endswith("_")], "no learned state before fit"
    twin = clone(estimator)
    assert twin.get_params().keys() == estimator.get_params().keys()
    assert "dt" in estimator.get_params(), "dt sits in the same place for every rule"
    assert "device" not in estimator.get_params() or cls is not BPTTClassifier


def test_a_classifier_learns_its_classes_from_y(tmp_path):
    from datasets import Preprocessing, load_splits
    from datasets.synthetic_bursts import SyntheticConfig

    splits = load_splits("synthetic_bursts", synthetic=SyntheticConfig(n_channels=20, n_classes=3, n_train=30, n_test=6,
                                                                       duration=200 * ms, margin=20 * ms),
                         preprocessing=Preprocessing(duration=200 * ms, dt=20 * ms))
    names = np.array(["yes", "no", "maybe"])
    y = names[splits.train.labels]
    clf = BPTTClassifier(BPTTParams(n_hidden=8), n_inputs=20, dt=20 * ms, duration=200 * ms, epochs=2).fit(
        splits.train.samples, y)
    assert sorted(clf.classes_) == sorted(set(y))
    assert set(clf.predict(splits.test.samples)) <= set(names)
    weights = clf.weights_
    assert set(weights) == {"input", "recurrent", "output"}
    assert all(isinstance(w, Quantity) and w.has_same_dimensions(volt) for w in weights.values())
