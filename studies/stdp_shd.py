"""Unsupervised STDP (Diehl & Cook style) on spiking audio, then two readouts.

    python studies/stdp_shd.py --device cpp_standalone

Trains the excitatory layer with STDP for ``--epochs`` epochs (one compiled binary, samples
presented in chunks with weights and thresholds carried between runs), extracts responses with
learning switched off, and scores two readouts on the test set at the epoch with the best
validation accuracy: the classic label assignment and a logistic readout on time-binned counts.
Writes one results file and prints its path.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr
from brian2 import ms, volt
from sklearn.metrics import confusion_matrix

from datasets import Preprocessing
from learning_rules.readout import LabelAssignment, fit_logistic_readout, predict_readout
from learning_rules.stdp import STDPNetwork, STDPParams, STDPTransformer
from models.engine.compiled import BuildCache
from models.engine.devices import DEVICES
from models.engine.inputs import balanced_chunk_size, chunk_capacity
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Float, Int

RULE = "stdp"


@dataclass(frozen=True)
class STDPStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=0.1 * ms))  # time step, duration, pooling
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device
    epochs: int = 1  # passes over the training set with STDP on
    n_bins: int = 5  # time bins of the logistic readout's features
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    params: STDPParams = dataclasses.field(default_factory=STDPParams)  # network constants


def _readouts(train, val, y_train, y_val, n_classes, seed):
    assign = LabelAssignment().fit(train.sum(axis=1), y_train, n_classes)
    logistic = fit_logistic_readout(train.reshape(len(train), -1), y_train, val.reshape(len(val), -1), y_val,
                                    seed=seed)
    return assign, logistic


def run(config: STDPStudyConfig, cache: BuildCache | None = None) -> xr.Dataset:
    """Train, choose the epoch on validation, test once; ``cache`` lets a scan worker reuse its binary."""
    job = Run(RULE, config)
    seed = config.run.seed
    splits = job.load_splits(config.input)
    n_in, n_classes = splits.n_channels, splits.n_classes
    y_train, y_val, y_test = splits.train.labels, splits.val.labels, splits.test.labels
    state = job.load_checkpoint()

    chunk_size = balanced_chunk_size([len(splits.train), len(splits.val), len(splits.test)], config.chunk_size)
    capacity = chunk_capacity([splits.train.samples, splits.val.samples, splits.test.samples], chunk_size, n_in)
    with job.build_folder() as build_dir:
        net = STDPNetwork(config.params, n_in, sample_duration=config.input.duration, dt=config.input.dt,
                          chunk_size=chunk_size, capacity=capacity, n_bins=config.n_bins,
                          device_name=config.device, build_dir=build_dir, seed=seed, cache=cache)
        history = {"val_logistic": [], "val_assignment": [], "train_logistic": [], "epoch_seconds": []}
        epoch, chunk, elapsed = 0, 0, 0.0
        best = None
        if state is not None:
            net.weights_, net.theta_ = state["weights"] * volt, state["theta"] * volt
            epoch, chunk, elapsed = int(state["epoch"]), int(state["chunk"]), float(state["elapsed"])
            history = {k: list(state[f"history_{k}"]) for k in history}
            if "best_weights" in state:
                best = {k: state[f"best_{k}"] for k in ("weights", "theta", "train", "val", "epoch")}
            job.note_resume(f"at epoch {epoch + 1}, chunk {chunk}")

        def save(epoch_, chunk_, elapsed_):
            arrays = dict(weights=net.weights_ / volt, theta=net.theta_ / volt, epoch=epoch_,
                          chunk=chunk_, elapsed=elapsed_, **{f"history_{k}": v for k, v in history.items()})
            if best is not None:
                arrays.update({f"best_{k}": v for k, v in best.items()})
            job.save_checkpoint(**arrays)

        while epoch < config.epochs:
            t_epoch = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(len(splits.train))
            samples = [splits.train.samples[i] for i in order]
            net.present(samples, learn=True, progress=f"epoch {epoch + 1}/{config.epochs} STDP", start_chunk=chunk,
                        on_chunk=lambda c: save(epoch, c + 1, elapsed + time.perf_counter() - t_epoch))
            train = net.present(splits.train.samples, learn=False, progress="responses (train)")
            val = net.present(splits.val.samples, learn=False, progress="responses (validation)")
            assign, logistic = _readouts(train, val, y_train, y_val, n_classes, seed)
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
        assign, logistic = _readouts(best["train"], best["val"], y_train, y_val, n_classes, seed)
        predicted = predict_readout(logistic, test.reshape(len(test), -1))
        test_logistic = float(np.mean(predicted == y_test))
        test_assign = assign.score(test.sum(axis=1), y_test)
        build_seconds, reused = net.build_seconds, net.reused_binary
        binary_mib = net.compiled.peak_binary_memory

    n_neurons = config.params.n_neurons
    input_spikes = np.mean([len(s.units) for s in splits.test.samples])
    layer_spikes = float(test.sum(axis=(1, 2)).mean())
    # Every input spike reaches all neurons; every layer spike inhibits all others.
    synops = input_spikes * n_neurons + layer_spikes * (n_neurons - 1)
    train_time = float(np.sum(history["epoch_seconds"]))
    ds = xr.Dataset(
        {
            **results.accuracy_vars(history["val_logistic"], history["train_logistic"]),
            "val_accuracy_assignment": ("epoch", np.asarray(history["val_assignment"]),
                                        {"units": "1", "long_name": "validation accuracy, label-assignment readout"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]),
                              {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            "test_accuracy": results.scalar(test_logistic, "1", "test accuracy, logistic readout on binned counts"),
            "test_accuracy_assignment": results.scalar(test_assign, "1", "test accuracy, label-assignment readout"),
            "best_epoch": results.scalar(int(best["epoch"]) + 1, "1", "epoch chosen on validation (1-based)"),
            "readout_C": results.scalar(logistic.C, "1", "inverse regularisation of the logistic readout"),
            "input_spikes_per_sample": results.scalar(input_spikes, "1", "input spikes per test sample"),
            "spikes_per_sample": results.scalar(layer_spikes, "1", "excitatory-layer spikes per test sample"),
            "synaptic_operations_per_sample": results.scalar(
                synops, "1", "synaptic events per test sample (input fan-out plus lateral inhibition)"),
            "trainable_parameters": results.scalar(n_in * n_neurons + n_neurons, "1",
                                                  "plastic weights and adaptive thresholds"),
            "train_seconds": results.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            "train_samples_per_second": results.scalar(
                len(splits.train) * len(history["epoch_seconds"]) / max(train_time, 1e-9), "1/s",
                "training throughput including response extraction"),
            **results.build_vars(build_seconds, reused, chunk_size),
            "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
            **results.memory_vars(binary_mib),
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
    return job.finish(ds, device=config.device)


def summarize(ds: xr.Dataset) -> str:
    return (f"test accuracy: logistic readout {float(ds.test_accuracy):.3f}, "
            f"label assignment {float(ds.test_accuracy_assignment):.3f} "
            f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")


SPEC = RuleSpec(
    name=RULE, config=STDPStudyConfig, run=run, summarize=summarize, params=STDPParams, estimator=STDPTransformer,
    run_arg_constants=tuple(name.removeprefix("lif.") for name in STDPNetwork.RUN_ARG_CONSTANTS),
    locality="local", compare_defaults={"n_neurons": 100, "epochs": 1},
    search_space={
        "a_plus": Float("0.002 mV", "0.05 mV", log=True),  # learning rate
        "theta_plus": Float("0.01 mV", "0.5 mV", log=True),
        "w_inhibition": Float("1 mV", "20 mV", log=True),
        "tau_mem": Float("8 ms", "100 ms", log=True),
        "n_bins": Int(1, 20, log=True),  # time bins of the logistic readout's features
        "n_neurons": Int(25, 400, log=True),  # network size budget: at most 400 neurons
    },
)


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    # the imported module, not this __main__ copy, so that worker processes find it by name
    from studies import stdp_shd

    run_main(stdp_shd.main)
