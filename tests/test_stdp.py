"""STDP (Diehl & Cook 2015): the rules from single spike pairs, bounds, learning against the frozen
network, the winner-take-all, normalisation, homeostasis, devices, the estimator and the study."""

import dataclasses

import numpy as np
import pytest
import xarray as xr
from brian2 import Network, NeuronGroup, defaultclock, mV, ms, second, volt

from datasets.records import SpikeSample
from learning_rules.readout import LabelAssignment, fit_logistic_readout
from learning_rules.stdp import (PRESYNAPTIC_EXTRA, PRESYNAPTIC_RESET, STDPNetwork, STDPParams, active_neurons,
                                 stdp_synapses)
from models.engine import devices
from models.engine.compiled import BuildCache
from models.engine.inputs import chunk_capacity

PAPER = STDPParams()


def _pair_changes(pre_ms, post_ms, params=PAPER, w0=0.5, delay_ms=None):
    """Weight change of one synapse per row: its presynaptic unit fires at the times in ``pre_ms`` and its
    postsynaptic neuron at those in ``post_ms`` (rows of times, NaN for none); with ``delay_ms`` the
    synapses have those delays and their own presynaptic traces."""
    devices.activate("runtime", "unused")
    defaultclock.dt = 0.1 * ms
    pre_ms, post_ms = np.atleast_2d(pre_ms), np.atleast_2d(post_ms)
    n = len(pre_ms)

    def steps(times):
        return np.where(np.isnan(times), -1, np.rint(np.nan_to_num(times) * 10)).astype(int)

    spiking = "k_spike : integer\ns0 : integer\ns1 : integer\n"
    pre = NeuronGroup(n, spiking + PRESYNAPTIC_EXTRA, threshold="timestep(t, dt) == s0 or timestep(t, dt) == s1",
                      reset=PRESYNAPTIC_RESET[params.rule], method="exact")
    post_eqs = (spiking + "ge : 1\ngain : 1 (shared)\nw_total : 1\nlearning : 1 (shared)\n"
                "dpost1/dt = -post1 / taupost1 : 1\ndpost2/dt = -post2 / taupost2 : 1\n"
                "taupost1 : second (shared, constant)\ntaupost2 : second (shared, constant)")
    post = NeuronGroup(n, post_eqs, threshold="timestep(t, dt) == s0 or timestep(t, dt) == s1",
                       reset="post1 = 1\npost2 = 1", method="exact")
    (pre_steps, post_steps) = steps(np.pad(pre_ms, ((0, 0), (0, 2 - pre_ms.shape[1])), constant_values=np.nan)), \
        steps(np.pad(post_ms, ((0, 0), (0, 2 - post_ms.shape[1])), constant_values=np.nan))
    pre.s0, pre.s1, post.s0, post.s1 = pre_steps[:, 0], pre_steps[:, 1], post_steps[:, 0], post_steps[:, 1]
    post.learning, post.gain = 1.0, 1.0
    pre.taupre, post.taupost1, post.taupost2 = params.tau_pre, params.tau_post, params.tau_post_slow
    syn = stdp_synapses(pre, post, params, j="i", synaptic_trace=delay_ms is not None)
    syn.w = w0
    if delay_ms is not None:
        syn.delay = np.asarray(delay_ms, dtype=float) * ms
    Network(pre, post, syn).run(150 * ms)
    change = np.asarray(syn.w[:]) - w0
    devices.reset_brian()
    return change


def test_power_law_rule_from_single_spike_pairs():
    """Eq. 4 of Diehl & Cook (2015): dw = eta (x_pre - x_tar) (w_max - w)^mu at each post spike."""
    delays = np.array([-20.0, -5.0, 0.0, 2.0, 10.0, 25.0, 60.0])  # t_post - t_pre, ms
    change = _pair_changes(np.full((len(delays), 1), 50.0), 50.0 + delays[:, None], w0=0.5)
    # the trace of one pre spike at the post spike (0 when the pre spike comes later or in the same step)
    x_pre = np.where(delays > 0, np.exp(-delays / 20.0), 0.0)
    expected = 0.01 * (x_pre - 0.4) * (1.0 - 0.5) ** 0.2
    np.testing.assert_allclose(change, expected, rtol=1e-6)
    assert change[3] > 0 > change[5], "potentiation when the input fired just before, depression otherwise"
    # the weight dependence: the same pair moves a strong synapse less
    weak, strong = (_pair_changes([[50.0]], [[52.0]], w0=w0)[0] for w0 in (0.1, 0.9))
    assert weak / strong == pytest.approx((0.9 / 0.1) ** 0.2, rel=1e-6)


def test_triplet_rule_of_the_released_code():
    """Post spike at 30 ms, pre at 50 ms, post at 50 + d ms: depression by the fast post trace at
    the pre spike, potentiation by the pre trace times the slow post trace before the second post spike."""
    triplet = dataclasses.replace(PAPER, rule="triplet")
    delays = np.array([2.0, 10.0, 30.0])
    change = _pair_changes(np.full((3, 1), 50.0), np.stack([np.full(3, 30.0), 50.0 + delays], axis=1), triplet)
    expected = -1e-4 * np.exp(-20 / 20) + 0.01 * np.exp(-delays / 20) * np.exp(-(20 + delays) / 40)
    np.testing.assert_allclose(change, expected, rtol=1e-6)


def test_a_delayed_spike_updates_the_trace_when_it_arrives():
    """With delays (the released code's option) the rule sees each input spike when it reaches the
    synapse: the same pairs as without delays, the pre spike shifted by the delay."""
    delay = np.array([0.0, 1.5, 3.0, 8.0, 8.0])
    pre = np.full((5, 1), 50.0)
    post = np.array([[52.0], [52.0], [52.0], [52.0], [62.0]])
    change = _pair_changes(pre, post, delay_ms=delay)
    shifted = _pair_changes(pre + delay[:, None], post)  # no delays: the pre spike at its arrival time
    np.testing.assert_allclose(change, shifted, rtol=1e-9, atol=1e-15)
    assert change[1] > 0 > change[2], "a spike arriving after the post spike no longer potentiates"
    for rule in ("power_law", "triplet"):  # zero delays: the same numbers as the trace on the input unit
        params = dataclasses.replace(PAPER, rule=rule)
        np.testing.assert_allclose(_pair_changes(pre, post, params, delay_ms=np.zeros(5)),
                                   _pair_changes(pre, post, params), rtol=1e-9, atol=1e-15)


def test_weights_stay_within_bounds():
    big = dataclasses.replace(PAPER, eta=50.0)
    up = _pair_changes([[50.0]], [[51.0]], big, w0=0.5)[0]
    down = _pair_changes([[np.nan]], [[51.0]], big, w0=0.5)[0]
    assert up == pytest.approx(0.5) and down == pytest.approx(-0.5)


# -- a small set on which learning must help: the class is which block of channels fires fast,
# each sample using a random half of its block, so a neuron helps only once its weights cover the block.
N_CHANNELS, N_CLASSES, DURATION = 64, 4, 200 * ms


def _pattern_set(n, rng, dt=0.5e-3):
    width = N_CHANNELS // N_CLASSES
    samples = []
    for k in range(n):
        label = k % N_CLASSES
        rates = np.full(N_CHANNELS, 2.0)
        rates[rng.choice(np.arange(label * width, (label + 1) * width), width // 2, replace=False)] = 60.0
        steps, units = np.nonzero(rng.random((int(round(float(DURATION / second) / dt)), N_CHANNELS)) < rates * dt)
        samples.append(SpikeSample(units, steps * dt * second, label))
    return samples


def _network(params, build_dir, samples, cache=None, device="cpp_standalone", chunk_size=30):
    return STDPNetwork(params, N_CHANNELS, sample_duration=DURATION, dt=0.5 * ms, chunk_size=chunk_size,
                       capacity=chunk_capacity([samples], chunk_size, N_CHANNELS), n_bins=1, device_name=device,
                       build_dir=build_dir, seed=0, cache=cache)


def _readouts(train_counts, test_counts, y_train, y_test):
    assign = LabelAssignment().fit(train_counts.sum(axis=1), y_train, N_CLASSES).score(test_counts.sum(axis=1), y_test)
    logistic = fit_logistic_readout(train_counts.reshape(len(train_counts), -1), y_train,
                                    train_counts.reshape(len(train_counts), -1), y_train)
    return assign, logistic.model.score(test_counts.reshape(len(test_counts), -1), y_test)


@pytest.fixture(scope="module")
def paper_network(tmp_path_factory):
    """The paper's network (10 neurons) on the pattern set: the frozen network's readouts, one epoch of
    STDP, the learned network's readouts, and the same binary without inhibition."""
    rng = np.random.default_rng(0)
    train, test = _pattern_set(60, rng), _pattern_set(60, rng)
    y_train, y_test = np.array([s.label for s in train]), np.array([s.label for s in test])
    folder = tmp_path_factory.mktemp("stdp")
    cache = BuildCache(folder / "kept")
    net = _network(dataclasses.replace(PAPER, n_neurons=10), folder / "a", train + test, cache)
    out = {"initial_weights": net.initial_weights_.copy()}
    out["frozen"] = _readouts(net.present(train, learn=False), net.present(test, learn=False), y_train, y_test)
    out["frozen_theta"] = net.theta_.copy()
    out["learning_counts"] = net.present(train, learn=True)
    out["learned"] = _readouts(net.present(train, learn=False), net.present(test, learn=False), y_train, y_test)
    out["active"] = active_neurons(net.present(test, learn=False))
    out["weights"], out["theta"] = net.weights_.copy(), net.theta_.copy()
    # the same learned state on the same binary, inhibition off
    loose = _network(dataclasses.replace(PAPER, n_neurons=10, w_ie=0.0), folder / "b", train + test, cache)
    assert loose.reused_binary
    loose.weights_, loose.theta_ = net.weights_, net.theta_
    out["active_without_inhibition"] = active_neurons(loose.present(test, learn=False))
    # an empty sample with learning on: only the normalisation and the threshold decay act
    net.run_chunk([SpikeSample(np.zeros(0, dtype=int), np.zeros(0) * second, 0)], learn=True)
    out["after_empty"] = (net.weights_.copy(), net.theta_.copy())
    # learning off: the binary must leave weights and thresholds exactly as given
    net.run_chunk(train[:3], learn=False)
    out["after_frozen_run"] = (np.asarray(net.syn.w[:]).copy(), np.asarray(net.exc.theta[:] / volt).copy())
    out["given"] = (net.weights_.copy(), net.theta_.copy())
    cache.close()
    devices.reset_brian()
    return out


def test_learning_beats_the_frozen_network_where_it_must(paper_network):
    frozen_assign, frozen_logistic = paper_network["frozen"]
    learned_assign, learned_logistic = paper_network["learned"]
    assert learned_assign >= 0.8 and learned_logistic >= 0.8
    assert learned_assign >= frozen_assign + 0.25, (learned_assign, frozen_assign)
    assert learned_logistic >= frozen_logistic + 0.25, (learned_logistic, frozen_logistic)
    # each class block ends up owned by its own neuron, whose weights on the other blocks have fallen
    w = paper_network["weights"]
    blocks = np.stack([w[16 * c:16 * (c + 1)].mean(axis=0) for c in range(N_CLASSES)])  # (class, neuron)
    owners = blocks.argmax(axis=1)
    assert len(set(owners)) == N_CLASSES
    for c, owner in enumerate(owners):
        assert blocks[c, owner] > 3 * np.delete(blocks[:, owner], c).max(), blocks[:, owner]


def test_winner_take_all_at_the_papers_settings(paper_network):
    active = paper_network["active"]
    assert active.max() <= 2, f"at most 2 neurons active per sample, got {np.bincount(active)}"
    loose = paper_network["active_without_inhibition"]
    assert loose.mean() > active.mean() + 0.5 and loose.max() >= 3, \
        "without the inhibitory neurons more neurons fire: the inhibition is what limits them"


def test_normalisation_homeostasis_and_frozen_learning(paper_network):
    fired = paper_network["learning_counts"].sum(axis=(0, 1)) > 0
    theta = paper_network["theta"] / mV
    assert fired.any() and np.all(theta[fired] > 0) and np.all(theta[~fired] == 0), \
        "thresholds rise exactly where neurons fired"
    assert np.all(paper_network["frozen_theta"] == 0)
    weights, theta_after = paper_network["after_empty"]
    np.testing.assert_allclose(weights.sum(axis=0), N_CHANNELS * 78 / 784, rtol=1e-9)
    # one sample of continuous decay with tau_theta = 1e7 ms
    np.testing.assert_allclose(theta_after / mV, theta * np.exp(-200 / 1e7), rtol=1e-6)
    given_w, given_theta = paper_network["given"]
    np.testing.assert_array_equal(paper_network["after_frozen_run"][0], given_w.ravel())
    np.testing.assert_array_equal(paper_network["after_frozen_run"][1], np.asarray(given_theta / volt))
    np.testing.assert_allclose(paper_network["initial_weights"].sum(axis=0), N_CHANNELS * 78 / 784, rtol=1e-9)


def test_a_long_rest_does_what_the_reset_does(tmp_path):
    """rest=2 s (the paper's rest, longer: every variable decays to within 1e-8 of rest) gives each
    sample the response the reset network gives it, in the same bins."""
    samples = _pattern_set(4, np.random.default_rng(3))
    counts = []
    for rest in (0 * ms, 2015 * ms):  # not a whole number of the 50 ms bins: counted in 5 ms bins
        params = dataclasses.replace(PAPER, n_neurons=6, input_gain=3.0, rest=rest, min_spikes=0)
        net = STDPNetwork(params, N_CHANNELS, sample_duration=DURATION, dt=0.5 * ms, chunk_size=4,
                          capacity=chunk_capacity([samples], 4, N_CHANNELS), n_bins=4, device_name="runtime",
                          build_dir=tmp_path / "b", seed=0)
        counts.append(net.present(samples, learn=False))
        devices.reset_brian()
    assert counts[0].shape == (4, 4, 6) and counts[0].sum() > 0
    np.testing.assert_array_equal(counts[0], counts[1])


def test_runtime_and_cpp_standalone_learn_the_same_weights(tmp_path):
    """On both devices, with the options that restore the released code (input delays, a rest
    instead of the reset)."""
    samples = _pattern_set(4, np.random.default_rng(1))
    params = dataclasses.replace(PAPER, n_neurons=6, input_gain=3.0, max_delay=10 * ms, rest=150 * ms)
    results = []
    for device in ("runtime", "cpp_standalone"):
        net = _network(params, tmp_path / device, samples, device=device, chunk_size=4)
        counts = net.present(samples, learn=True)
        results.append((net.weights_, net.theta_ / mV, counts, net.presentations_))
        devices.reset_brian()
    assert results[0][2].sum() > 0 and results[0][2].shape == (4, 1, 6)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(results[0][2], results[1][2])
    np.testing.assert_array_equal(results[0][3], results[1][3])


def test_stdp_transformer_learns_and_freezes(tmp_path):
    from learning_rules.stdp import STDPTransformer

    samples = _pattern_set(8, np.random.default_rng(2))
    params = dataclasses.replace(PAPER, n_neurons=6, input_gain=3.0)
    kwargs = dict(n_inputs=N_CHANNELS, sample_duration=DURATION, n_bins=2, chunk_size=4, device="runtime")
    stdp = STDPTransformer(params, build_dir=str(tmp_path / "a"), **kwargs)
    features = stdp.fit(samples[:4]).transform(samples[4:])
    assert features.shape == (4, 2 * 6) and features.sum() > 0
    assert not np.allclose(stdp.weights_["input"], stdp.initial_weights_["input"])
    devices.reset_brian()
    frozen = STDPTransformer(params, learn=False, build_dir=str(tmp_path / "b"), **kwargs).fit(samples[:4])
    np.testing.assert_array_equal(frozen.weights_["input"], stdp.initial_weights_["input"])
    assert np.all(frozen.theta_ == 0 * volt)
    devices.reset_brian()


def _killed_then_resumed(argv, out, monkeypatch, dies):
    """Run the STDP study with ``run_chunk`` replaced by ``dies`` (which raises KeyboardInterrupt on the
    way), then resume it with the real one; the resumed run's results."""
    from studies import stdp_shd

    original = STDPNetwork.run_chunk
    monkeypatch.setattr(STDPNetwork, "run_chunk", dies)
    with pytest.raises(KeyboardInterrupt):
        stdp_shd.main(argv + ["--out", str(out)])
    monkeypatch.setattr(STDPNetwork, "run_chunk", original)
    return xr.load_dataset(stdp_shd.main(argv + ["--out", str(out), "--resume"]))


@pytest.mark.slow
def test_study_reports_both_networks_and_resumes_identically(tmp_path, monkeypatch):
    from studies import stdp_shd

    argv = ["--dataset", "synthetic_bursts", "--n-train", "100", "--n-test", "30", "--epochs", "2", "--n-neurons", "30",
            "--chunk-size", "25", "--workers", "1"]
    whole = xr.load_dataset(stdp_shd.main(argv + ["--out", str(tmp_path / "a")]))
    assert whole.attrs["dataset"] == "synthetic_bursts" and whole.sizes["epoch"] == 2
    for name in ("test_accuracy_frozen", "test_accuracy_assignment_frozen", "active_neurons", "active_neurons_frozen",
                 "initial_weights", "weights", "theta", "weight_change"):
        assert name in whole, name
    assert float(whole.weight_change[-1]) > 0 and whole.sizes["test_sample"] == 30

    phase = {"learned": False, "evaluated": False, "second_epoch_calls": 0}
    original = STDPNetwork.run_chunk

    def dies_midway(self, samples, **kwargs):
        if kwargs.get("learn"):
            if phase["evaluated"]:  # the second epoch's training: die after its first chunk
                phase["second_epoch_calls"] += 1
                if phase["second_epoch_calls"] == 2:
                    raise KeyboardInterrupt
            phase["learned"] = True
        elif phase["learned"]:
            phase["evaluated"] = True
        return original(self, samples, **kwargs)

    resumed = _killed_then_resumed(argv, tmp_path / "b", monkeypatch, dies_midway)
    for name in ("val_accuracy", "test_accuracy", "test_accuracy_assignment", "test_accuracy_frozen", "weights",
                 "test_counts"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values)


@pytest.mark.slow
def test_an_epoch_a_killed_run_began_is_finished_on_resume_although_its_seconds_passed_the_budget(tmp_path, monkeypatch):
    """The wall-time budget is checked as an epoch starts. A run killed inside an epoch that had used up
    the budget on the way resumes and finishes that epoch, as the uninterrupted run did (it was not
    scored as the frozen network, nor, in a tuning trial, did it fail for want of one)."""
    from studies import stdp_shd

    argv = ["--dataset", "synthetic_bursts", "--n-train", "100", "--n-test", "30", "--epochs", "2", "--n-neurons", "30",
            "--chunk-size", "25", "--workers", "1", "--max-train-seconds", "1e-6"]
    whole = xr.load_dataset(stdp_shd.main(argv + ["--out", str(tmp_path / "a")]))
    assert whole.sizes["epoch"] == 1 and int(whole.best_epoch) == 1, "the budget passes within the first epoch"
    calls = {"n": 0}
    original = STDPNetwork.run_chunk

    def dies_in_the_first_epoch(self, samples, **kwargs):
        calls["n"] += bool(kwargs.get("learn"))
        if calls["n"] == 3:  # two chunks learned and saved
            raise KeyboardInterrupt
        return original(self, samples, **kwargs)

    resumed = _killed_then_resumed(argv, tmp_path / "b", monkeypatch, dies_in_the_first_epoch)
    for name in ("val_accuracy", "test_accuracy", "weights", "best_epoch"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values, err_msg=name)
