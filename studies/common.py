"""What every study shares: the command line, results files and checkpoints.

Results files are netCDF (xarray), one per run, written atomically; the schema is documented in
``docs/results-schema.md``. Checkpoints are plain arrays in ``.npz`` files, loaded with
``allow_pickle=False``, so a file handed over by someone else never runs code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity

from datasets import DATASETS, Preprocessing, Splits, load_splits
from models.devices import DEVICES
from models.lif import const  # noqa: F401  (quantity defaults for the study configs)

PACKAGES = ("brian2", "brian2cuda", "torch", "numpy", "xarray", "scikit-learn", "tonic", "brian2hears")


def add_common_arguments(parser: argparse.ArgumentParser, *, devices=DEVICES, default_device="cpp_standalone",
                         default_epochs: int = 1, default_n_train: int | None = None,
                         default_n_test: int | None = None) -> argparse.ArgumentParser:
    """The options every study takes, with their defaults in the help text."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="dataset; when not given, SHD, falling back loudly to the built-in "
                             "synthetic set when SHD is neither present nor downloadable")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding SHD/, SSC/, NTIDIGITS18/ (default: $SNN_DATA_DIR or ./data); "
                             "for fsdd the folder of wav recordings (default: $FSDD_DIR)")
    parser.add_argument("--device", choices=devices, default=default_device, help="simulator device")
    parser.add_argument("--n-train", type=_positive_int, default=default_n_train,
                        help="training samples used, validation included (default all)")
    parser.add_argument("--n-test", type=_positive_int, default=default_n_test,
                        help="test samples used (default all)")
    parser.add_argument("--epochs", type=_positive_int, default=default_epochs, help="training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random stream of the run")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of an identical, interrupted run")
    parser.add_argument("--lif", action="append", default=[], metavar="NAME=VALUE",
                        help="change a constant of the shared LIF neuron, with units (repeatable), e.g. "
                             "--lif tau_mem=20ms --lif tau_syn=10ms; defaults in models/lif.py")
    return parser


def lif_from_args(args):
    """The shared LIF constants with the ``--lif`` changes applied."""
    from models.lif import LIFParams
    from studies.units import parse_assignments, with_overrides

    return with_overrides(LIFParams(), parse_assignments(args.lif), "LIF constant")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def jsonable(value):
    """Config values as JSON: quantities as text with units ('20. ms'), paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Quantity):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def config_json(config) -> str:
    return json.dumps(jsonable(config), sort_keys=True)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
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


def build_vars(build_seconds: float, reused_binary: bool, chunk_size: int) -> dict:
    """Results variables saying what building the Brian2 network cost and how it ran."""
    return {
        "chunk_size": scalar(int(chunk_size), "1", "samples per run of the binary"),
        "build_seconds": scalar(build_seconds, "s", "code generation and compilation (0 when reused)"),
        "reused_binary": scalar(int(reused_binary), "1",
                                "1 when the run reused a binary compiled earlier in its process (scan workers)"),
    }


def finish_results(ds: xr.Dataset, *, rule: str, config, splits: Splits, device: str, seed: int,
                   started: str) -> xr.Dataset:
    """Attach the global attributes every results file carries."""
    ds.attrs.update(
        rule=rule,
        dataset=splits.dataset,
        dataset_requested=splits.requested,
        device=device,
        seed=int(seed),
        config=config_json(config),
        preprocessing=config_json(splits.preprocessing),
        n_train=len(splits.train),
        n_val=len(splits.val),
        n_test=len(splits.test),
        n_channels=splits.n_channels,
        n_classes=splits.n_classes,
        git_commit=git_commit(),
        package_versions=package_versions(),
        host=socket.gethostname(),
        command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        start_time=started,
        end_time=now(),
    )
    return ds


def write_atomic_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def results_path(out: Path, rule: str, dataset: str, seed: int) -> Path:
    return Path(out) / f"{rule}_{dataset}_seed{seed}.nc"


def save_checkpoint(path: str | os.PathLike, **arrays) -> None:
    """Plain arrays to ``path`` (.npz), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to ``path``, atomically; ``state`` holds only tensors, numbers, text and lists,
    so :func:`load_torch_checkpoint` can load it with ``weights_only=True``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_torch_checkpoint(path: str | os.PathLike) -> dict | None:
    import torch

    path = Path(path)
    return torch.load(path, weights_only=True) if path.exists() else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_splits_for(config, preprocessing: Preprocessing, synthetic=None) -> Splits:
    """The study's splits from the common config fields (dataset, data_dir, n_train, n_test, seed)."""
    return load_splits(config.dataset, config.data_dir, preprocessing=preprocessing, n_train=config.n_train,
                       n_test=config.n_test, seed=config.seed, synthetic=synthetic)


def build_root(out: Path) -> Path:
    """Folder under which each run makes its own fresh build folder."""
    root = Path(out) / "build"
    root.mkdir(parents=True, exist_ok=True)
    return root


def memory_vars(binary_mib: float = 0.0) -> dict:
    """Peak resident memory of this process and of the simulator binary (polled while it ran;
    0 where there is none). The compiler's memory is not counted."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "peak_memory": scalar(own, "MiB", "peak resident memory of the Python process"),
        "peak_memory_children": scalar(binary_mib, "MiB", "peak resident memory of the simulator binary"),
    }


def run_main(main_body, argv=None):
    """Run a study's main; bad input ends with one clear line and exit status 2, not a traceback."""
    from datasets import DatasetUnavailableError
    from models.devices import DeviceUnavailableError

    try:
        return main_body(argv)
    except (ValueError, TypeError, DatasetUnavailableError, DeviceUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def accuracy_vars(val_accuracy, train_accuracy=None) -> dict:
    """Per-epoch accuracy variables with their attributes."""
    out = {"val_accuracy": ("epoch", np.asarray(val_accuracy, dtype=float),
                            {"units": "1", "long_name": "validation accuracy"})}
    if train_accuracy is not None:
        out["train_accuracy"] = ("epoch", np.asarray(train_accuracy, dtype=float),
                                 {"units": "1", "long_name": "training accuracy"})
    return out


def scalar(value, units: str, long_name: str):
    return ((), float(value), {"units": units, "long_name": long_name})


def recurrent_classifier_vars(splits: Splits, predicted: np.ndarray, hidden_counts: np.ndarray, *, n_hidden: int,
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
        "test_prediction": ("test_sample", predicted, {"units": "1", "long_name": "predicted test class"}),
        "test_label": ("test_sample", y_test, {"units": "1", "long_name": "test sample class"}),
    }


def benchmark_attrs(ds: xr.Dataset, benchmark: str, started: str, **fields) -> xr.Dataset:
    """The global attributes of a benchmark results file."""
    ds.attrs.update(benchmark=benchmark, **{k: (str(v) if isinstance(v, Quantity) else v) for k, v in fields.items()},
                    git_commit=git_commit(), package_versions=package_versions(), start_time=started, end_time=now())
    return ds


def shd_like_samples(n: int, dt, seed: int = 7) -> list:
    """``n`` built-in samples at SHD's density (700 channels, about 8,000 spikes per 1 s), on the ``dt`` grid."""
    from datasets.records import preprocess
    from datasets.synthetic_bursts import SyntheticConfig, make_synthetic

    # 700 channels x 10.4 spikes per burst + 1 Hz noise: about 8,000 spikes per 1 s sample.
    train, _ = make_synthetic(SyntheticConfig(n_train=n, n_test=1, spikes_per_burst=10.4, seed=seed))
    return [preprocess(s, Preprocessing(dt=dt)) for s in train.samples]
