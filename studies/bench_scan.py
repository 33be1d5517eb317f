"""Benchmark: scan throughput with one and two local worker processes, and the overhead per point.

    python studies/bench_scan.py --rule lsm --points 24

Runs the same scan (``--points`` values of ``tau_mem``, built-in set) with 1 and with 2 workers.
Overhead per point is the wall time per point (one worker) minus the time the point itself took
inside its worker. Target (issue 8): two workers at least 1.7x one on this 2-core machine.

``tau_mem`` reaches a Brian2 binary through ``run_args``, so each worker compiles once and its later
points reuse that binary; the file records how many binaries were built, the mean time of a
point that built against one that reused (the saving of compiling once), and the speed-up once
every worker holds its binary (what a long scan sees: each worker's one build is amortised).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from models import files
from studies import benchmarks, registry, results, scan
from studies.config import leaves
from studies.cli import run_main
from studies.quick_help import HelpCachingParser


def run(rule: str, n_points: int, n_train: int, out: Path) -> xr.Dataset:
    started = results.now()
    values = ",".join(f"{10 + 2 * k}ms" for k in range(n_points))
    spec = registry.get(rule)
    base = dict(dataset="synthetic", n_train=n_train, n_test=max(n_train // 4, 10))
    base.update({name: 1 for name in ("epochs", "workers") if name in leaves(spec.config)})
    base.update(spec.scan_defaults)
    rates, per_point, inside, built, reused = {}, {}, {}, {}, {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(dir=benchmarks.build_root(out)) as folder:
            t0 = time.perf_counter()
            ds = scan.run_scan(spec, {"tau_mem": values.split(",")}, [0], base, Path(folder), workers=workers)
            wall = time.perf_counter() - t0
        if ds.attrs["failed_points"]:
            raise RuntimeError(f"{ds.attrs['failed_points']} benchmark point(s) failed: {ds.error.values.ravel()[0]}")
        rates[workers] = n_points / wall
        per_point[workers] = wall / n_points
        inside[workers] = float(np.mean(ds.point_seconds.values))
        seconds, compiled = ds.point_seconds.values.ravel(), ds.build_seconds.values.ravel() > 0  # NaN: no Brian2
        built[workers] = int(np.sum(compiled))
        reused[workers] = seconds[ds.reused_binary.values.ravel() == 1]
        if workers == 1:
            build_point = float(np.mean(seconds[compiled])) if compiled.any() else float("nan")
    result = xr.Dataset(
        {
            "points_per_second": ("workers", [rates[1], rates[2]], {"units": "1/s", "long_name": "scan throughput"}),
            "speedup": results.scalar(rates[2] / rates[1], "1", "throughput with two workers over one"),
            "overhead_per_point": results.scalar(per_point[1] - inside[1], "s",
                                                "wall time per point not spent inside the point (one worker)"),
            "point_seconds": ("workers", [inside[1], inside[2]], {"units": "s", "long_name": "mean time inside a point"}),
            "binaries_built": ("workers", [built[1], built[2]],
                               {"units": "1", "long_name": "points that compiled a binary (the rest reused one)"}),
            "building_point_seconds": results.scalar(build_point, "s", "time inside a point that compiled (one worker)"),
            "reusing_point_seconds": ("workers", [_mean(reused[1]), _mean(reused[2])],
                                      {"units": "s", "long_name": "mean time inside a point that reused a binary"}),
            "steady_speedup": results.scalar(2 * _mean(reused[1]) / _mean(reused[2]), "1",
                                            "throughput of two workers over one once each holds its binary"),
        },
        coords={"workers": [1, 2]},
    )
    results.benchmark_attrs(result, "scan_throughput", started, rule=rule, n_points=n_points, n_train=n_train)
    return result


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rule", choices=registry.names(), default="lsm", help="rule whose scan is timed")
    parser.add_argument("--points", type=int, default=24, help="grid points")
    parser.add_argument("--n-train", type=int, default=100, help="training samples per point")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    ds = run(args.rule, args.points, args.n_train, args.out)
    path = files.write_netcdf(ds, Path(args.out) / "bench_scan.nc")
    print(f"1 worker {ds.points_per_second.values[0]:.3f} points/s, 2 workers {ds.points_per_second.values[1]:.3f} "
          f"points/s: {float(ds.speedup):.2f}x; overhead {float(ds.overhead_per_point):.2f} s per point")
    print(f"binaries built: {ds.binaries_built.values[0]} (1 worker), {ds.binaries_built.values[1]} (2 workers); "
          f"a point took {float(ds.building_point_seconds):.1f} s when it compiled, "
          f"{ds.reusing_point_seconds.values[0]:.1f} s when it reused the binary; once built, 2 workers run "
          f"{float(ds.steady_speedup):.2f}x one")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
