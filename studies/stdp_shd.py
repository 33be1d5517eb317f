"""Unsupervised STDP (Diehl & Cook 2015) on spiking audio, against the same network before learning.

    python studies/stdp_shd.py --device cpp_standalone

Builds the network of :mod:`learning_rules.stdp` (the paper's constants by default) and reads out
two things with learning switched off: the paper's label assignment and a logistic readout of
time-binned counts. First the network with its initial weights frozen (``--frozen-control``, on by
default: the control every figure is compared with, same seed, same split), then after each of
``--epochs`` passes of STDP; the epoch with the best validation accuracy is tested once. The
results file holds both networks' readouts, the number of neurons active per test sample (how
hard the winner-take-all is), the weights before and after learning and the thresholds.
``--no-learn`` skips learning altogether (the learning-off ablation: its figures are the frozen
network's). Writes one results file and prints its path.
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
from learning_rules.stdp import STDPNetwork, STDPParams, STDPTransformer, active_neurons, learning_state_bytes
from models.engine.compiled import BuildCache
from models.engine.devices import DEVICES
from models.engine.inputs import balanced_chunk_size, chunk_capacity
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Choice, Float, Int

RULE = "stdp"


@dataclass(frozen=True)
class STDPStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=0.5 * ms))  # time step (the paper's code: 0.5 ms), duration, pooling
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device
    epochs: int = 5  # passes over the training set with STDP on
    max_train_seconds: float | None = None  # stop after the epoch that passes this training wall time (it is scored); none: no cap
    learn: bool = True  # STDP on; off: the initial weights stay frozen (the learning-off ablation)
    frozen_control: bool = True  # also read out the same network with its initial weights frozen
    n_bins: int = 5  # time bins of the logistic readout's features
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    workers: int = 2  # processes presenting samples at once when nothing learns
    params: STDPParams = dataclasses.field(default_factory=STDPParams)  # network constants (Diehl & Cook 2015)

    def __post_init__(self):
        self.input.check_bins(self.n_bins)  # before any data is read or code is built


def _readouts(train, val, y_train, y_val, n_classes, seed):
    assign = LabelAssignment().fit(train.sum(axis=1), y_train, n_classes)
    logistic = fit_logistic_readout(train.reshape(len(train), -1), y_train, val.reshape(len(val), -1), y_val,
                                    seed=seed)
    return assign, logistic


def _test(train, val, test, y, n_classes, seed):
    """Both readouts fitted on training (C chosen on validation), scored once on test."""
    assign, logistic = _readouts(train, val, y["train"], y["val"], n_classes, seed)
    predicted = predict_readout(logistic, test.reshape(len(test), -1))
    return dict(logistic=float(np.mean(predicted == y["test"])), assignment=assign.score(test.sum(axis=1), y["test"]),
                val_logistic=logistic.val_accuracy, val_assignment=assign.score(val.sum(axis=1), y["val"]),
                predicted=predicted, C=logistic.C)


def run(config: STDPStudyConfig, cache: BuildCache | None = None) -> xr.Dataset:
    """Read out the frozen network, train, choose the epoch on validation, test once; ``cache`` lets a
    scan worker reuse its binary."""
    job = Run(RULE, config)
    seed = config.run.seed
    splits = job.load_splits(config.input)
    n_in, n_classes = splits.n_channels, splits.n_classes
    y = {"train": splits.train.labels, "val": splits.val.labels, "test": splits.test.labels}
    sets = {"train": splits.train, "val": splits.val, **({} if job.validation_only else {"test": splits.test})}
    state = job.load_checkpoint()
    workers = config.workers

    chunk_size = balanced_chunk_size([len(splits.train), len(splits.val), job.n_test], config.chunk_size)
    if state is not None and "chunk_size" in state:  # a resumed run goes on in the chunks it began with (the
        chunk_size = int(state["chunk_size"])        # test subset's size, which a trial ignores, may differ)
    capacity = chunk_capacity([d.samples for d in sets.values()], chunk_size, n_in)
    with job.build_folder() as build_dir:
        net = STDPNetwork(config.params, n_in, sample_duration=config.input.duration, dt=config.input.dt,
                          chunk_size=chunk_size, capacity=capacity, n_bins=config.n_bins,
                          device_name=config.device, build_dir=build_dir, seed=seed, cache=cache)
        initial_weights = net.initial_weights_.copy()

        # The same network before learning: its responses, saved so that a resumed run skips them.
        frozen, frozen_seconds = None, 0.0  # seconds: presenting training and validation samples
        if (config.frozen_control and not job.validation_only) or not config.learn:  # a trial scores no control
            saved = job.load_checkpoint("frozen.npz")
            if saved is not None:
                frozen = {name: saved[name] for name in sets}
                frozen_seconds = float(saved.get("seconds", np.nan))  # nan: a checkpoint from before it was kept
                job.note_resume("with the frozen network's responses already presented")
            else:
                frozen = {}
                for name, d in sets.items():
                    t_set = time.perf_counter()
                    frozen[name] = net.present(d.samples, learn=False, progress=f"frozen network ({name})",
                                               workers=workers)
                    frozen_seconds += (time.perf_counter() - t_set) if name != "test" else 0.0
                job.save_checkpoint("frozen.npz", **frozen, seconds=frozen_seconds)

        keys = ("val_logistic", "val_assignment", "train_logistic", "epoch_seconds", "presentations", "weight_change")
        history = {k: [] for k in keys}
        epoch, chunk, elapsed = 0, 0, 0.0
        best = None
        if state is not None:
            net.weights_, net.theta_ = state["weights"], state["theta"] * volt
            epoch, chunk, elapsed = int(state["epoch"]), int(state["chunk"]), float(state["elapsed"])
            history = {k: list(state[f"history_{k}"]) for k in history}
            if "best_weights" in state:
                best = {k: state[f"best_{k}"] for k in ("weights", "theta", "train", "val", "epoch")}
            job.note_resume(f"at epoch {epoch + 1}, chunk {chunk}")
            job.restored_epochs(history["val_logistic"])

        def save(epoch_, chunk_, elapsed_):
            arrays = dict(weights=net.weights_, theta=net.theta_ / volt, epoch=epoch_, chunk=chunk_,
                          chunk_size=chunk_size, elapsed=elapsed_, **{f"history_{k}": v for k, v in history.items()})
            if best is not None:
                arrays.update({f"best_{k}": v for k, v in best.items()})
            job.save_checkpoint(**arrays)

        epochs = config.epochs if config.learn else 0
        # the budget is checked as an epoch starts: an epoch a killed run began (chunk > 0) is finished,
        # as the uninterrupted run finished it, although its saved seconds may pass the budget
        while epoch < epochs and (chunk > 0 or not job.over_time_budget([elapsed])):
            t_epoch = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(len(splits.train))
            samples = [splits.train.samples[i] for i in order]
            net.present(samples, learn=True, progress=f"epoch {epoch + 1}/{epochs} STDP", start_chunk=chunk,
                        on_chunk=lambda c: save(epoch, c + 1, elapsed + time.perf_counter() - t_epoch))
            presentations = float(net.presentations_.mean()) if len(net.presentations_) else np.nan
            train = net.present(splits.train.samples, learn=False, progress="responses (train)", workers=workers)
            val = net.present(splits.val.samples, learn=False, progress="responses (validation)", workers=workers)
            assign, logistic = _readouts(train, val, y["train"], y["val"], n_classes, seed)
            history["val_logistic"].append(logistic.val_accuracy)
            history["train_logistic"].append(logistic.train_accuracy)
            history["val_assignment"].append(assign.score(val.sum(axis=1), y["val"]))
            history["presentations"].append(presentations)
            history["weight_change"].append(float(np.mean(np.abs(net.weights_ - initial_weights))))
            history["epoch_seconds"].append(time.perf_counter() - t_epoch)
            elapsed += time.perf_counter() - t_epoch
            if best is None or logistic.val_accuracy > float(np.max(history["val_logistic"][:-1], initial=-1)):
                best = dict(weights=net.weights_.copy(), theta=net.theta_ / volt, train=train, val=val, epoch=epoch)
            epoch, chunk = epoch + 1, 0
            save(epoch, chunk, elapsed)
            print(f"epoch {epoch}: validation accuracy logistic {logistic.val_accuracy:.3f}, "
                  f"assignment {history['val_assignment'][-1]:.3f}", file=sys.stderr)
            job.end_epoch(epoch, logistic.val_accuracy)

        if job.validation_only:
            if not history["val_logistic"]:  # nothing learned: the frozen network is the one scored
                _, logistic = _readouts(frozen["train"], frozen["val"], y["train"], y["val"], n_classes, seed)
                history.update(val_logistic=[logistic.val_accuracy], train_logistic=[logistic.train_accuracy])
            return job.finish_validation(history["val_logistic"], float(np.sum(history["epoch_seconds"])), config.device,
                                         history["train_logistic"])
        if best is None:  # nothing learned: the frozen network is the one tested
            best = dict(weights=initial_weights, theta=np.zeros(config.params.n_neurons), train=frozen["train"],
                        val=frozen["val"], epoch=-1)
        # Test once, at the epoch chosen on validation.
        net.weights_, net.theta_ = best["weights"], best["theta"] * volt
        if best["epoch"] >= 0:
            test = net.present(splits.test.samples, learn=False, progress="responses (test)", workers=workers)
            test_presentations = net.presentations_
        else:
            test = frozen["test"]
            test_presentations = np.full(len(test), np.nan)
        trained = _test(best["train"], best["val"], test, y, n_classes, seed)
        t_fit = time.perf_counter()
        control = _test(frozen["train"], frozen["val"], frozen["test"], y, n_classes, seed) if frozen else None
        control_seconds = frozen_seconds + time.perf_counter() - t_fit  # the frozen network's training cost
        build_seconds, reused = net.build_seconds, net.reused_binary
        binary_mib = net.compiled.peak_binary_memory

    n_neurons = config.params.n_neurons
    input_spikes = np.mean([len(s.units) for s in splits.test.samples])
    layer_spikes = float(test.sum(axis=(1, 2)).mean())
    # Every input spike reaches all neurons; every layer spike reaches its inhibitory neuron, which
    # (about once per layer spike) inhibits all other excitatory neurons.
    synops = input_spikes * n_neurons + layer_spikes * n_neurons
    # Training time: every epoch (STDP, responses, readout fit); when the frozen network is the one tested,
    # presenting it the training and validation samples and fitting its readouts, as the liquid counts it.
    train_time = float(np.sum(history["epoch_seconds"])) if best["epoch"] >= 0 else control_seconds
    if history["val_logistic"]:
        epoch_coord = np.arange(1, len(history["val_logistic"]) + 1)
    else:  # no learning: one "epoch 0", the frozen network
        epoch_coord = np.array([0])
        history.update(val_logistic=[control["val_logistic"]], train_logistic=[np.nan],
                       val_assignment=[control["val_assignment"]], epoch_seconds=[0.0], presentations=[np.nan],
                       weight_change=[0.0])

    def per_epoch(name, units, long_name):
        return ("epoch", np.asarray(history[name], dtype=float), {"units": units, "long_name": long_name})

    data = {
        **results.accuracy_vars(history["val_logistic"], history["train_logistic"]),
        "val_accuracy_assignment": per_epoch("val_assignment", "1", "validation accuracy, label-assignment readout"),
        "epoch_seconds": per_epoch("epoch_seconds", "s", "wall time of the epoch (training and validation)"),
        "presentations_per_sample": per_epoch("presentations", "1",
                                              "presentations per training sample (again while the layer is nearly silent)"),
        "weight_change": per_epoch("weight_change", "1", "mean absolute change of the input weights since the start"),
        "test_accuracy": results.scalar(trained["logistic"], "1", "test accuracy, logistic readout on binned counts"),
        "test_accuracy_assignment": results.scalar(trained["assignment"], "1", "test accuracy, label-assignment readout"),
        "best_epoch": results.scalar(int(best["epoch"]) + 1, "1", "epoch chosen on validation (1-based; 0: no learning)"),
        "learned": results.scalar(int(best["epoch"] >= 0), "1", "1 if the tested network learned, 0 if it is the frozen one"),
        "readout_C": results.scalar(trained["C"], "1", "inverse regularisation of the logistic readout"),
        "active_neurons": ("test_sample", active_neurons(test),
                           {"units": "1", "long_name": "excitatory neurons that fired during the test sample"}),
        "test_presentations": ("test_sample", np.asarray(test_presentations, dtype=float),
                               {"units": "1", "long_name": "presentations of the test sample (NaN: not presented again)"}),
        "input_spikes_per_sample": results.scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": results.scalar(layer_spikes, "1", "excitatory-layer spikes per test sample"),
        "synaptic_operations_per_sample": results.scalar(
            synops, "1", "synaptic events per test sample (input fan-out plus lateral inhibition)"),
        "trainable_parameters": results.scalar(n_in * n_neurons + n_neurons, "1",
                                              "plastic weights and adaptive thresholds"),
        "train_seconds": results.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
        "train_samples_per_second": results.scalar(
            len(splits.train) * max(len(history["epoch_seconds"]), 1) / max(train_time, 1e-9), "1/s",
            "training throughput including response extraction"),
        **results.build_vars(build_seconds, reused, chunk_size),
        "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
        **results.memory_vars(binary_mib),
        "confusion": (("true_class", "predicted_class"),
                      confusion_matrix(y["test"], trained["predicted"], labels=np.arange(n_classes)),
                      {"units": "1", "long_name": "test confusion matrix, logistic readout"}),
        "weights": (("input", "neuron"), best["weights"],
                    {"units": "1", "long_name": "input weights at the chosen epoch (conductance / leak conductance)"}),
        "initial_weights": (("input", "neuron"), initial_weights,
                            {"units": "1", "long_name": "input weights before learning (the frozen network's)"}),
        "theta": ("neuron", np.asarray(best["theta"]) * 1e3,
                  {"units": "mV", "long_name": "adaptive threshold increase at the chosen epoch"}),
        "test_counts": (("test_sample", "time_bin", "neuron"), test,
                        {"units": "1", "long_name": "spike counts of the layer per test sample and time bin"}),
        **results.prediction_vars(trained["predicted"], y["test"]),
        **results.readout_macs(test.shape[1] * test.shape[2], n_classes),
        **results.learning_state_vars({**(learning_state_bytes(config.params, n_in) if config.learn else {}),
                                       **results.readout_features_bytes(len(splits.train), test.shape[1] * test.shape[2])}),
    }
    if control is not None:
        data.update({
            "test_accuracy_frozen": results.scalar(control["logistic"], "1",
                                                   "test accuracy, logistic readout, network with its initial weights frozen"),
            "test_accuracy_assignment_frozen": results.scalar(
                control["assignment"], "1", "test accuracy, label-assignment readout, network with its initial weights frozen"),
            "val_accuracy_frozen": results.scalar(control["val_logistic"], "1", "validation accuracy, logistic readout, frozen network"),
            "val_accuracy_assignment_frozen": results.scalar(control["val_assignment"], "1",
                                                             "validation accuracy, label-assignment readout, frozen network"),
            "active_neurons_frozen": ("test_sample", active_neurons(frozen["test"]),
                                      {"units": "1", "long_name": "excitatory neurons that fired during the test sample, frozen network"}),
            "spikes_per_sample_frozen": results.scalar(float(frozen["test"].sum(axis=(1, 2)).mean()), "1",
                                                       "excitatory-layer spikes per test sample, frozen network"),
        })
    ds = xr.Dataset(data, coords={"epoch": epoch_coord})
    return job.finish(ds, device=config.device)


def summarize(ds: xr.Dataset) -> str:
    line = (f"test accuracy: logistic readout {float(ds.test_accuracy):.3f}, "
            f"label assignment {float(ds.test_accuracy_assignment):.3f}")
    if "test_accuracy_frozen" in ds:
        line += (f"; frozen initial network {float(ds.test_accuracy_frozen):.3f}, "
                 f"{float(ds.test_accuracy_assignment_frozen):.3f}")
    return line + (f"; {float(ds.active_neurons.mean()):.1f} neurons active per sample "
                   f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")


SPEC = RuleSpec(
    name=RULE, config=STDPStudyConfig, run=run, summarize=summarize, params=STDPParams, estimator=STDPTransformer,
    run_arg_constants=tuple(name.removeprefix("lif.") for name in STDPNetwork.RUN_ARG_CONSTANTS),
    # the comparison runs the learning-off control itself (ablation), so the study's own is off there
    locality="local", compare_defaults={"n_neurons": 100, "frozen_control": False},
    ablation={"learn": False},
    search_space={
        "eta": Float(1e-3, 0.1, log=True),  # learning rate of eq. 4
        "theta_plus": Float("0.01 mV", "0.5 mV", log=True),
        "w_ie": Float(5.0, 40.0, log=True),  # lateral inhibition strength
        "tau_mem_e": Float("50 ms", "200 ms", log=True),
        "input_gain": Float(0.5, 4.0, log=True),  # input strength of the first presentation
        "n_bins": Choice(1, 2, 4, 5, 8, 10, 20),  # readout time bins; each divides 1 s at 0.5 ms and 0.1 ms
        "n_neurons": Int(25, 400, log=True),  # network size budget: at most 400 neurons
    },
)


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    # the imported module, not this __main__ copy, so that worker processes find it by name
    from studies import stdp_shd

    run_main(stdp_shd.main)
