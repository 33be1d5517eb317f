"""Benchmark: STDP training throughput per process (samples/s and synaptic events/s).

    python studies/bench_stdp.py --n-neurons 400 --n-samples 300

SHD-like input (700 channels, about 8,000 spikes per 1 s sample, from the built-in generator) drives
a 700 -> ``--n-neurons`` STDP layer at ``--dt`` in one process. Compilation is timed apart from the
runs. Target (issue 5): 30 samples/s or more for 700 -> 400 at dt = 0.1 ms in cpp_standalone.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import second

from models.engine.inputs import chunk_capacity
from learning_rules.stdp import STDPNetwork, STDPParams
from models import files
from studies import benchmarks, results
from studies.cli import run_main


def run(n_neurons: int, n_samples: int, dt, device: str, chunk_size: int, out: Path) -> xr.Dataset:
    started = results.now()
    samples = benchmarks.shd_like_samples(n_samples, dt)
    input_spikes = float(np.mean([len(s.units) for s in samples]))
    capacity = chunk_capacity([samples], chunk_size, 700)
    build_dir = Path(tempfile.mkdtemp(prefix="bench_stdp_", dir=benchmarks.build_root(out)))
    try:
        net = STDPNetwork(STDPParams(n_neurons=n_neurons), 700, sample_duration=1 * second, dt=dt,
                          chunk_size=chunk_size, capacity=capacity, n_bins=5, device_name=device,
                          build_dir=build_dir)
        t0 = time.perf_counter()
        net.compiled.build()
        build_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        counts = net.present(samples, learn=True, progress="STDP training")
        train_seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    layer_spikes = float(counts.sum(axis=(1, 2)).mean())
    events = (input_spikes * n_neurons + layer_spikes * (n_neurons - 1)) * n_samples
    ds = xr.Dataset({
        "samples_per_second": results.scalar(n_samples / train_seconds, "1/s", "training samples per second, one process"),
        "synaptic_events_per_second": results.scalar(events / train_seconds, "1/s",
                                                    "synaptic events (input and inhibition) per second of wall time"),
        "input_spikes_per_sample": results.scalar(input_spikes, "1", "input spikes per sample"),
        "layer_spikes_per_sample": results.scalar(layer_spikes, "1", "excitatory-layer spikes per sample"),
        "build_seconds": results.scalar(build_seconds, "s", "code generation and compilation"),
        "train_seconds": results.scalar(train_seconds, "s", "wall time of training (all chunks)"),
        **results.memory_vars(),
    })
    results.benchmark_attrs(ds, "stdp_training", started, device=device, n_neurons=n_neurons, n_samples=n_samples,
                           dt=str(dt), chunk_size=chunk_size)
    return ds


def main(argv=None) -> Path:
    parser = benchmarks.brian2_parser(__doc__.splitlines()[0], n_neurons=400, n_samples=300, chunk_size=100)
    args = parser.parse_args(argv)
    ds = run(args.n_neurons, args.n_samples, args.dt, args.device, min(args.chunk_size, args.n_samples), args.out)
    path = files.write_netcdf(ds, Path(args.out) / "bench_stdp.nc")
    print(f"{float(ds.samples_per_second):.1f} samples/s, {float(ds.synaptic_events_per_second) / 1e6:.0f} M "
          f"synaptic events/s ({float(ds.input_spikes_per_sample):.0f} input spikes per sample)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
