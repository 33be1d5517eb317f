"""A checker of results files against ``docs/results-schema.md``.

The promises made to every file and to every run (the document's tables) are read from the document
itself, so a row added there is checked here at once; the variables of each kind of file (the
document's list "Further variables by study") are named below, and a test checks that each of them is
named in the document too. :func:`problems` lists what a file lacks; ``tests/conftest.py`` runs it
on every ``*.nc`` file a test leaves in its ``tmp_path``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"

BRIAN2 = ("build_seconds", "reused_binary", "chunk_size")
CLASSIFIER = ("train_loss", "train_accuracy", "epoch_seconds", "best_epoch", "input_spikes_per_sample",
              "spikes_per_sample", "synaptic_operations_per_sample", "trainable_parameters", "train_seconds",
              "wall_seconds", "confusion", "test_prediction", "test_label")
#: Variables each kind of file always holds, beyond the document's tables (its list by study).
VARIABLES = {
    "stdp": BRIAN2 + ("learning_state", "train_accuracy", "val_accuracy_assignment", "test_accuracy_assignment", "best_epoch",
                      "readout_C", "epoch_seconds", "train_seconds", "train_samples_per_second", "wall_seconds",
                      "input_spikes_per_sample", "spikes_per_sample", "synaptic_operations_per_sample",
                      "trainable_parameters", "confusion", "weights", "test_counts", "test_label"),
    "bptt": CLASSIFIER + ("learning_state",),
    "eprop": BRIAN2 + CLASSIFIER + ("val_loss", "learning_state", "presentations_per_sample"),
    "lsm": BRIAN2 + ("learning_state", "network_weights", "test_accuracy_control", "val_accuracy_control", "neurons_used", "readout_C", "reservoir_rate",
                     "silent_fraction", "spikes_per_sample", "synaptic_operations_per_sample", "extraction_seconds",
                     "train_seconds", "samples_per_second", "test_counts"),
    "counts": ("learning_state", "n_bins", "val_accuracy_per_n_bins", "train_seconds", "wall_seconds", "trainable_parameters", "input_spikes_per_sample", "spikes_per_sample",
               "synaptic_operations_per_sample"),
    "summary": ("spikes_per_sample", "active_channels", "channel_rate", "raster_unit", "raster_time", "raster_class",
                "count_readout_accuracy"),
    "comparison": ("test_accuracy", "val_accuracy", "train_seconds", "wall_seconds", "peak_memory", "peak_memory_children",
                   "trainable_parameters", "input_spikes_per_sample", "spikes_per_sample",
                   "synaptic_operations_per_sample", "operations_per_inference", "energy_per_inference",
                   "dense_energy_per_inference", "locality",
                   "learning_state", "train_accuracy", "confusion"),
    "scan": ("test_accuracy", "best_val_accuracy", "train_seconds", "spikes_per_sample",
             "synaptic_operations_per_sample", "point_seconds", "build_seconds", "reused_binary", "error"),
    "scan point": (),
    "tuning search": ("val_accuracy", "val_accuracy_per_epoch", "state", "trial_seconds", "train_seconds",
                      "epochs_done", "sample_epochs", "error", "importance"),
    "benchmark": (),
}
#: Global attributes of each kind beyond those of every file.
ATTRIBUTES = {
    "comparison": ("lif", "preprocessing", "config", "runs"),
    "scan": ("rule", "scan_parameters", "base_config", "failed_points"),
    "scan point": ("config",),
    "tuning search": ("search_space", "fixed_options", "sampler", "pruner", "objective", "n_trials", "n_complete",
                      "n_pruned", "n_failed", "n_interrupted", "best_trial", "best_val_accuracy", "best_params",
                      "wall_seconds", "storage", "study_name", "config"),
    "benchmark": ("benchmark",),
}
JSON_ATTRIBUTES = ("config", "package_versions", "class_names", "preprocessing", "lif", "runs", "base_config",
                   "search_space", "fixed_options", "best_params")
WHOLE_NUMBERS = ("epoch", "seed", "trial", "best_epoch", "trainable_parameters", "chunk_size", "reused_binary",
                 "n_bins_option",
                 "control_binned_counts_bins", "control_bptt_epochs", "n_train", "n_val", "n_test", "n_channels",
                 "n_classes", "failed_points", "n_trials", "n_complete", "n_pruned", "n_failed", "n_interrupted",
                 "best_trial")


def table_names(heading: str, text: str | None = None) -> list[str]:
    """The names in the first column of the table under ``## heading`` (several per row allowed)."""
    text = SCHEMA.read_text() if text is None else text
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise LookupError(f"{SCHEMA.name} has no section '{heading}'")
    names = []
    for line in match.group(1).splitlines():
        cells = line.split("|")
        if len(cells) > 2 and "`" in cells[1]:
            names += re.findall(r"`([^`]+)`", cells[1])
    return names


def kind_of(ds: xr.Dataset) -> str:
    attrs = ds.attrs
    if "benchmark" in attrs:
        return "benchmark"
    if attrs.get("kind") == "tuning search":
        return "tuning search"
    if "scan_parameters" in attrs:
        return "scan"
    if "point" in attrs:
        return "scan point"
    if attrs.get("study") == "compare":
        return "comparison"
    if "rule" in attrs:
        return "summary" if attrs["rule"] == "summary" else "run"
    return "unknown"


def _is_number(values) -> bool:
    return np.asarray(values).dtype.kind in "iufcb"


def problems(path: str | Path) -> list[str]:
    """What the file at ``path`` lacks of what the schema promises (empty when nothing)."""
    try:
        ds = xr.load_dataset(path)
    except Exception as error:  # a torn or foreign file: the first problem of all
        return [f"cannot be opened as netCDF ({type(error).__name__}: {error})"]
    kind = kind_of(ds)
    if kind == "unknown":
        return ["is none of the kinds of results file the schema describes (no rule, study, scan, kind or "
                "benchmark attribute)"]
    out = []
    attributes = table_names("Global attributes (every file)")
    if kind in ("run", "summary"):
        attributes += table_names("Global attributes of a run (every study's file, and the dataset summary)")
    attributes += ATTRIBUTES.get(kind, ())
    out += [f"lacks the global attribute '{name}'" for name in attributes if name not in ds.attrs]
    if ds.attrs.get("Conventions", "CF-1.8") != "CF-1.8":
        out.append(f"Conventions is {ds.attrs['Conventions']!r}, not 'CF-1.8'")
    for name in JSON_ATTRIBUTES:
        if name in ds.attrs:
            try:
                json.loads(ds.attrs[name])
            except (TypeError, ValueError):
                out.append(f"the attribute '{name}' is not JSON text")
    for name in ("start_time", "end_time"):
        if name in ds.attrs:
            try:
                datetime.fromisoformat(str(ds.attrs[name]))
            except ValueError:
                out.append(f"the attribute '{name}' is not an ISO 8601 time: {ds.attrs[name]!r}")
    variables = list(VARIABLES.get(ds.attrs.get("rule") if kind == "run" else kind, ()))
    if kind == "run":
        variables += table_names("Variables of a rule's run (every study's file)")
    out += [f"lacks the variable '{name}'" for name in variables if name not in ds.variables]
    for name, variable in ds.variables.items():
        what = "coordinate" if name in ds.coords else "variable"
        if "long_name" not in variable.attrs:
            out.append(f"the {what} '{name}' has no long_name")
        if _is_number(variable.values) and "units" not in variable.attrs:
            out.append(f"the {what} '{name}' holds numbers but has no units")
    for name in WHOLE_NUMBERS:
        if name in ds.variables:  # the type on disk (a variable with gaps reads back as floats)
            dtype = np.dtype(ds[name].encoding.get("dtype", ds[name].dtype))
        else:
            dtype = np.asarray(ds.attrs[name]).dtype if name in ds.attrs else None
        if dtype is not None and not np.issubdtype(dtype, np.integer):
            out.append(f"'{name}' holds whole numbers but is stored as {dtype}")
    return out


def check_folder(folder: str | Path) -> list[str]:
    """Every problem of every ``*.nc`` file under ``folder``, each line naming its file."""
    folder = Path(folder)
    return [f"{path.relative_to(folder)}: {problem}" for path in sorted(folder.rglob("*.nc"))
            for problem in problems(path)]
