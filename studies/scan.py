"""Parameter scans over any option of a rule's study, on local processes or a Dask cluster.

    python studies/scan.py --rule lsm --param tau_mem=10ms,20ms,40ms --param weight_scale=0.5,1,2
    python studies/scan.py --rule bptt --grid grid.json --workers 2 --set epochs=3
    python studies/scan.py --rule stdp --param v_threshold=10mV,15mV --scheduler tcp://HOST:8786
    python studies/scan.py --rule eprop --param tau_syn=3ms,5ms --local-cluster 2

Any option of the rule's study can be scanned or fixed (``--set NAME=VALUE``): the neuron's
constants, the rule's parameters, and study options such as ``dt`` or ``n_bins``; values carry
units where the option has them and are checked, every point's whole configuration included,
before anything runs. ``--grid`` takes a JSON file ``{"tau_mem": ["10ms", "20ms"], "weight_scale":
[0.5, 1]}`` instead. The rules and their options come from the registry (:mod:`studies.registry`).

Points run side by side in worker processes; each worker keeps the Brian2 binary it compiled last
(a :class:`~models.engine.compiled.BuildCache`). Constants that a network takes through
``run_args`` (the rule's ``run_arg_constants``) change on that binary, so a worker compiles once
per structure; any other option makes the point build its own binary. Points are sent out grouped
by structure. The results record, per point, whether it reused a binary and how long its build
took; ``--no-reuse`` builds every point afresh.

Every point writes its own result file atomically as soon as it finishes, named by a hash of its
whole configuration (``OUT/scan_<rule>/points/``), so points of different scans never mix; a
failing point records its error while the scan goes on. ``--resume`` skips the points already
done and retries the failed ones. The combined dataset ``OUT/scan_<rule>.nc`` has one dimension per
scanned parameter plus ``seed``.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from datasets import default_generator
from models import files
from models.units import config_json, parse_assignments
from studies import registry
from studies.cli import run_main
from studies.config import RunConfig, apply, build_parser, config_from_args, find_leaf, leaves
from studies.executors import make_executor, one_core
from studies.results import integers_with_gaps, now, stamp


@dataclass(frozen=True)
class ScanConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, first seed, files
    rule: str = "lsm"  # the rule whose options are scanned (see studies/registry.py)
    param: tuple[str, ...] = ()  # an option and its values, NAME=V1,V2,... with units where it has them
    grid: Path | None = None  # JSON file {"name": [values, ...], ...}, added to --param
    set: tuple[str, ...] = ()  # an option fixed for every point, NAME=VALUE (e.g. epochs=3, device=runtime)
    seeds: int = 1  # seeds per point (seed, seed+1, ...)
    workers: int = 1  # local worker processes
    scheduler: str | None = None  # address of a Dask scheduler (e.g. tcp://host:8786)
    local_cluster: int | None = None  # run on an in-process Dask LocalCluster of this many workers
    reuse: bool = True  # reuse a worker's compiled Brian2 binary for points of the same structure


METRICS = {
    "test_accuracy": ("1", "test accuracy at the epoch chosen on validation"),
    "best_val_accuracy": ("1", "best validation accuracy"),
    "train_seconds": ("s", "training wall time"),
    "spikes_per_sample": ("1", "network spikes per test sample"),
    "synaptic_operations_per_sample": ("1", "synaptic events per test sample"),
    "point_seconds": ("s", "wall time of the whole point, start-up included"),
    "build_seconds": ("s", "code generation and compilation (0 when the point reused a compiled binary)"),
    "reused_binary": ("1", "1 when the point ran on a binary its worker had compiled for an earlier point"),
}
#: Metrics a point's study reports under the same name.
STUDY_METRICS = ("test_accuracy", "train_seconds", "spikes_per_sample", "synaptic_operations_per_sample",
                 "build_seconds", "reused_binary")


def parse_param(text: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [v.strip() for v in values.split(",") if v.strip()]


def point_config(spec, base: dict, point: dict, seed: int):
    """The study config of one point: the rule's defaults, the scan's fixed options, the point."""
    config = apply(spec.config(), {**base, **point})
    return dataclasses.replace(config, run=dataclasses.replace(config.run, seed=seed))


def check_grid(spec, grid: dict[str, list], base: dict) -> dict[str, list[str]]:
    """Every name known, every value parsed against its option, every point's configuration valid:
    clear errors before anything runs."""
    if not grid:
        raise ValueError("nothing to scan: give --param NAME=V1,V2 or --grid FILE")
    checked = {}
    for name, values in grid.items():
        leaf = find_leaf(spec.config, name)
        if leaf.path[0] == "run":
            raise ValueError(f"{name} is a run setting, not a constant to scan; use --seeds for seeds")
        if not values:
            raise ValueError(f"{name}: no values given")
        checked[leaf.name] = [str(v) for v in values]
    for combo in itertools.product(*checked.values()):
        point = dict(zip(checked, combo))
        try:
            point_config(spec, base, point, 0)
        except ValueError as error:
            raise ValueError(f"the point {point} is not a valid configuration: {error}") from error
    return checked


def point_key(config) -> str:
    """A hash of the point's whole configuration (its output folder left out) and of the constants of
    a generated set, so that a point made from another version of the set is a new point."""
    text = config_json(dataclasses.replace(config, run=dataclasses.replace(config.run, out=Path("."), resume=False)))
    text += default_generator(config.run.dataset or "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def structure_order(spec, point: dict[str, str], seed: int) -> tuple:
    """Sort key that puts points sharing a compiled binary next to each other."""
    return (seed, tuple(sorted((k, v) for k, v in point.items() if k not in spec.run_arg_constants)))


# Each worker process keeps one build cache per scan folder, across the points it runs.
_WORKER_CACHES: dict[str, object] = {}


def _worker_cache(root: Path):
    from models.engine.compiled import BuildCache

    key = str(root)
    if key not in _WORKER_CACHES:
        _WORKER_CACHES[key] = BuildCache(root)
    return _WORKER_CACHES[key]


def run_point(spec, config, reuse: bool) -> dict:
    """Run one point; returns its metrics, or the error that stopped it (never raises)."""
    start, started = time.perf_counter(), now()
    try:
        one_core()  # points run side by side: one core each
        root = Path(config.run.out).parent.parent / "build" / f"worker_{socket.gethostname()}_{os.getpid()}"
        cache = _worker_cache(root) if reuse else None
        if cache is not None:
            with cache.lock:  # Brian2 has one device per process: points in one process take turns
                ds = spec.run(config, cache=cache)
        else:
            ds = spec.run(config)
        out = {name: float(ds[name]) if name in ds else float("nan") for name in STUDY_METRICS}
        out["best_val_accuracy"] = float(np.nanmax(ds.val_accuracy.values)) if "val_accuracy" in ds else float("nan")
        if not np.isfinite(out["reused_binary"]):
            out["reused_binary"] = 0.0
        out.update(error="", dataset=ds.attrs["dataset"], dataset_generator=ds.attrs.get("dataset_generator", ""))
    except Exception as error:  # a failing point is recorded, the scan goes on
        out = {name: float("nan") for name in METRICS}
        out.update(error=f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}", dataset="",
                   dataset_generator="")
    out["point_seconds"] = time.perf_counter() - start
    out.update(start_time=started, host=socket.gethostname())
    return out


def _save_point(path: Path, point: dict, seed: int, config, result: dict) -> None:
    ds = xr.Dataset({name: ((), result[name], {"units": u, "long_name": n}) for name, (u, n) in METRICS.items()})
    ds.attrs.update(point=json.dumps(point, sort_keys=True), seed=seed, error=result["error"],
                    dataset=result["dataset"], dataset_generator=result["dataset_generator"],
                    config=config_json(config))
    stamp(ds, result["start_time"], host=result["host"])  # where and when the point ran
    files.write_netcdf(integers_with_gaps(ds, "reused_binary"), path)


def _point_failed(path: Path) -> bool:
    with xr.open_dataset(path) as ds:
        return bool(ds.attrs.get("error", ""))


def run_scan(spec, grid: dict[str, list[str]], seeds: list[int], base: dict, out: Path, *, workers: int = 1,
             scheduler: str | None = None, local_cluster: int | None = None, resume: bool = False,
             reuse: bool = True) -> xr.Dataset:
    """Scan ``grid`` (option name -> values) of rule ``spec`` for ``seeds``, with the options
    ``base`` fixed; results under ``out/scan_<rule>/``."""
    grid = check_grid(spec, grid, base)
    scan_dir = Path(out) / f"scan_{spec.name}"
    folder = scan_dir / "points"
    names = list(grid)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    jobs = {}
    for p in points:
        for s in seeds:
            config = point_config(spec, base, p, s)
            key = point_key(config)
            config = apply(config, {"out": str(scan_dir / "work" / key)})
            jobs[(json.dumps(p, sort_keys=True), s)] = (p, s, config, folder / f"{key}.nc")
    todo = [job for job in jobs.values() if not (resume and job[3].exists() and not _point_failed(job[3]))]
    todo.sort(key=lambda job: structure_order(spec, job[0], job[1]))  # stable: run_args constants vary fastest
    executor = make_executor(workers, scheduler, local_cluster)
    started, start_time = time.perf_counter(), now()
    try:
        futures = {executor.submit(run_point, spec, config, reuse): (p, s, config, path)
                   for p, s, config, path in todo}
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"scan {spec.name}", unit="point")
        for future in executor.as_completed(list(futures)):
            p, s, config, path = futures[future]
            result = future.result()
            _save_point(path, p, s, config, result)
            if result["error"]:
                tqdm.write(f"point {p}, seed {s} failed: {result['error'].splitlines()[0]}", file=sys.stderr)
            bar.update(1)
        bar.close()
    finally:
        executor.close()
        shutil.rmtree(scan_dir / "build", ignore_errors=True)  # the workers' kept binaries
        shutil.rmtree(scan_dir / "work", ignore_errors=True)
    return combine(spec, grid, seeds, jobs, base, time.perf_counter() - started, start_time)


def combine(spec, grid, seeds, jobs, base, wall_seconds, start_time: str | None = None) -> xr.Dataset:
    names = list(grid)
    shape = [len(grid[n]) for n in names] + [len(seeds)]
    data = {name: np.full(shape, np.nan) for name in METRICS}
    errors = np.full(shape, "", dtype=object)
    dataset = generator = ""
    for index in itertools.product(*(range(len(grid[n])) for n in names)):
        point = {n: grid[n][i] for n, i in zip(names, index)}
        for k, seed in enumerate(seeds):
            path = jobs[(json.dumps(point, sort_keys=True), seed)][3]
            with xr.open_dataset(path) as ds:
                for name in METRICS:
                    data[name][index + (k,)] = float(ds[name])
                errors[index + (k,)] = ds.attrs.get("error", "")
                dataset = dataset or ds.attrs.get("dataset", "")
                generator = generator or ds.attrs.get("dataset_generator", "")
    dims = names + ["seed"]
    variables = {name: (dims, data[name], {"units": u, "long_name": n}) for name, (u, n) in METRICS.items()}
    variables["error"] = (dims, errors.astype(str), {"long_name": "error of a failed point (empty when it ran)"})
    ds = xr.Dataset(variables, coords={**{n: grid[n] for n in names}, "seed": seeds})
    for n in names:
        ds[n].attrs["long_name"] = f"scanned option {n} (values as given)"
    ds.attrs.update(rule=spec.name, scan_parameters=",".join(names), dataset=dataset, dataset_generator=generator,
                    base_config=json.dumps({k: str(v) for k, v in base.items()}, sort_keys=True),
                    failed_points=int(np.sum(errors != "")), wall_seconds=float(wall_seconds))
    return integers_with_gaps(stamp(ds, start_time or now()), "reused_binary")


def main(argv=None) -> Path:
    args = build_parser(ScanConfig, __doc__).parse_args(argv)
    config = config_from_args(ScanConfig, args)
    spec = registry.get(config.rule)
    grid = dict(parse_param(text) for text in config.param)
    if config.grid is not None:
        try:
            from_file = json.loads(Path(config.grid).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read the grid file {config.grid}: {error}") from error
        if not isinstance(from_file, dict) or not all(isinstance(v, list) for v in from_file.values()):
            raise ValueError(f"{config.grid}: expected a JSON object of lists of values")
        grid.update({k: [str(v) for v in vals] for k, vals in from_file.items()})
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {config.seeds}")
    run_fields = {name: getattr(config.run, name) for name in ("dataset", "data_dir", "n_train", "n_test")}
    # one core per point: no processes of its own (the scan runs points side by side)
    one_process = {"workers": 1} if "workers" in leaves(spec.config) else {}
    base = {**one_process, **spec.scan_defaults, **{k: v for k, v in run_fields.items() if v is not None},
            **parse_assignments(list(config.set))}
    for name in base:
        find_leaf(spec.config, name)  # unknown names fail before anything runs
    seeds = [config.run.seed + k for k in range(config.seeds)]
    ds = run_scan(spec, grid, seeds, base, config.run.out, workers=config.workers, scheduler=config.scheduler,
                  local_cluster=config.local_cluster, resume=config.run.resume, reuse=config.reuse)
    path = files.write_netcdf(ds, Path(config.run.out) / f"scan_{spec.name}.nc")
    print(f"{ds.attrs['failed_points']} failed point(s); results: {path}")
    return path


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: workers (Dask, spawned processes) then find
    # run_point by its module name instead of receiving this script's globals by value.
    from studies import scan

    run_main(scan.main)
