"""STDP: the window from single spike pairs, bounds, normalisation, homeostasis, devices, the study."""

import numpy as np
import pytest
import xarray as xr
from brian2 import Network, NeuronGroup, defaultclock, mV, ms, second, volt

from datasets import Preprocessing, load_splits
from datasets.records import SpikeSample
from datasets.synthetic_bursts import SyntheticConfig
from models.engine.inputs import chunk_capacity
from learning_rules.stdp import PRESYNAPTIC_EXTRA, PRESYNAPTIC_RESET, STDPNetwork, STDPParams, stdp_synapses
from models.engine import devices

PARAMS = STDPParams(a_plus=0.01 * mV, a_minus=0.012 * mV, tau_pre=15 * ms, tau_post=30 * ms, w_max=5 * mV)


def _pair_changes(delays_ms, params=PARAMS, w0=1 * mV):
    """Weight change of one synapse per delay, for one pre spike at 50 ms and one post spike at 50 ms + delay."""
    devices.activate("runtime", "unused")
    defaultclock.dt = 0.1 * ms
    n = len(delays_ms)
    pre_step = np.full(n, 500)
    post_step = 500 + np.rint(np.asarray(delays_ms) * 10).astype(int)
    pre = NeuronGroup(n, "spike_step : integer\n" + PRESYNAPTIC_EXTRA, threshold="timestep(t, dt) == spike_step",
                      reset=PRESYNAPTIC_RESET, method="exact")
    post = NeuronGroup(n, "spike_step : integer\nI_syn : volt\nw_total : volt\nlearning : 1 (shared)\n"
                          "dapost/dt = -apost / taupost : 1\ntaupost : second (shared, constant)",
                       threshold="timestep(t, dt) == spike_step", reset="apost += 1", method="exact")
    pre.spike_step, post.spike_step, post.learning = pre_step, post_step, 1.0
    pre.taupre, post.taupost = params.tau_pre, params.tau_post
    syn = stdp_synapses(pre, post, params, j="i")
    syn.w = w0
    Network(pre, post, syn).run(150 * ms)
    change = np.asarray((syn.w[:] - w0) / mV)
    devices.reset_brian()
    return change


def test_stdp_window_from_single_spike_pairs():
    delays = np.array([-40, -20, -5, 5, 20, 40.0])
    change = _pair_changes(delays)
    expected = np.where(delays > 0, 0.01 * np.exp(-delays / 15), -0.012 * np.exp(delays / 30))
    np.testing.assert_allclose(change, expected, rtol=1e-6)
    # amplitude and time constant recovered from a fit on each side
    for side, amplitude, tau in ((delays > 0, 0.01, 15), (delays < 0, -0.012, 30)):
        slope, intercept = np.polyfit(np.abs(delays[side]), np.log(np.abs(change[side])), 1)
        assert -1 / slope == pytest.approx(tau, rel=1e-4)
        assert np.sign(amplitude) * np.exp(intercept) == pytest.approx(amplitude, rel=1e-4)


def test_weights_stay_within_bounds():
    big = STDPParams(a_plus=2 * mV, a_minus=2 * mV, w_max=1.5 * mV)
    change = _pair_changes(np.array([-2.0, 2.0]), big, w0=1 * mV)
    assert change[1] == pytest.approx(0.5, rel=1e-9)  # potentiation stopped at w_max
    assert change[0] == pytest.approx(-1.0, rel=1e-9)  # depression stopped at 0


def _tiny(device, build_dir, n_neurons=8, n_inputs=30, params=None):
    config = SyntheticConfig(n_channels=n_inputs, n_classes=3, n_train=12, n_test=3, duration=200 * ms,
                             spikes_per_burst=4, margin=20 * ms)
    splits = load_splits("synthetic", synthetic=config, preprocessing=Preprocessing(duration=200 * ms, dt=0.1 * ms),
                         val_fraction=0.25)
    params = params or STDPParams(n_neurons=n_neurons, w_mean=3.0 * mV, w_init_max=6 * mV, theta_plus=0.5 * mV,
                                  a_plus=0.1 * mV, a_minus=0.1 * mV, w_max=8 * mV, tau_theta=1 * second)
    capacity = chunk_capacity([splits.train.samples], 3, n_inputs)
    net = STDPNetwork(params, n_inputs, sample_duration=200 * ms, dt=0.1 * ms, chunk_size=3, capacity=capacity,
                      n_bins=2, device_name=device, build_dir=build_dir, seed=1)
    return net, splits


def _empty(label=0):
    return SpikeSample(np.zeros(0, dtype=int), np.zeros(0) * second, label)


def test_normalisation_homeostasis_and_frozen_learning(build_dir):
    net, splits = _tiny("cpp_standalone", build_dir)
    counts = net.present(splits.train.samples, learn=True)
    fired = counts.sum(axis=(0, 1)) > 0
    assert fired.any(), "the tiny network must fire for this test to mean anything"
    theta = net.theta_ / mV
    assert np.all(theta[fired] > 0) and np.all(theta[~fired] == 0), "thresholds rise exactly where neurons fired"
    # An empty sample: no STDP, only the normalisation at its start and one step of threshold decay.
    weights_before = net.weights_.copy()
    net.run_chunk([_empty()], learn=True)
    sums = np.sum(net.weights_ / mV, axis=0)
    np.testing.assert_allclose(sums, 30 * 3.0, rtol=1e-9)
    assert not np.allclose(net.weights_ / mV, weights_before / mV)
    np.testing.assert_allclose(net.theta_ / mV, theta * np.exp(-0.2), rtol=1e-9)
    # Learning off: the binary must leave weights and thresholds exactly as given.
    given_w, given_theta = net.weights_.copy(), net.theta_.copy()
    net.run_chunk(splits.train.samples[:3], learn=False)
    np.testing.assert_array_equal(np.asarray(net.syn.w[:] / volt), np.asarray(given_w / volt).ravel())
    np.testing.assert_array_equal(np.asarray(net.exc.theta[:] / volt), np.asarray(given_theta / volt))
    devices.reset_brian()


def test_runtime_and_cpp_standalone_learn_the_same_weights(tmp_path):
    results = []
    for device in ("runtime", "cpp_standalone"):
        net, splits = _tiny(device, tmp_path / device)
        counts = net.present(splits.train.samples[:4], learn=True)
        results.append((net.weights_ / mV, net.theta_ / mV, counts))
        devices.reset_brian()
    assert results[0][2].sum() > 0
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(results[0][2], results[1][2])


@pytest.mark.slow
def test_study_beats_chance_and_resumes_identically(tmp_path, monkeypatch):
    from studies import stdp_shd

    argv = ["--dataset", "synthetic_bursts", "--n-train", "300", "--n-test", "100", "--epochs", "2", "--n-neurons", "60",
            "--chunk-size", "50"]
    path = stdp_shd.main(argv + ["--out", str(tmp_path / "a")])
    whole = xr.load_dataset(path)
    assert whole.test_accuracy > 2.5 / 20, "STDP + readout should beat chance (0.05) clearly"
    assert whole.attrs["dataset"] == "synthetic_bursts" and whole.sizes["epoch"] == 2

    calls = {"n": 0}
    original = STDPNetwork.run_chunk

    def dies_midway(self, samples, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # in the second epoch's training
            raise KeyboardInterrupt
        return original(self, samples, **kwargs)

    monkeypatch.setattr(STDPNetwork, "run_chunk", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        stdp_shd.main(argv + ["--out", str(tmp_path / "b")])
    monkeypatch.setattr(STDPNetwork, "run_chunk", original)
    resumed = xr.load_dataset(stdp_shd.main(argv + ["--out", str(tmp_path / "b"), "--resume"]))
    for name in ("val_accuracy", "test_accuracy", "test_accuracy_assignment", "weights", "test_counts"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values)


def test_stdp_transformer_learns_and_transforms(tmp_path):
    from learning_rules.stdp import STDPTransformer

    _, splits = _tiny("runtime", tmp_path / "unused")
    devices.reset_brian()
    params = STDPParams(n_neurons=6, w_mean=3.0 * mV, w_init_max=6 * mV, w_max=8 * mV)
    stdp = STDPTransformer(params, n_inputs=30, sample_duration=200 * ms, n_bins=2, chunk_size=3,
                           device="cpp_standalone", build_dir=str(tmp_path / "b"))
    features = stdp.fit(splits.train.samples[:6]).transform(splits.val.samples)
    assert features.shape == (len(splits.val), 2 * 6) and features.sum() > 0
    assert not np.allclose(stdp.weights_["input"] / mV, 0)
    devices.reset_brian()
