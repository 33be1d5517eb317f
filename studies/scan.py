"""Parameter scans over any constant of a rule, on local processes or a Dask cluster.

    python studies/scan.py --rule lsm --param tau_mem=10ms,20ms,40ms --param weight_scale=0.5,1,2
    python studies/scan.py --rule bptt --grid grid.json --workers 2
    python studies/scan.py --rule stdp --param v_threshold=10mV,15mV --scheduler tcp://HOST:8786
    python studies/scan.py --rule eprop --param tau_syn=3ms,5ms --local-cluster 2

Any field of the shared LIF constants (``models/lif.py``) or of the rule's own parameter dataclass
(``STDPParams``, ``ReservoirParams``, ``EPropParams``, ``BPTTParams``) can be scanned; values carry
units where the constant has them and are checked against it. ``--grid`` takes a JSON file
``{"tau_mem": ["10ms", "20ms"], "weight_scale": [0.5, 1]}`` instead.

Points run side by side in worker processes; each worker keeps the Brian2 binary it compiled last.
Constants that a network takes through ``run_args`` (its ``RUN_ARG_CONSTANTS``: the neuron's
constants, weights and learning rates of STDP, the liquid and e-prop) change on that binary, so a
worker compiles once per structure; any other constant (sizes, ``dt``, connectivity, and for the
liquid the seed, which draws its wiring) makes the point build in its own folder. Points are sent
out grouped by structure so that workers meet the binary they hold. The results record, per point,
whether it reused a binary and how long its build took; ``--no-reuse`` builds every point afresh.

Every point writes its own result file atomically as soon as it finishes
(``OUT/scan_<rule>/points/``), and a failing point records its error while the scan goes on;
``--resume`` skips the points already done. The combined dataset ``OUT/scan_<rule>.nc`` has one
dimension per scanned parameter plus ``seed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm import tqdm

from models.lif import LIFParams
from studies import common
from studies.units import parse_value

RULES = ("stdp", "lsm", "eprop", "bptt")
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
                 "build_seconds")
_POINT_LOCK = threading.Lock()  # Brian2 has one device per process: points in one process take turns


def rule_params(rule: str):
    """The rule's parameter dataclass (defaults)."""
    from learning_rules.bptt import BPTTParams
    from learning_rules.eprop import EPropParams
    from learning_rules.lsm import ReservoirParams
    from learning_rules.stdp import STDPParams

    return {"stdp": STDPParams, "lsm": ReservoirParams, "eprop": EPropParams, "bptt": BPTTParams}[rule]()


def check_grid(rule: str, grid: dict[str, list]) -> dict[str, list]:
    """Parse every value against the constant it sets; clear errors for unknown names or bad units."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if not grid:
        raise ValueError("nothing to scan: give --param NAME=V1,V2 or --grid FILE")
    lif, own = LIFParams(), rule_params(rule)
    lif_names = {f.name for f in dataclasses.fields(lif)}
    own_names = {f.name for f in dataclasses.fields(own)} - {"lif"}
    checked = {}
    for name, values in grid.items():
        if name in lif_names:
            default = getattr(lif, name)
        elif name in own_names:
            default = getattr(own, name)
        else:
            raise ValueError(f"{rule} has no constant {name!r}; scannable: {', '.join(sorted(lif_names | own_names))}")
        if not values:
            raise ValueError(f"{name}: no values given")
        parsed = []
        for v in values:
            try:
                parsed.append(parse_value(str(v), default))
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from error
        # validate each value where the dataclass checks it (signs, ranges)
        for value in parsed:
            target = lif if name in lif_names else own
            dataclasses.replace(target, **{name: value})
        checked[name] = [str(v) for v in values]
    return checked


def parse_param(text: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [v.strip() for v in values.split(",") if v.strip()]


def run_arg_constants(rule: str) -> tuple[str, ...]:
    """Constants of ``rule`` that change on a compiled binary (scan names: LIF fields without ``lif.``)."""
    if rule == "bptt":
        return ()
    from learning_rules.eprop import EPropNetwork
    from learning_rules.lsm import Liquid
    from learning_rules.stdp import STDPNetwork

    names = {"stdp": STDPNetwork, "lsm": Liquid, "eprop": EPropNetwork}[rule].RUN_ARG_CONSTANTS
    return tuple(name.removeprefix("lif.") for name in names)


def structure_order(rule: str, point: dict[str, str], seed: int) -> tuple:
    """Sort key that puts points sharing a compiled binary next to each other."""
    swappable = run_arg_constants(rule)
    return (seed, tuple(sorted((k, v) for k, v in point.items() if k not in swappable)))


def point_key(point: dict[str, str], seed: int) -> str:
    text = json.dumps({"point": point, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_point(rule: str, point: dict[str, str], seed: int, base: dict) -> dict:
    """Run one grid point; returns its metrics, or the error that stopped it (never raises)."""
    with _POINT_LOCK:
        return _run_point(rule, point, seed, base)


def _run_point(rule, point, seed, base):
    start = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
        from brian2 import prefs

        # One point, one core: the scan runs points side by side, so neither the compiler
        # (make -j) nor PyTorch should spread one point over every core.
        from threadpoolctl import threadpool_limits

        from models import devices

        torch.set_num_threads(1)
        prefs.devices.cpp_standalone.extra_make_args_unix = ["-j1"]
        # This worker keeps its last binary (one folder per worker process) for the next point.
        keep_root = Path(base["out"]) / "build" / f"worker_{socket.gethostname()}_{os.getpid()}"
        devices.keep_builds(keep_root if base.get("reuse", True) else None)
        with threadpool_limits(limits=1):  # BLAS/OpenMP inside numpy and scikit-learn
            ds = _run_study(rule, point, seed, base)
        out = {name: float(ds[name]) if name in ds else float("nan") for name in STUDY_METRICS}
        out["best_val_accuracy"] = float(np.nanmax(ds.val_accuracy.values))
        out["reused_binary"] = float(ds["reused_binary"]) if "reused_binary" in ds else 0.0
        out.update(error="", dataset=ds.attrs["dataset"])
    except Exception as error:  # a failing point is recorded, the scan goes on
        out = {name: float("nan") for name in METRICS}
        out.update(error=f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}", dataset="")
    out["point_seconds"] = time.perf_counter() - start
    return out


def _run_study(rule, point, seed, base):
    from studies import bptt_shd, eprop_shd, lsm_shd, stdp_shd

    lif = LIFParams()
    lif_names = {f.name for f in dataclasses.fields(lif)}
    own = rule_params(rule)
    lif = dataclasses.replace(lif, **{k: parse_value(v, getattr(lif, k)) for k, v in point.items() if k in lif_names})
    own = dataclasses.replace(own, lif=lif, **{k: parse_value(v, getattr(own, k)) for k, v in point.items()
                                               if k not in lif_names})
    common_fields = dict(dataset=base["dataset"], data_dir=base["data_dir"], n_train=base["n_train"],
                         n_test=base["n_test"], seed=seed, out=Path(base["out"]) / "work" / point_key(point, seed))
    if rule == "stdp":
        return stdp_shd.run(stdp_shd.STDPStudyConfig(**common_fields, device=base["device"], epochs=base["epochs"],
                                                     stdp=own))
    if rule == "lsm":
        return lsm_shd.run(lsm_shd.LSMStudyConfig(**common_fields, device=base["device"], workers=1,
                                                  spike_time_readout=False, reservoir=own))
    if rule == "eprop":
        return eprop_shd.run(eprop_shd.EPropStudyConfig(**common_fields, device=base["device"], epochs=base["epochs"],
                                                        workers=1, eprop=own))
    return bptt_shd.run(bptt_shd.BPTTStudyConfig(**common_fields, epochs=base["epochs"], bptt=own))


def _save_point(path: Path, point: dict, seed: int, result: dict) -> None:
    ds = xr.Dataset({name: ((), result[name], {"units": u, "long_name": n}) for name, (u, n) in METRICS.items()})
    ds.attrs.update(point=json.dumps(point, sort_keys=True), seed=seed, error=result["error"],
                    dataset=result["dataset"])
    common.write_atomic_netcdf(ds, path)


class _LocalExecutor:
    def __init__(self, workers: int):
        import multiprocessing

        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, *args):
        return self.pool.submit(run_point, *args)

    def as_completed(self, futures):
        return as_completed(futures)

    def result(self, future):
        return future.result()

    def close(self):
        self.pool.shutdown()


class _DaskExecutor:
    def __init__(self, scheduler: str | None, n_local: int | None):
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)

    def submit(self, *args):
        return self.client.submit(run_point, *args, pure=False)

    def as_completed(self, futures):
        from distributed import as_completed as dask_completed

        return dask_completed(futures)

    def result(self, future):
        return future.result()

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_scan(rule: str, grid: dict[str, list[str]], seeds: list[int], base: dict, *, workers: int = 1,
             scheduler: str | None = None, local_cluster: int | None = None, resume: bool = False) -> xr.Dataset:
    grid = check_grid(rule, grid)
    folder = Path(base["out"]) / f"scan_{rule}" / "points"
    names = list(grid)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    jobs = [(p, s) for p in points for s in seeds]
    todo = [(p, s) for p, s in jobs if not (resume and (folder / f"{point_key(p, s)}.nc").exists())]
    todo.sort(key=lambda job: structure_order(rule, *job))  # stable: run_args constants vary fastest
    base = {**base, "out": str(Path(base["out"]) / f"scan_{rule}")}
    executor = _DaskExecutor(scheduler, local_cluster) if (scheduler or local_cluster) else _LocalExecutor(workers)
    started = time.perf_counter()
    try:
        futures = {executor.submit(rule, p, s, base): (p, s) for p, s in todo}
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"scan {rule}", unit="point")
        for future in executor.as_completed(list(futures)):
            p, s = futures[future]
            result = executor.result(future)
            _save_point(folder / f"{point_key(p, s)}.nc", p, s, result)
            if result["error"]:
                tqdm.write(f"point {p}, seed {s} failed: {result['error'].splitlines()[0]}", file=sys.stderr)
            bar.update(1)
        bar.close()
    finally:
        executor.close()
        shutil.rmtree(Path(base["out"]) / "build", ignore_errors=True)  # the workers' kept binaries
    return combine(rule, grid, seeds, folder, base, time.perf_counter() - started)


def combine(rule, grid, seeds, folder, base, wall_seconds) -> xr.Dataset:
    names = list(grid)
    shape = [len(grid[n]) for n in names] + [len(seeds)]
    data = {name: np.full(shape, np.nan) for name in METRICS}
    errors = np.full(shape, "", dtype=object)
    dataset = ""
    for index in itertools.product(*(range(len(grid[n])) for n in names)):
        point = {n: grid[n][i] for n, i in zip(names, index)}
        for k, seed in enumerate(seeds):
            with xr.open_dataset(folder / f"{point_key(point, seed)}.nc") as ds:
                for name in METRICS:
                    data[name][index + (k,)] = float(ds[name])
                errors[index + (k,)] = ds.attrs.get("error", "")
                dataset = dataset or ds.attrs.get("dataset", "")
    dims = names + ["seed"]
    variables = {name: (dims, data[name], {"units": u, "long_name": n}) for name, (u, n) in METRICS.items()}
    variables["error"] = (dims, errors.astype(str), {"long_name": "error of a failed point (empty when it ran)"})
    ds = xr.Dataset(variables, coords={**{n: grid[n] for n in names}, "seed": seeds})
    ds.attrs.update(rule=rule, scan_parameters=",".join(names), dataset=dataset, base_config=common.config_json(base),
                    failed_points=int(np.sum(errors != "")), wall_seconds=float(wall_seconds),
                    git_commit=common.git_commit(), package_versions=common.package_versions(), end_time=common.now())
    return ds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    parser.add_argument("--rule", choices=RULES, required=True, help="the rule whose constants are scanned")
    parser.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=V1,V2",
                        help="a constant and its values, with units where it has them (repeatable)")
    parser.add_argument("--grid", type=Path, default=None, help='JSON file {"name": [values, ...], ...}')
    parser.add_argument("--seeds", type=int, default=1, help="seeds per point (seed, seed+1, ...)")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="address of a Dask scheduler (e.g. tcp://host:8786)")
    parser.add_argument("--local-cluster", type=int, default=None, metavar="N",
                        help="run on an in-process Dask LocalCluster of N workers")
    parser.add_argument("--no-reuse", action="store_true",
                        help="build every point's Brian2 network afresh instead of reusing a worker's binary")
    return parser


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    grid = dict(args.param)
    if args.grid is not None:
        try:
            from_file = json.loads(args.grid.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read the grid file {args.grid}: {error}") from error
        if not isinstance(from_file, dict) or not all(isinstance(v, list) for v in from_file.values()):
            raise ValueError(f"{args.grid}: expected a JSON object of lists of values")
        grid.update({k: [str(v) for v in vals] for k, vals in from_file.items()})
    if args.lif:
        raise ValueError("--lif does not combine with a scan; scan the constant with --param instead")
    base = dict(dataset=args.dataset, data_dir=str(args.data_dir) if args.data_dir else None, n_train=args.n_train,
                n_test=args.n_test, epochs=args.epochs, device=args.device, out=str(args.out), reuse=not args.no_reuse)
    if args.rule == "bptt" and args.device not in ("cpu", "cuda"):
        base["device"] = "cpu"
    seeds = [args.seed + k for k in range(args.seeds)]
    ds = run_scan(args.rule, grid, seeds, base, workers=args.workers, scheduler=args.scheduler,
                  local_cluster=args.local_cluster, resume=args.resume)
    path = common.write_atomic_netcdf(ds, Path(args.out) / f"scan_{args.rule}.nc")
    print(f"{ds.attrs['failed_points']} failed point(s); results: {path}")
    return path


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy: workers (Dask, spawned processes) then find
    # run_point by its module name instead of receiving this script's globals by value.
    from studies import scan

    common.run_main(scan.main)
