"""Evidence that STDP learns: Diehl & Cook (2015) against the same network with its initial weights frozen.

    python studies/stdp_evidence.py --datasets synthetic --datasets fsdd \
        --data-dir ../shared/data/fsdd/recordings --seeds 3
    python -m analysis.figures results/stdp_evidence.nc --out figures/

For every dataset and seed, runs the STDP study (:mod:`studies.stdp_shd`, one fresh process per
run, its own results file under ``OUT/runs/``, resumable with ``--resume``). That study reads out
the network with its initial weights frozen and, on the same split, the network after learning,
each with the paper's label assignment and a logistic readout of time-binned counts. This study
gathers, with dimensions ``dataset`` x ``seed`` x ``network`` (trained, frozen) x ``readout``
(assignment, logistic): the test accuracies; their paired differences (trained minus frozen, seed
by seed) with 95% Student-t intervals over seeds; the neurons active per test sample (how hard the
winner-take-all is); and the first seed's input weights before and after learning, every neuron,
into ``OUT/stdp_evidence.nc``. Options of the STDP study go through ``--set NAME=VALUE``
(``--set epochs=3 --set n_neurons=100``).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats

from models import files
from models.units import config_json, parse_assignments
from studies import registry, results
from studies.cli import run_main
from studies.compare_shd import run_pair
from studies.config import RunConfig, apply, build_parser, config_from_args

NETWORKS = ("trained", "frozen")
READOUTS = ("assignment", "logistic")
#: Per network and readout, the STDP study's variable.
VARIABLES = {("trained", "assignment"): "test_accuracy_assignment", ("trained", "logistic"): "test_accuracy",
             ("frozen", "assignment"): "test_accuracy_assignment_frozen", ("frozen", "logistic"): "test_accuracy_frozen"}


@dataclass(frozen=True)
class EvidenceConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(n_train=1000, n_test=300))  # data (--data-dir for FSDD), first seed, files
    datasets: tuple[str, ...] = ("synthetic", "fsdd")  # datasets to run (repeat the option for several)
    seeds: int = 3  # seeds: --seed, --seed + 1, ...
    set: tuple[str, ...] = ()  # STDP study options as NAME=VALUE (repeat the option for several)


def paired_interval(differences, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences and the Student-t interval of that mean (NaN with fewer than two)."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return np.nan, np.nan, np.nan
    mean = float(d.mean())
    if d.size < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, df=d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return mean, mean - half, mean + half


def study_configs(config: EvidenceConfig) -> dict[tuple[str, int], object]:
    """The STDP study config of every (dataset, seed)."""
    spec = registry.get("stdp")
    if config.run.dataset is not None:
        raise ValueError("name the datasets with --datasets (this study runs several)")
    changes = parse_assignments(list(config.set))
    out = {}
    for dataset in config.datasets:
        for seed in range(config.run.seed, config.run.seed + config.seeds):
            run = dataclasses.replace(config.run, dataset=dataset, seed=seed, out=Path(config.run.out) / "runs",
                                      data_dir=config.run.data_dir if dataset not in ("synthetic", "synthetic_bursts") else None)
            study = apply(dataclasses.replace(spec.config(), run=run), changes)
            if not study.frozen_control or not study.learn:
                raise ValueError("the evidence needs both networks: keep frozen_control and learn on")
            out[dataset, seed] = study
    return out


def evidence(config: EvidenceConfig) -> xr.Dataset:
    started = results.now()
    spec = registry.get("stdp")
    configs = study_configs(config)
    runs = {}
    for (dataset, seed), study in configs.items():
        path = Path(config.run.out) / "runs" / f"stdp_evidence_{dataset}_seed{seed}.nc"
        runs[dataset, seed] = run_pair(spec, study, path, config.run.resume)
    datasets, seeds = list(config.datasets), list(range(config.run.seed, config.run.seed + config.seeds))
    accuracy = np.full((len(datasets), len(seeds), len(NETWORKS), len(READOUTS)), np.nan)
    active = np.full((len(datasets), len(seeds), len(NETWORKS)), np.nan)
    spikes = np.full((len(datasets), len(seeds), len(NETWORKS)), np.nan)
    for (dataset, seed), ds in runs.items():
        d, s = datasets.index(dataset), seeds.index(seed)
        for (network, readout), name in VARIABLES.items():
            accuracy[d, s, NETWORKS.index(network), READOUTS.index(readout)] = float(ds[name])
        active[d, s] = float(ds.active_neurons.mean()), float(ds.active_neurons_frozen.mean())
        spikes[d, s] = float(ds.spikes_per_sample), float(ds.spikes_per_sample_frozen)
    difference = accuracy[:, :, 0] - accuracy[:, :, 1]
    interval = np.array([[paired_interval(difference[d, :, r]) for r in range(len(READOUTS))]
                         for d in range(len(datasets))])  # (dataset, readout, 3)
    first = {dataset: runs[dataset, seeds[0]] for dataset in datasets}
    n_inputs = max(first[d].sizes["input"] for d in datasets)
    n_neurons = max(first[d].sizes["neuron"] for d in datasets)
    weights = np.full((len(datasets), len(NETWORKS), n_inputs, n_neurons), np.nan)
    for d, dataset in enumerate(datasets):
        for k, name in enumerate(("weights", "initial_weights")):
            w = first[dataset][name].values
            weights[d, k, :w.shape[0], :w.shape[1]] = w
    chance = np.array([1 / runs[dataset, seeds[0]].attrs["n_classes"] for dataset in datasets])
    ds = xr.Dataset({
        "test_accuracy": (("dataset", "seed", "network", "readout"), accuracy,
                          {"units": "1", "long_name": "test accuracy"}),
        "accuracy_gain": (("dataset", "seed", "readout"), difference,
                          {"units": "1", "long_name": "test accuracy, trained minus frozen (same seed, same split)"}),
        "accuracy_gain_mean": (("dataset", "readout"), interval[..., 0],
                               {"units": "1", "long_name": "mean paired gain of learning over the frozen network"}),
        "accuracy_gain_low": (("dataset", "readout"), interval[..., 1],
                              {"units": "1", "long_name": "lower end of the 95% Student-t interval of the mean gain"}),
        "accuracy_gain_high": (("dataset", "readout"), interval[..., 2],
                               {"units": "1", "long_name": "upper end of the 95% Student-t interval of the mean gain"}),
        "active_neurons_mean": (("dataset", "seed", "network"), active,
                           {"units": "1", "long_name": "excitatory neurons active per test sample (mean)"}),
        "layer_spikes_per_sample": (("dataset", "seed", "network"), spikes,
                              {"units": "1", "long_name": "excitatory-layer spikes per test sample"}),
        "stdp_weights": (("dataset", "network", "input", "neuron"), weights,
                         {"units": "1", "long_name": "input weights of the first seed (conductance / leak)"}),
        "chance": ("dataset", chance, {"units": "1", "long_name": "chance accuracy"}),
        "best_epoch": (("dataset", "seed"), np.array([[int(runs[d, s].best_epoch) for s in seeds] for d in datasets]),
                       {"units": "1", "long_name": "epoch chosen on validation"}),
    }, coords={"dataset": datasets, "seed": seeds, "network": list(NETWORKS), "readout": list(READOUTS)})
    ds.attrs.update(study="stdp_evidence", rule="stdp", dataset=",".join(datasets), config=config_json(config),
                    stdp_config=config_json(configs[datasets[0], seeds[0]]), n_classes=int(first[datasets[0]].attrs["n_classes"]),
                    dataset_generator=json.dumps({d: first[d].attrs.get("dataset_generator", "") for d in datasets},
                                                 sort_keys=True),
                    **results.provenance(started))
    return results.label_coordinates(ds)


def main(argv=None) -> Path:
    args = build_parser(EvidenceConfig, __doc__).parse_args(argv)
    config = config_from_args(EvidenceConfig, args)
    ds = evidence(config)
    path = files.write_netcdf(ds, Path(config.run.out) / "stdp_evidence.nc")
    for dataset in ds.dataset.values:
        for readout in READOUTS:
            acc = ds.test_accuracy.sel(dataset=dataset, readout=readout)
            gain = ds.sel(dataset=dataset, readout=readout)
            print(f"{dataset} {readout}: trained {float(acc.sel(network='trained').mean()):.3f}, frozen "
                  f"{float(acc.sel(network='frozen').mean()):.3f}, gain {float(gain.accuracy_gain_mean):+.3f} "
                  f"[{float(gain.accuracy_gain_low):+.3f}, {float(gain.accuracy_gain_high):+.3f}] "
                  f"(chance {float(ds.chance.sel(dataset=dataset)):.3f})")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    from studies import stdp_evidence

    run_main(stdp_evidence.main)
