"""The liquid state machine: no leakage between samples, features, devices, readouts, the study."""

import numpy as np
import pytest
import xarray as xr
from brian2 import ms, second

from datasets import Preprocessing, load_splits
from datasets.synthetic_bursts import SyntheticConfig
from learning_rules.lsm import Liquid, ReservoirParams, reservoir_connectivity
from learning_rules.spike_time_readout import (SpikeTrainInnerProductReadout, filtered_trains,
                                               forward_orthogonal_regression)
from models.engine import devices
from models.engine.inputs import chunk_capacity

SMALL = SyntheticConfig(n_channels=40, n_classes=3, n_train=10, n_test=3, duration=200 * ms, margin=20 * ms)


def _liquid(device, build_dir, samples, chunk_size=3, **kwargs):
    params = ReservoirParams(n_neurons=60, p_input=0.3, weight_scale=1.5)
    return Liquid(params, 40, sample_duration=200 * ms, dt=0.1 * ms, chunk_size=chunk_size,
                  capacity=chunk_capacity([samples], chunk_size, 40), n_bins=4, device_name=device,
                  build_dir=build_dir, seed=2, **kwargs)


def _samples():
    return load_splits("synthetic", synthetic=SMALL, preprocessing=Preprocessing(duration=200 * ms, dt=0.1 * ms),
                       val_fraction=0.2).train.samples


def test_response_does_not_depend_on_position_and_counts_match_spike_monitor(build_dir):
    samples = _samples()[:3]
    liquid = _liquid("cpp_standalone", build_dir, samples, record_spikes=True)
    first = liquid.run_chunk(samples)
    second_ = liquid.run_chunk([samples[2], samples[0], samples[1]])
    assert first["counts"].sum() > 0, "the reservoir must fire for this test to mean anything"
    np.testing.assert_array_equal(first["counts"][0], second_["counts"][1])
    np.testing.assert_array_equal(first["counts"][2], second_["counts"][0])
    for counts, (units, times) in zip(first["counts"], first["spikes"]):
        bins = np.minimum((times / 0.05).astype(int), 3)
        from_monitor = np.zeros((4, 60))
        np.add.at(from_monitor, (bins, units), 1)
        np.testing.assert_array_equal(counts, from_monitor)
    devices.reset_brian()


def test_runtime_and_cpp_standalone_agree(tmp_path):
    samples = _samples()[:2]
    out = []
    for device in ("runtime", "cpp_standalone"):
        out.append(_liquid(device, tmp_path / device, samples, chunk_size=2).run_chunk(samples)["counts"])
        devices.reset_brian()
    assert out[0].sum() > 0
    np.testing.assert_array_equal(out[0], out[1])


def test_parallel_workers_give_the_serial_result(build_dir):
    samples = _samples()[:6]
    liquid = _liquid("cpp_standalone", build_dir, samples, chunk_size=2)
    serial = liquid.responses(samples, workers=1)["counts"]
    parallel = liquid.responses(samples, workers=2)["counts"]
    np.testing.assert_array_equal(serial, parallel)
    devices.reset_brian()


def test_weight_scale_moves_the_regime():
    rng = np.random.default_rng(0)
    _, _, w1 = reservoir_connectivity(ReservoirParams(n_neurons=100), rng)
    rng = np.random.default_rng(0)
    _, _, w2 = reservoir_connectivity(ReservoirParams(n_neurons=100, weight_scale=2.0), rng)
    np.testing.assert_allclose(np.asarray(w2), 2 * np.asarray(w1))
    pre, post, _ = reservoir_connectivity(ReservoirParams(n_neurons=125, connectivity="distance"), np.random.default_rng(1))
    assert len(pre) > 0 and not np.any(pre == post)


def test_orthogonal_forward_regression_finds_the_neurons_that_make_the_target():
    rng = np.random.default_rng(4)
    trains = np.stack([filtered_trains(rng.integers(0, 30, 200), rng.uniform(0, 1, 200), 30, 200, 0.005, 0.01)
                       for _ in range(20)])  # (sample, neuron, grid)
    x = trains.transpose(0, 2, 1).reshape(-1, 30)  # rows: every grid point of every sample
    target = x[:, 3] + 0.5 * x[:, 17] + 0.25 * x[:, 8]
    order, err = forward_orthogonal_regression(x, target[:, None], 5)
    assert list(order[:3]) == [3, 17, 8]
    assert err[:3].sum() == pytest.approx(1.0, abs=1e-9) and err[3] < 1e-9


def test_spike_time_readout_picks_the_neuron_whose_timing_holds_the_class():
    rng = np.random.default_rng(7)
    X, y = [], []
    for k in range(80):
        label = k % 2
        units = rng.integers(0, 20, 100)
        times = rng.uniform(0, 1, 100)
        # neuron 5 fires the same number of spikes in both classes, early for 0, late for 1
        burst = rng.uniform(0.1, 0.3, 8) + 0.5 * label
        X.append((np.concatenate([units, np.full(8, 5)]), np.concatenate([times, burst])))
        y.append(label)
    readout = SpikeTrainInnerProductReadout(20, n_select=3, n_windows=10, n_pool=5).fit(X[:60], y[:60])
    assert readout.terms_[readout.order_[0]][0] == 5
    readout.choose_n_select(X[60:70], y[60:70])
    assert readout.score(X[70:], y[70:]) == 1.0


def _coincidence_task(n, rng, n_neurons=8, n_windows=4, window=0.05, jitter=0.0005):
    """Every neuron fires exactly one spike, uniformly placed, in each of ``n_windows`` windows of
    ``window`` seconds, in both classes; in class 1 neuron 1 fires within ``jitter`` of neuron 0.
    Counts (in these windows, and in any finer bins on average) are the same in both classes."""
    X, y = [], []
    for k in range(n):
        label = k % 2
        times = (np.arange(n_windows)[None, :] + rng.uniform(0.02, 0.98, (n_neurons, n_windows))) * window
        if label:
            times[1] = times[0] + rng.uniform(-jitter, jitter, n_windows)
        units = np.repeat(np.arange(n_neurons), n_windows)
        X.append((units, times.ravel()))
        y.append(label)
    return X, np.array(y)


def test_spike_time_readout_reads_coincidences_that_binned_counts_cannot():
    from learning_rules.count_control import fit_count_control
    from models.spikes import SpikeSample

    rng = np.random.default_rng(11)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (_coincidence_task(n, rng) for n in (160, 40, 200))
    duration = 0.2 * second
    readout = SpikeTrainInnerProductReadout(8, n_select=10, tau=2 * ms, grid_dt=0.25 * ms, duration=duration,
                                            n_windows=4, n_pool=8).fit(x_train, y_train)
    readout.choose_n_select(x_val, y_val)
    assert readout.score(x_test, y_test) >= 0.95
    assert tuple(readout.terms_[readout.order_[0]][:2]) == (0, 1), "the first term is the product of 0 and 1"

    def samples(xs, ys):
        return [SpikeSample(u, t * second, int(label)) for (u, t), label in zip(xs, ys)]

    # Every neuron fires once in each window whatever the class: no binning of counts separates them.
    counts = fit_count_control(samples(x_train, y_train), y_train, samples(x_val, y_val), y_val, n_channels=8,
                               duration=duration, n_bins_options=(1, 4, 20, 40))
    assert counts.score(samples(x_test, y_test), y_test) <= 0.65


def test_spike_time_readout_never_chooses_a_tonically_firing_neuron():
    rng = np.random.default_rng(3)
    X, y = [], []
    for k in range(120):
        label = k % 3
        tonic = np.arange(0.002, 1.0, 0.005)  # neuron 0: 200 spikes, the same train in every sample
        selective = rng.uniform(0, 1, 4 + 4 * label)  # neuron 1: its count says the class
        noise_units = rng.integers(2, 10, 40)
        units = np.concatenate([np.zeros(len(tonic), int), np.ones(len(selective), int), noise_units])
        X.append((units, np.concatenate([tonic, selective, rng.uniform(0, 1, 40)])))
        y.append(label)
    readout = SpikeTrainInnerProductReadout(10, n_select=20, n_windows=2, n_pool=3).fit(X, y)
    terms = readout.terms_[readout.order_]
    assert 1 in terms[0][:2], "the class-selective neuron comes first"
    assert not np.any((terms[:, 0] == 0) & (terms[:, 1] == -1)), "the tonic neuron's counts are never chosen"
    assert not np.any((terms[:, 0] == 0) & (terms[:, 1] == 0)), "nor its own product"


@pytest.mark.slow
def test_study_beats_chance_and_chooses_without_the_test_set(tmp_path):
    from studies import lsm_shd

    base = ["--dataset", "synthetic_bursts", "--n-train", "200", "--n-neurons", "200", "--chunk-size", "50"]
    a = xr.load_dataset(lsm_shd.main(base + ["--n-test", "80", "--out", str(tmp_path / "a")]))
    b = xr.load_dataset(lsm_shd.main(base + ["--n-test", "40", "--out", str(tmp_path / "b")]))
    assert a.test_accuracy > 2.5 / 20 and a.test_accuracy_spike_time > 2.5 / 20
    # A different test set changes nothing that was chosen: choices see train and validation only.
    for name in ("readout_C", "val_accuracy", "val_accuracy_spike_time", "neurons_used_spike_time", "val_accuracy_control"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs["n_test"] == 80 and b.attrs["n_test"] == 40
    # the reservoir's fixed weights are the network a same-size dense comparison evaluates, beyond the readout
    assert int(a.network_weights) > 200 and int(a.network_weights) != int(a.trainable_parameters)


def test_liquid_transformer(tmp_path):
    from learning_rules.lsm import LiquidTransformer

    samples = _samples()[:4]
    liquid = LiquidTransformer(ReservoirParams(n_neurons=40, p_input=0.3), n_inputs=40, sample_duration=200 * ms,
                               n_bins=4, chunk_size=2, device="cpp_standalone", build_dir=str(tmp_path / "b"))
    features = liquid.fit(samples).transform(samples)
    assert features.shape == (4, 4 * 40) and features.sum() > 0
    devices.reset_brian()
