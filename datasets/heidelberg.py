"""SHD, SSC and N-TIDIGITS read through tonic, and the SHD file layout written back.

Files are expected where tonic keeps them, under the data folder:

- SHD: ``DATA/SHD/shd_train.h5`` and ``DATA/SHD/shd_test.h5``
- SSC: ``DATA/SSC/ssc_train.h5`` and ``DATA/SSC/ssc_test.h5``
- N-TIDIGITS: ``DATA/NTIDIGITS18/n-tidigits.hdf5``

A local file is used as it is (tonic alone would download again unless the ``.zip`` it came
in still lies beside it); where it is missing, tonic downloads it, and where that fails the
error says which files are expected where and how to get them. Tonic hands out times in
microseconds; they become Brian2 quantities here, once.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import tonic
from brian2 import second

from datasets.records import SpikeDataset, SpikeSample
from models.files import DataError, write_atomic


class DatasetUnavailableError(FileNotFoundError, DataError):
    """A dataset's files are absent and could not be downloaded, or cannot be read."""


class DatasetFileError(DatasetUnavailableError):
    """A dataset's file is present here but cannot be read (truncated or corrupt), or only some of
    its files are: the files on disk say which dataset was meant, so nothing falls back."""


SOURCES = {
    "shd": ("SHD", ["shd_train.h5", "shd_test.h5"], "https://zenkelab.org/datasets/ (shd_train.h5.zip, shd_test.h5.zip; unzip them)"),
    "ssc": ("SSC", ["ssc_train.h5", "ssc_test.h5"], "https://zenkelab.org/datasets/ (ssc_train.h5.zip, ssc_test.h5.zip; unzip them)"),
    "ntidigits": ("NTIDIGITS18", ["n-tidigits.hdf5"], "the N-TIDIGITS18 link in tonic's documentation (tonic.datasets.NTIDIGITS18)"),
}


def _local_first(base):
    """A tonic dataset class that takes an existing extracted file without its download archive."""

    class LocalFirst(base):
        def _check_exists(self):
            name = self.filename[:-4] if self.filename.endswith(".zip") else self.filename
            return os.path.isfile(os.path.join(self.location_on_system, name))

    # tonic names the data folder after the class.
    LocalFirst.__name__ = base.__name__
    return LocalFirst


_SHD = _local_first(tonic.datasets.SHD)
_SSC = _local_first(tonic.datasets.SSC)
_NTIDIGITS = _local_first(tonic.datasets.NTIDIGITS18)


def _unavailable(name: str, data_dir: Path, error: Exception) -> DatasetUnavailableError:
    folder, files, where = SOURCES[name]
    expected = ", ".join(str(data_dir / folder / f) for f in files)
    present = [f for f in files if (data_dir / folder / f).is_file()]
    kind = DatasetFileError if present else DatasetUnavailableError
    return kind(
        f"the {name.upper()} dataset is not available: expected {expected}"
        + (f" (only {', '.join(present)} is there)" if present else "")
        + f", and downloading it failed ({type(error).__name__}: {error}). Get the files from {where}, "
        f"put them there, or name another folder with --data-dir."
    )


def _open(name: str, data_dir: Path, filename: str, factory):
    """``factory()`` (a tonic dataset reading ``filename``), its failures as one clear error naming
    that file."""
    path = data_dir / SOURCES[name][0] / filename
    try:
        return factory()
    except OSError as error:
        if path.is_file():
            raise DatasetFileError(
                f"cannot read {path}: {error} (truncated or corrupt? delete it and download it again)"
            ) from error
        raise _unavailable(name, data_dir, error) from error
    except Exception as error:  # download failures come in many types (URLError, HTTPError, ...)
        if path.is_file():
            raise DatasetFileError(f"cannot read {path}: {type(error).__name__}: {error} "
                                   "(truncated or corrupt? delete it and download it again)") from error
        raise _unavailable(name, data_dir, error) from error


def _events_to_sample(events, label: int, speaker: int) -> SpikeSample:
    times = np.asarray(events["t"], dtype=np.float64) * 1e-6  # tonic: microseconds
    return SpikeSample(units=np.asarray(events["x"], dtype=np.int64), times=times * second,
                       label=int(label), speaker=int(speaker))


def _read_all(name: str, path: Path, dataset) -> list[SpikeSample]:
    try:
        speakers = getattr(dataset, "_speaker", None)  # SHD and SSC both keep extra/speaker here
        samples = []
        for index in range(len(dataset)):
            events, label = dataset[index]
            samples.append(_events_to_sample(events, label, -1 if speakers is None else speakers[index]))
        return samples
    except (OSError, KeyError, ValueError) as error:
        raise DatasetFileError(
            f"cannot read the {name.upper()} file {path}: {type(error).__name__}: {error} "
            "(truncated or corrupt? delete it and download it again)"
        ) from error


def _speaker_names(path: Path) -> list[str] | None:
    """Speaker names stored beside the speaker indices (``extra/speaker_names``, as the FSDD cache
    writes them); None where the file has none (SHD and SSC themselves)."""
    try:
        with h5py.File(path, "r") as f:
            return _class_names(f["extra/speaker_names"][:]) if "extra/speaker_names" in f else None
    except OSError:
        return None


def _class_names(keys) -> list[str]:
    return [k.decode() if isinstance(k, bytes) else str(k) for k in np.asarray(keys).ravel()]


def load_heidelberg(name: str, data_dir: str | os.PathLike) -> tuple[SpikeDataset, SpikeDataset]:
    """SHD or SSC as (train, test); SSC's official validation file is not used (validation is
    carved out of the training set for every dataset alike)."""
    data_dir = Path(data_dir).expanduser()
    sets = []
    for split in ("train", "test"):
        filename = f"{name}_{split}.h5"
        if name == "shd":
            dataset = _open(name, data_dir, filename, lambda: _SHD(str(data_dir), train=split == "train"))
        elif name == "ssc":
            dataset = _open(name, data_dir, filename, lambda: _SSC(str(data_dir), split=split))
        else:
            raise ValueError(f"not a Heidelberg dataset: {name!r}")
        path = Path(dataset.location_on_system) / dataset.data_filename
        samples = _read_all(name, path, dataset)
        sets.append(SpikeDataset(name, samples, dataset.sensor_size[0], _class_names(dataset.classes),
                                 speaker_names=_speaker_names(path)))
    n_classes = max(len(sets[0].class_names), 1 + max(s.label for s in sets[0].samples + sets[1].samples))
    for data in sets:
        if len(data.class_names) != n_classes:
            data.class_names = [f"class {c}" for c in range(n_classes)]
    return sets[0], sets[1]


def load_ntidigits(data_dir: str | os.PathLike) -> tuple[SpikeDataset, SpikeDataset]:
    """N-TIDIGITS18 single-digit utterances (11 classes: 'o', 1-9, 'z') as (train, test)."""
    data_dir = Path(data_dir).expanduser()
    names = sorted(_NTIDIGITS.class_map, key=_NTIDIGITS.class_map.get)
    sets, speaker_ids = [], {}
    for train in (True, False):
        dataset = _open("ntidigits", data_dir, SOURCES["ntidigits"][1][0], lambda: _NTIDIGITS(str(data_dir), train=train, single_digits=True))
        samples = []
        try:
            for index in range(len(dataset)):
                events, label = dataset[index]
                speaker = "-".join(dataset._samples[index].split("-")[:-1])
                samples.append(_events_to_sample(events, label, speaker_ids.setdefault(speaker, len(speaker_ids))))
        except (OSError, KeyError, ValueError) as error:
            raise DatasetFileError(
                f"cannot read the N-TIDIGITS file {dataset.file_path}: {type(error).__name__}: {error}"
            ) from error
        sets.append(SpikeDataset("ntidigits", samples, dataset.sensor_size[0], names))
    return sets[0], sets[1]


def write_shd_layout(path: str | os.PathLike, samples: list[SpikeSample], class_names: list[str],
                     extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write samples in SHD's HDF5 layout (atomically): ``spikes/times`` (float16 seconds),
    ``spikes/units`` (uint16), ``labels``, ``extra/speaker``, ``extra/keys``."""
    def write(tmp):
        with h5py.File(tmp, "w") as f:
            times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
            units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for index, sample in enumerate(samples):
                times[index] = np.asarray(sample.times / second, dtype=np.float16)
                units[index] = np.asarray(sample.units, dtype=np.uint16)
            f["labels"] = np.array([s.label for s in samples], dtype=np.uint16)
            f["extra/speaker"] = np.array([max(s.speaker, 0) for s in samples], dtype=np.uint16)
            f["extra/keys"] = np.array([n.encode() for n in class_names])
            for key, value in (extra or {}).items():
                f[f"extra/{key}"] = value

    return write_atomic(path, write)
