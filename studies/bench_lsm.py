"""Benchmark: reservoir feature extraction throughput (samples/s), one and several processes.

    python studies/bench_lsm.py --n-neurons 1000 --n-samples 400

SHD-like input (700 channels, about 8,000 spikes per 1 s sample from the built-in generator)
through a ``--n-neurons`` reservoir at ``--dt``; compilation is timed apart. Target (issue 9):
14 samples/s or more for 1,000 neurons at dt = 0.1 ms on this 2-core machine.
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

from learning_rules.lsm import Liquid, ReservoirParams
from models.engine.inputs import chunk_capacity
from models import files
from studies import benchmarks, results
from studies.cli import run_main


def run(n_neurons, n_samples, dt, device, chunk_size, workers, out: Path) -> xr.Dataset:
    started = results.now()
    samples = benchmarks.shd_like_samples(n_samples, dt)
    build_dir = Path(tempfile.mkdtemp(prefix="bench_lsm_", dir=benchmarks.build_root(out)))
    rates = {}
    try:
        liquid = Liquid(ReservoirParams(n_neurons=n_neurons), 700, sample_duration=1 * second, dt=dt,
                        chunk_size=chunk_size, capacity=chunk_capacity([samples], chunk_size, 700), n_bins=10,
                        device_name=device, build_dir=build_dir)
        t0 = time.perf_counter()
        liquid.compiled.build()
        build_seconds = time.perf_counter() - t0
        for n in sorted({1, workers}):
            t0 = time.perf_counter()
            counts = liquid.responses(samples, progress=f"reservoir, {n} process(es)", workers=n)["counts"]
            rates[n] = n_samples / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    ds = xr.Dataset(
        {
            "samples_per_second": ("workers", [rates[n] for n in sorted(rates)],
                                   {"units": "1/s", "long_name": "reservoir samples simulated per second"}),
            "reservoir_rate": results.scalar(counts.sum() / n_samples / n_neurons, "Hz", "mean reservoir firing rate"),
            "input_spikes_per_sample": results.scalar(np.mean([len(s.units) for s in samples]), "1", "input spikes per sample"),
            "build_seconds": results.scalar(build_seconds, "s", "code generation and compilation"),
            **results.memory_vars(),
        },
        coords={"workers": sorted(rates)},
    )
    results.benchmark_attrs(ds, "lsm_feature_extraction", started, device=device, n_neurons=n_neurons, n_samples=n_samples,
                           dt=str(dt), chunk_size=chunk_size)
    return ds


def main(argv=None) -> Path:
    parser = benchmarks.brian2_parser(__doc__.splitlines()[0], n_neurons=1000, n_samples=400, chunk_size=50)
    parser.add_argument("--workers", type=int, default=2, help="processes in the parallel measurement")
    args = parser.parse_args(argv)
    ds = run(args.n_neurons, args.n_samples, args.dt, args.device, min(args.chunk_size, args.n_samples),
             args.workers, args.out)
    path = files.write_netcdf(ds, Path(args.out) / "bench_lsm.nc")
    print(", ".join(f"{int(w)} process(es): {r:.1f} samples/s" for w, r in zip(ds.workers.values, ds.samples_per_second.values))
          + f" (reservoir at {float(ds.reservoir_rate):.1f} Hz)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
