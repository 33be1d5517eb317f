"""The comparison: every rule on identical splits, neuron constants and preprocessing, several seeds.

    python studies/compare_shd.py --seeds 3
    python studies/compare_shd.py --rules eprop bptt --set eprop.epochs=3 --set bptt.n_hidden=64
    python -m analysis.report results/compare_<dataset>.nc

Runs every rule of the registry (:mod:`studies.registry`; by default STDP with its readouts, the
liquid state machine, e-prop, the BPTT baseline and the input-count control) for ``--seeds``
seeds. The shared options (``--dt``, ``--duration``, ``--pool``, ``--n-bins``, ``--device``,
``--workers``, ``--lif``) go to every rule that has them; each rule's budget is its registry
default (``compare_defaults``), changed with ``--set RULE.NAME=VALUE``. Every rule/seed pair runs
in a fresh process and writes its own results file under ``OUT/runs/`` as it finishes;
``--resume`` keeps a stored pair only when it was made with the same configuration (else it stops
and names the fields that differ) and lets an interrupted pair resume from its own checkpoints.
The combined file ``OUT/compare_<dataset>.nc`` has dimensions ``rule`` x ``seed`` (and ``epoch``
for learning curves).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second

from models import files
from models.files import DataError
from models.engine.devices import DEVICES
from models.lif import LIFParams
from models.units import ASSIGN, config_json, const, parse_assignments
from studies import registry
from studies.cli import DATA_ERROR, USAGE_ERROR, run_main
from studies.config import RunConfig, apply, build_parser, config_from_args, leaves
from studies.results import integers_with_gaps, now, stamp
from studies.run import check_same_config, discard_checkpoints

#: Per-operation energies, Horowitz (2014), 45 nm, 32-bit float: accumulate (a spike adding a weight)
#: and multiply-accumulate (a dense unit).
ENERGY_AC_PJ, ENERGY_MAC_PJ = 0.9, 4.6
#: The per-run scalars gathered into rule x seed arrays, with their units and names.
SCALARS = {
    "test_accuracy": ("1", "test accuracy at the epoch chosen on validation"),
    "train_seconds": ("s", "training wall time"),
    "peak_memory": ("MiB", "peak memory of the Python process"),
    "peak_memory_children": ("MiB", "peak memory of the simulator binary"),
    "trainable_parameters": ("1", "trainable parameters"),
    "input_spikes_per_sample": ("1", "input spikes per inference"),
    "spikes_per_sample": ("1", "network spikes per inference"),
    "synaptic_operations_per_sample": ("1", "synaptic events per inference"),
}


@dataclass(frozen=True)
class CompareConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(n_train=1000, n_test=300))  # data, first seed, files
    rules: tuple[str, ...] = ("stdp", "lsm", "eprop", "bptt", "counts")  # rules to compare (repeat the option for several)
    seeds: int = 3  # seeds per rule (seed, seed+1, ...)
    dt: Quantity = const(1 * ms)  # time step of every rule
    duration: Quantity = const(1 * second)  # sample length of every rule
    pool: int = 1  # neighbouring input channels summed into one, for every rule
    n_bins: int = 10  # time bins of the count features (STDP, LSM, the control)
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device of the Brian2 rules
    workers: int = 2  # processes for Brian2 evaluation
    set: tuple[str, ...] = ()  # one rule's option, RULE.NAME=VALUE (e.g. eprop.epochs=3), over its budget
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron


SHARED = ("dt", "duration", "pool", "n_bins", "device", "workers")


def rule_configs(config: CompareConfig, seed: int) -> dict[str, object]:
    """Each rule's study config for ``seed``: its defaults, its budget, the shared options, ``--set``."""
    per_rule: dict[str, dict] = {rule: {} for rule in config.rules}
    for rule, assignments in _rule_assignments(config.set).items():
        if rule not in per_rule:
            raise ValueError(f"--set names the rule {rule!r}, which is not among --rules ({', '.join(config.rules)})")
        per_rule[rule].update(assignments)
    out = {}
    for rule in config.rules:
        spec = registry.get(rule)
        names = leaves(spec.config)
        shared = {name: getattr(config, name) for name in SHARED if name in names}
        shared.update({f.name: getattr(config.lif, f.name) for f in dataclasses.fields(config.lif) if f.name in names})
        run = dataclasses.replace(config.run, seed=seed, out=Path(config.run.out) / "runs", split=default_split(config))
        study = dataclasses.replace(spec.config(), run=run)
        out[rule] = apply(study, {**spec.compare_defaults, **shared, **per_rule[rule]})
    return out


def default_split(config: CompareConfig) -> str:
    """The split of the comparison: as asked, else speakers held out on FSDD (a speaker never heard
    in training is what a user meets; SHD's own test set holds new speakers too), else official."""
    if config.run.split is not None:
        return config.run.split
    return "speaker" if config.run.dataset == "fsdd" else "official"


def _rule_assignments(items) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in parse_assignments(list(items)).items():
        rule, dot, option = name.partition(".")
        if not dot:
            raise ValueError(f"--set takes RULE.NAME=VALUE, got {name}={value}")
        out.setdefault(rule, {})[option] = value
    return out


def _run_and_write(spec, config, path):
    def body(_):
        ds = spec.run(config)
        files.write_netcdf(ds, path)
        discard_checkpoints(ds, config.run.out)

    run_main(body)  # an expected failure: one line and its exit status, which run_pair passes on


def run_pair(spec, config, path: Path, resume: bool) -> xr.Dataset:
    """One rule and seed in a fresh process (its peak memory is this pair's alone, and no Brian2
    state carries over); a stored result of the same configuration is kept when resuming."""
    current = config_json(dataclasses.replace(config, run=dataclasses.replace(config.run, resume=False)))
    if resume and path.exists():
        ds = xr.load_dataset(path)
        check_same_config(ds.attrs.get("config", "{}"), current, str(path))
        print(f"{spec.name}, seed {config.run.seed}: done before ({path})", file=sys.stderr)
        return ds
    print(f"{spec.name}, seed {config.run.seed} ...", file=sys.stderr)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, resume=resume))
    proc = multiprocessing.get_context("spawn").Process(target=_run_and_write, args=(spec, config, path))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        message = f"{spec.name}, seed {config.run.seed} failed (exit status {proc.exitcode}); see the messages above"
        raise {DATA_ERROR: DataError, USAGE_ERROR: ValueError}.get(proc.exitcode, RuntimeError)(message)
    ds = xr.load_dataset(path)
    print(f"{spec.name}, seed {config.run.seed}: test accuracy {float(ds.test_accuracy):.3f}", file=sys.stderr)
    return ds


def _dense_macs(ds: xr.Dataset, n_steps: int) -> float:
    """MACs per inference of a non-spiking network of the same size: every trainable connection
    evaluated at every time step."""
    return float(ds.trainable_parameters) * n_steps


def combine(runs: dict[tuple[str, int], xr.Dataset], rules: list[str], seeds: list[int], n_steps: int) -> xr.Dataset:
    n_epochs = max(int(ds.sizes.get("epoch", 1)) for ds in runs.values())
    data = {}
    for name, (units, long_name) in SCALARS.items():
        values = np.full((len(rules), len(seeds)), np.nan)
        for (rule, seed), ds in runs.items():
            if name in ds:
                values[rules.index(rule), seeds.index(seed)] = float(ds[name])
        data[name] = (("rule", "seed"), values, {"units": units, "long_name": long_name})
    curves = np.full((len(rules), len(seeds), n_epochs), np.nan)
    for (rule, seed), ds in runs.items():
        curve = np.asarray(ds.val_accuracy.values, dtype=float)
        curves[rules.index(rule), seeds.index(seed), :len(curve)] = curve
    data["val_accuracy"] = (("rule", "seed", "epoch"), curves, {"units": "1", "long_name": "validation accuracy"})
    synops = data["synaptic_operations_per_sample"][1]
    dense = np.full_like(synops, np.nan)
    for (rule, seed), ds in runs.items():
        if registry.get(rule).locality != "no network":  # the control has no network to compare with
            dense[rules.index(rule), seeds.index(seed)] = _dense_macs(ds, n_steps)
    data["energy_per_inference"] = (("rule", "seed"), synops * ENERGY_AC_PJ * 1e-6,
                                    {"units": "uJ", "long_name": f"estimated energy per inference ({ENERGY_AC_PJ} pJ per synaptic event)"})
    data["dense_energy_per_inference"] = (("rule", "seed"), dense * ENERGY_MAC_PJ * 1e-6,
                                          {"units": "uJ", "long_name": f"same-size non-spiking network ({ENERGY_MAC_PJ} pJ per MAC, every step)"})
    data["locality"] = ("rule", [registry.get(r).locality for r in rules],
                        {"long_name": "where the learning rule's information comes from"})
    ds = xr.Dataset(data, coords={"rule": rules, "seed": seeds, "epoch": np.arange(1, n_epochs + 1)})
    integers_with_gaps(ds, "trainable_parameters")  # a rule may not report it
    ds.attrs["energy_reference"] = "Horowitz (2014), 45 nm: 0.9 pJ per 32-bit float add, 4.6 pJ per multiply-accumulate"
    return ds


def compare(config: CompareConfig) -> xr.Dataset:
    started = now()
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {config.seeds}")
    for rule in config.rules:
        registry.get(rule)  # unknown rules fail before anything runs
    seeds = [config.run.seed + k for k in range(config.seeds)]
    per_seed = {seed: rule_configs(config, seed) for seed in seeds}  # every option checked up front
    runs = {}
    for seed in seeds:
        for rule in config.rules:
            path = Path(config.run.out) / "runs" / f"{rule}_seed{seed}.nc"
            runs[(rule, seed)] = run_pair(registry.get(rule), per_seed[seed][rule], path, config.run.resume)
    n_steps = int(round(float(config.duration / config.dt)))
    combined = combine(runs, list(config.rules), seeds, n_steps)
    first = next(iter(runs.values()))
    combined.attrs.update({k: first.attrs[k] for k in ("dataset", "dataset_requested", "n_train", "n_val", "n_test",
                                                       "n_channels", "n_classes", "class_names", "split",
                                                       "test_speakers")})
    combined.attrs.update(study="compare", device=config.device, lif=config_json(config.lif),
                          preprocessing=first.attrs["preprocessing"], config=config_json(config),
                          runs=config_json({f"{r}_seed{s}": ds.attrs["config"] for (r, s), ds in runs.items()}))
    return stamp(combined, started)


def main(argv=None) -> Path:
    args = build_parser(CompareConfig, __doc__).parse_args(argv)
    config = config_from_args(CompareConfig, args)
    combined = compare(config)
    path = files.write_netcdf(combined, Path(config.run.out) / f"compare_{combined.attrs['dataset']}.nc")
    for rule in config.rules:
        acc = combined.test_accuracy.sel(rule=rule).values
        print(f"{rule:7s} test accuracy {np.nanmean(acc):.3f} over {np.sum(~np.isnan(acc))} seed(s)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    from studies import compare_shd

    run_main(compare_shd.main)
