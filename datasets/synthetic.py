"""The built-in synthetic set: the class lives in millisecond-scale synchrony, not in spike counts.

Groups of channels that fire together again and again, at unpredictable moments and in noise,
either in millisecond synchrony or as a fixed spread-out latency pattern: the spatio-temporal
spike-pattern tasks of the Tempotron (Gütig & Sompolinsky 2006, Nature Neuroscience 9:420),
polychronous groups (Izhikevich 2006, Neural Computation 18:245) and synchrony codes, in the shape
of the timing tasks of Zenke & Vogels (2021, Neural Computation 33:899). Cramer et al. (2020, IEEE
TNNLS 33:2744) show that SHD needs spike timing; this set asks for it at the millisecond scale and
takes away everything a count can use.

**Assemblies.** The :math:`N` channels are split once, at random and for every class alike, into
:math:`M = \lceil N / G \rceil` assemblies of :math:`G` channels (``group_size``); :math:`a(i)` is
the assembly of channel :math:`i`.

**Classes.** Class :math:`c` is a binary code :math:`s_{c,m}`: assembly :math:`m` is *synchronous*
in class :math:`c` (:math:`s_{c,m} = 1`) or *spread*. Every assembly is synchronous in half of the
classes (codes are distinct). Channel :math:`i` has the latency

.. math:: \ell_{c,i} = 0 \ \text{if } s_{c,a(i)} = 1, \qquad
          \ell_{c,i} \sim U[0, \Delta) \ \text{(fixed per class and channel) otherwise},

with :math:`\Delta` the ``spread``.

**Samples.** A sample of class :math:`c` replays its code :math:`K` times (``occurrences``). At
occurrence :math:`k` every assembly starts at one onset :math:`o_k \sim U[0, T)`, drawn afresh for
every sample (``shared_onsets``), so each occurrence holds the whole code within :math:`\Delta`:
the synchronous assemblies fire together within :math:`\sigma` of :math:`o_k`, the spread ones
over the next :math:`\Delta`. Channel :math:`i` fires at

.. math:: t_{i,k} = \big(o_{k} + \ell_{c,i} + \epsilon_{i,k}\big) \bmod T,
          \qquad \epsilon_{i,k} \sim \mathcal N(0, \sigma^2) \ (\text{jitter}),

each such spike being dropped with probability :math:`p` (``dropout``), plus background Poisson
spikes at rate :math:`\nu` (``noise_rate``) on every channel, uniform over :math:`[0, T)`. With
``shared_onsets`` off, every assembly draws its own onsets :math:`o_{m,k}`: the code is then
scattered over the whole second and a network must gather it across volleys that a 20 ms membrane
does not span; with 35-channel assemblies, a 30 ms spread and 1 ms jitter the 1 ms BPTT baseline
reached only 0.23 on that set's test split in its 10-minute budget (12 epochs, seed 0).

**What a count can see.** The number of spikes of channel :math:`i` is
:math:`\mathrm{Binomial}(K, 1 - p) + \mathrm{Poisson}(\nu T)`, the same for every class. Because
the onsets are uniform on the circle :math:`[0, T)` (a volley that runs past :math:`T` wraps to the
start), every spike time is uniform on :math:`[0, T)` whatever the class, so the class-conditional
mean of every time-binned count is the same for all classes too. Every channel fires within the same
windows in every class; only whether an assembly does so within :math:`\sigma` or spread over
:math:`\Delta` differs, so count covariances differ between classes only in bins not much longer
than :math:`\Delta`; a least-squares readout of counts in bins of 20 ms or less, with an argmax,
partly uses them (0.19 on test against 0.05 chance, see the README). A LIF neuron with a 5 ms
synaptic and 20 ms membrane time constant sees a synchronous volley of :math:`G(1-p)` spikes as one
large jump of its potential and a spread volley as a slow, smaller rise.

Departures from the papers: many assemblies and a binary synchrony code per class rather than one
pattern per class, so that counts are balanced by construction; onsets wrap around the sample so
that absolute time carries nothing.

Defaults give SHD's shape (700 channels, 20 classes, 1 s) and about
:math:`N(K(1-p) + \nu T) \approx 4500` spikes per sample. The difficulty is set by
``group_size``, ``occurrences``, ``spread``, ``jitter``, ``dropout``, ``noise_rate`` and
``shared_onsets``; the measured controls and baseline are in the README (the built-in set), made by
``python studies/dataset_summary.py --dataset synthetic --n-train 2000 --n-test 500 --seed S``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Hz, Quantity, ms, second

from datasets.records import SpikeDataset, SpikeSample
from models.units import check_quantity, config_json, const


@dataclass(frozen=True)
class TimingConfig:
    """Shape and difficulty of the built-in set (SHD's shape by default)."""

    n_channels: int = 700  # N: input units
    n_classes: int = 20  # classes
    n_train: int = 2000  # training samples (validation is carved out of these)
    n_test: int = 500  # test samples
    duration: Quantity = const(1 * second)  # T: sample length; onsets wrap around it
    group_size: int = 20  # G: channels per assembly (the coincidence a detector sees)
    occurrences: int = 5  # K: times every assembly fires in one sample
    spread: Quantity = const(6 * ms)  # Delta: latencies of a spread assembly are uniform in [0, spread)
    jitter: Quantity = const(2 * ms)  # sigma: standard deviation of each assembly spike around its latency
    dropout: float = 0.1  # p: probability that an assembly spike is missing
    noise_rate: Quantity = const(2 * Hz)  # nu: background Poisson rate per channel, the same for every class
    shared_onsets: bool = True  # all assemblies replay at the same K onsets (off: each at its own)
    seed: int = 42  # seed of the assemblies, the class codes and the samples

    def __post_init__(self):
        check_quantity("duration", self.duration, second, positive=True)
        check_quantity("spread", self.spread, second)
        check_quantity("jitter", self.jitter, second)
        check_quantity("noise_rate", self.noise_rate, Hz)
        for name in ("n_channels", "n_classes", "group_size", "occurrences"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.n_train < 0 or self.n_test < 0:
            raise ValueError("n_train and n_test must not be negative")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if float(self.spread) >= float(self.duration):
            raise ValueError("spread must be shorter than the duration")
        if self.n_classes > 1 and 2 ** self.n_assemblies < self.n_classes:
            raise ValueError("too few assemblies to give every class its own synchrony code")

    @property
    def n_assemblies(self) -> int:
        """M: assemblies."""
        return -(-self.n_channels // self.group_size)


def class_codes(config: TimingConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(assembly, synchronous, latency)``: a(i) per channel, s_{c,m} and l_{c,i} in seconds."""
    assembly = np.argsort(rng.random(config.n_channels)) // config.group_size  # random blocks of G
    n_classes, n_assemblies = config.n_classes, config.n_assemblies
    for _ in range(1000):  # each column balanced: synchronous in half of the classes
        ranks = np.argsort(rng.random((n_assemblies, n_classes)), axis=1).T
        synchronous = ranks < n_classes // 2 + rng.integers(0, 2, n_assemblies) * (n_classes % 2)
        if len(np.unique(synchronous, axis=0)) == n_classes:
            break
    else:
        raise ValueError("could not draw distinct synchrony codes; use more assemblies")
    spread = rng.uniform(0, float(config.spread), (n_classes, config.n_channels))
    latency = np.where(synchronous[:, assembly], 0.0, spread)
    return assembly.astype(np.int64), synchronous, latency


def make_timing(config: TimingConfig = TimingConfig()) -> tuple[SpikeDataset, SpikeDataset]:
    """The (train, test) pair; the same config always gives the same spikes."""
    code_seed, train_seed, test_seed = np.random.SeedSequence(config.seed).spawn(3)
    assembly, _, latency = class_codes(config, np.random.default_rng(code_seed))
    names = [f"class {c}" for c in range(config.n_classes)]
    generator = config_json(config)
    sets = []
    for n, seed in ((config.n_train, train_seed), (config.n_test, test_seed)):
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % config.n_classes
        rng.shuffle(labels)
        samples = _samples(config, labels, assembly, latency, rng)
        sets.append(SpikeDataset("synthetic", samples, config.n_channels, names, config.duration,
                                 generator=generator))
    return sets[0], sets[1]


def _samples(config: TimingConfig, labels: np.ndarray, assembly: np.ndarray, latency: np.ndarray,
             rng: np.random.Generator) -> list[SpikeSample]:
    """All samples of one split at once: assembly spikes as ``(sample, channel, occurrence)`` arrays."""
    n, n_channels, k = len(labels), config.n_channels, config.occurrences
    duration = float(config.duration)
    if config.shared_onsets:  # one onset per occurrence, the same for every assembly
        onsets = np.broadcast_to(rng.uniform(0, duration, (n, 1, k)), (n, config.n_assemblies, k))
    else:
        onsets = rng.uniform(0, duration, (n, config.n_assemblies, k))
    times = onsets[:, assembly] + latency[labels][:, :, None]
    times = np.mod(times + rng.normal(0, float(config.jitter), times.shape), duration)
    times[times >= duration] = 0.0  # np.mod of a tiny negative number rounds up to the duration itself
    kept = rng.random(times.shape) >= config.dropout
    sample_of = np.broadcast_to(np.arange(n)[:, None, None], times.shape)[kept]
    units = np.broadcast_to(np.arange(n_channels)[None, :, None], times.shape)[kept]
    times = times[kept]

    n_noise = rng.poisson(float(config.noise_rate) * duration * n_channels, n)
    sample_of = np.concatenate([sample_of, np.repeat(np.arange(n), n_noise)])
    units = np.concatenate([units, rng.integers(0, n_channels, n_noise.sum())])
    times = np.concatenate([times, rng.uniform(0, duration, n_noise.sum())])

    # One float key sorts by sample, then time: much faster than a lexsort over millions of spikes.
    order = np.argsort(sample_of * (2.0 * duration) + times, kind="stable")
    bounds = np.cumsum(np.bincount(sample_of, minlength=n))[:-1]
    unit_parts = np.split(units[order], bounds)
    time_parts = np.split(times[order], bounds)
    return [SpikeSample(units=u.astype(np.int64), times=t * second, label=int(label))
            for u, t, label in zip(unit_parts, time_parts, labels)]
