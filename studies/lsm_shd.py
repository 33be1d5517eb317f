"""A liquid state machine: a fixed spiking reservoir, two readouts and a no-reservoir control.

    python studies/lsm_shd.py --device cpp_standalone

Simulates every sample of each split through one compiled reservoir (chunks of samples, state reset
at each sample start, chunks spread over ``--workers`` processes), then fits on the training split
and chooses on the validation split: (1) a logistic readout of the reservoir's time-binned spike
counts; (2) the spike-time readout (:mod:`learning_rules.spike_time_readout`): least squares on the
reservoir's windowed spike counts and spike-train inner products, terms chosen by forward orthogonal
regression as in Florescu & Coca (2019), which is all it takes from that paper; and, as the control, (3) the same logistic readout on the input's own
time-binned spike counts. Test accuracies of all three go into one results file.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second
from sklearn.metrics import confusion_matrix

from datasets import Preprocessing, spike_counts
from learning_rules.lsm import Liquid, LiquidTransformer, ReservoirParams
from learning_rules.readout import fit_logistic_readout, predict_readout, score_readout
from learning_rules.spike_time_readout import SpikeTrainInnerProductReadout
from models.engine.compiled import BuildCache
from models.engine.devices import DEVICES
from models.engine.inputs import balanced_chunk_size, chunk_capacity
from models.units import const
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Choice, Float, Int

RULE = "lsm"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LSMStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=0.1 * ms))  # time step, duration, pooling
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device
    n_bins: int = 10  # time bins of the count features
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    workers: int = 2  # processes simulating chunks at once
    spike_time_readout: bool = True  # also fit the spike-time readout (records reservoir spikes)
    ofr_tau: Quantity = const(5 * ms)  # filter time constant of the spike-train inner product (coincidence scale)
    ofr_windows: int = 4  # windows per sample of the spike-time readout's terms
    ofr_pool: int = 30  # neurons whose pairwise inner products are candidate terms
    params: ReservoirParams = dataclasses.field(default_factory=ReservoirParams)  # the liquid

    def __post_init__(self):
        self.input.check_bins(self.n_bins)  # before any data is read or code is built


def _pack_spikes(trains):
    sizes = np.array([len(u) for u, _ in trains], dtype=np.int64)
    units = np.concatenate([u for u, _ in trains]) if trains else np.zeros(0, np.int64)
    times = np.concatenate([t for _, t in trains]) if trains else np.zeros(0)
    return sizes, units, times


def _unpack_spikes(sizes, units, times):
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [(units[a:b], times[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def run(config: LSMStudyConfig, cache: BuildCache | None = None) -> xr.Dataset:
    """Simulate every split, fit the readouts on training, choose on validation, test once."""
    job = Run(RULE, config)
    seed, duration = config.run.seed, config.input.duration
    splits = job.load_splits(config.input)
    sets = {"train": splits.train, "val": splits.val, **({} if job.validation_only else {"test": splits.test})}
    record_spikes = config.spike_time_readout and not job.validation_only  # a trial is scored on the logistic readout
    n_in, n_classes, n_res = splits.n_channels, splits.n_classes, config.params.n_neurons
    chunk_size = balanced_chunk_size([len(splits.train), len(splits.val), job.n_test], config.chunk_size)
    capacity = chunk_capacity([d.samples for d in sets.values()], chunk_size, n_in)
    responses, seconds = {}, {}
    with job.build_folder() as build_dir:
        liquid = Liquid(config.params, n_in, sample_duration=duration, dt=config.input.dt,
                        chunk_size=chunk_size, capacity=capacity, n_bins=config.n_bins,
                        device_name=config.device, build_dir=build_dir, seed=seed,
                        record_spikes=record_spikes, cache=cache)
        for name, data in sets.items():
            saved = job.load_checkpoint(f"{name}.npz")
            if saved is not None:
                responses[name] = {"counts": saved["counts"]}
                if record_spikes:
                    responses[name]["spikes"] = _unpack_spikes(saved["sizes"], saved["units"], saved["times"])
                seconds[name] = float(saved["seconds"])
                job.note_resume(f"with the {name} responses already simulated")
                continue
            t0 = time.perf_counter()
            responses[name] = liquid.responses(data.samples, progress=f"reservoir ({name})", workers=config.workers)
            seconds[name] = time.perf_counter() - t0
            arrays = dict(counts=responses[name]["counts"], seconds=seconds[name])
            if record_spikes:
                arrays.update(zip(("sizes", "units", "times"), _pack_spikes(responses[name]["spikes"])))
            job.save_checkpoint(f"{name}.npz", **arrays)
        build_seconds, reused = liquid.build_seconds, liquid.reused_binary
        binary_mib = liquid.compiled.peak_binary_memory
        if not job.validation_only:
            synops = liquid.synaptic_operations(splits.test.samples, responses["test"]["counts"])

    t_readout = time.perf_counter()
    labels = {name: d.labels for name, d in sets.items()}
    feats = {name: r["counts"].reshape(len(r["counts"]), -1) for name, r in responses.items()}
    logistic = fit_logistic_readout(feats["train"], labels["train"], feats["val"], labels["val"], seed=seed)
    if job.validation_only:
        return job.finish_validation([logistic.val_accuracy], seconds["train"] + seconds["val"] + time.perf_counter() - t_readout,
                                     config.device, [logistic.train_accuracy])
    predicted = predict_readout(logistic, feats["test"])
    test_logistic = float(np.mean(predicted == labels["test"]))
    raw = {name: spike_counts(d.samples, n_in, config.n_bins, duration) for name, d in sets.items()}
    control = fit_logistic_readout(raw["train"], labels["train"], raw["val"], labels["val"], seed=seed)
    test_control = score_readout(control, raw["test"], labels["test"])
    data = {
        "val_accuracy": ("epoch", [logistic.val_accuracy], {"units": "1", "long_name": "validation accuracy, logistic readout of the reservoir"}),
        "test_accuracy": results.scalar(test_logistic, "1", "test accuracy, logistic readout of reservoir spike counts"),
        "test_accuracy_control": results.scalar(test_control, "1", "test accuracy, same readout on the input spike counts (no reservoir)"),
        "val_accuracy_control": results.scalar(control.val_accuracy, "1", "validation accuracy of the control readout"),
        "readout_C": results.scalar(logistic.C, "1", "inverse regularisation of the logistic readout"),
        "neurons_used": results.scalar(n_res, "1", "reservoir neurons the logistic readout uses"),
    }
    if config.spike_time_readout:
        ofr = SpikeTrainInnerProductReadout(n_res, n_select=min(200, n_res), tau=config.ofr_tau, duration=duration,
                                            n_windows=config.ofr_windows, n_pool=config.ofr_pool)
        ofr.fit(responses["train"]["spikes"], labels["train"])
        scores = ofr.choose_n_select(responses["val"]["spikes"], labels["val"])
        test_ofr = float(np.mean(ofr.predict(responses["test"]["spikes"]) == labels["test"]))
        data.update({
            "test_accuracy_spike_time": results.scalar(test_ofr, "1", "test accuracy, spike-time readout (inner products, ERR selection)"),
            "neurons_used_spike_time": results.scalar(len(ofr.selected_neurons_), "1", "reservoir neurons the spike-time readout reads (terms chosen on validation)"),
            "terms_used_spike_time": results.scalar(len(ofr.selected_), "1", "terms of the spike-time readout (chosen on validation)"),
            "val_accuracy_spike_time": ("n_selected", list(scores.values()), {"units": "1", "long_name": "validation accuracy of the spike-time readout"}),
            "selection_neuron": ("rank", ofr.terms_[ofr.order_, 0], {"units": "1", "long_name": "reservoir neuron of each term, in the order forward orthogonal regression chose them"}),
            "selection_partner": ("rank", ofr.terms_[ofr.order_, 1], {"units": "1", "long_name": "second neuron of an inner-product term (-1: a filtered count)"}),
            "selection_window": ("rank", ofr.terms_[ofr.order_, 2], {"units": "1", "long_name": "window of each chosen term"}),
        })
    readout_seconds = time.perf_counter() - t_readout
    counts_test = responses["test"]["counts"]
    rates = counts_test.sum(axis=1).mean(axis=0) / float(duration / second)
    input_spikes = float(np.mean([len(s.units) for s in splits.test.samples]))
    extraction = sum(seconds.values())
    data.update({
        "input_spikes_per_sample": results.scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": results.scalar(float(counts_test.sum(axis=(1, 2)).mean()), "1", "reservoir spikes per test sample"),
        "synaptic_operations_per_sample": results.scalar(float(synops.mean()), "1", "synaptic events per test sample (input and recurrent)"),
        "reservoir_rate": ("neuron", rates, {"units": "Hz", "long_name": "firing rate of each reservoir neuron (test set)"}),
        "silent_fraction": results.scalar(float(np.mean(rates == 0)), "1", "fraction of reservoir neurons silent on the test set"),
        "trainable_parameters": results.scalar(n_res * config.n_bins * n_classes + n_classes, "1", "readout weights (the reservoir is fixed)"),
        "network_weights": results.scalar(len(liquid.input_pre_) + len(liquid.pre_), "1",
                                          "synaptic weights of the reservoir, input and recurrent (fixed)"),
        "extraction_seconds": results.scalar(extraction, "s", "wall time simulating all splits"),
        "train_seconds": results.scalar(seconds["train"] + seconds["val"] + readout_seconds, "s",
                                       "training wall time: simulating train and validation, fitting and choosing readouts"),
        "samples_per_second": results.scalar(sum(len(d) for d in sets.values()) / max(extraction, 1e-9), "1/s",
                                            f"reservoir simulation throughput with {config.workers} processes"),
        **results.build_vars(build_seconds, reused, chunk_size),
        "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
        **results.memory_vars(binary_mib),
        "confusion": (("true_class", "predicted_class"), confusion_matrix(labels["test"], predicted, labels=np.arange(n_classes)),
                      {"units": "1", "long_name": "test confusion matrix, logistic readout"}),
        **results.prediction_vars(predicted, labels["test"]),
        **results.readout_macs(feats["test"].shape[1], n_classes),
        **results.learning_state_vars(results.readout_features_bytes(len(feats["train"]), feats["train"].shape[1])),
        "test_counts": (("shown_test_sample", "time_bin", "neuron"), counts_test[:20],
                        {"units": "1", "long_name": "reservoir spike counts of the first (up to 20) test samples"}),
    })
    ds = xr.Dataset(data, coords={"epoch": [1]})
    return job.finish(ds, device=config.device)


def summarize(ds: xr.Dataset) -> str:
    line = (f"test accuracy: reservoir + logistic {float(ds.test_accuracy):.3f}, "
            f"input counts alone {float(ds.test_accuracy_control):.3f}")
    if "test_accuracy_spike_time" in ds:
        line += (f", spike-time readout {float(ds.test_accuracy_spike_time):.3f} "
                 f"({int(ds.neurons_used_spike_time)} neurons)")
    return line + f" (chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})"


SPEC = RuleSpec(
    name=RULE, config=LSMStudyConfig, run=run, summarize=summarize, params=ReservoirParams,
    estimator=LiquidTransformer,
    run_arg_constants=tuple(name.removeprefix("lif.") for name in Liquid.RUN_ARG_CONSTANTS),
    locality="local (readout only)", compare_defaults={"n_neurons": 500},
    scan_defaults={"spike_time_readout": False},
    search_space={
        "weight_scale": Float(0.25, 4.0, log=True),  # recurrent strength (quiet < 1 < saturated)
        "w_input": Float("1 mV", "8 mV", log=True),
        "p_connect": Float(0.02, 0.3, log=True),
        "tau_mem": Float("8 ms", "80 ms", log=True),
        # time bins of the readout's count features: counts that divide any multiple of 100 steps (a 1 s
        # sample at 10, 1 or 0.1 ms), since the network counts in bins of whole steps
        "n_bins": Choice(1, 2, 4, 5, 10, 20, 25, 50),
        "n_neurons": Int(100, 1000, log=True),  # network size budget: at most 1,000 neurons
    },
)


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    from studies import lsm_shd

    run_main(lsm_shd.main)
