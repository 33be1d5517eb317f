"""A liquid state machine: a fixed spiking reservoir, two readouts and a no-reservoir control.

    python studies/lsm_shd.py --device cpp_standalone

Simulates every sample of each split through one compiled reservoir (chunks of samples, state reset
at each sample start, chunks spread over ``--workers`` processes), then fits on the training split
and chooses on the validation split: (1) a logistic readout of the reservoir's time-binned spike
counts; (2) the spike-time readout of Florescu & Coca (2019), orthogonal forward regression over the
reservoir's spike trains; and, as the control, (3) the same logistic readout on the input's own
time-binned spike counts. Test accuracies of all three go into one results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second
from sklearn.metrics import confusion_matrix

from datasets import Preprocessing, spike_counts
from learning_rules.lsm import Liquid, ReservoirParams
from learning_rules.readout import fit_logistic_readout, predict_readout, score_readout
from learning_rules.spike_time_readout import SpikeTimeOFRReadout
from models.inputs import balanced_chunk_size, chunk_capacity
from studies import common
from studies.units import parse_quantity

RULE = "lsm"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LSMStudyConfig:
    dataset: str | None = None  # None: SHD, falling back loudly to the built-in set
    data_dir: Path | None = None  # dataset folder
    device: str = "cpp_standalone"  # Brian2 device
    n_train: int | None = None  # training samples incl. validation (None: all)
    n_test: int | None = None  # test samples (None: all)
    seed: int = 0  # one seed for every random stream
    out: Path = Path("results")  # folder for the results file
    resume: bool = False  # reuse the responses of splits already simulated
    dt: Quantity = common.const(0.1 * ms)  # simulation time step
    duration: Quantity = common.const(1 * second)  # samples cropped/padded to this length
    pool: int = 1  # neighbouring input channels summed into one
    n_bins: int = 10  # time bins of the count features
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    workers: int = 2  # processes simulating chunks at once
    spike_time_readout: bool = True  # also fit the Florescu & Coca readout (records reservoir spikes)
    ofr_tau: Quantity = common.const(10 * ms)  # filter time constant of the spike-train inner product
    reservoir: ReservoirParams = dataclasses.field(default_factory=ReservoirParams)  # the liquid


def _pack_spikes(trains):
    sizes = np.array([len(u) for u, _ in trains], dtype=np.int64)
    units = np.concatenate([u for u, _ in trains]) if trains else np.zeros(0, np.int64)
    times = np.concatenate([t for _, t in trains]) if trains else np.zeros(0)
    return sizes, units, times


def _unpack_spikes(sizes, units, times):
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [(units[a:b], times[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def run(config: LSMStudyConfig) -> xr.Dataset:
    started, t_start = common.now(), time.perf_counter()
    prep = Preprocessing(duration=config.duration, dt=config.dt, pool=config.pool)
    splits = common.load_splits_for(config, prep)
    sets = {"train": splits.train, "val": splits.val, "test": splits.test}
    n_in, n_classes, n_res = splits.n_channels, splits.n_classes, config.reservoir.n_neurons
    config_text = common.config_json(dataclasses.replace(config, resume=False))
    ckpt_dir = Path(config.out) / "checkpoints" / f"{RULE}_{splits.dataset}_seed{config.seed}"
    chunk_size = balanced_chunk_size([len(d) for d in sets.values()], config.chunk_size)
    capacity = chunk_capacity([d.samples for d in sets.values()], chunk_size, n_in)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{RULE}_", dir=common.build_root(config.out)))
    responses, seconds = {}, {}
    try:
        liquid = Liquid(config.reservoir, n_in, sample_duration=config.duration, dt=config.dt,
                        chunk_size=chunk_size, capacity=capacity, n_bins=config.n_bins,
                        device_name=config.device, build_dir=build_dir, seed=config.seed,
                        record_spikes=config.spike_time_readout)
        for name, data in sets.items():
            path = ckpt_dir / f"{name}.npz"
            saved = common.load_checkpoint(path) if config.resume else None
            if saved is not None and str(saved["config"]) == config_text:
                responses[name] = {"counts": saved["counts"]}
                if config.spike_time_readout:
                    responses[name]["spikes"] = _unpack_spikes(saved["sizes"], saved["units"], saved["times"])
                seconds[name] = float(saved["seconds"])
                print(f"reusing the {name} responses from {path}", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            responses[name] = liquid.responses(data.samples, progress=f"reservoir ({name})", workers=config.workers)
            seconds[name] = time.perf_counter() - t0
            arrays = dict(config=config_text, counts=responses[name]["counts"], seconds=seconds[name])
            if config.spike_time_readout:
                arrays.update(zip(("sizes", "units", "times"), _pack_spikes(responses[name]["spikes"])))
            common.save_checkpoint(path, **arrays)
        build_seconds, reused = liquid.build_seconds, liquid.reused_binary
        binary_mib = liquid.compiled.peak_binary_memory
        synops = liquid.synaptic_operations(splits.test.samples, responses["test"]["counts"])
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)

    t_readout = time.perf_counter()
    labels = {name: d.labels for name, d in sets.items()}
    feats = {name: r["counts"].reshape(len(r["counts"]), -1) for name, r in responses.items()}
    logistic = fit_logistic_readout(feats["train"], labels["train"], feats["val"], labels["val"], seed=config.seed)
    predicted = predict_readout(logistic, feats["test"])
    test_logistic = float(np.mean(predicted == labels["test"]))
    raw = {name: spike_counts(d.samples, n_in, config.n_bins, config.duration) for name, d in sets.items()}
    control = fit_logistic_readout(raw["train"], labels["train"], raw["val"], labels["val"], seed=config.seed)
    test_control = score_readout(control, raw["test"], labels["test"])
    data = {
        "val_accuracy": ("epoch", [logistic.val_accuracy], {"units": "1", "long_name": "validation accuracy, logistic readout of the reservoir"}),
        "test_accuracy": common.scalar(test_logistic, "1", "test accuracy, logistic readout of reservoir spike counts"),
        "test_accuracy_control": common.scalar(test_control, "1", "test accuracy, same readout on the input spike counts (no reservoir)"),
        "val_accuracy_control": common.scalar(control.val_accuracy, "1", "validation accuracy of the control readout"),
        "readout_C": common.scalar(logistic.C, "1", "inverse regularisation of the logistic readout"),
        "neurons_used": common.scalar(n_res, "1", "reservoir neurons the logistic readout uses"),
    }
    if config.spike_time_readout:
        ofr = SpikeTimeOFRReadout(n_res, n_select=min(200, n_res), tau=config.ofr_tau, duration=config.duration)
        ofr.fit(responses["train"]["spikes"], labels["train"])
        scores = ofr.choose_n_select(responses["val"]["spikes"], labels["val"])
        test_ofr = float(np.mean(ofr.predict(responses["test"]["spikes"]) == labels["test"]))
        data.update({
            "test_accuracy_spike_time": common.scalar(test_ofr, "1", "test accuracy, spike-time readout (Florescu & Coca 2019)"),
            "neurons_used_spike_time": common.scalar(len(ofr.selected_), "1", "reservoir neurons the spike-time readout selected (chosen on validation)"),
            "val_accuracy_spike_time": ("n_selected", list(scores.values()), {"units": "1", "long_name": "validation accuracy of the spike-time readout"}),
            "selection_order": ("rank", ofr.order_, {"units": "1", "long_name": "reservoir neurons in the order orthogonal forward regression chose them"}),
        })
    readout_seconds = time.perf_counter() - t_readout
    counts_test = responses["test"]["counts"]
    rates = counts_test.sum(axis=1).mean(axis=0) / float(config.duration / second)
    input_spikes = float(np.mean([len(s.units) for s in splits.test.samples]))
    extraction = sum(seconds.values())
    data.update({
        "input_spikes_per_sample": common.scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": common.scalar(float(counts_test.sum(axis=(1, 2)).mean()), "1", "reservoir spikes per test sample"),
        "synaptic_operations_per_sample": common.scalar(float(synops.mean()), "1", "synaptic events per test sample (input and recurrent)"),
        "reservoir_rate": ("neuron", rates, {"units": "Hz", "long_name": "firing rate of each reservoir neuron (test set)"}),
        "silent_fraction": common.scalar(float(np.mean(rates == 0)), "1", "fraction of reservoir neurons silent on the test set"),
        "trainable_parameters": common.scalar(n_res * config.n_bins * n_classes + n_classes, "1", "readout weights (the reservoir is fixed)"),
        "extraction_seconds": common.scalar(extraction, "s", "wall time simulating all splits"),
        "train_seconds": common.scalar(seconds["train"] + seconds["val"] + readout_seconds, "s",
                                       "training wall time: simulating train and validation, fitting and choosing readouts"),
        "samples_per_second": common.scalar(sum(len(d) for d in sets.values()) / max(extraction, 1e-9), "1/s",
                                            f"reservoir simulation throughput with {config.workers} processes"),
        **common.build_vars(build_seconds, reused, chunk_size),
        "wall_seconds": common.scalar(time.perf_counter() - t_start, "s", "wall time of this invocation"),
        **common.memory_vars(binary_mib),
        "confusion": (("true_class", "predicted_class"), confusion_matrix(labels["test"], predicted, labels=np.arange(n_classes)),
                      {"units": "1", "long_name": "test confusion matrix, logistic readout"}),
        "test_counts": (("test_sample", "time_bin", "neuron"), counts_test[:20],
                        {"units": "1", "long_name": "reservoir spike counts of the first test samples"}),
    })
    ds = xr.Dataset(data, coords={"epoch": [1]})
    return common.finish_results(ds, rule=RULE, config=config, splits=splits, device=config.device,
                                 seed=config.seed, started=started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    d = ReservoirParams()
    parser.add_argument("--n-neurons", type=int, default=d.n_neurons, help="reservoir neurons")
    parser.add_argument("--weight-scale", type=float, default=d.weight_scale, help="global factor on recurrent weights")
    parser.add_argument("--connectivity", choices=("random", "distance"), default=d.connectivity,
                        help="random (p-connect) or distance-dependent (Maass et al. 2002)")
    parser.add_argument("--p-connect", type=float, default=d.p_connect, help="connection probability (random)")
    parser.add_argument("--reservoir", action="append", default=[], metavar="NAME=VALUE",
                        help="change any reservoir constant (repeatable), e.g. --reservoir w_input=2mV")
    parser.add_argument("--dt", type=parse_quantity(second), default=0.1 * ms, help="simulation time step")
    parser.add_argument("--duration", type=parse_quantity(second), default=1 * second, help="sample length")
    parser.add_argument("--pool", type=int, default=1, help="neighbouring input channels summed into one")
    parser.add_argument("--n-bins", type=int, default=10, help="time bins of the count features")
    parser.add_argument("--chunk-size", type=int, default=100, help="most samples per run of the binary (balanced to the set sizes)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes simulating at once")
    parser.add_argument("--no-spike-time-readout", action="store_true", help="skip the Florescu & Coca readout")
    return parser


def config_from_args(args) -> LSMStudyConfig:
    from studies.units import parse_assignments, with_overrides

    reservoir = ReservoirParams(n_neurons=args.n_neurons, weight_scale=args.weight_scale,
                                connectivity=args.connectivity, p_connect=args.p_connect, lif=common.lif_from_args(args))
    reservoir = with_overrides(reservoir, parse_assignments(args.reservoir), "reservoir constant")
    return LSMStudyConfig(dataset=args.dataset, data_dir=args.data_dir, device=args.device, n_train=args.n_train,
                          n_test=args.n_test, seed=args.seed, out=args.out, resume=args.resume, dt=args.dt,
                          duration=args.duration, pool=args.pool, n_bins=args.n_bins, chunk_size=args.chunk_size,
                          workers=args.workers, spike_time_readout=not args.no_spike_time_readout, reservoir=reservoir)


def main(argv=None) -> Path:
    config = config_from_args(build_parser().parse_args(argv))
    ds = run(config)
    path = common.write_atomic_netcdf(ds, common.results_path(config.out, RULE, ds.attrs["dataset"], config.seed))
    line = (f"test accuracy: reservoir + logistic {float(ds.test_accuracy):.3f}, "
            f"input counts alone {float(ds.test_accuracy_control):.3f}")
    if "test_accuracy_spike_time" in ds:
        line += (f", spike-time readout {float(ds.test_accuracy_spike_time):.3f} "
                 f"({int(ds.neurons_used_spike_time)} neurons)")
    print(line + f" (chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    common.run_main(main)
