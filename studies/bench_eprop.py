"""Benchmark: e-prop training speed against NEST's e-prop, and memory against sequence length.

    python studies/bench_eprop.py --n-samples 20

Part 1, side by side in one run: the same 700 -> 128 recurrent -> 20 network trained by e-prop on
the same SHD-like samples (1 s at 1 ms), one process each: ours (Brian2, cpp_standalone, Adam after
every sample) and NEST 3.10's ``eprop_iaf`` / ``eprop_readout`` / ``eprop_synapse`` (gradient descent,
``local_num_threads=1``). Compilation is timed apart. The neuron models differ in detail (NEST's
``eprop_iaf`` has no synaptic current), so the hidden spike counts of both are recorded too.
Target (issue 6): ours at least 2x faster per training sample.

Part 2: peak memory against sequence length, each measured in a fresh process: e-prop (the
simulator binary's resident memory) and the BPTT baseline (one training step on a batch of 16).
e-prop's should stay flat, BPTT's grow with the number of time steps. Beside BPTT's measured
memory, the state computed from the network's size
(:meth:`models.lif_torch.RecurrentLIFNetwork.backward_state_bytes`): the two should grow alike.

Part 3 (``--batch-size``, ``--workers``): data-parallel e-prop, the same mini-batches (one Adam step
per batch on the summed gradients) trained with 1 process and with ``--workers`` processes, side by
side; the throughput ratio is the data-parallel speed-up (target: 1.8x with 2 workers). The same is
timed on batches in which every process gets the same samples: with nothing to wait for, that ratio is
what the split can reach on the machine at hand. NEST is a benchmark-only dependency
(``requirements-bench.txt``).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import ms, second

from datasets import Preprocessing, to_dense
from datasets.records import preprocess
from datasets.synthetic_bursts import SyntheticConfig, make_synthetic
from learning_rules.eprop import EPropNetwork, EPropParams
from models.engine.inputs import chunk_capacity
from models import files
from studies import benchmarks, results
from studies.cli import run_main
from studies.quick_help import HelpCachingParser

N_IN, N_HIDDEN, N_OUT = 700, 128, 20
WEIGHT_SCALE = 10.0  # ours: hidden layer at roughly 10 Hz on this input
NEST_INPUT_SCALE = 17.0  # NEST: input weights (pA, std times sqrt(fan-in)) for a comparable rate


def _samples(n, duration=1 * second, seed=7):
    train, _ = make_synthetic(SyntheticConfig(n_train=n, n_test=1, seed=seed, duration=duration,
                                              margin=min(50 * ms, duration / 4)))
    return [preprocess(s, Preprocessing(duration=duration, dt=1 * ms)) for s in train.samples]


def time_ours(samples, out: Path) -> dict:
    build_dir = Path(tempfile.mkdtemp(prefix="bench_eprop_", dir=benchmarks.build_root(out)))
    try:
        net = EPropNetwork(EPropParams(n_hidden=N_HIDDEN, weight_scale=WEIGHT_SCALE), N_IN, N_OUT, dt=1 * ms, sample_duration=1 * second,
                           chunk_size=len(samples), capacity=chunk_capacity([samples], len(samples), N_IN),
                           device_name="cpp_standalone", build_dir=build_dir)
        t0 = time.perf_counter()
        net.compiled.build()
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = net.present(samples, learn=True)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return {"seconds_per_sample": seconds / len(samples), "build_seconds": build,
            "hidden_spikes_per_sample": float(result["counts"].sum(axis=1).mean())}


def time_nest(samples) -> dict:
    import nest

    nest.ResetKernel()
    nest.set(resolution=1.0, local_num_threads=1, print_time=False, rng_seed=1)
    nest.verbosity = nest.VerbosityLevel.FATAL
    rng = np.random.default_rng(0)
    duration = 1000.0
    gen = nest.Create("spike_generator", N_IN)
    inputs = nest.Create("parrot_neuron", N_IN)
    hidden = nest.Create("eprop_iaf", N_HIDDEN, {"C_m": 1.0, "E_L": 0.0, "V_th": 10.0, "tau_m": 20.0, "t_ref": 2.0,
                                                 "V_m": 0.0, "c_reg": 0.0, "kappa": 0.95})
    readout = nest.Create("eprop_readout", N_OUT, {"C_m": 1.0, "E_L": 0.0, "tau_m": 20.0, "V_m": 0.0})
    target = nest.Create("step_rate_generator", N_OUT)
    window = nest.Create("step_rate_generator")
    nest.SetDefaults("eprop_synapse", {"optimizer": {"type": "gradient_descent", "batch_size": 1, "eta": 1e-4,
                                                     "Wmin": -1000.0, "Wmax": 1000.0}})
    one = {"rule": "one_to_one"}
    nest.Connect(gen, inputs, one, {"synapse_model": "static_synapse", "delay": 1.0})

    def connect(pre, post, weights):
        src, tgt = np.nonzero(weights)
        nest.Connect(np.array(pre.tolist())[src], np.array(post.tolist())[tgt], one,
                     {"synapse_model": "eprop_synapse", "delay": np.ones(len(src)), "weight": weights[src, tgt]})

    w_rec = rng.standard_normal((N_HIDDEN, N_HIDDEN)) * NEST_INPUT_SCALE / 2 / np.sqrt(N_HIDDEN)
    np.fill_diagonal(w_rec, 0.0)
    connect(inputs, hidden, rng.standard_normal((N_IN, N_HIDDEN)) * NEST_INPUT_SCALE / np.sqrt(N_IN))
    connect(hidden, hidden, w_rec)
    connect(hidden, readout, rng.standard_normal((N_HIDDEN, N_OUT)) * 50 / np.sqrt(N_HIDDEN))
    nest.Connect(readout, hidden, {"rule": "all_to_all"},
                 {"synapse_model": "eprop_learning_signal_connection", "delay": 1.0,
                  "weight": rng.standard_normal((N_HIDDEN, N_OUT)) * 0.1})
    nest.Connect(target, readout, one, {"synapse_model": "rate_connection_delayed", "delay": 1.0, "receptor_type": 2})
    nest.Connect(window, readout, {"rule": "all_to_all"},
                 {"synapse_model": "rate_connection_delayed", "delay": 1.0, "receptor_type": 1})
    recorder = nest.Create("spike_recorder")
    nest.Connect(hidden, recorder)
    # Stimuli for every sample, laid end to end (generator times must be > 0).
    times = [[] for _ in range(N_IN)]
    for k, s in enumerate(samples):
        for unit, t in zip(s.units, np.asarray(s.times / ms)):
            times[unit].append(k * duration + t + 1.0)
    gen.set([{"spike_times": np.round(np.array(t), 1)} for t in times])
    starts = np.arange(len(samples)) * duration + 1.0
    amplitudes = np.zeros((N_OUT, len(samples)))
    amplitudes[[s.label for s in samples], np.arange(len(samples))] = 1.0
    target.set([{"amplitude_times": starts, "amplitude_values": amplitudes[k]} for k in range(N_OUT)])
    window.set({"amplitude_times": [1.0], "amplitude_values": [1.0]})
    t0 = time.perf_counter()
    nest.Simulate(len(samples) * duration + 3.0)
    seconds = time.perf_counter() - t0
    return {"seconds_per_sample": seconds / len(samples), "build_seconds": 0.0,
            "hidden_spikes_per_sample": recorder.n_events / len(samples)}


def time_data_parallel(samples, batch_size: int, workers: int, out: Path) -> dict:
    """Training seconds per sample in mini-batches of ``batch_size``: one process, then ``workers``
    processes, on one binary and from the same initial weights; and the largest difference between
    the weights each reached (they must agree to float precision).

    Timed the same way on batches in which every worker gets the same samples (each batch's first
    chunk, repeated): no worker waits for a slower one, so their speed-up is what the split can reach on
    the machine at hand."""
    chunk = -(-batch_size // workers)
    # every chunk of these is a slice of ``samples``: the replay table sized for those holds them
    equal = [s for i in range(0, len(samples), batch_size) for _ in range(workers) for s in samples[i:i + chunk]]
    build_dir = Path(tempfile.mkdtemp(prefix="bench_eprop_dp_", dir=benchmarks.build_root(out)))
    try:
        net = EPropNetwork(EPropParams(n_hidden=N_HIDDEN, weight_scale=WEIGHT_SCALE, batch_size=batch_size), N_IN,
                           N_OUT, dt=1 * ms, sample_duration=1 * second, chunk_size=chunk,
                           capacity=chunk_capacity([samples], chunk, N_IN), device_name="cpp_standalone",
                           build_dir=build_dir)
        net.compiled.build()
        start = {k: np.copy(v) for k, v in net.state_.items()}
        seconds, reached = {}, {}
        for kind, timed in (("split", samples), ("equal", equal)):
            for n in (1, workers):
                net.state_ = {k: np.copy(v) for k, v in start.items()}
                t0 = time.perf_counter()
                with net.worker_pool(n) as pool:  # one pool for the epoch, as the study keeps it
                    for i in range(0, len(timed), batch_size):
                        net.learn_batch(timed[i:i + batch_size], workers=n, pool=pool)
                seconds[kind, n] = (time.perf_counter() - t0) / len(timed)
                reached[kind, n] = {k: v for k, v in net.state_.items() if k.startswith("w_")}
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    difference = max(float(np.max(np.abs(reached[kind, 1][k] - reached[kind, workers][k])))
                     for kind in ("split", "equal") for k in reached[kind, 1])
    return {"serial": seconds["split", 1], "parallel": seconds["split", workers],
            "equal_speedup": seconds["equal", 1] / seconds["equal", workers], "weight_difference": difference}


def _eprop_memory(steps: int, out: Path) -> float:
    """Peak resident memory of the simulator binary while it trains on two samples of ``steps`` steps."""
    samples = _samples(2, duration=steps * ms, seed=3)
    build_dir = Path(tempfile.mkdtemp(prefix="bench_eprop_mem_", dir=benchmarks.build_root(out)))
    try:
        net = EPropNetwork(EPropParams(n_hidden=N_HIDDEN), N_IN, N_OUT, dt=1 * ms, sample_duration=steps * ms, chunk_size=2,
                           capacity=chunk_capacity([samples], 2, N_IN), device_name="cpp_standalone",
                           build_dir=build_dir)
        net.present(samples, learn=True)  # the binary's peak memory is polled while it runs
        peak = net.compiled.peak_binary_memory
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return peak


def _bptt_memory(steps: int, queue) -> None:
    """In a fresh interpreter: memory that BPTT holds for its backward pass (batch of 16)."""
    import psutil
    import torch

    from learning_rules.bptt import BPTTParams
    from models.lif_torch import RecurrentLIFNetwork

    torch.set_num_threads(1)
    samples = _samples(16, duration=steps * ms, seed=3)
    x = torch.from_numpy(to_dense(samples, N_IN, steps, 1 * ms))
    labels = torch.as_tensor([s.label for s in samples])
    model = RecurrentLIFNetwork(N_IN, N_HIDDEN, N_OUT, BPTTParams().lif, 1 * ms)
    me = psutil.Process()
    before = me.memory_info().rss
    readout, _ = model(x)
    loss = torch.nn.functional.cross_entropy(readout.max(dim=1).values, labels)
    held = me.memory_info().rss - before  # activations kept alive by the autograd graph
    loss.backward()
    queue.put(held / 2 ** 20)


def _bptt_memory_fresh(steps: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_bptt_memory, args=(steps, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return float(value)


def bptt_state_computed(steps: int) -> float:
    """MiB of BPTT's backward state for the measured network and batch, from its size alone."""
    import torch

    from learning_rules.bptt import BPTTParams
    from models.lif_torch import RecurrentLIFNetwork

    model = RecurrentLIFNetwork(N_IN, N_HIDDEN, N_OUT, BPTTParams().lif, 1 * ms, dtype=torch.float32)
    return sum(model.backward_state_bytes(16, steps).values()) / 2 ** 20


def run(n_samples: int, lengths: list[int], out: Path, with_nest: bool, batch_size: int = 0,
        workers: int = 2) -> xr.Dataset:
    started = results.now()
    samples = _samples(n_samples)
    timed = {"ours": time_ours(samples, out)}
    if with_nest:
        timed["nest"] = time_nest(samples)
    impls = list(timed)
    eprop_mem = [_eprop_memory(n, out) for n in lengths]
    bptt_mem = [_bptt_memory_fresh(n) for n in lengths]
    data = {
        "seconds_per_sample": ("implementation", [timed[i]["seconds_per_sample"] for i in impls],
                               {"units": "s", "long_name": "training wall time per 1 s sample, one process"}),
        "hidden_spikes_per_sample": ("implementation", [timed[i]["hidden_spikes_per_sample"] for i in impls],
                                     {"units": "1", "long_name": "hidden spikes per training sample"}),
        "build_seconds": ("implementation", [timed[i]["build_seconds"] for i in impls],
                          {"units": "s", "long_name": "code generation and compilation"}),
        "eprop_peak_memory": ("sequence_steps", eprop_mem,
                              {"units": "MiB", "long_name": "e-prop: peak memory of the simulator binary"}),
        "bptt_peak_memory": ("sequence_steps", bptt_mem,
                             {"units": "MiB", "long_name": "BPTT: memory held for the backward pass (batch 16)"}),
        "bptt_state_computed": ("sequence_steps", [bptt_state_computed(n) for n in lengths],
                                {"units": "MiB", "long_name": "BPTT: backward state computed from the network's size (batch 16)"}),
    }
    if batch_size > 0:
        parallel = time_data_parallel(samples, batch_size, workers, out)
        data.update({
            "data_parallel_seconds_per_sample": (
                "workers", [parallel["serial"], parallel["parallel"]],
                {"units": "s", "long_name": f"e-prop training wall time per sample, mini-batches of {batch_size}"}),
            "data_parallel_speedup": results.scalar(parallel["serial"] / parallel["parallel"], "1",
                                                    f"throughput with {workers} processes over one"),
            "data_parallel_equal_chunks_speedup": results.scalar(
                parallel["equal_speedup"], "1",
                f"throughput with {workers} processes over one when every process gets the same samples"),
            "data_parallel_weight_difference": results.scalar(parallel["weight_difference"], "V",
                                                              "largest difference between the weights of the two runs"),
        })
    if with_nest:
        data["speedup"] = results.scalar(timed["nest"]["seconds_per_sample"] / timed["ours"]["seconds_per_sample"],
                                        "1", "NEST time per sample divided by ours")
    coords = {"implementation": impls, "sequence_steps": lengths}
    if batch_size > 0:
        coords["workers"] = [1, workers]
    ds = xr.Dataset(data, coords=coords)
    results.benchmark_attrs(ds, "eprop_speed_memory", started, n_samples=n_samples,
                           network=f"{N_IN} -> {N_HIDDEN} recurrent -> {N_OUT}, 1 s samples at 1 ms")
    return ds


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=20, help="training samples timed per implementation")
    parser.add_argument("--lengths", type=int, nargs="+", default=[250, 500, 1000, 2000],
                        help="sequence lengths (1 ms steps) for the memory measurement")
    parser.add_argument("--no-nest", action="store_true", help="skip NEST (when it is not installed)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="data-parallel part: samples per Adam step (0 skips the part)")
    parser.add_argument("--workers", type=int, default=2, help="data-parallel part: processes")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    if args.batch_size < 0 or args.workers < 2:
        parser.error("--batch-size must be 0 (skip) or more, and --workers at least 2")
    ds = run(args.n_samples, args.lengths, args.out, not args.no_nest, args.batch_size, args.workers)
    path = files.write_netcdf(ds, Path(args.out) / "bench_eprop.nc")
    for impl, sec, spk in zip(ds.implementation.values, ds.seconds_per_sample.values, ds.hidden_spikes_per_sample.values):
        print(f"{impl}: {sec:.3f} s per training sample ({spk:.0f} hidden spikes per sample)")
    if "speedup" in ds:
        print(f"speed-up over NEST: {float(ds.speedup):.2f}x")
    for n, e, b, c in zip(ds.sequence_steps.values, ds.eprop_peak_memory.values, ds.bptt_peak_memory.values,
                          ds.bptt_state_computed.values):
        print(f"{n} steps: e-prop {e:.0f} MiB, BPTT {b:.0f} MiB (computed from its size: {c:.0f} MiB)")
    if "data_parallel_speedup" in ds:
        print(f"data-parallel e-prop: {float(ds.data_parallel_speedup):.2f}x the throughput of one process "
              f"(weights differ by at most {float(ds.data_parallel_weight_difference):.2g} V); "
              f"{float(ds.data_parallel_equal_chunks_speedup):.2f}x when every process gets the same samples")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
