"""Audio -> spikes through a cochlea model, written in SHD's file layout.

The stages follow the pipeline that made SHD (Cramer et al. 2020: basilar membrane, inner hair
cells, bushy cells), with cheaper models at each stage:

1. **Basilar membrane**: brian2hears' gammatone filterbank (Slaney 1993 implementation of Patterson's
   gammatone filters), ``n_channels`` centre frequencies spaced uniformly on the ERB scale between
   ``f_min`` and ``f_max``. Channel 0 is the *highest* frequency, as in SHD's files (the reference
   spikes made with SHD's own pipeline from the FSDD recordings are most active in the top channels,
   where speech has most of its energy: low frequencies). The audio is first resampled to ``sample_rate``.
2. **Inner hair cell**: half-wave rectification, cube-root compression, and a first-order low-pass
   at ``f_lowpass`` (loss of phase locking at high frequencies); then decimated to the spiking
   step ``1 / spike_rate``.
3. **Spiking (bushy-cell-like)**: one leaky integrate-and-fire neuron per channel,
   :math:`\\tau \\dot v = g\\,h(t) - v`, spike when :math:`v > 1 + a`, then :math:`v \\leftarrow 0`, an
   absolute refractory period, and an adaptive threshold :math:`a` (jumps by ``adaptation`` per spike,
   decays with ``tau_adaptation``) that stresses onsets as bushy cells do. Deterministic: silence
   gives no spikes.

``gain`` sets the input level: the full-scale digital amplitude (1.0) corresponds to ``gain`` in
the neuron's threshold units after compression. The default is calibrated so that FSDD recordings
give about as many spikes per sample, and as many active channels, as SHD's own pipeline on the same
audio (see ``studies/dataset_summary.py`` and ``../shared/data/fsdd-lauscher-ref``).

Command line: ``python -m datasets.cochlea RECORDINGS_DIR OUT.h5`` converts every
``{label}_{speaker}_{index}.wav`` in a folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from brian2 import Hz, Quantity, kHz, ms, second
from scipy.io import wavfile
from scipy.signal import lfilter, resample_poly
from tqdm import tqdm

from datasets.records import SpikeSample
from models.files import DataError
from models.units import check_quantity, const


@dataclass(frozen=True)
class CochleaParams:
    """Constants of the audio front end."""

    n_channels: int = 700  # cochlear channels (SHD: 700)
    f_min: Quantity = const(50 * Hz)  # lowest centre frequency
    f_max: Quantity = const(7.5 * kHz)  # highest centre frequency (keep below sample_rate / 2)
    sample_rate: Quantity = const(16 * kHz)  # audio is resampled to this rate for the filterbank
    f_lowpass: Quantity = const(1 * kHz)  # hair-cell low-pass cut-off
    spike_rate: Quantity = const(4 * kHz)  # rate of the spiking stage (its time step is 1/spike_rate)
    gain: float = 12.5  # input gain into the spiking neuron, after compression
    tau: Quantity = const(2 * ms)  # membrane time constant of the spiking neuron
    t_ref: Quantity = const(2 * ms)  # absolute refractory period
    adaptation: float = 0.6  # threshold increase per spike
    tau_adaptation: Quantity = const(40 * ms)  # decay of the threshold increase

    def __post_init__(self):
        for name in ("f_min", "f_max", "sample_rate", "f_lowpass", "spike_rate"):
            check_quantity(name, getattr(self, name), Hz, positive=True)
        for name in ("tau", "t_ref", "tau_adaptation"):
            check_quantity(name, getattr(self, name), second, positive=name != "t_ref")
        if not float(self.f_min) < float(self.f_max) < float(self.sample_rate) / 2:
            raise ValueError("need f_min < f_max < sample_rate / 2")
        if self.n_channels < 1 or self.gain <= 0 or self.adaptation < 0:
            raise ValueError("n_channels and gain must be positive, adaptation not negative")
        ratio = float(self.sample_rate / self.spike_rate)
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("sample_rate must be a whole multiple of spike_rate")


def centre_frequencies(params: CochleaParams) -> Quantity:
    """Centre frequency of each channel, falling from ``f_max`` (channel 0) to ``f_min``."""
    from brian2hears import erbspace

    return erbspace(params.f_min, params.f_max, params.n_channels)[::-1]


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, Quantity]:
    """Mono float audio in [-1, 1] and its sample rate."""
    rate, data = wavfile.read(path)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if np.issubdtype(data.dtype, np.integer):
        data = data / float(np.iinfo(data.dtype).max + 1)
    return np.asarray(data, dtype=np.float64), rate * Hz


def resample(audio: np.ndarray, rate: Quantity, target: Quantity) -> np.ndarray:
    from fractions import Fraction

    frac = Fraction(int(round(float(target / Hz))), int(round(float(rate / Hz))))
    return audio if frac == 1 else resample_poly(audio, frac.numerator, frac.denominator)


def hair_cell(audio: np.ndarray, rate: Quantity, params: CochleaParams) -> np.ndarray:
    """``(step, channel)`` hair-cell output at the spiking rate."""
    from brian2hears import Gammatone, Sound

    audio = resample(audio, rate, params.sample_rate)
    sound = Sound(audio.reshape(-1, 1), samplerate=params.sample_rate)
    basilar = Gammatone(sound, centre_frequencies(params)).process()  # (sample, channel)
    compressed = np.cbrt(np.maximum(basilar, 0.0))
    pole = np.exp(-2 * np.pi * float(params.f_lowpass / params.sample_rate))
    smoothed = lfilter([1 - pole], [1, -pole], compressed, axis=0)
    step = int(round(float(params.sample_rate / params.spike_rate)))
    return smoothed[::step]


def spikes_from_hair_cell(drive: np.ndarray, params: CochleaParams) -> tuple[np.ndarray, np.ndarray]:
    """Run the per-channel spiking neurons; returns (units, times in seconds), sorted by time."""
    dt = 1.0 / float(params.spike_rate / Hz)
    decay = np.exp(-dt / float(params.tau / second))
    decay_adapt = np.exp(-dt / float(params.tau_adaptation / second))
    refractory_steps = int(round(float(params.t_ref / second) / dt))
    n = drive.shape[1]
    v, adapt = np.zeros(n), np.zeros(n)
    held = np.zeros(n, dtype=np.int64)
    units, steps = [], []
    target = params.gain * drive
    for step in range(drive.shape[0]):
        v = target[step] + (v - target[step]) * decay
        adapt *= decay_adapt
        free = held <= 0
        fired = free & (v > 1.0 + adapt)
        held -= 1
        if fired.any():
            idx = np.flatnonzero(fired)
            units.append(idx)
            steps.append(np.full(idx.size, step))
            v[idx] = 0.0
            adapt[idx] += params.adaptation
            held[idx] = refractory_steps
        v[~free] = 0.0
    if not units:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(units).astype(np.int64), np.concatenate(steps) * dt


def audio_to_spikes(audio: np.ndarray, rate: Quantity, params: CochleaParams = CochleaParams()) -> tuple[np.ndarray, Quantity]:
    """Spike unit indices and times (Brian2 quantity) for one recording."""
    units, times = spikes_from_hair_cell(hair_cell(audio, rate, params), params)
    return units, times * second


_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>[^_]+)_(?P<index>\d+)\.wav$")


def parse_name(path: Path) -> tuple[str, str, int]:
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name}: recordings must be named {{label}}_{{speaker}}_{{index}}.wav")
    return match["label"], match["speaker"], int(match["index"])


class BadRecordingError(ValueError, DataError):
    """Recordings that could not be read or converted; ``failures`` maps each file name to why."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        super().__init__(f"{len(failures)} recording(s) could not be converted: "
                         + "; ".join(f"{name} ({why})" for name, why in self.failures.items()))


def _convert_one(args) -> tuple[np.ndarray, np.ndarray, float]:
    path, params = args
    audio, rate = read_wav(path)
    if audio.size == 0:
        raise ValueError("the wav file holds no samples")
    units, times = audio_to_spikes(audio, rate, params)
    return units, np.asarray(times / second), len(audio) / float(rate / Hz)


def _try_convert(args):
    """``(result, None)``, or ``(None, why)`` when the file cannot be read or converted."""
    try:
        return _convert_one(args), None
    except Exception as error:  # a bad file fails in the wav reader or the filterbank, in many types
        return None, f"{type(error).__name__}: {error}"


def convert_files(paths: list[Path], params: CochleaParams, workers: int | None = None,
                  progress: str | None = "cochlea", on_result=None) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Convert recordings in parallel processes; (units, times in s, duration in s) per file.

    Every file is tried even when some fail. ``on_result(index, result)`` is called in this process as
    each converted file arrives, so that a caller can keep it (cache it) before a later file fails.
    The files that failed end in one :class:`BadRecordingError` naming each and why, raised after all
    files were tried.
    """
    jobs = [(p, params) for p in paths]
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    results, failures = [], {}
    with tqdm(total=len(jobs), desc=progress, disable=progress is None, unit="file") as bar:
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            outcomes = pool.map(_try_convert, jobs, chunksize=8) if pool else map(_try_convert, jobs)
            for index, (result, why) in enumerate(outcomes):
                bar.update()
                if why is not None:
                    failures[Path(paths[index]).name] = why
                    continue
                results.append(result)
                if on_result is not None:
                    on_result(index, result)
        finally:
            if pool:
                pool.shutdown()
    if failures:
        raise BadRecordingError(failures)
    return results


def convert_folder(folder: str | os.PathLike, out: str | os.PathLike, params: CochleaParams = CochleaParams(),
                   workers: int | None = None, class_names: list[str] | None = None) -> Path:
    """Every ``{label}_{speaker}_{index}.wav`` in ``folder`` -> one SHD-layout file ``out``."""
    from datasets.heidelberg import write_shd_layout

    paths = sorted(Path(folder).glob("*.wav"))
    if not paths:
        raise FileNotFoundError(f"no .wav recordings in {folder}")
    names = [parse_name(p) for p in paths]
    labels = class_names or sorted({n[0] for n in names}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else s))
    speakers = sorted({n[1] for n in names})
    converted = convert_files(paths, params, workers)
    samples = [SpikeSample(u, t * second, labels.index(n[0]), speakers.index(n[1])) for (u, t, _), n in
               zip(converted, names)]
    extra = {"speaker_names": np.array([s.encode() for s in speakers]),
             "file": np.array([p.name.encode() for p in paths]),
             "duration_s": np.array([c[2] for c in converted])}
    return write_shd_layout(out, samples, labels, extra)


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description="Convert a folder of {label}_{speaker}_{index}.wav recordings "
                                                 "to spikes in SHD's HDF5 layout.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder of .wav recordings")
    parser.add_argument("out", type=Path, help="HDF5 file to write")
    parser.add_argument("--n-channels", type=int, default=700, help="cochlear channels")
    parser.add_argument("--gain", type=float, default=CochleaParams.gain, help="input gain of the spiking stage")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    params = dataclasses.replace(CochleaParams(), n_channels=args.n_channels, gain=args.gain)
    path = convert_folder(args.folder, args.out, params, args.workers)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    try:
        main()
    except (DataError, FileNotFoundError) as error:  # the recordings: exit status 1
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    except ValueError as error:  # how it was called: 2
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
