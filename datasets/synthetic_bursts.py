"""The former built-in set ("synthetic_bursts"): one jittered burst per channel at a class-dependent time.

Kept for the tests and benchmarks that were tuned on it. Its class lives in burst times spread over
the whole second, so a readout of spike counts in two 500 ms bins already solves it (test accuracy
1.000 on the default set); :mod:`datasets.synthetic` is the set whose class lives in
millisecond-scale timing.

After the random-manifold tasks of Zenke & Vogels (2021, Neural Computation 33:899, "The
remarkable robustness of surrogate gradient learning", section 2.3): every class is a smooth random
map from a low-dimensional manifold coordinate ``x`` to one firing time per channel,

.. math:: t_{c,i}(x) = t_0 + (T - 2 t_0)\\,\\frac{1}{d}\\sum_{j=1}^{d} f_{c,i,j}(x_j),

where each :math:`f_{c,i,j}` is a random Fourier series with amplitudes falling as
:math:`k^{-\\alpha}`, rescaled to [0, 1]. A sample draws ``x`` uniformly, and each channel fires a
burst of Poisson(``spikes_per_burst``) spikes jittered around its time, plus background Poisson
noise. The number of spikes per channel does not depend on the class, so a readout of spike
counts alone sits near chance while a readout that sees timing does far better.

Departures from the paper: bursts instead of single spikes (SHD-like spike density, about
``n_channels * spikes_per_burst`` spikes per sample) and background noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Quantity, ms, second

from datasets.records import SpikeDataset, SpikeSample
from models.units import check_quantity, config_json, const


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape and difficulty of the built-in set (SHD's shape by default)."""

    n_channels: int = 700  # input units
    n_classes: int = 20  # classes
    n_train: int = 2000  # training samples (validation is carved out of these)
    n_test: int = 500  # test samples
    duration: Quantity = const(1 * second)  # sample length
    manifold_dim: int = 1  # dimension d of each class manifold
    n_harmonics: int = 3  # Fourier terms per map
    smoothness: float = 1.0  # alpha: amplitude of harmonic k falls as k**-alpha
    spikes_per_burst: float = 6.0  # mean spikes per channel per sample
    jitter: Quantity = const(8 * ms)  # standard deviation of spike times around the burst time
    noise_rate: Quantity = const(1.0 / second)  # background Poisson rate per channel
    margin: Quantity = const(50 * ms)  # t_0: bursts lie in [t_0, T - t_0]
    seed: int = 42  # seed of the class maps and of the samples

    def __post_init__(self):
        for name in ("duration", "jitter", "margin"):
            check_quantity(name, getattr(self, name), second, positive=name != "margin")
        check_quantity("noise_rate", self.noise_rate, 1 / second)
        if 2 * float(self.margin) >= float(self.duration):
            raise ValueError("margin must be less than half the duration")
        for name in ("n_channels", "n_classes", "manifold_dim", "n_harmonics"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def _class_maps(config: SyntheticConfig, rng: np.random.Generator):
    """Fourier coefficients of every map and the constants that rescale each to [0, 1]."""
    shape = (config.n_classes, config.n_channels, config.manifold_dim, config.n_harmonics)
    harmonics = np.arange(1, config.n_harmonics + 1)
    amplitude = rng.standard_normal(shape) * harmonics ** -config.smoothness
    phase = rng.uniform(0, 2 * np.pi, shape)
    grid = np.linspace(0, 1, 256)
    values = _evaluate(amplitude, phase, grid[:, None, None, None, None])  # (grid, class, channel, dim)
    low, high = values.min(axis=0), values.max(axis=0)
    return amplitude, phase, low, high


def _evaluate(amplitude, phase, x):
    harmonics = np.arange(1, amplitude.shape[-1] + 1)
    return np.sum(amplitude * np.sin(2 * np.pi * harmonics * x + phase), axis=-1)


def make_synthetic(config: SyntheticConfig = SyntheticConfig()) -> tuple[SpikeDataset, SpikeDataset]:
    """The (train, test) pair; the same config always gives the same spikes."""
    maps_seed, train_seed, test_seed = np.random.SeedSequence(config.seed).spawn(3)
    amplitude, phase, low, high = _class_maps(config, np.random.default_rng(maps_seed))
    names = [f"class {c}" for c in range(config.n_classes)]
    sets = []
    for n, seed in ((config.n_train, train_seed), (config.n_test, test_seed)):
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % config.n_classes
        rng.shuffle(labels)
        samples = [_sample(config, int(label), amplitude, phase, low, high, rng) for label in labels]
        sets.append(SpikeDataset("synthetic_bursts", samples, config.n_channels, names, config.duration,
                                 generator=config_json(config)))
    return sets[0], sets[1]


def _sample(config, label, amplitude, phase, low, high, rng) -> SpikeSample:
    x = rng.uniform(0, 1, config.manifold_dim)
    raw = _evaluate(amplitude[label], phase[label], x[None, :, None])  # (channel, dim)
    scaled = np.mean((raw - low[label]) / (high[label] - low[label]), axis=-1)
    duration, margin = float(config.duration), float(config.margin)
    centre = margin + (duration - 2 * margin) * scaled
    counts = rng.poisson(config.spikes_per_burst, config.n_channels)
    units = np.repeat(np.arange(config.n_channels), counts)
    times = centre[units] + rng.normal(0, float(config.jitter), units.size)
    n_noise = rng.poisson(float(config.noise_rate) * duration * config.n_channels)
    units = np.concatenate([units, rng.integers(0, config.n_channels, n_noise)])
    times = np.concatenate([times, rng.uniform(0, duration, n_noise)])
    keep = (times >= 0) & (times < duration)
    order = np.argsort(times[keep], kind="stable")
    return SpikeSample(units=units[keep][order], times=times[keep][order] * second, label=label)
