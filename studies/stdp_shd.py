"""Unsupervised STDP (Diehl & Cook style) on spiking audio, then two readouts.

    python studies/stdp_shd.py --device cpp_standalone

Trains the excitatory layer with STDP for ``--epochs`` epochs (one compiled binary, samples
presented in chunks with weights and thresholds carried between runs), extracts responses with
learning switched off, and scores two readouts on the test set at the epoch with the best
validation accuracy: the classic label assignment and a logistic readout on time-binned counts.
Writes one results file and prints its path.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second, volt
from sklearn.metrics import confusion_matrix

from datasets import Preprocessing
from learning_rules.readout import LabelAssignment, fit_logistic_readout, predict_readout
from models.inputs import balanced_chunk_size, chunk_capacity
from learning_rules.stdp import STDPNetwork, STDPParams
from studies import common
from studies.units import parse_quantity

RULE = "stdp"


@dataclass(frozen=True)
class STDPStudyConfig:
    dataset: str | None = None  # None: SHD, falling back loudly to the built-in set
    data_dir: Path | None = None  # dataset folder
    device: str = "cpp_standalone"  # Brian2 device
    n_train: int | None = None  # training samples incl. validation (None: all)
    n_test: int | None = None  # test samples (None: all)
    epochs: int = 1  # passes over the training set with STDP on
    seed: int = 0  # one seed for every random stream
    out: Path = Path("results")  # folder for the results file
    resume: bool = False  # continue from the checkpoint of an identical run
    dt: Quantity = common.const(0.1 * ms)  # simulation time step
    duration: Quantity = common.const(1 * second)  # samples cropped/padded to this length
    pool: int = 1  # neighbouring input channels summed into one
    n_bins: int = 5  # time bins of the logistic readout's features
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    stdp: STDPParams = dataclasses.field(default_factory=STDPParams)  # network constants


def _checkpoint_path(config: STDPStudyConfig, dataset: str) -> Path:
    return Path(config.out) / "checkpoints" / f"{RULE}_{dataset}_seed{config.seed}.npz"


def _readouts(train, val, y_train, y_val, n_classes, seed):
    assign = LabelAssignment().fit(train.sum(axis=1), y_train, n_classes)
    logistic = fit_logistic_readout(train.reshape(len(train), -1), y_train, val.reshape(len(val), -1), y_val,
                                    seed=seed)
    return assign, logistic


def run(config: STDPStudyConfig) -> xr.Dataset:
    started, t_start = common.now(), time.perf_counter()
    prep = Preprocessing(duration=config.duration, dt=config.dt, pool=config.pool)
    splits = common.load_splits_for(config, prep)
    n_in, n_classes = splits.n_channels, splits.n_classes
    y_train, y_val, y_test = splits.train.labels, splits.val.labels, splits.test.labels
    config_text = common.config_json(dataclasses.replace(config, resume=False))
    ckpt_path = _checkpoint_path(config, splits.dataset)
    state = common.load_checkpoint(ckpt_path) if config.resume else None
    if state is not None and str(state["config"]) != config_text:
        raise ValueError(f"{ckpt_path} belongs to a run with another configuration; drop --resume or use another --out")

    chunk_size = balanced_chunk_size([len(splits.train), len(splits.val), len(splits.test)], config.chunk_size)
    capacity = chunk_capacity([splits.train.samples, splits.val.samples, splits.test.samples], chunk_size, n_in)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{RULE}_", dir=common.build_root(config.out)))
    try:
        net = STDPNetwork(config.stdp, n_in, sample_duration=config.duration, dt=config.dt,
                          chunk_size=chunk_size, capacity=capacity, n_bins=config.n_bins,
                          device_name=config.device, build_dir=build_dir, seed=config.seed)
        history = {"val_logistic": [], "val_assignment": [], "train_logistic": [], "epoch_seconds": []}
        epoch, chunk, elapsed = 0, 0, 0.0
        best = None
        if state is not None:
            net.weights_, net.theta_ = state["weights"] * volt, state["theta"] * volt
            epoch, chunk, elapsed = int(state["epoch"]), int(state["chunk"]), float(state["elapsed"])
            history = {k: list(state[f"history_{k}"]) for k in history}
            if "best_weights" in state:
                best = {k: state[f"best_{k}"] for k in ("weights", "theta", "train", "val", "epoch")}
            print(f"resuming {RULE} at epoch {epoch + 1}, chunk {chunk}", file=sys.stderr)

        def save(epoch_, chunk_, elapsed_):
            arrays = dict(config=config_text, weights=net.weights_ / volt, theta=net.theta_ / volt, epoch=epoch_,
                          chunk=chunk_, elapsed=elapsed_, **{f"history_{k}": v for k, v in history.items()})
            if best is not None:
                arrays.update({f"best_{k}": v for k, v in best.items()})
            common.save_checkpoint(ckpt_path, **arrays)

        while epoch < config.epochs:
            t_epoch = time.perf_counter()
            order = np.random.default_rng([config.seed, epoch]).permutation(len(splits.train))
            samples = [splits.train.samples[i] for i in order]
            net.present(samples, learn=True, progress=f"epoch {epoch + 1}/{config.epochs} STDP", start_chunk=chunk,
                        on_chunk=lambda c: save(epoch, c + 1, elapsed + time.perf_counter() - t_epoch))
            train = net.present(splits.train.samples, learn=False, progress="responses (train)")
            val = net.present(splits.val.samples, learn=False, progress="responses (validation)")
            assign, logistic = _readouts(train, val, y_train, y_val, n_classes, config.seed)
            history["val_logistic"].append(logistic.val_accuracy)
            history["train_logistic"].append(logistic.train_accuracy)
            history["val_assignment"].append(assign.score(val.sum(axis=1), y_val))
            history["epoch_seconds"].append(time.perf_counter() - t_epoch)
            elapsed += time.perf_counter() - t_epoch
            if best is None or logistic.val_accuracy > float(np.max(history["val_logistic"][:-1], initial=-1)):
                best = dict(weights=net.weights_ / volt, theta=net.theta_ / volt, train=train, val=val, epoch=epoch)
            epoch, chunk = epoch + 1, 0
            save(epoch, chunk, elapsed)
            print(f"epoch {epoch}: validation accuracy logistic {logistic.val_accuracy:.3f}, "
                  f"assignment {history['val_assignment'][-1]:.3f}", file=sys.stderr)

        # Test once, at the epoch chosen on validation.
        net.weights_, net.theta_ = best["weights"] * volt, best["theta"] * volt
        test = net.present(splits.test.samples, learn=False, progress="responses (test)")
        assign, logistic = _readouts(best["train"], best["val"], y_train, y_val, n_classes, config.seed)
        predicted = predict_readout(logistic, test.reshape(len(test), -1))
        test_logistic = float(np.mean(predicted == y_test))
        test_assign = assign.score(test.sum(axis=1), y_test)
        build_seconds, reused = net.build_seconds, net.reused_binary
        binary_mib = net.compiled.peak_binary_memory
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)

    n_neurons = config.stdp.n_neurons
    input_spikes = np.mean([len(s.units) for s in splits.test.samples])
    layer_spikes = float(test.sum(axis=(1, 2)).mean())
    # Every input spike reaches all neurons; every layer spike inhibits all others.
    synops = input_spikes * n_neurons + layer_spikes * (n_neurons - 1)
    train_time = float(np.sum(history["epoch_seconds"]))
    ds = xr.Dataset(
        {
            **common.accuracy_vars(history["val_logistic"], history["train_logistic"]),
            "val_accuracy_assignment": ("epoch", np.asarray(history["val_assignment"]),
                                        {"units": "1", "long_name": "validation accuracy, label-assignment readout"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]),
                              {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            "test_accuracy": common.scalar(test_logistic, "1", "test accuracy, logistic readout on binned counts"),
            "test_accuracy_assignment": common.scalar(test_assign, "1", "test accuracy, label-assignment readout"),
            "best_epoch": common.scalar(int(best["epoch"]) + 1, "1", "epoch chosen on validation (1-based)"),
            "readout_C": common.scalar(logistic.C, "1", "inverse regularisation of the logistic readout"),
            "input_spikes_per_sample": common.scalar(input_spikes, "1", "input spikes per test sample"),
            "spikes_per_sample": common.scalar(layer_spikes, "1", "excitatory-layer spikes per test sample"),
            "synaptic_operations_per_sample": common.scalar(
                synops, "1", "synaptic events per test sample (input fan-out plus lateral inhibition)"),
            "trainable_parameters": common.scalar(n_in * n_neurons + n_neurons, "1",
                                                  "plastic weights and adaptive thresholds"),
            "train_seconds": common.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            "train_samples_per_second": common.scalar(
                len(splits.train) * len(history["epoch_seconds"]) / max(train_time, 1e-9), "1/s",
                "training throughput including response extraction"),
            **common.build_vars(build_seconds, reused, chunk_size),
            "wall_seconds": common.scalar(time.perf_counter() - t_start, "s", "wall time of this invocation"),
            **common.memory_vars(binary_mib),
            "confusion": (("true_class", "predicted_class"),
                          confusion_matrix(y_test, predicted, labels=np.arange(n_classes)),
                          {"units": "1", "long_name": "test confusion matrix, logistic readout"}),
            "weights": (("input", "neuron"), best["weights"] / 1e-3,
                        {"units": "mV", "long_name": "learned input weights at the chosen epoch"}),
            "test_counts": (("test_sample", "time_bin", "neuron"), test,
                            {"units": "1", "long_name": "spike counts of the layer per test sample and time bin"}),
            "test_label": ("test_sample", y_test, {"units": "1", "long_name": "test sample class"}),
        },
        coords={"epoch": np.arange(1, len(history["val_logistic"]) + 1)},
    )
    return common.finish_results(ds, rule=RULE, config=config, splits=splits, device=config.device,
                                 seed=config.seed, started=started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    defaults = STDPParams()
    parser.add_argument("--n-neurons", type=int, default=defaults.n_neurons, help="excitatory neurons")
    parser.add_argument("--dt", type=parse_quantity(second), default=0.1 * ms, help="simulation time step")
    parser.add_argument("--duration", type=parse_quantity(second), default=1 * second, help="sample length")
    parser.add_argument("--pool", type=int, default=1, help="neighbouring input channels summed into one")
    parser.add_argument("--n-bins", type=int, default=5, help="time bins of the logistic readout's features")
    parser.add_argument("--chunk-size", type=int, default=100, help="most samples per run of the binary (balanced to the set sizes)")
    return parser


def config_from_args(args) -> STDPStudyConfig:
    return STDPStudyConfig(
        dataset=args.dataset, data_dir=args.data_dir, device=args.device, n_train=args.n_train, n_test=args.n_test,
        epochs=args.epochs, seed=args.seed, out=args.out, resume=args.resume, dt=args.dt, duration=args.duration,
        pool=args.pool, n_bins=args.n_bins, chunk_size=args.chunk_size,
        stdp=STDPParams(n_neurons=args.n_neurons, lif=common.lif_from_args(args)),
    )


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    ds = run(config)
    path = common.write_atomic_netcdf(ds, common.results_path(config.out, RULE, ds.attrs["dataset"], config.seed))
    print(f"test accuracy: logistic readout {float(ds.test_accuracy):.3f}, "
          f"label assignment {float(ds.test_accuracy_assignment):.3f} "
          f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    common.run_main(main)
