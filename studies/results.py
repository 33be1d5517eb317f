"""The parts of a results file that every study writes alike: provenance attributes, scalars with
units, per-epoch accuracies, build and memory figures, and the test results of a classifier.
The schema is documented in ``docs/results-schema.md``."""

from __future__ import annotations

import contextlib
import json
import platform
import resource
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity

from models.units import config_json

PACKAGES = ("brian2", "brian2cuda", "torch", "numpy", "xarray", "scikit-learn", "tonic", "brian2hears")


def git_commit() -> str:
    folder = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=folder)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=folder).stdout.strip()
        return (commit + ("+dirty" if dirty else "")) if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> str:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return json.dumps(versions, sort_keys=True)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: The conventions results files follow (netCDF Climate and Forecast conventions, version 1.8).
CONVENTIONS = "CF-1.8"


def stamp(ds: xr.Dataset, started: str, **overrides) -> xr.Dataset:
    """What every results file carries (``docs/results-schema.md``): the conventions, where, how and
    when it was made (:func:`provenance`, with ``overrides``), and labelled coordinates."""
    ds.attrs.update(Conventions=CONVENTIONS, **{**provenance(started), **overrides})
    return label_coordinates(ds)


def integers_with_gaps(ds: xr.Dataset, *names: str) -> xr.Dataset:
    """Store the whole-number variables ``names`` as integers on disk although some values are missing
    (NaN in memory): a missing value is written as -1, the variable's ``_FillValue``, and xarray reads
    it back as NaN."""
    for name in names:
        if name in ds:
            ds[name].encoding.update(dtype="int64", _FillValue=-1)
    return ds


def hardware() -> str:
    """The machine behind the timings, as JSON: processor, usable cores, memory, and the load
    averages (1, 5 and 15 minutes) when the file was written: timings on a loaded machine are slower."""
    import os

    from models.engine.build_store import cpu_info

    model = cpu_info("model name").get("model name") or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = None
    with contextlib.suppress(ImportError):
        import psutil

        memory = round(psutil.virtual_memory().total / 2 ** 30, 1)
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    torch = sys.modules.get("torch")  # threads PyTorch used, where the run used it (not imported here for it)
    threads = {"torch_threads": torch.get_num_threads()} if torch is not None else {}
    return json.dumps({"processor": model, "usable_cores": cores, "memory_gib": memory, "load_average_1_5_15_min": load,
                       **threads})


def provenance(started: str) -> dict:
    """Global attributes saying what made a file, where, on what and when."""
    return dict(git_commit=git_commit(), package_versions=package_versions(), host=socket.gethostname(),
                hardware=hardware(), command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]), start_time=started,
                end_time=now())


def scalar(value, units: str, long_name: str):
    """A variable without dimensions; whole numbers stay integers."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    number = int(value) if isinstance(value, (int, np.integer)) else float(value)
    return ((), number, {"units": units, "long_name": long_name})


#: What each coordinate means (counts and indices, units "1", except the named ones).
COORDINATES = dict(
    epoch="training epoch (1-based)", test_sample="index of the test sample", true_class="class of the sample",
    predicted_class="class predicted", time_bin="time bin within the sample", neuron="neuron index",
    input="input channel", rank="rank in the order of selection", n_selected="terms selected by the readout",
    rule="learning rule", seed="seed of the run", channel="input channel", time_bins="time bins of the count features",
    count_bins="time bins of the count features", workers="worker processes", implementation="implementation timed",
    sequence_steps="time steps per sample", trial="trial number in the search", parameter="tuned option",
    dataset="dataset", network="network read out (trained, or frozen at its initial weights)",
    readout="readout of the network's spike counts",
)
NAMED = ("rule", "implementation", "dataset", "network", "readout")


def label_coordinates(ds: xr.Dataset) -> xr.Dataset:
    """Give every coordinate its ``units`` and ``long_name`` (those it lacks)."""
    for name in ds.coords:
        ds[name].attrs.setdefault("long_name", COORDINATES.get(name, name.replace("_", " ")))
        if name not in NAMED and ds[name].dtype.kind in "iuf":
            ds[name].attrs.setdefault("units", "1")
    return ds


def accuracy_vars(val_accuracy, train_accuracy=None) -> dict:
    """Per-epoch accuracy variables with their attributes."""
    out = {"val_accuracy": ("epoch", np.asarray(val_accuracy, dtype=float),
                            {"units": "1", "long_name": "validation accuracy"})}
    if train_accuracy is not None:
        out["train_accuracy"] = ("epoch", np.asarray(train_accuracy, dtype=float),
                                 {"units": "1", "long_name": "training accuracy"})
    return out


def train_samples_var(train_samples) -> tuple:
    """The training samples each epoch learned from (fewer than the training set in an epoch that a
    wall-time budget stopped on the way)."""
    return ("epoch", np.asarray(train_samples, dtype=int),
            {"units": "1", "long_name": "training samples the epoch learned from"})


def build_vars(build_seconds: float, reused_binary: bool, chunk_size: int) -> dict:
    """Results variables saying what building the Brian2 network cost and how it ran."""
    return {
        "chunk_size": scalar(int(chunk_size), "1", "samples per run of the binary"),
        "build_seconds": scalar(build_seconds, "s", "code generation and compilation (0 when reused)"),
        "reused_binary": scalar(int(reused_binary), "1",
                                "1 when the run reused a binary compiled earlier in its process (scan workers)"),
    }


def memory_vars(binary_mib: float = 0.0) -> dict:
    """Peak resident memory of this process and of the simulator binary (polled while it ran;
    0 where there is none). The compiler's memory is not counted."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "peak_memory": scalar(own, "MiB", "peak resident memory of the Python process"),
        "peak_memory_children": scalar(binary_mib, "MiB", "peak resident memory of the simulator binary"),
    }


def classifier_vars(splits, predicted: np.ndarray, hidden_counts: np.ndarray, *, n_hidden: int,
                    recurrent: bool, n_parameters: int, best_epoch: int) -> dict:
    """Test results of a recurrent spiking classifier (e-prop, BPTT): accuracy, the chosen epoch,
    spikes and synaptic events per test sample, parameters, confusion matrix, predictions."""
    from sklearn.metrics import confusion_matrix

    y_test, n_classes = splits.test.labels, splits.n_classes
    input_spikes = float(np.mean([len(s.units) for s in splits.test.samples]))
    hidden_spikes = float(np.asarray(hidden_counts).sum(axis=1).mean())
    fan_out = n_hidden * bool(recurrent) + n_classes
    return {
        "test_accuracy": scalar(float(np.mean(predicted == y_test)), "1", "test accuracy at the epoch chosen on validation"),
        "best_epoch": scalar(int(best_epoch), "1", "epoch chosen on validation (1-based)"),
        "input_spikes_per_sample": scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": scalar(hidden_spikes, "1", "hidden-layer spikes per test sample"),
        "synaptic_operations_per_sample": scalar(
            input_spikes * n_hidden + hidden_spikes * fan_out, "1",
            "synaptic events per test sample (input and hidden spikes times their fan-out)"),
        "trainable_parameters": scalar(n_parameters, "1", "trainable weights"),
        "confusion": (("true_class", "predicted_class"), confusion_matrix(y_test, predicted, labels=np.arange(n_classes)),
                      {"units": "1", "long_name": "test confusion matrix"}),
        **prediction_vars(predicted, y_test),
    }


def learning_state_vars(components: dict[str, float]) -> dict:
    """The state a rule keeps in order to learn, computed from the network's size (``{what: bytes}``):
    what the update needs beyond inference and beyond the per-weight gradient and optimiser moments
    that every gradient rule keeps alike (BPTT: hidden states of every step; e-prop: eligibility
    traces per synapse; STDP: traces per neuron; offline readouts: the features of every training
    sample). The parts are in the variable's ``components`` attribute (JSON, bytes)."""
    total = float(sum(components.values()))
    return {"learning_state": ((), total / 2 ** 20, {
        "units": "MiB", "long_name": "state kept in order to learn (computed from the network's size)",
        "components": json.dumps({k: int(v) for k, v in components.items()})})}


def readout_features_bytes(n_train: int, n_features: int) -> dict[str, int]:
    """A readout fitted offline (scikit-learn) holds the features of every training sample (float64)."""
    return {"readout features of every training sample": 8 * int(n_train) * int(n_features)}


def prediction_vars(predicted, labels) -> dict:
    """Each test sample's predicted and true class: the comparison pairs rules sample by sample."""
    return {
        "test_prediction": ("test_sample", np.asarray(predicted, dtype=int), {"units": "1", "long_name": "predicted test class"}),
        "test_label": ("test_sample", np.asarray(labels, dtype=int), {"units": "1", "long_name": "test sample class"}),
    }


def readout_macs(n_features: int, n_classes: int) -> dict:
    """Cost of a dense linear readout per inference: one multiply-accumulate per weight (and bias)."""
    return {"readout_macs_per_sample": scalar(int(n_features * n_classes + n_classes), "1",
                                              "multiply-accumulates of the dense readout per inference")}


def benchmark_attrs(ds: xr.Dataset, benchmark: str, started: str, **fields) -> xr.Dataset:
    """The global attributes of a benchmark results file."""
    ds.attrs.update(benchmark=benchmark, **{k: (str(v) if isinstance(v, Quantity) else v) for k, v in fields.items()})
    return stamp(ds, started)


def dataset_attrs(splits) -> dict:
    """What a results file records about its data."""
    return dict(dataset=splits.dataset, dataset_requested=splits.requested,
                class_names=json.dumps(list(splits.train.class_names)), split=splits.split,
                test_speakers=",".join(splits.test_speakers), dataset_generator=splits.train.generator,
                preprocessing=config_json(splits.preprocessing), n_train=len(splits.train), n_val=len(splits.val),
                n_test=len(splits.test), n_channels=splits.n_channels, n_classes=splits.n_classes)


def summarize_classifier(ds: xr.Dataset) -> str:
    """The terminal line of a classifier trained over epochs (e-prop, BPTT)."""
    return (f"test accuracy: {float(ds.test_accuracy):.3f} at epoch {int(ds.best_epoch)} "
            f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")
