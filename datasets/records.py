"""Datasets of :class:`~models.spikes.SpikeSample` records, and the preprocessing every rule shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, ms, second

from models.engine.counting import check_bins
from models.spikes import SpikeSample
from models.units import check_quantity, const


@dataclass
class SpikeDataset:
    """A list of samples plus what is needed to interpret them."""

    name: str  # dataset name as given on the command line
    samples: list[SpikeSample]
    n_channels: int  # number of input units
    class_names: list[str]
    duration: Quantity = const(1 * second)  # length each sample is cropped or padded to
    speaker_names: list[str] | None = None  # name of each speaker index, where the files give them
    generator: str = ""  # for a generated set, the generator's configuration as JSON; empty for recorded data

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def subset(self, indices) -> "SpikeDataset":
        return dataclasses.replace(self, samples=[self.samples[int(i)] for i in indices])

    def __len__(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class Preprocessing:
    """Input preprocessing shared by every rule, so all of them see the same spikes."""

    duration: Quantity = const(1 * second)  # samples are cropped to this length (shorter ones padded with silence)
    dt: Quantity = const(1 * ms)  # spikes are put on this time grid; repeated spikes of a unit within one step merge
    pool: int = 1  # this many neighbouring channels are summed into one (700 -> 140 with pool=5)

    def __post_init__(self):
        check_quantity("duration", self.duration, second, positive=True)
        check_quantity("dt", self.dt, second, positive=True)
        if not (isinstance(self.pool, (int, np.integer)) and self.pool >= 1):
            raise ValueError(f"pool must be a positive whole number, got {self.pool!r}")
        if float(self.dt) > float(self.duration):
            raise ValueError("dt must not exceed the sample duration")

    @property
    def n_steps(self) -> int:
        return int(round(float(self.duration / self.dt)))

    def n_channels(self, raw_channels: int) -> int:
        return -(-raw_channels // self.pool)

    def check_bins(self, n_bins) -> None:
        """Equal time bins of whole steps: ``n_bins`` must divide the sample's steps."""
        check_bins(n_bins, self.n_steps, f"{self.duration} at dt {self.dt}")


def merge_same_step(units: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep one spike per unit and time step (Brian2 refuses two), sorted by step then unit."""
    n = int(units.max(initial=0)) + 1
    keys = np.unique(steps.astype(np.int64) * n + units.astype(np.int64))
    return (keys % n).astype(np.int64), keys // n


def preprocess(sample: SpikeSample, prep: Preprocessing) -> SpikeSample:
    """Crop to ``prep.duration``, pool channels and put spikes on the ``prep.dt`` grid.

    A spike at time ``t`` lands in step ``floor(t / dt)`` and is given the time of that step's
    start, so every simulator sees it in the same step.
    """
    times = np.asarray(sample.times / second, dtype=np.float64)
    units = np.asarray(sample.units, dtype=np.int64)
    keep = (times >= 0) & (times < float(prep.duration))
    steps = np.floor(times[keep] / float(prep.dt) + 1e-9).astype(np.int64)
    pooled = units[keep] // prep.pool
    pooled, steps = merge_same_step(pooled, steps)
    return SpikeSample(units=pooled, times=steps * prep.dt, label=sample.label, speaker=sample.speaker)


def preprocess_dataset(data: SpikeDataset, prep: Preprocessing) -> SpikeDataset:
    return dataclasses.replace(
        data,
        samples=[preprocess(s, prep) for s in data.samples],
        n_channels=prep.n_channels(data.n_channels),
        duration=prep.duration,
    )


def to_dense(samples: list[SpikeSample], n_channels: int, n_steps: int, dt: Quantity) -> np.ndarray:
    """Spikes binned into a ``(sample, step, channel)`` float32 array, for PyTorch."""
    out = np.zeros((len(samples), n_steps, n_channels), dtype=np.float32)
    for index, sample in enumerate(samples):
        steps = np.floor(np.asarray(sample.times / dt) + 1e-9).astype(np.int64)
        keep = steps < n_steps
        np.add.at(out[index], (steps[keep], sample.units[keep]), 1.0)
    return out


def spike_counts(samples: list[SpikeSample], n_channels: int, n_bins: int = 1,
                 duration: Quantity = 1 * second) -> np.ndarray:
    """Per-sample spike counts of each channel in ``n_bins`` equal time bins: ``(sample, bin * channel)``."""
    out = np.zeros((len(samples), n_bins, n_channels), dtype=np.float32)
    for index, sample in enumerate(samples):
        bins = np.minimum((np.asarray(sample.times / duration) * n_bins).astype(np.int64), n_bins - 1)
        np.add.at(out[index], (bins, sample.units), 1.0)
    return out.reshape(len(samples), -1)


@dataclass
class Splits:
    """Train, validation and test sets after preprocessing; validation comes out of training."""

    train: SpikeDataset
    val: SpikeDataset
    test: SpikeDataset
    dataset: str  # the dataset actually used
    requested: str  # the dataset asked for (differs when the default fell back)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    split: str = "official"  # how train and test were separated: 'official' (the dataset's own) or 'speaker'
    test_speakers: tuple[str, ...] = ()  # the speakers held out for test (split 'speaker'), by name

    @property
    def n_channels(self) -> int:
        return self.train.n_channels

    @property
    def n_classes(self) -> int:
        return self.train.n_classes
