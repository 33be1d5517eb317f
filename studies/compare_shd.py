"""The comparison: every rule on identical splits, neuron constants and preprocessing, several seeds.

    python studies/compare_shd.py --seeds 3
    python -m analysis.report results/compare_<dataset>.nc

Runs STDP (+ readouts), the liquid state machine, e-prop and the BPTT baseline, plus the control
(a logistic readout of the input's own time-binned spike counts), each for ``--seeds`` seeds, with
a budget per rule (epochs, network size). Every rule/seed pair writes its own results file under
``OUT/runs/`` as it finishes; ``--resume`` skips the pairs already there. The combined file
``OUT/compare_<dataset>.nc`` has dimensions ``rule`` x ``seed`` (and ``epoch`` for learning curves).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import ms, second

from datasets import Preprocessing, spike_counts
from learning_rules.bptt import BPTTParams
from learning_rules.eprop import EPropParams
from learning_rules.lsm import ReservoirParams
from learning_rules.readout import fit_logistic_readout, score_readout
from learning_rules.stdp import STDPParams
from studies import bptt_shd, common, eprop_shd, lsm_shd, stdp_shd
from studies.units import parse_quantity

RULES = ("stdp", "lsm", "eprop", "bptt", "counts")
#: Where each rule's update lives: local (pre and post activity only), three-factor (local
#: eligibility times one broadcast signal), non-local (errors carried back through the network).
LOCALITY = {"stdp": "local", "lsm": "local (readout only)", "eprop": "three-factor", "bptt": "non-local",
            "counts": "no network"}
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


def _count_control(args, seed: int, prep: Preprocessing) -> xr.Dataset:
    """The no-network control: logistic readout of time-binned input spike counts."""
    started, t0 = common.now(), time.perf_counter()
    config = _base_config(args, seed)
    splits = common.load_splits_for(config, prep)
    x = [spike_counts(d.samples, splits.n_channels, args.n_bins, prep.duration)
         for d in (splits.train, splits.val, splits.test)]
    fit = fit_logistic_readout(x[0], splits.train.labels, x[1], splits.val.labels, seed=seed)
    n_features = x[0].shape[1]
    input_spikes = float(np.mean([len(s.units) for s in splits.test.samples]))
    ds = xr.Dataset({
        "val_accuracy": ("epoch", [fit.val_accuracy], {"units": "1", "long_name": "validation accuracy"}),
        "test_accuracy": common.scalar(score_readout(fit, x[2], splits.test.labels), "1", "test accuracy"),
        "train_seconds": common.scalar(time.perf_counter() - t0, "s", "fitting wall time"),
        "trainable_parameters": common.scalar(n_features * splits.n_classes + splits.n_classes, "1", "readout weights"),
        "input_spikes_per_sample": common.scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": common.scalar(0.0, "1", "no network: no spikes of its own"),
        "synaptic_operations_per_sample": common.scalar(input_spikes, "1", "one count increment per input spike"),
        **common.memory_vars(),
    }, coords={"epoch": [1]})
    return common.finish_results(ds, rule="counts", config=config, splits=splits, device="none", seed=seed,
                                 started=started)


@dataclasses.dataclass(frozen=True)
class _Base:
    dataset: str | None
    data_dir: Path | None
    n_train: int | None
    n_test: int | None
    seed: int
    out: Path


def _base_config(args, seed):
    return _Base(args.dataset, args.data_dir, args.n_train, args.n_test, seed, args.out / "runs")


def run_one(rule: str, seed: int, args, lif) -> xr.Dataset:
    """One rule, one seed, with the shared neuron constants and preprocessing."""
    base = dict(dataset=args.dataset, data_dir=args.data_dir, n_train=args.n_train, n_test=args.n_test,
                seed=seed, out=args.out / "runs", duration=args.duration, pool=args.pool)
    if rule == "stdp":
        return stdp_shd.run(stdp_shd.STDPStudyConfig(
            **base, device=args.device, epochs=args.epochs_stdp, dt=args.dt, n_bins=args.n_bins,
            stdp=STDPParams(n_neurons=args.n_stdp_neurons, lif=lif)))
    if rule == "lsm":
        return lsm_shd.run(lsm_shd.LSMStudyConfig(
            **base, device=args.device, dt=args.dt, n_bins=args.n_bins, workers=args.workers,
            reservoir=ReservoirParams(n_neurons=args.n_reservoir, lif=lif)))
    if rule == "eprop":
        return eprop_shd.run(eprop_shd.EPropStudyConfig(
            **base, device=args.device, epochs=args.epochs_eprop, workers=args.workers,
            eprop=EPropParams(n_hidden=args.n_hidden, dt=args.dt, lif=lif)))
    if rule == "bptt":
        return bptt_shd.run(bptt_shd.BPTTStudyConfig(
            **base, epochs=args.epochs_bptt, bptt=BPTTParams(n_hidden=args.n_hidden, dt=args.dt, lif=lif)))
    if rule == "counts":
        return _count_control(args, seed, Preprocessing(duration=args.duration, dt=args.dt, pool=args.pool))
    raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")


def _run_and_write(rule, seed, args, lif, path):
    common.write_atomic_netcdf(run_one(rule, seed, args, lif), path)


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
        if rule != "counts":  # the control has no network to compare with
            dense[rules.index(rule), seeds.index(seed)] = _dense_macs(ds, n_steps)
    data["energy_per_inference"] = (("rule", "seed"), synops * ENERGY_AC_PJ * 1e-6,
                                    {"units": "uJ", "long_name": f"estimated energy per inference ({ENERGY_AC_PJ} pJ per synaptic event)"})
    data["dense_energy_per_inference"] = (("rule", "seed"), dense * ENERGY_MAC_PJ * 1e-6,
                                          {"units": "uJ", "long_name": f"same-size non-spiking network ({ENERGY_MAC_PJ} pJ per MAC, every step)"})
    data["locality"] = ("rule", [LOCALITY[r] for r in rules], {"long_name": "where the learning rule's information comes from"})
    ds = xr.Dataset(data, coords={"rule": rules, "seed": seeds, "epoch": np.arange(1, n_epochs + 1)})
    ds.attrs["energy_reference"] = "Horowitz (2014), 45 nm: 0.9 pJ per 32-bit float add, 4.6 pJ per multiply-accumulate"
    return ds


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, default_n_train=1000, default_n_test=300)
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES), help="rules to compare")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per rule (seed, seed+1, ...)")
    parser.add_argument("--dt", type=parse_quantity(second), default=1 * ms, help="time step of every rule")
    parser.add_argument("--duration", type=parse_quantity(second), default=1 * second, help="sample length")
    parser.add_argument("--pool", type=int, default=1, help="neighbouring input channels summed into one")
    parser.add_argument("--n-bins", type=int, default=10, help="time bins of the count features (STDP, LSM, control)")
    parser.add_argument("--n-hidden", type=int, default=128, help="hidden neurons of e-prop and BPTT")
    parser.add_argument("--n-stdp-neurons", type=int, default=100, help="STDP excitatory neurons")
    parser.add_argument("--n-reservoir", type=int, default=500, help="reservoir neurons")
    parser.add_argument("--epochs-stdp", type=int, default=1, help="STDP epochs")
    parser.add_argument("--epochs-eprop", type=int, default=5, help="e-prop epochs")
    parser.add_argument("--epochs-bptt", type=int, default=20, help="BPTT epochs")
    parser.add_argument("--workers", type=int, default=2, help="processes for Brian2 evaluation")
    args = parser.parse_args(argv)
    lif = common.lif_from_args(args)
    seeds = [args.seed + k for k in range(args.seeds)]
    runs = {}
    for seed in seeds:
        for rule in args.rules:
            path = args.out / "runs" / f"{rule}_seed{seed}.nc"
            if args.resume and path.exists():
                runs[(rule, seed)] = xr.load_dataset(path)
                print(f"{rule}, seed {seed}: done before ({path})", file=sys.stderr)
                continue
            print(f"{rule}, seed {seed} ...", file=sys.stderr)
            # A fresh process per pair: its peak memory is this pair's alone, and no Brian2 state carries over.
            ctx = multiprocessing.get_context("spawn")
            proc = ctx.Process(target=_run_and_write, args=(rule, seed, args, lif, path))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"{rule}, seed {seed} failed (exit status {proc.exitcode}); see the messages above")
            ds = xr.load_dataset(path)
            runs[(rule, seed)] = ds
            print(f"{rule}, seed {seed}: test accuracy {float(ds.test_accuracy):.3f}", file=sys.stderr)
    dataset = next(iter(runs.values())).attrs["dataset"]
    n_steps = int(round(float(args.duration / args.dt)))
    combined = combine(runs, list(args.rules), seeds, n_steps)
    first = next(iter(runs.values()))
    combined.attrs.update({k: first.attrs[k] for k in ("dataset", "dataset_requested", "n_train", "n_val", "n_test",
                                                       "n_channels", "n_classes", "git_commit", "package_versions")})
    combined.attrs.update(study="compare", device=args.device, lif=common.config_json(lif),
                          preprocessing=first.attrs["preprocessing"], command=" ".join(sys.argv),
                          budgets=common.config_json({k: v for k, v in vars(args).items() if k.startswith(("epochs_", "n_"))}),
                          runs=common.config_json({f"{r}_seed{s}": ds.attrs["config"] for (r, s), ds in runs.items()}),
                          end_time=common.now())
    path = common.write_atomic_netcdf(combined, Path(args.out) / f"compare_{dataset}.nc")
    for rule in args.rules:
        acc = combined.test_accuracy.sel(rule=rule).values
        print(f"{rule:7s} test accuracy {np.nanmean(acc):.3f} over {np.sum(~np.isnan(acc))} seed(s)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    common.run_main(main)
