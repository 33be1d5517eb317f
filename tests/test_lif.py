"""Equation-level tests of the LIF neuron on every Brian2 device and against its PyTorch twin."""

import numpy as np
import pytest
import torch
from brian2 import Network, StateMonitor, defaultclock, ms, mV, second

from datasets.records import Preprocessing, SpikeSample, preprocess, to_dense
from models.engine import devices
from models.engine.compiled import CompiledNetwork
from models.lif import LIFParams, lif_group
from models.lif_torch import lif_constants, run_lif
from tests.conftest import run_feedforward

PARAMS = LIFParams(tau_mem=20 * ms, tau_syn=5 * ms, v_threshold=10 * mV, t_ref=2 * ms)


def _free_decay(device_name, build_dir, v0, i0, duration=30 * ms):
    build_dir = devices.activate(device_name, build_dir)
    defaultclock.dt = 0.1 * ms
    group = lif_group(1, PARAMS.replace(v_threshold=1000 * mV))
    group.v = v0
    group.I_syn = i0
    mon = StateMonitor(group, ["v", "I_syn"], record=0)
    net = Network(group, mon)
    CompiledNetwork(net, duration, device_name, build_dir).run()
    t = np.asarray(mon.t / ms)
    out = t, np.asarray(mon.v[0] / mV), np.asarray(mon.I_syn[0] / mV)
    devices.reset_brian()
    return out


@pytest.mark.parametrize("device_name", ["runtime", "cpp_standalone"])
def test_subthreshold_membrane_matches_closed_form(device_name, build_dir):
    t, v, current = _free_decay(device_name, build_dir, v0=3 * mV, i0=8 * mV)
    tau_m, tau_s = 20.0, 5.0
    expected_v = 3 * np.exp(-t / tau_m) + 8 * tau_s / (tau_s - tau_m) * (np.exp(-t / tau_s) - np.exp(-t / tau_m))
    np.testing.assert_allclose(v, expected_v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(current, 8 * np.exp(-t / tau_s), rtol=1e-9)


def _strong_drive(n_steps, every=1):
    steps = np.arange(0, n_steps, every)
    return SpikeSample(units=np.zeros(len(steps), dtype=int), times=steps * 0.1 * ms, label=0)


def test_refractory_period_is_respected(build_dir):
    params = PARAMS.replace(t_ref=3 * ms)
    _, steps, v = run_feedforward([_strong_drive(400)], np.array([[30.0]]), params, "cpp_standalone", build_dir,
                                  sample_steps=400, record_v=True)
    assert len(steps) >= 5, "a strong drive must make the neuron fire repeatedly"
    assert np.diff(steps).min() >= 30, "two spikes closer than t_ref = 3 ms (30 steps)"
    for s in steps[:-1]:
        np.testing.assert_allclose(v[0, s + 1:s + 30], 0.0, atol=1e-12)  # held at v_reset while refractory


def _random_problem(seed=3, n_in=40, n_out=12, n_steps=600):
    rng = np.random.default_rng(seed)
    units = rng.integers(0, n_in, 1500)
    times = rng.uniform(0, n_steps * 0.1e-3, 1500) * second
    sample = preprocess(SpikeSample(units, times, 0), Preprocessing(duration=n_steps * 0.1 * ms, dt=0.1 * ms))
    weights = rng.normal(1.0, 2.0, (n_in, n_out))
    return sample, weights


def test_runtime_and_cpp_standalone_spike_identically(tmp_path):
    sample, weights = _random_problem()
    runtime = run_feedforward([sample], weights, PARAMS, "runtime", tmp_path / "a", sample_steps=600)
    cpp = run_feedforward([sample], weights, PARAMS, "cpp_standalone", tmp_path / "b", sample_steps=600)
    assert len(runtime[1]) > 20
    order_r = np.lexsort((runtime[0], runtime[1]))
    order_c = np.lexsort((cpp[0], cpp[1]))
    np.testing.assert_array_equal(runtime[0][order_r], cpp[0][order_c])
    np.testing.assert_array_equal(runtime[1][order_r], cpp[1][order_c])


def test_pytorch_twin_spikes_like_brian2(build_dir):
    sample, weights = _random_problem(seed=7)
    idx, steps, _ = run_feedforward([sample], weights, PARAMS, "cpp_standalone", build_dir, sample_steps=600)
    dense = torch.tensor(to_dense([sample], 40, 600, 0.1 * ms), dtype=torch.float64)
    spikes = run_lif(dense, torch.tensor(weights, dtype=torch.float64), PARAMS, 0.1 * ms)[0].numpy()
    torch_steps, torch_idx = np.nonzero(spikes)
    assert len(steps) > 20
    brian = sorted(zip(steps.tolist(), idx.tolist()))
    twin = sorted(zip(torch_steps.tolist(), torch_idx.tolist()))
    assert brian == twin


def test_constants_for_the_twin_strip_units_explicitly():
    k = lif_constants(PARAMS, 1 * ms)
    assert k.alpha_mem == pytest.approx(np.exp(-1 / 20))
    assert k.refractory_steps == 2
    assert k.v_threshold == pytest.approx(10.0)


@pytest.mark.parametrize("changes, message", [
    ({"tau_mem": -5 * ms}, "positive"),
    ({"tau_mem": 20}, "Brian2 quantity"),
    ({"tau_syn": 5 * mV}, "units"),
    ({"v_threshold": -1 * mV}, "above v_rest"),
])
def test_bad_constants_give_clear_errors(changes, message):
    with pytest.raises((TypeError, ValueError), match=message):
        PARAMS.replace(**changes)


@pytest.mark.slow
def test_cuda_standalone_compiles_without_a_gpu(build_dir):
    import shutil

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH: cuda_standalone cannot compile here")
    sample, weights = _random_problem(n_in=10, n_out=4, n_steps=100)
    with pytest.raises(devices.DeviceUnavailableError, match="compile-only"):
        _compile_only_cuda(sample, weights, build_dir)
    assert (build_dir / "main").exists(), "nvcc did not produce the binary"


def _compile_only_cuda(sample, weights, build_dir):
    from brian2 import Synapses
    from models.engine.inputs import SpikeReplay, table_values

    build_dir = devices.activate("cuda_standalone", build_dir, compile_only=True)
    defaultclock.dt = 0.1 * ms
    replay = SpikeReplay.create(10, 200)
    group = lif_group(4, PARAMS)
    syn = Synapses(replay.group, group, "w : volt", on_pre="I_syn_post += w")
    syn.connect()
    syn.w = weights.ravel() * mV
    net = Network(replay.group, group, syn)
    compiled = CompiledNetwork(net, 10 * ms, "cuda_standalone", build_dir, compile_only=True)
    try:
        compiled.build()
        compiled.run({replay.table: table_values([sample], 10, 200, 100, 0.1 * ms)})
    finally:
        devices.reset_brian()


def test_readout_kernel_equals_the_recursion():
    from models.lif_torch import readout_kernel

    k = lif_constants(PARAMS, 1 * ms)
    drive = torch.randn(3, 50, 2, dtype=torch.float64)
    v, current, expected = torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64), []
    for step in range(50):
        v = v * k.alpha_mem + k.coupling * current
        current = k.alpha_syn * current + drive[:, step]
        expected.append(v)
    got = torch.einsum("ts,bso->bto", readout_kernel(k, 50, torch.float64), drive)
    torch.testing.assert_close(got, torch.stack(expected, dim=1), rtol=1e-12, atol=1e-12)


def test_surrogate_backward_equals_its_formula():
    from models.lif_torch import spike_fn

    u = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    out = spike_fn(u, 10.0)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), (u.detach() > 0).double())
    torch.testing.assert_close(u.grad, 1 / (10 * u.detach().abs() + 1) ** 2)


def test_balanced_chunk_size_simulates_fewer_silent_samples():
    from models.engine.inputs import balanced_chunk_size

    assert balanced_chunk_size([75, 25, 25], 100) == 25  # 125 samples simulated instead of 300
    assert balanced_chunk_size([1800, 200, 250], 100) == 100
    assert balanced_chunk_size([3], 100) == 3
    assert balanced_chunk_size([], 40) == 40
    for sizes in ([6500, 815, 2264], [40, 10, 20], [1, 1000]):
        chunk = balanced_chunk_size(sizes, 100)
        assert 1 <= chunk <= 100
        simulated = sum(-(-n // chunk) * chunk for n in sizes)
        assert simulated <= sum(-(-n // 100) * 100 for n in sizes)
    with pytest.raises(ValueError, match="at least 1"):
        balanced_chunk_size([10], 0)
