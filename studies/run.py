"""One study run's lifecycle: its data, checkpoints, build folder and results file.

Every study makes one :class:`Run` and lets it own the paths. Resuming exists once, here: a
checkpoint carries the configuration it was made with, and ``--resume`` with another
configuration stops with an error naming the fields that differ.

A rule trained over epochs can declare ``epochs`` *extendable*: its final checkpoint is then kept
beside its results file (``<results>.state.pt``) when the run finishes, and ``--resume`` with a
larger ``--epochs`` and an otherwise identical configuration continues from it, ending where an
uninterrupted run of that many epochs ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from datasets import Preprocessing, Splits, load_splits
from models import files
from models.units import config_diff, config_json
from studies.results import (CONVENTIONS, accuracy_vars, dataset_attrs, memory_vars, now, scalar,  # noqa: F401  (CONVENTIONS: kept importable here)
                             stamp, train_samples_var)

#: Functions called as ``listener(epoch, val_accuracy, samples)`` after every epoch of a rule trained
#: over epochs (see :func:`epoch_listener`); a tuning search's pruner listens here and may stop the run
#: by raising.
_EPOCH_LISTENERS: list = []


@contextlib.contextmanager
def epoch_listener(listener):
    """Call ``listener(epoch, val_accuracy, samples)`` after every training epoch of the runs made
    inside; ``samples`` is the number of training samples the epoch learned from (None: all of them;
    fewer when the wall-time budget stopped it on the way)."""
    _EPOCH_LISTENERS.append(listener)
    try:
        yield listener
    finally:
        _EPOCH_LISTENERS.remove(listener)


class ConfigMismatchError(ValueError):
    """A checkpoint or stored result was made with another configuration."""


def check_same_config(stored: str, current: str, what: str, extendable: tuple[str, ...] = (),
                      ignored: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigMismatchError` naming the fields in which ``stored`` differs from ``current``
    (beyond ``extendable`` fields that grew and the ``ignored`` ones, see :func:`models.units.config_diff`)."""
    differences = config_diff(stored, current, extendable, ignored)
    if differences:
        raise ConfigMismatchError(
            f"{what} belongs to a run with another configuration ({'; '.join(differences[:6])}"
            f"{'; ...' if len(differences) > 6 else ''}); drop --resume or use another --out")


def generator_differences(stored: str, current: str) -> list[str]:
    """The constants in which two generated-set versions (``dataset_generator`` JSON) differ; an empty
    ``stored`` (recorded data, or a file from before the generator was recorded) differs from any set."""
    if stored == current:
        return []
    if not stored or not current:
        return [f"generator constants {'not recorded' if not stored else 'recorded'} -> "
                f"{'none' if not current else 'recorded'}"]
    return config_diff(stored, current)


def check_same_generator(stored: str, current: str, what: str, dataset: str) -> None:
    """Raise :class:`ConfigMismatchError` naming the constants in which the generated set behind
    ``what`` differs from the one this run uses."""
    differences = generator_differences(stored, current)
    if differences:
        raise ConfigMismatchError(
            f"{what} was made from another version of the {dataset} set ({'; '.join(differences[:6])}"
            f"{'; ...' if len(differences) > 6 else ''}); drop --resume or use another --out")


def check_splits(splits: Splits) -> None:
    """Refuse inputs that cannot carry a result, and say when a split is too small to choose on."""
    pool = splits.preprocessing.pool
    if pool > 1 and splits.n_channels == 1:
        raise ValueError(f"--pool {pool} merges every input channel into one; choose a pool below the "
                         f"number of channels")
    if len(splits.val) < splits.n_classes:
        print(f"warning: the validation split holds {len(splits.val)} samples for {splits.n_classes} classes; "
              "choices made on it (epoch, readout strength) will be noisy. Use a larger --n-train.",
              file=sys.stderr)


class Run:
    """The files of one run of ``rule`` with ``config`` (a study config with a ``run`` field).

    - ``out/checkpoints/<rule>_<dataset>_seed<seed>/``: checkpoints (:meth:`save_checkpoint`);
    - ``out/build/``: a fresh build folder per run (:meth:`build_folder`), removed afterwards;
    - ``out/<rule>_<dataset>_seed<seed>.nc``: the results file (:func:`write_results`);
    - ``out/<rule>_<dataset>_seed<seed>.state.pt`` (or ``.npz``): the final state of a rule with
      ``extendable`` options, kept beside its results file.
    """

    def __init__(self, rule: str, config, extendable: tuple[str, ...] = ()):
        self.rule, self.config = rule, config
        #: options a finished run of this rule can be resumed with a larger value of (``epochs``)
        self.extendable = tuple(extendable)
        self.settings = config.run
        self.out = Path(self.settings.out)
        self.started, self._t0 = now(), time.perf_counter()
        # the configuration without 'resume', which does not change what a run computes
        self.config_text = config_json(dataclasses.replace(config, run=dataclasses.replace(config.run, resume=False)))
        self.splits: Splits | None = None

    # -- data
    def load_splits(self, preprocessing: Preprocessing) -> Splits:
        s = self.settings
        if s.test_speakers and s.split != "speaker":
            raise ValueError("--test-speakers goes with --split speaker")
        self.splits = load_splits(s.dataset, s.data_dir, preprocessing=preprocessing, n_train=s.n_train,
                                  n_test=s.n_test, seed=s.seed, split=s.split or "official",
                                  test_speakers=tuple(s.test_speakers) or None)
        check_splits(self.splits)
        #: test samples of the run, also in a validation-only run, whose test split is emptied; chunk
        #: sizes are balanced on it, so that a trial trains in the chunks of the full run (STDP's
        #: presentations depend on them)
        self.n_test = len(self.splits.test)
        if self.validation_only:  # nothing can score the test split, not even by mistake
            self.splits = dataclasses.replace(self.splits, test=dataclasses.replace(self.splits.test, samples=[]))
        return self.splits

    @property
    def validation_only(self) -> bool:
        """A tuning trial: the rule trains and is scored on validation; the test split stays unseen
        (empty here), and the study returns only what the search reads (:meth:`finish_validation`)."""
        return bool(self.settings.validation_only)

    def finish_validation(self, val_accuracy, train_seconds: float, device: str, train_accuracy=None,
                          train_samples=None) -> xr.Dataset:
        """The results of a validation-only run: validation (and training) accuracy per epoch, the
        training samples of each epoch (``train_samples``, where a budget can stop an epoch on the way)
        and the training wall time, nothing measured on the test split."""
        val_accuracy = np.atleast_1d(np.asarray(val_accuracy, dtype=float))
        extra = {} if train_samples is None else {"train_samples": train_samples_var(train_samples)}
        ds = xr.Dataset({**accuracy_vars(val_accuracy, train_accuracy), **extra,
                         "train_seconds": scalar(float(train_seconds), "s", "training wall time (validation included)")},
                        coords={"epoch": np.arange(1, len(val_accuracy) + 1)})
        ds.attrs["validation_only"] = 1
        return self.finish(ds, device)

    @property
    def dataset(self) -> str:
        if self.splits is None:
            raise RuntimeError("load the splits before asking for the dataset")
        return self.splits.dataset

    # -- checkpoints
    @property
    def stem(self) -> str:
        return f"{self.rule}_{self.dataset}_seed{self.settings.seed}"

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints" / self.stem

    @staticmethod
    def _read(path: Path) -> dict | None:
        return files.load_torch(path) if path.suffix == ".pt" else files.load_arrays(path)

    @property
    def _unseen(self) -> tuple[str, ...]:
        """Fields of the configuration this run's checkpoints do not depend on: a validation-only run
        (a tuning trial) never sees the test split, so not the test subset's size."""
        return ("run.n_test",) if self.validation_only else ()

    def load_checkpoint(self, name: str = "state.npz") -> dict | None:
        """The contents of checkpoint ``name`` (arrays from .npz, PyTorch state from .pt) when resuming
        (``None`` otherwise, or when there is none); a checkpoint of another configuration is an error.

        Without a checkpoint, a rule with extendable options continues from the final state of a
        finished run kept beside its results (:func:`write_results`), when the configurations differ
        only in extendable options that grew; finished runs of this rule, dataset and seed that
        differ otherwise are an error naming the fields."""
        if not self.settings.resume:
            return None
        path = self.checkpoint_dir / name
        state = self._read(path)
        if state is not None:
            check_same_config(str(state.pop("config")), self.config_text, str(path), self.extendable, self._unseen)
            check_same_generator(str(state.pop("dataset_generator", "")), self.data_generator, str(path),
                                 self.splits.dataset)
            return state
        if not self.extendable:
            return None
        finished = sorted(self.out.glob(f"{self.stem}.{name}")) + sorted(self.out.glob(f"{self.stem}_*.{name}"))
        mismatch = None
        for path in finished:
            state = self._read(path)
            stored = str(state.pop("config"))
            generator = str(state.pop("dataset_generator", ""))
            if not config_diff(stored, self.config_text, self.extendable, self._unseen) and not generator_differences(
                    generator, self.data_generator):
                self.note_resume(f"from the finished run kept in {path}")
                return state
            mismatch = mismatch or (stored, generator, path)
        if mismatch is not None:
            what = f"the finished run kept in {mismatch[2]}"
            check_same_config(mismatch[0], self.config_text, what, self.extendable, self._unseen)
            check_same_generator(mismatch[1], self.data_generator, what, self.splits.dataset)
        return None

    @property
    def data_generator(self) -> str:
        """The constants of a generated set (JSON; empty for recorded data), which checkpoints record: the
        configuration names only the set, so a checkpoint of another version of it is refused."""
        return self.splits.train.generator

    def save_checkpoint(self, name: str = "state.npz", **arrays) -> None:
        files.save_arrays(self.checkpoint_dir / name, config=self.config_text,
                          dataset_generator=self.data_generator, **arrays)

    def save_torch_checkpoint(self, state: dict, name: str = "state.pt") -> None:
        files.save_torch(self.checkpoint_dir / name,
                         {**state, "config": self.config_text, "dataset_generator": self.data_generator})

    def end_epoch(self, epoch: int, val_accuracy: float, samples: int | None = None) -> None:
        """Tell the listeners (a tuning search's pruner) that ``epoch`` (from 1) ended with
        ``val_accuracy`` after learning from ``samples`` training samples (None: the whole training
        set); call it after the epoch's checkpoint is saved."""
        for listener in list(_EPOCH_LISTENERS):
            listener(int(epoch), float(val_accuracy), None if samples is None else int(samples))

    def restored_epochs(self, val_accuracies, samples=None) -> None:
        """Tell the listeners the epochs a resumed run took from its checkpoint (from 1, in order), as
        the run that wrote it did: a tuning search's rerun of a killed trial is a new trial, whose pruner
        has seen none of them (nor, when the kill fell between a checkpoint and its report, has any)."""
        samples = [None] * len(val_accuracies) if samples is None else list(samples)
        for epoch, (value, n) in enumerate(zip(val_accuracies, samples, strict=True), start=1):
            self.end_epoch(epoch, value, n)

    def over_time_budget(self, epoch_seconds) -> bool:
        """Whether the training wall time so far (``epoch_seconds``, one per epoch done) has reached
        the study's ``max_train_seconds`` (a study without that option has no budget). The epoch
        that passes it still counts: it is scored."""
        budget = getattr(self.config, "max_train_seconds", None)
        return budget is not None and float(sum(epoch_seconds)) >= budget

    def note_resume(self, where: str) -> None:
        print(f"resuming {self.rule} {where}", file=sys.stderr)

    # -- builds
    @contextlib.contextmanager
    def build_folder(self):
        """A fresh folder under ``out/build/`` for this run's Brian2 project, removed at the end."""
        root = self.out / "build"
        root.mkdir(parents=True, exist_ok=True)
        files.remove_orphans(root, "*_pid*_*")  # left by runs that were killed
        folder = Path(tempfile.mkdtemp(prefix=f"{self.rule}_pid{os.getpid()}_", dir=root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                root.rmdir()  # only when no other run is building there

    # -- results
    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def finish(self, ds: xr.Dataset, device: str) -> xr.Dataset:
        """Attach the global attributes every results file carries, and the peak memory where the
        study did not measure it itself."""
        for name, value in memory_vars().items():
            if name not in ds:
                ds[name] = value
        ds.attrs.update(rule=self.rule, device=device, seed=int(self.settings.seed), config=self.config_text,
                        **dataset_attrs(self.splits))
        return stamp(ds, self.started)


def config_key(config_text: str) -> str:
    """A short hash of a configuration's JSON text."""
    import hashlib

    return hashlib.sha256(config_text.encode()).hexdigest()[:8]


def write_results(ds: xr.Dataset, out: Path, keep_state: bool = False) -> Path:
    """Write a study's results file as ``out/<rule>_<dataset>_seed<seed>.nc``, unless that file holds
    the results of another configuration (or of another version of a generated set): then beside it,
    with a hash of both in the name, so nothing already written is lost. The run's checkpoints go
    once the results are safe; with ``keep_state`` (a rule with extendable options) its last
    checkpoint stays beside the results file as the run's final state (``<results>.state.pt``), from
    which ``--resume`` can go on."""
    stem = f"{ds.attrs['rule']}_{ds.attrs['dataset']}_seed{ds.attrs['seed']}"
    path = Path(out) / f"{stem}.nc"
    if path.exists():
        try:
            with xr.open_dataset(path) as old:
                same = all(old.attrs.get(k, "") == ds.attrs.get(k, "") for k in ("config", "dataset_generator"))
        except (OSError, ValueError):
            same = False
        if not same:
            key = config_key(ds.attrs["config"] + ds.attrs.get("dataset_generator", ""))
            path = Path(out) / f"{stem}_{key}.nc"
            print(f"{Path(out) / (stem + '.nc')} holds another configuration's results; writing {path}",
                  file=sys.stderr)
    files.write_netcdf(ds, path)
    discard_checkpoints(ds, out, keep_beside=path if keep_state else None)
    return path


def discard_checkpoints(ds: xr.Dataset, out: Path, keep_beside: Path | None = None) -> None:
    """Remove the checkpoints of the run that produced ``ds`` (its results are written); with
    ``keep_beside`` (its results file), move them beside it instead, as ``<results stem>.<name>``."""
    stem = f"{ds.attrs['rule']}_{ds.attrs['dataset']}_seed{ds.attrs['seed']}"
    folder = Path(out) / "checkpoints" / stem
    if keep_beside is not None and folder.is_dir():
        for checkpoint in folder.iterdir():
            if checkpoint.is_file() and not checkpoint.name.endswith(".tmp"):
                os.replace(checkpoint, keep_beside.with_name(f"{keep_beside.stem}.{checkpoint.name}"))
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        (Path(out) / "checkpoints").rmdir()
