"""The BPTT baseline: the twin with recurrence, learning, repeatability, the study and its resume."""

import numpy as np
import pytest
import torch
import xarray as xr
from brian2 import ms

from datasets import Preprocessing, load_splits, to_dense
from datasets.synthetic_bursts import SyntheticConfig
from learning_rules.bptt import BPTTClassifier, BPTTParams
from models.lif import LIFParams
from models.lif_torch import run_lif
from tests.conftest import run_feedforward
from tests.test_lif import _random_problem

SMALL = SyntheticConfig(n_channels=40, n_classes=4, n_train=200, n_test=40)


def test_recurrent_pytorch_and_brian2_spike_identically(build_dir):
    params = LIFParams()
    sample, w_in = _random_problem(seed=11, n_in=40, n_out=12)
    w_rec = np.random.default_rng(5).normal(0, 3.0, (12, 12))
    idx, steps, _ = run_feedforward([sample], w_in, params, "cpp_standalone", build_dir, sample_steps=600,
                                    w_rec_mV=w_rec)
    dense = torch.tensor(to_dense([sample], 40, 600, 0.1 * ms), dtype=torch.float64)
    spikes = run_lif(dense, torch.tensor(w_in), params, 0.1 * ms, torch.tensor(w_rec))[0].numpy()
    t_steps, t_idx = np.nonzero(spikes)
    assert len(steps) > 20
    assert sorted(zip(steps.tolist(), idx.tolist())) == sorted(zip(t_steps.tolist(), t_idx.tolist()))


def _splits():
    return load_splits("synthetic", synthetic=SMALL, preprocessing=Preprocessing(dt=10 * ms))


def test_loss_falls_and_training_is_repeatable():
    torch.set_num_threads(1)
    splits = _splits()
    runs = []
    for _ in range(2):
        clf = BPTTClassifier(BPTTParams(n_hidden=32, learning_rate=1e-2, weight_scale=15), n_inputs=40, dt=10 * ms,
                             seed=3).initialize(np.arange(4))
        epochs = []
        for _ in range(10):
            clf.partial_fit(splits.train.samples, splits.train.labels)
            epochs.append((clf.loss_, clf.train_accuracy_))
        runs.append(epochs)
    losses = [loss for loss, _ in runs[0]]
    assert losses[-1] < 0.8 * losses[0], f"loss should fall: {losses}"
    assert runs[0][-1][1] > 0.4, "training accuracy should rise well above chance (0.25)"
    assert runs[0] == runs[1], "a fixed seed must give the same training run"


@pytest.mark.slow
def test_study_resumes_to_the_same_result(tmp_path, monkeypatch):
    from studies import bptt_shd

    argv = ["--dataset", "synthetic", "--n-train", "300", "--n-test", "60", "--epochs", "3", "--n-hidden", "32"]
    whole = xr.load_dataset(bptt_shd.main(argv + ["--out", str(tmp_path / "a")]))
    assert whole.sizes["epoch"] == 3
    # the reported accuracy is the one its own per-sample predictions give
    assert float(whole.test_accuracy) == pytest.approx(float((whole.test_prediction == whole.test_label).mean()))
    assert whole.synaptic_operations_per_sample > 0 and whole.trainable_parameters == 700 * 32 + 32 * 32 + 32 * 20

    original = BPTTClassifier.partial_fit

    def dies_in_epoch_two(self, samples, y, classes=None):
        if self.epochs_done_ == 1:
            raise KeyboardInterrupt
        return original(self, samples, y, classes)

    monkeypatch.setattr(BPTTClassifier, "partial_fit", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        bptt_shd.main(argv + ["--out", str(tmp_path / "b")])
    monkeypatch.setattr(BPTTClassifier, "partial_fit", original)
    resumed = xr.load_dataset(bptt_shd.main(argv + ["--out", str(tmp_path / "b"), "--resume"]))
    for name in ("train_loss", "val_accuracy", "test_accuracy", "test_prediction"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values)


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match="readout_reduction"):
        BPTTParams(readout_reduction="last")
    with pytest.raises(TypeError, match="units"):
        BPTTParams(target_rate=10 * ms)


def test_the_learning_off_control_trains_only_the_readout():
    """``train_hidden=False`` (the comparison's ablation): hidden weights stay as drawn, the readout learns."""
    from brian2 import ms, second

    from datasets.records import SpikeSample
    from learning_rules.bptt import BPTTClassifier, BPTTParams

    rng = np.random.default_rng(0)
    X = [SpikeSample(rng.integers(0, 20, 100), rng.uniform(0, 0.1, 100) * second, k % 3) for k in range(12)]
    clf = BPTTClassifier(BPTTParams(n_hidden=8, batch_size=4, train_hidden=False), n_inputs=20, dt=1 * ms,
                         duration=100 * ms, epochs=2, seed=0)
    clf.initialize(np.arange(3))
    before = {name: w.detach().clone() for name, w in clf.model_.named_parameters()}
    clf.partial_fit(X, [x.label for x in X])
    after = dict(clf.model_.named_parameters())
    assert torch.equal(after["w_in"], before["w_in"]) and torch.equal(after["w_rec"], before["w_rec"])
    assert not torch.equal(after["w_out"], before["w_out"])
    assert clf.n_parameters == 8 * 3


def test_per_step_loss_and_a_network_without_self_connections():
    """'per_step' is the cross-entropy at every step averaged over steps (e-prop's loss; its gradient
    is checked against e-prop's in tests/test_eprop.py); without self-connections the recurrent
    diagonal starts at 0 and stays there through training."""
    from brian2 import second

    from datasets.records import SpikeSample

    rng = np.random.default_rng(1)
    X = [SpikeSample(rng.integers(0, 20, 150), rng.uniform(0, 0.1, 150) * second, k % 3) for k in range(12)]
    y = np.array([x.label for x in X])
    clf = BPTTClassifier(BPTTParams(n_hidden=8, batch_size=4, readout_reduction="per_step", self_connections=False,
                                    learning_rate=1e-2), n_inputs=20, dt=1 * ms, duration=100 * ms, seed=0)
    clf.initialize(np.arange(3))
    readout = torch.randn(2, 5, 3)
    target = torch.tensor([0, 2])
    manual = -torch.log_softmax(readout, dim=2)[[0, 1], :, [0, 2]].mean()
    torch.testing.assert_close(clf.loss(readout, torch.zeros(2, 5, 8), target), manual)
    assert torch.all(torch.diag(clf.model_.w_rec) == 0)
    before = clf.model_.w_rec.detach().clone()
    for _ in range(2):
        clf.partial_fit(X, y)
    assert torch.all(torch.diag(clf.model_.w_rec) == 0) and not torch.equal(clf.model_.w_rec, before)
    # the prediction is the class of the largest mean readout, as e-prop's
    torch.testing.assert_close(clf._logits(readout), readout.mean(dim=1))


def test_training_stops_after_the_epoch_that_passes_the_time_budget(tmp_path):
    from studies import bptt_shd

    ds = xr.load_dataset(bptt_shd.main(["--dataset", "synthetic", "--n-train", "40", "--n-test", "10", "--epochs", "5",
                                        "--n-hidden", "8", "--max-train-seconds", "1e-6", "--out", str(tmp_path)]))
    assert ds.sizes["epoch"] == 1 and float(ds.epoch_seconds.sum()) >= 1e-6, "the epoch that passes the budget is scored"
