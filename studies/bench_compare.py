"""Benchmark: what the comparison protocol costs, rule by rule, and how long it takes on FSDD.

    python studies/bench_compare.py --dataset synthetic --n-train 100 --trials 20 --seeds 5 --dask-workers 8 32

Part 1, measured: every rule at the comparison's settings (its ``compare_defaults``, the shared time
step, duration and device: what ``studies/compare_shd.py`` would train), one epoch on ``--n-train``
samples, each in a fresh process, one after another on this machine. Recorded per rule: the wall
time per training sample-epoch (validation included, at the protocol's 10% validation share) and the
rest of a run's wall time (start-up, data, build), taken as a fixed cost per run. Each run uses one
process (``workers=1``), as a slot of the projection does; testing a sample is counted as costly as
training one for an epoch (an upper bound: inference needs no update).

Part 2, projected: the whole protocol on FSDD's official split (2,250 training samples, validation
included; 250 test samples): per rule ``--trials`` tuning trials (each at most ``--max-sample-epochs``
sample-epochs, else the rule's epochs) and ``--seeds`` seeds of the rule and of its learning-off
control, each a run of the rule's epochs. In core-seconds, then as wall time on ``P`` slots (2 local
cores, and each ``--dask-workers`` count), one run per slot: ``max(total / P, longest run)``. The
projection assumes no trial is pruned (the pruner only shortens it), jobs packed without gaps (it
cannot be shorter than that), and an ablation as costly as its rule (switching learning off only
saves time).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import time
from pathlib import Path

import xarray as xr
from brian2 import second

from models import files
from models.engine.devices import DEVICES
from studies import benchmarks, compare_shd, registry, results
from studies.cli import run_main
from studies.config import RunConfig, apply, leaves
from studies.quick_help import HelpCachingParser

#: FSDD's official split: training samples (validation carved out of them) and test samples.
FSDD_TRAIN, FSDD_TEST = 2250, 250


def measure(config: compare_shd.CompareConfig) -> dict[str, dict]:
    """One epoch of every rule at the comparison's settings, each in a fresh process."""
    per_rule = compare_shd.rule_configs(config, config.run.seed)
    measured = {}
    for rule, study in per_rule.items():
        spec = registry.get(rule)
        epochs = int(getattr(study, "epochs", 1) or 1)
        names = leaves(type(study))
        study = apply(study, {**({"epochs": 1} if "epochs" in names else {}),
                              **({"workers": 1} if "workers" in names else {})})
        path = Path(config.run.out) / "runs" / f"{rule}_measure.nc"
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        ds = compare_shd.run_pair(spec, study, path, resume=False)
        wall = time.perf_counter() - start
        # training time includes validation: per sample of the training split it was carved from
        n_train = int(ds.attrs["n_train"]) + int(ds.attrs["n_val"])
        train = float(ds.train_seconds)
        per_sample = train / n_train
        tested = per_sample * int(ds.attrs["n_test"])
        measured[rule] = {"seconds_per_sample_epoch": per_sample, "overhead_seconds": max(wall - train - tested, 0.0),
                          "protocol_epochs": epochs, "ablation": int(bool(spec.ablation)), "n_train": n_train}
    return measured


def project(measured: dict[str, dict], *, trials: int, seeds: int, max_sample_epochs: int | None,
            n_train: int, slots: list[int]) -> dict:
    """Core-seconds of the protocol per rule and its wall time on each number of ``slots``."""
    tuning, pairs, longest = {}, {}, 0.0
    for rule, m in measured.items():
        full = n_train * m["protocol_epochs"]
        capped = min(full, max_sample_epochs) if max_sample_epochs else full
        test = FSDD_TEST * m["seconds_per_sample_epoch"]
        run = full * m["seconds_per_sample_epoch"] + m["overhead_seconds"] + test
        tuning[rule] = trials * (capped * m["seconds_per_sample_epoch"] + m["overhead_seconds"])  # no test
        pairs[rule] = seeds * (1 + m["ablation"]) * run
        longest = max(longest, run)
    total = sum(tuning.values()) + sum(pairs.values())
    wall = {p: max(total / p, longest) for p in slots}
    return {"tuning": tuning, "pairs": pairs, "total": total, "longest_run": longest, "wall": wall}


def run(config: compare_shd.CompareConfig, dask_workers: list[int]) -> xr.Dataset:
    started = results.now()
    measured = measure(config)
    rules = list(measured)
    slots = sorted({2, *dask_workers})
    plan = project(measured, trials=config.trials, seeds=config.seeds, max_sample_epochs=config.max_sample_epochs,
                   n_train=FSDD_TRAIN, slots=slots)

    def per_rule(key):
        return [measured[r][key] for r in rules]

    ds = xr.Dataset(
        {
            "seconds_per_sample_epoch": ("rule", per_rule("seconds_per_sample_epoch"),
                                         {"units": "s", "long_name": "training wall time per sample-epoch (validation included)"}),
            "overhead_seconds": ("rule", per_rule("overhead_seconds"),
                                 {"units": "s", "long_name": "rest of a run's wall time (start-up, data, build)"}),
            "protocol_epochs": ("rule", per_rule("protocol_epochs"), {"units": "1", "long_name": "epochs of a run in the protocol"}),
            "has_ablation": ("rule", per_rule("ablation"), {"units": "1", "long_name": "1 when the rule has a learning-off control"}),
            "tuning_core_hours": ("rule", [plan["tuning"][r] / 3600 for r in rules],
                                  {"units": "h", "long_name": "projected tuning cost on FSDD (core-hours)"}),
            "seed_runs_core_hours": ("rule", [plan["pairs"][r] / 3600 for r in rules],
                                     {"units": "h", "long_name": "projected cost of the seeds and controls on FSDD (core-hours)"}),
            "protocol_wall_hours": ("slots", [plan["wall"][p] / 3600 for p in slots],
                                    {"units": "h", "long_name": "projected wall time of the whole protocol on FSDD"}),
            "protocol_core_hours": results.scalar(plan["total"] / 3600, "h", "projected cost of the whole protocol on FSDD (core-hours)"),
        },
        coords={"rule": rules, "slots": slots},
    )
    ds.slots.attrs.update(long_name="runs at once (2: this machine's cores; more: Dask workers)", units="1")
    results.benchmark_attrs(ds, "protocol_cost", started, dataset=str(config.run.dataset), n_train_measured=int(
        measured[rules[0]]["n_train"]), trials=config.trials, seeds=config.seeds,
        max_sample_epochs=-1 if config.max_sample_epochs is None else config.max_sample_epochs,
        projected_for=f"FSDD official split: {FSDD_TRAIN} training samples (validation included), {FSDD_TEST} test",
        device=config.device, dt=str(config.dt), hardware_note="measured one run at a time on this machine")
    return ds


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", default="synthetic", help="data the runs are timed on")
    parser.add_argument("--n-train", type=int, default=100, help="training samples of each timed run (validation included)")
    parser.add_argument("--n-test", type=int, default=50, help="test samples of each timed run")
    parser.add_argument("--rules", nargs="+", default=list(compare_shd.CompareConfig().rules), help="rules timed")
    parser.add_argument("--trials", type=int, default=20, help="projection: tuning trials per rule")
    parser.add_argument("--seeds", type=int, default=5, help="projection: seeds per rule (each with its control)")
    parser.add_argument("--max-sample-epochs", type=int, default=None, help="projection: cap per tuning trial")
    parser.add_argument("--dask-workers", type=int, nargs="*", default=[8, 32], help="projection: Dask cluster sizes")
    parser.add_argument("--dt", type=benchmarks.quantity_arg(second), default=compare_shd.CompareConfig().dt,
                        help="time step of every rule")
    parser.add_argument("--device", choices=DEVICES, default="cpp_standalone", help="Brian2 device")
    parser.add_argument("--set", nargs="*", default=[], help="one rule's option, RULE.NAME=VALUE (as compare_shd.py)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    if args.trials < 0 or args.seeds < 1 or args.n_train < 2 or any(p < 1 for p in args.dask_workers):
        parser.error("--trials must be >= 0, --seeds >= 1, --n-train >= 2 and every --dask-workers >= 1")
    out = Path(args.out) / "bench_compare"
    config = compare_shd.CompareConfig(
        run=RunConfig(dataset=args.dataset, n_train=args.n_train, n_test=args.n_test, out=out), rules=tuple(args.rules),
        seeds=args.seeds, trials=args.trials, max_sample_epochs=args.max_sample_epochs, dt=args.dt, device=args.device,
        set=tuple(args.set))
    ds = run(config, args.dask_workers)
    path = files.write_netcdf(ds, Path(args.out) / "bench_compare.nc")
    for rule in ds.rule.values:
        r = ds.sel(rule=rule)
        print(f"{rule:7s} {float(r.seconds_per_sample_epoch):.4f} s per sample-epoch, {float(r.overhead_seconds):.0f} s "
              f"per run besides; on FSDD: tuning {float(r.tuning_core_hours):.1f} core-h, seeds and controls "
              f"{float(r.seed_runs_core_hours):.1f} core-h")
    for slots, hours in zip(ds.slots.values, ds.protocol_wall_hours.values):
        print(f"whole protocol on FSDD with {int(slots)} runs at once: {hours:.1f} h")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
