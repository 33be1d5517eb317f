"""e-prop: the gradient against autograd BPTT, alignment with recurrence, learning, the study."""

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr
from brian2 import mV, ms, second, volt

from datasets import Preprocessing, load_splits, to_dense
from datasets.records import SpikeSample, preprocess
from datasets.synthetic_bursts import SyntheticConfig
from learning_rules.bptt import BPTTClassifier, BPTTParams
from learning_rules.eprop import EPropNetwork, EPropParams
from models.engine import devices
from models.engine.compiled import BuildCache
from models.engine.inputs import chunk_capacity

N_IN, N_OUT, STEPS = 12, 3, 120
# The equation-level checks run on Brian2's runtime device (the same equations, no compilation: seconds
# instead of a build of a minute or more each); the default-precision gradient, the mean loss with
# recurrence and the mini-batches run on cpp_standalone, the device every study uses.


def _gradients(build_dir, recurrent, seed=3, device="cpp_standalone", rate_penalty=0.0, self_connections=True,
               damping=None, detach_recurrent=False, trace_dtype="float32", readout_reduction="per_step"):
    """e-prop's gradient from Brian2, and autograd's gradient of the BPTT baseline's own loss (its
    cross-entropy of the same ``readout_reduction`` and its rate regulariser) on the same network and weights (float64); with
    ``damping``, also e-prop's gradient with that pseudo-derivative damping, on the same binary. With
    ``detach_recurrent`` autograd's gradient keeps the recurrent spikes out (e-prop's own approximation)."""
    rng = np.random.default_rng(0)
    raw = SpikeSample(rng.integers(0, N_IN, 300), rng.uniform(0, 0.12, 300) * second, 1)
    sample = preprocess(raw, Preprocessing(duration=STEPS * ms, dt=1 * ms))
    params = EPropParams(n_hidden=6, recurrent=recurrent, weight_scale=15.0, rate_penalty=rate_penalty,
                         self_connections=self_connections, trace_dtype=trace_dtype,
                         readout_reduction=readout_reduction)
    cache = BuildCache(build_dir / "kept")

    def network(p):
        # the maximum-over-time loss presents a training sample twice in one run
        return EPropNetwork(p, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms,
                            chunk_size=2 if readout_reduction == "max" else 1, capacity=800,
                            device_name=device, build_dir=build_dir, seed=seed, cache=cache)

    net = network(params)
    eprop = net.gradient(sample)
    damped = None
    if damping is not None:
        other = network(dataclasses.replace(params, damping=damping))
        assert other.reused_binary
        damped = other.gradient(sample)
    cache.close()
    devices.reset_brian()

    baseline = BPTTClassifier(BPTTParams(n_hidden=6, recurrent=recurrent, self_connections=self_connections,
                                         readout_reduction=readout_reduction, rate_penalty=rate_penalty),
                              n_inputs=N_IN, dt=1 * ms, duration=STEPS * ms)
    baseline.initialize(np.arange(N_OUT))
    model = baseline.model_.double()
    model.detach_recurrent = detach_recurrent
    unit = float(net.unit / volt)
    names = ["in", "out"] + (["rec"] if recurrent else [])
    with torch.no_grad():
        for name in names:  # e-prop's weights (volt) in the baseline's threshold units
            getattr(model, f"w_{name}").copy_(torch.from_numpy(net.state_[f"w_{name}"] / unit))
    x = torch.tensor(to_dense([sample], N_IN, STEPS, 1 * ms), dtype=torch.float64)
    readout, spikes = model(x)
    assert spikes.sum() > 10, "the hidden layer must spike for the comparison to mean anything"
    baseline.loss(readout, spikes, torch.tensor([1])).backward()
    bptt = {name: getattr(model, f"w_{name}").grad.numpy() / unit for name in names}  # per volt, as e-prop's
    return eprop, bptt, damped


def test_eprop_equals_bptt_without_recurrence(build_dir):
    """Without recurrence e-prop is exact: its gradient equals autograd's of the BPTT baseline's own
    per-step loss and rate regulariser (the same terms, meaning and scale). The pseudo-derivative
    damping scales every hidden-weight gradient and leaves the readout's alone."""
    eprop, bptt, damped = _gradients(build_dir, recurrent=False, rate_penalty=2e-3, damping=0.3, device="runtime")
    for name in ("in", "out"):
        error = np.abs(eprop[name] - bptt[name]).max() / np.abs(bptt[name]).max()
        assert error < 1e-6, f"{name}: relative error {error}"
    # float32 traces: equal to their precision
    np.testing.assert_allclose(damped["in"], 0.3 * eprop["in"], rtol=1e-6, atol=1e-7 * np.abs(eprop["in"]).max())
    np.testing.assert_allclose(damped["out"], eprop["out"], rtol=1e-9)


def test_eprop_aligns_with_bptt_with_recurrence(build_dir):
    """With recurrence e-prop drops every gradient path through another neuron's spikes (Bellec et
    al. 2020, eq. 4 vs eq. 1). Recurrent weights start at half the input scale, so those paths are
    smaller than the direct ones but not negligible: this configuration measured a cosine of 0.92
    for input and recurrent weights. A bound of 0.8 fails a broken trace (a missing reset or
    filter drops the cosine far lower) without failing on the approximation itself. Without
    self-connections (the paper's network, in both rules) the diagonal has no synapse and no gradient."""
    eprop, bptt, _ = _gradients(build_dir, recurrent=True, self_connections=False, device="runtime")
    np.testing.assert_allclose(eprop["out"], bptt["out"], rtol=1e-6, atol=1e-9 * np.abs(bptt["out"]).max())
    assert np.all(np.diag(eprop["rec"]) == 0) and np.all(np.diag(bptt["rec"]) == 0)
    for name in ("in", "rec"):
        cosine = np.sum(eprop[name] * bptt[name]) / np.linalg.norm(eprop[name]) / np.linalg.norm(bptt[name])
        assert cosine > 0.8, f"{name}: cosine {cosine}"


@pytest.mark.parametrize("self_connections, trace_dtype, bound, device", [(True, "float32", 1e-6, "cpp_standalone"),
                                                                         (False, "float64", 1e-9, "runtime")])
def test_eprop_equals_autograd_of_its_own_approximation_with_recurrence(build_dir, self_connections, trace_dtype,
                                                                          bound, device):
    """With recurrence, e-prop's gradient is autograd's once the recurrent spikes are kept out of the
    gradient (Bellec et al. 2020, eq. 4: credit flows only through each neuron's own dynamics and the
    readout). Equal to the precision of the stored traces (float32 by default, float64 on request),
    rate regulariser included: this pins every term of the eligibility traces, whatever form the
    Brian2 code computes them in."""
    eprop, exact, _ = _gradients(build_dir, recurrent=True, rate_penalty=2e-3, self_connections=self_connections,
                                 detach_recurrent=True, trace_dtype=trace_dtype, device=device)
    for name in ("in", "rec", "out"):
        error = np.abs(eprop[name] - exact[name]).max() / np.abs(exact[name]).max()
        assert error < bound, f"{name}: relative error {error}"


@pytest.mark.parametrize("recurrent, device", [(False, "runtime"), (True, "cpp_standalone")])
def test_mean_loss_gradient_equals_autograd(build_dir, recurrent, device):
    """``readout_reduction='mean'``, the cross-entropy of the readout's mean over time (the BPTT
    baseline's 'mean'), learns from one signal per sample: each synapse sums its filtered eligibility
    trace over the sample and multiplies the sum by the signal at the end. Its gradient is autograd's
    of the baseline's 'mean' loss, rate regulariser included: exactly without recurrence, and with
    recurrence once the recurrent spikes are kept out of the gradient (e-prop's approximation)."""
    eprop, exact, _ = _gradients(build_dir, recurrent=recurrent, rate_penalty=2e-3, detach_recurrent=recurrent,
                                 trace_dtype="float64", readout_reduction="mean", device=device)
    for name in ("in", "rec", "out") if recurrent else ("in", "out"):
        error = np.abs(eprop[name] - exact[name]).max() / np.abs(exact[name]).max()
        assert error < 1e-9, f"{name}: relative error {error}"


@pytest.mark.parametrize("recurrent, device", [(False, "runtime"), (True, "cpp_standalone")])
def test_max_loss_gradient_equals_autograd(build_dir, recurrent, device):
    """``readout_reduction='max'``, the cross-entropy of each class's maximum over time (the BPTT
    baseline's default), learns in a second presentation of the sample from the signal at each
    class's peak step, found in the first. Its gradient is autograd's of the baseline's 'max' loss
    (whose gradient flows through the step of each maximum only), rate regulariser included:
    exactly without recurrence, and with recurrence once the recurrent spikes are kept out of the
    gradient (e-prop's approximation)."""
    eprop, exact, _ = _gradients(build_dir, recurrent=recurrent, rate_penalty=2e-3, detach_recurrent=recurrent,
                                 trace_dtype="float64", readout_reduction="max", device=device)
    for name in ("in", "rec", "out") if recurrent else ("in", "out"):
        assert np.abs(exact[name]).max() > 0, name
        error = np.abs(eprop[name] - exact[name]).max() / np.abs(exact[name]).max()
        assert error < 1e-9, f"{name}: relative error {error}"


@pytest.mark.parametrize("loss", ["mean", "max"])
def test_a_loss_known_at_the_end_applies_each_samples_signal_to_that_sample(build_dir, loss):
    """With a loss whose signal is known only at the sample's end, a run of two samples sums the same
    gradients as the two samples run one by one, so each sample's signal meets its own eligibility and
    nothing carries over into the next sample. The mean loss multiplies each synapse's summed trace by
    the signal at the end; the maximum over time presents each sample twice (a run of 4 presentations
    holds both), the second presentation learning from the first one's peaks. The loss recorded is the
    cross-entropy of the readout's mean, or of each class's maximum (the same without learning). Random
    feedback here (the symmetric signal is checked against autograd above): its signal must be finite
    and nonzero too."""
    from models.engine.replay import ChunkedReplayNetwork

    rng = np.random.default_rng(6)
    samples = [preprocess(SpikeSample(rng.integers(0, N_IN, 250), rng.uniform(0, 0.12, 250) * second, k + 1),
                          Preprocessing(duration=STEPS * ms, dt=1 * ms)) for k in range(2)]
    params = EPropParams(n_hidden=8, weight_scale=15.0, rate_penalty=1e-3, feedback="random", trace_dtype="float64",
                         readout_reduction=loss)
    twice = 2 if loss == "max" else 1
    if loss == "max":
        with pytest.raises(ValueError, match="chunk_size must be at least 2"):
            EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=1, capacity=800,
                         device_name="runtime", build_dir=build_dir, seed=2)
    net = EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=2 * twice,
                       capacity=400 * twice, device_name="runtime", build_dir=build_dir, seed=2)
    try:
        singles = [net.gradient(sample) for sample in samples]
        weights = {k: v for k, v in net.state_.items() if k.startswith("w_")}
        parts = ChunkedReplayNetwork.present(net, samples, learn=True, accumulate=True, weights=weights)
        tested = net.present(samples, learn=False)
    finally:
        devices.reset_brian()
    assert len(parts) == 1, "one run holds both samples"
    for name in singles[0]:
        together = parts[0]["gradient_sum"][name]
        expected = singles[0][name] + singles[1][name]
        assert np.isfinite(together).all() and np.abs(expected).max() > 0, name
        np.testing.assert_allclose(together, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max(), err_msg=name)
    reduced = parts[0]["logits"] / (STEPS if loss == "mean" else 1)  # the readout's sum over time, or its maximum
    np.testing.assert_allclose(tested["logits"], parts[0]["logits"], rtol=1e-12)
    cross_entropy = np.log(np.exp(reduced).sum(axis=1)) - reduced[np.arange(2), [s.label for s in samples]]
    np.testing.assert_allclose(parts[0]["loss"], cross_entropy, rtol=1e-9)
    np.testing.assert_allclose(tested["loss"], cross_entropy, rtol=1e-9)


def test_mean_loss_needs_the_sample_update():
    for reduction in ("mean", "max"):
        with pytest.raises(ValueError, match="needs update='sample'"):
            EPropParams(readout_reduction=reduction, update="online")
    with pytest.raises(ValueError, match="readout_reduction must be"):
        EPropParams(readout_reduction="last")


def test_online_update_steps_along_the_sample_gradient(build_dir):
    """``update='online'`` takes a plain gradient step every time step on that step's cross-entropy
    (the per-sample gradient without its 1/T). With a step small enough that the weights hardly move
    within the sample, the sample's total change is -step * unit * T * gradient, the gradient that
    ``update='sample'`` computes from the same initial weights."""
    rng = np.random.default_rng(0)
    sample = preprocess(SpikeSample(rng.integers(0, N_IN, 300), rng.uniform(0, 0.12, 300) * second, 1),
                        Preprocessing(duration=STEPS * ms, dt=1 * ms))
    base = EPropParams(n_hidden=6, weight_scale=15.0, self_connections=False, trace_dtype="float64")
    step = 1e-6 * mV

    def network(params):
        return EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=1, capacity=400,
                            device_name="runtime", build_dir=build_dir, seed=4)

    try:
        gradient = network(base).gradient(sample)
        devices.reset_brian()
        online = network(dataclasses.replace(base, update="online", learning_rate=step))
        start = {k: np.copy(v) for k, v in online.state_.items()}
        online.run_chunk([sample], learn=True)
    finally:
        devices.reset_brian()
    scale = float(step / volt) * float(online.unit / volt) * STEPS
    for name in ("in", "rec", "out"):
        change = online.state_[f"w_{name}"] - start[f"w_{name}"]
        assert np.abs(change).max() > 0, f"w_{name} must move"
        np.testing.assert_allclose(change, -scale * gradient[name], rtol=1e-4,
                                   atol=1e-4 * scale * np.abs(gradient[name]).max(), err_msg=name)


def _train(build_dir, learning_rates, epochs=3):
    """Mean training loss per epoch for each learning rate, each from the same initial weights; the
    learning rate reaches the kept binary through run_args, so one build serves them all."""
    config = SyntheticConfig(n_channels=100, n_classes=4, n_train=200, n_test=20, duration=300 * ms, margin=20 * ms)
    splits = load_splits("synthetic", synthetic=config, preprocessing=Preprocessing(duration=300 * ms, dt=1 * ms))
    cache = BuildCache(build_dir / "kept")
    runs = []
    for learning_rate in learning_rates:
        params = EPropParams(n_hidden=32, learning_rate=learning_rate, weight_scale=15.0)
        net = EPropNetwork(params, 100, 4, dt=1 * ms, sample_duration=300 * ms, chunk_size=60,
                           capacity=chunk_capacity([splits.train.samples], 60, 100), device_name="cpp_standalone",
                           build_dir=build_dir, cache=cache)
        runs.append([net.present(splits.train.samples, learn=True)["loss"].mean() for _ in range(epochs)])
    assert net.reused_binary
    cache.close()
    devices.reset_brian()
    return runs


def test_loss_falls_and_rises_when_the_update_is_flipped(tmp_path):
    falling, rising = _train(tmp_path, [0.05 * mV, -0.05 * mV])
    assert falling[-1] < 0.8 * falling[0], f"e-prop should lower the loss: {falling}"
    assert rising[-1] > 1.2 * rising[0], f"the flipped update should raise it: {rising}"


def _killed_then_resumed(argv, out, monkeypatch, dies, healthy, before_resume=None) -> xr.Dataset:
    """Run the e-prop study with ``run_chunk`` replaced by ``dies`` (which raises KeyboardInterrupt
    on the way), then resume it with ``healthy``; the resumed run's results."""
    from studies import eprop_shd

    monkeypatch.setattr(EPropNetwork, "run_chunk", dies)
    with pytest.raises(KeyboardInterrupt):
        eprop_shd.main(argv + ["--out", str(out)])
    monkeypatch.setattr(EPropNetwork, "run_chunk", healthy)
    if before_resume is not None:
        before_resume()
    return xr.load_dataset(eprop_shd.main(argv + ["--out", str(out), "--resume"]))


@pytest.mark.slow
def test_study_runs_and_resumes_identically(tmp_path, monkeypatch):
    from studies import eprop_shd

    argv = ["--dataset", "synthetic", "--n-train", "60", "--n-test", "20", "--epochs", "2", "--n-hidden", "16",
            "--duration", "300ms", "--chunk-size", "20"]
    whole = xr.load_dataset(eprop_shd.main(argv + ["--out", str(tmp_path / "a")]))
    assert whole.sizes["epoch"] == 2 and whole.synaptic_operations_per_sample > 0
    calls = {"n": 0}
    original = EPropNetwork.run_chunk

    def dies(self, samples, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # second epoch, second chunk
            raise KeyboardInterrupt
        return original(self, samples, **kwargs)

    resumed = _killed_then_resumed(argv, tmp_path / "b", monkeypatch, dies, original)
    for name in ("train_loss", "val_accuracy", "test_accuracy", "test_prediction"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values)


def test_the_time_budget_ends_an_epoch_at_a_checkpoint_and_a_resumed_run_stops_there_too(tmp_path, monkeypatch):
    """An online rule's epoch can outlast a search's per-trial budget many times: the budget stops
    training at the next checkpoint, the run is scored there, says how many samples it learned from
    (to the results and to a search's listener), and a rerun killed after that checkpoint stops there
    too. The training clock advances 10 s per chunk learned: the first epoch (40 s) fits the 45 s
    budget, the second stops after its first chunk (50 s)."""
    from studies import eprop_shd
    from studies.run import epoch_listener

    clock = {"t": 0.0}
    monkeypatch.setattr(eprop_shd, "_clock", lambda: clock["t"])
    original = EPropNetwork.run_chunk

    def timed(self, samples, **kwargs):
        if kwargs.get("learn"):
            clock["t"] += 10.0
        return original(self, samples, **kwargs)

    monkeypatch.setattr(EPropNetwork, "run_chunk", timed)
    argv = ["--dataset", "synthetic", "--n-train", "24", "--n-test", "10", "--duration", "50ms", "--n-hidden", "8",
            "--chunk-size", "6", "--epochs", "3", "--workers", "1", "--device", "runtime", "--max-train-seconds", "45"]
    seen = []
    with epoch_listener(lambda epoch, value, samples: seen.append(samples)):
        whole = xr.load_dataset(eprop_shd.main(argv + ["--out", str(tmp_path / "a")]))
    n_train = int(whole.n_train)
    assert whole.sizes["epoch"] == 2 and whole.train_samples.values.tolist() == [n_train, 6], whole.train_samples.values
    assert seen == [n_train, 6], "a search's listener hears the samples each epoch learned from"
    assert whole.epoch_seconds.values.tolist() == [40.0, 10.0]
    calls = {"n": 0}

    def dies(self, samples, **kwargs):
        calls["n"] += kwargs.get("learn", False)
        if calls["n"] == 5 and not kwargs.get("learn"):  # the second epoch's chunk learned and was saved
            raise KeyboardInterrupt
        return timed(self, samples, **kwargs)

    # the rerun's clock reads otherwise: it stops on the seconds its checkpoint saved
    resumed = _killed_then_resumed(argv, tmp_path / "b", monkeypatch, dies, timed,
                                   before_resume=lambda: clock.update(t=clock["t"] + 1000.0))
    for name in ("train_samples", "train_loss", "val_accuracy", "test_prediction", "epoch_seconds"):
        np.testing.assert_array_equal(whole[name].values, resumed[name].values, err_msg=name)


@pytest.mark.parametrize("loss", ["per_step", "max"])
def test_a_sample_budget_ends_training_inside_an_epoch(tmp_path, loss):
    """What a search's wall-time cap becomes in its best configuration: training stops after exactly
    this many samples, inside an epoch (a chunk cut short), and the run is scored there. With the
    maximum-over-time loss a run learns from half as many samples as it holds presentations, each
    presented twice, which the results record."""
    from studies import eprop_shd

    argv = ["--dataset", "synthetic", "--n-train", "24", "--n-test", "10", "--duration", "50ms", "--n-hidden", "8",
            "--chunk-size", "6", "--epochs", "3", "--workers", "1", "--device", "runtime", "--readout-reduction", loss,
            "--max-train-samples", "31"]
    runs = []
    original = EPropNetwork.run_chunk

    def counted(self, samples, **kwargs):
        runs.append((len(samples), kwargs.get("learn", False)))
        return original(self, samples, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EPropNetwork, "run_chunk", counted)
        ds = xr.load_dataset(eprop_shd.main(argv + ["--out", str(tmp_path)]))
    n_train = int(ds.n_train)
    assert 31 - n_train < n_train and ds.train_samples.values.tolist() == [n_train, 31 - n_train], ds.train_samples.values
    assert ds.presentations_per_sample.values.tolist() == [2 if loss == "max" else 1] * 2
    twice = 2 if loss == "max" else 1  # a run holds chunk_size presentations (at most 6, an even number for 'max')
    assert int(ds.chunk_size) <= 6 and int(ds.chunk_size) % twice == 0
    assert max(n for n, learn in runs if learn) == int(ds.chunk_size) // twice
    assert ("maximum" in ds.train_loss.long_name) == (loss == "max")
    if loss == "per_step":
        with pytest.raises(ValueError, match="max_train_samples must be at least 1"):
            eprop_shd.main(argv[:-1] + ["0", "--out", str(tmp_path / "zero")])


@pytest.mark.slow
def test_the_learning_off_control_trains_only_the_readout(build_dir):
    """``train_hidden=False`` (the comparison's ablation): input and recurrent weights stay as drawn,
    the readout learns."""
    rng = np.random.default_rng(2)
    samples = [preprocess(SpikeSample(rng.integers(0, N_IN, 200), rng.uniform(0, 0.1, 200) * second, k % N_OUT),
                          Preprocessing(duration=STEPS * ms, dt=1 * ms)) for k in range(4)]
    params = EPropParams(n_hidden=6, recurrent=True, weight_scale=15.0, train_hidden=False)
    net = EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=4, capacity=400,
                       device_name="cpp_standalone", build_dir=build_dir, seed=1)
    before = {k: np.copy(v) for k, v in net.state_.items() if k.startswith("w_")}
    net.present(samples, learn=True)
    devices.reset_brian()
    np.testing.assert_array_equal(net.state_["w_in"], before["w_in"])
    np.testing.assert_array_equal(net.state_["w_rec"], before["w_rec"])
    assert np.abs(net.state_["w_out"] - before["w_out"]).max() > 0


def test_mini_batches_step_as_the_binary_and_split_across_processes_without_changing_the_weights(build_dir):
    """A batch of one sample updates exactly as the binary's own Adam after that sample; a batch of
    four gives the same weights whether its chunks run in one process or in two (data-parallel)."""
    rng = np.random.default_rng(5)
    samples = [preprocess(SpikeSample(rng.integers(0, N_IN, 250), rng.uniform(0, 0.12, 250) * second, k % N_OUT),
                          Preprocessing(duration=STEPS * ms, dt=1 * ms)) for k in range(4)]
    params = EPropParams(n_hidden=8, weight_scale=15.0, rate_penalty=1e-3, self_connections=False)
    net = EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=2, capacity=400,
                       device_name="cpp_standalone", build_dir=build_dir, seed=2)
    start = {k: np.copy(v) for k, v in net.state_.items()}

    def fresh():
        net.state_ = {k: np.copy(v) for k, v in start.items()}

    try:
        net.run_chunk(samples[:1], learn=True)
        online = dict(net.state_)
        fresh()
        net.learn_batch(samples[:1])
        for key, value in online.items():
            np.testing.assert_allclose(net.state_[key], value, rtol=1e-9, atol=1e-18, err_msg=key)
        fresh()
        serial = net.learn_batch(samples, workers=1)
        one = dict(net.state_)
        fresh()
        parallel = net.learn_batch(samples, workers=2)
        two = dict(net.state_)
        # an epoch of two batches: serial, and in one pool kept open for both (its workers were forked
        # before the first step, so the second batch must not use the weights they were forked with)
        fresh()
        for batch in (samples, samples[::-1]):
            net.learn_batch(batch, workers=1)
        serial_epoch = dict(net.state_)
        fresh()
        with net.worker_pool(2) as pool:
            for batch in (samples, samples[::-1]):
                net.learn_batch(batch, workers=2, pool=pool)
        pooled_epoch = dict(net.state_)
        leftovers = [path.name for path in (net.compiled.build_dir / "static_arrays").iterdir()
                     if path.name not in net.compiled._project_arrays]
    finally:
        devices.reset_brian()
    np.testing.assert_array_equal(parallel["loss"], serial["loss"])
    for key, value in one.items():
        np.testing.assert_allclose(two[key], value, rtol=1e-12, atol=0, err_msg=key)
        np.testing.assert_allclose(pooled_epoch[key], serial_epoch[key], rtol=1e-12, atol=0, err_msg=key)
    assert serial_epoch["adam_step"] == 2.0 and np.abs(serial_epoch["w_in"] - two["w_in"]).max() > 0
    assert not leftovers, f"the pool's run arrays were left behind: {leftovers[:3]}"
    net.state_ = two
    assert net.state_["adam_step"] == 1.0
    for name in ("in", "rec", "out"):
        assert np.abs(net.state_[f"w_{name}"] - start[f"w_{name}"]).max() > 0, f"w_{name} must learn"
    assert np.all(np.diag(net.state_["w_rec"]) == 0), "no self-connections appear"


@pytest.mark.slow
def test_mini_batches_on_a_dask_cluster_give_the_weights_of_one_process(build_dir):
    """Data-parallel e-prop on a Dask cluster: each worker builds the network once from its recipe,
    gets the current weights with every chunk, and the two batches of an epoch end with the weights
    of one process; evaluation on the cluster gives one process's readout."""
    pytest.importorskip("distributed")
    from models.engine import replay
    from studies.executors import DaskExecutor

    rng = np.random.default_rng(7)
    samples = [preprocess(SpikeSample(rng.integers(0, N_IN, 250), rng.uniform(0, 0.12, 250) * second, k % N_OUT),
                          Preprocessing(duration=STEPS * ms, dt=1 * ms)) for k in range(4)]
    params = EPropParams(n_hidden=8, weight_scale=15.0, rate_penalty=1e-3, batch_size=4)
    net = EPropNetwork(params, N_IN, N_OUT, dt=1 * ms, sample_duration=STEPS * ms, chunk_size=2, capacity=400,
                       device_name="cpp_standalone", build_dir=build_dir, seed=3)
    start = {k: np.copy(v) for k, v in net.state_.items()}
    executor = None
    try:
        for batch in (samples, samples[::-1]):
            net.learn_batch(batch, workers=1)
        serial, serial_logits = dict(net.state_), net.present(samples, learn=False)["logits"]
        net.state_ = {k: np.copy(v) for k, v in start.items()}
        executor = DaskExecutor(n_local=2)
        pool = net.remote_pool(executor)
        for batch in (samples, samples[::-1]):
            net.learn_batch(batch, workers=2, pool=pool)
        remote, remote_logits = dict(net.state_), net.present(samples, learn=False, pool=pool)["logits"]
        built = executor.client.run(lambda: replay._REMOTE_TOKEN)
        jobs = executor.client.run(lambda: replay._REMOTE_JOBS)
    finally:
        if executor is not None:
            executor.close()
        devices.reset_brian()
    assert set(built.values()) == {net.recipe.token}, f"every worker ran chunks on the rebuilt network: {built}"
    assert sum(jobs.values()) == 2 * 2 + 2, f"two batches of 2 chunks and evaluation's 2 ran on the cluster: {jobs}"
    assert remote["adam_step"] == 2.0 and np.abs(remote["w_in"] - start["w_in"]).max() > 0
    for key, value in serial.items():
        np.testing.assert_allclose(remote[key], value, rtol=1e-12, atol=0, err_msg=key)
    np.testing.assert_allclose(remote_logits, serial_logits, rtol=1e-12, atol=0)


def test_a_trial_resumed_with_another_test_subset_goes_on_in_its_own_chunks(tmp_path, monkeypatch):
    """A trial's checkpoint does not depend on the test subset it never sees, but chunk sizes are balanced
    on it (so that a trial trains in the full run's chunks): a trial killed inside an epoch and resumed
    with another test subset goes on in the chunks it began with, and ends as the uninterrupted trial."""
    from studies import eprop_shd
    from studies.config import build_parser, config_from_args

    def trial(n_test, out, resume=False):
        args = build_parser(eprop_shd.EPropStudyConfig, "eprop").parse_args(
            ["--dataset", "synthetic", "--n-train", "24", "--n-test", str(n_test), "--device", "runtime",
             "--duration", "50ms", "--n-hidden", "8", "--epochs", "1", "--workers", "1", "--chunk-size", "8",
             "--out", str(out)])
        config = config_from_args(eprop_shd.EPropStudyConfig, args)
        return eprop_shd.run(dataclasses.replace(config, run=dataclasses.replace(
            config.run, validation_only=True, resume=resume)))

    whole = trial(10, tmp_path / "whole")
    original, calls = EPropNetwork.run_chunk, {"n": 0}

    def dies(self, samples, **kwargs):
        calls["n"] += kwargs.get("learn", False)
        if calls["n"] == 2:  # the second chunk, after the first was saved
            raise KeyboardInterrupt
        return original(self, samples, **kwargs)

    monkeypatch.setattr(EPropNetwork, "run_chunk", dies)
    with pytest.raises(KeyboardInterrupt):
        trial(10, tmp_path / "killed")  # chunks of 6: 22 training, 2 validation and 10 test samples
    monkeypatch.setattr(EPropNetwork, "run_chunk", original)
    resumed = trial(2, tmp_path / "killed", resume=True)  # alone, 2 test samples would balance to chunks of 8
    assert int(resumed.train_samples.sum()) == int(whole.train_samples.sum()) == 22
    assert "train_accuracy" in whole and "val_accuracy" in whole
    for name in ("train_accuracy", "val_accuracy"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values, err_msg=name)
