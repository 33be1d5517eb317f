"""Spiking audio datasets behind one record (:class:`SpikeSample`) and one loader (:func:`load_splits`)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import models  # noqa: F401  (first: it filters setuptools' _get_vc_env warning before Brian2 is imported)

import numpy as np
from sklearn.model_selection import train_test_split

from datasets.heidelberg import DatasetFileError, DatasetUnavailableError, load_heidelberg, load_ntidigits
from datasets.records import (Preprocessing, SpikeDataset, SpikeSample, Splits, preprocess_dataset,
                              spike_counts, to_dense)
from datasets.synthetic import TimingConfig, make_timing
from datasets.synthetic_bursts import SyntheticConfig, make_synthetic
from models.units import config_json

DATASETS = ("shd", "ssc", "ntidigits", "fsdd", "synthetic", "synthetic_bursts")
#: Environment variable naming the folder that holds SHD/, SSC/, NTIDIGITS18/ (default ./data).
DATA_DIR_ENV = "SNN_DATA_DIR"

__all__ = ["DATASETS", "DatasetFileError", "DatasetUnavailableError", "Preprocessing", "SpikeDataset", "SpikeSample",
           "Splits", "SyntheticConfig", "TimingConfig", "default_data_dir", "default_generator", "load_raw",
           "load_splits", "make_builtin", "spike_counts", "to_dense"]


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).expanduser()


def check_dataset_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return name


def default_generator(name: str) -> str:
    """The generator's constants (JSON) that the command line makes the built-in set ``name`` with,
    as a results file records them (``dataset_generator``); empty for recorded data."""
    if name == "synthetic":
        return config_json(TimingConfig())
    if name == "synthetic_bursts":
        return config_json(SyntheticConfig())
    return ""


def make_builtin(name: str, config: TimingConfig | SyntheticConfig | None = None
                 ) -> tuple[SpikeDataset, SpikeDataset]:
    """The (train, test) sets of a built-in set.

    ``"synthetic"`` is the built-in set (and the fallback when SHD is missing): without ``config``
    the timing set of :mod:`datasets.synthetic`; a given config picks its generator by its type, so
    a :class:`SyntheticConfig` still gives the former burst set (which names its sets
    ``"synthetic_bursts"``). ``"synthetic_bursts"`` is the burst set only.
    """
    if name not in ("synthetic", "synthetic_bursts"):
        raise ValueError(f"{name!r} is not a built-in set")
    if config is None:
        config = TimingConfig() if name == "synthetic" else SyntheticConfig()
    if isinstance(config, SyntheticConfig):
        return make_synthetic(config)
    if isinstance(config, TimingConfig) and name == "synthetic":
        return make_timing(config)
    raise TypeError(f"dataset {name!r} cannot be made from a {type(config).__name__}")


def load_raw(name: str, data_dir: str | os.PathLike | None = None,
             synthetic: TimingConfig | SyntheticConfig | None = None) -> tuple[SpikeDataset, SpikeDataset]:
    """The (train, test) sets of dataset ``name``, before preprocessing.

    ``synthetic`` configures the built-in sets only; see :func:`make_builtin`.
    """
    check_dataset_name(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if name in ("shd", "ssc"):
        return load_heidelberg(name, data_dir)
    if name == "ntidigits":
        return load_ntidigits(data_dir)
    if name == "fsdd":
        from datasets.fsdd import load_fsdd

        return load_fsdd(data_dir)
    return make_builtin(name, synthetic)


def stratified_subset(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded, class-balanced subset of ``n`` samples (all when ``n`` is None)."""
    indices = np.arange(len(labels))
    if n is None or n >= len(labels):
        return indices
    if n < 1:
        raise ValueError(f"a subset needs at least one sample, got {n}")
    counts = np.bincount(labels)
    stratify = labels if n >= np.count_nonzero(counts) and counts[counts > 0].min() >= 2 else None
    chosen, _ = train_test_split(indices, train_size=n, stratify=stratify, random_state=seed)
    return np.sort(chosen)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train, validation) indices; the same for every rule given the seed."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    indices = np.arange(len(labels))
    n_val = max(int(round(fraction * len(labels))), 1)
    counts = np.bincount(labels)
    can_stratify = n_val >= np.count_nonzero(counts) and counts[counts > 0].min() >= 2
    train, val = train_test_split(indices, test_size=n_val, random_state=seed,
                                  stratify=labels if can_stratify else None)
    return np.sort(train), np.sort(val)


SPLITS = ("official", "speaker")
#: Held out by ``split="speaker"`` when no speaker is named (an FSDD speaker).
DEFAULT_TEST_SPEAKERS = ("theo",)


def speaker_names(train: SpikeDataset, test: SpikeDataset) -> list[str] | None:
    """Name of each speaker index of both parts: the names the files store, else the indices as text
    (SHD's files number their speakers); None where the samples carry no speaker."""
    if train.speaker_names is not None or test.speaker_names is not None:
        if train.speaker_names != test.speaker_names:
            return None
        return list(train.speaker_names)
    speakers = [s.speaker for s in train.samples + test.samples]
    if not speakers or min(speakers) < 0:
        return None
    return [str(i) for i in range(max(speakers) + 1)]


def speaker_split(train: SpikeDataset, test: SpikeDataset,
                  test_speakers: tuple[str, ...]) -> tuple[SpikeDataset, SpikeDataset]:
    """Both official parts pooled, then every sample of ``test_speakers`` to test, all others to train."""
    names = speaker_names(train, test)
    if names is None:
        raise ValueError(f"the {train.name} dataset has no speaker information (or its two parts disagree "
                         "on it), so it cannot be split by speaker; use split='official'")
    unknown = sorted(set(test_speakers) - set(names))
    if not test_speakers or unknown:
        raise ValueError(f"unknown test speaker(s) {', '.join(map(repr, unknown)) or '(none named)'} for "
                         f"{train.name}; its speakers are {', '.join(names)}")
    held_out = {names.index(s) for s in test_speakers}
    if len(held_out) == len(names):
        raise ValueError(f"holding out every speaker ({', '.join(names)}) leaves nothing to train on")
    pooled = train.samples + test.samples
    return (dataclasses.replace(train, samples=[s for s in pooled if s.speaker not in held_out]),
            dataclasses.replace(test, samples=[s for s in pooled if s.speaker in held_out]))


#: Seed of the test subset (``n_test``), the same for every run.
TEST_SUBSET_SEED = 0


def load_splits(name: str | None, data_dir=None, *, preprocessing: Preprocessing = Preprocessing(),
                n_train: int | None = None, n_test: int | None = None, val_fraction: float = 0.1,
                seed: int = 0, synthetic: TimingConfig | SyntheticConfig | None = None, split: str = "official",
                test_speakers: str | tuple[str, ...] | None = None) -> Splits:
    """Load, subset, split and preprocess a dataset.

    ``name=None`` asks for the default, SHD: only then, when no file of SHD is present and it
    cannot be downloaded, a loud warning is printed and the built-in synthetic set is used
    instead. A dataset named explicitly never falls back, and neither does the default when a file
    of SHD is there but cannot be read (or only some are there): that is a
    :class:`DatasetFileError` naming the file.

    ``split="official"`` keeps the dataset's own train/test files (FSDD: index 0-4 is test).
    ``split="speaker"`` pools both and tests on every sample of ``test_speakers`` (names; default
    :data:`DEFAULT_TEST_SPEAKERS`), training and validating on the other speakers only: a
    speaker-independent test. Validation is still drawn at random from the training speakers.
    """
    requested = name or "shd"
    check_dataset_name(requested)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "speaker":
        test_speakers = DEFAULT_TEST_SPEAKERS if test_speakers is None else test_speakers
        test_speakers = (test_speakers,) if isinstance(test_speakers, str) else tuple(test_speakers)
    elif test_speakers:
        raise ValueError("test_speakers is only used with split='speaker'")
    else:
        test_speakers = ()
    try:
        train, test = load_raw(requested, data_dir, synthetic)
        used = requested
    except DatasetUnavailableError as error:
        if name is not None or isinstance(error, DatasetFileError):
            raise
        print(
            "\n" + "!" * 78 + f"\nWARNING: SHD is not available ({error}).\n"
            "Running on the BUILT-IN SYNTHETIC SET instead; the results file records this.\n"
            "Pass --dataset synthetic to silence this warning, or --dataset shd to make it an error.\n"
            + "!" * 78 + "\n",
            file=sys.stderr,
        )
        train, test = load_raw("synthetic", data_dir, synthetic)
        used = "synthetic"
    if split == "speaker":
        train, test = speaker_split(train, test, test_speakers)
    subset_seed, split_seed = np.random.SeedSequence(seed).generate_state(2)
    train = train.subset(stratified_subset(train.labels, n_train, int(subset_seed)))
    # the test subset does not follow the run's seed: every seed and every rule is tested on the same
    # samples, so that results pair sample by sample
    test = test.subset(stratified_subset(test.labels, n_test, TEST_SUBSET_SEED))
    if len(train) < 2:
        raise ValueError("at least two training samples are needed (one goes to validation)")
    fit, val = validation_split(train.labels, val_fraction, int(split_seed))
    return Splits(
        train=preprocess_dataset(train.subset(fit), preprocessing),
        val=preprocess_dataset(train.subset(val), preprocessing),
        test=preprocess_dataset(test, preprocessing),
        dataset=used,
        requested=requested,
        preprocessing=preprocessing,
        split=split,
        test_speakers=test_speakers,
    )
