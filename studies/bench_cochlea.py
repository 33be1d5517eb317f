"""Benchmark: audio -> spikes conversion speed on the FSDD recordings, and what the spikes carry.

    python studies/bench_cochlea.py --data-dir ../shared/data/fsdd/recordings

Converts every recording (no cache) in ``--workers`` processes and times it; then scores a
logistic readout of per-channel spike counts (4 time bins) on the official test split, with its
regularisation chosen on a validation part of the training split. Targets (issue 3): all 2,500
recordings in at most 10 minutes on 2 cores; the readout clearly above chance (10 classes).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import second

from datasets import spike_counts, validation_split
from datasets.cochlea import CochleaParams, convert_files, parse_name
from datasets.fsdd import TEST_INDICES, recordings_dir
from datasets.records import SpikeSample
from learning_rules.readout import fit_logistic_readout, score_readout
from models import files
from models.units import config_json
from studies import results
from studies.cli import run_main
from studies.quick_help import HelpCachingParser


def run(data_dir, n_files: int | None, workers: int, seed: int) -> xr.Dataset:
    started = results.now()
    paths = sorted(recordings_dir(data_dir).glob("*_*_*.wav"))
    if n_files is not None:
        paths = list(np.random.default_rng(seed).choice(paths, size=min(n_files, len(paths)), replace=False))
    t0 = time.perf_counter()
    converted = convert_files(paths, CochleaParams(), workers, progress="cochlea")
    seconds = time.perf_counter() - t0
    audio = float(sum(c[2] for c in converted))
    names = [parse_name(p) for p in paths]
    samples = [SpikeSample(u, t * second, int(n[0])) for (u, t, _), n in zip(converted, names)]
    is_test = np.array([n[2] in TEST_INDICES for n in names])
    features = spike_counts(samples, 700, n_bins=4, duration=1 * second)
    labels = np.array([s.label for s in samples])
    train_idx = np.flatnonzero(~is_test)
    fit_idx, val_idx = validation_split(labels[train_idx], 0.1, seed)
    fit_idx, val_idx = train_idx[fit_idx], train_idx[val_idx]
    readout = fit_logistic_readout(features[fit_idx], labels[fit_idx], features[val_idx], labels[val_idx], seed=seed)
    test_acc = score_readout(readout, features[is_test], labels[is_test]) if is_test.any() else float("nan")
    ds = xr.Dataset({
        "conversion_seconds": results.scalar(seconds, "s", "wall time to convert all recordings"),
        "audio_seconds": results.scalar(audio, "s", "audio converted"),
        "files": results.scalar(len(paths), "1", "recordings converted"),
        "seconds_per_audio_second": results.scalar(seconds / audio, "1", "wall time per second of audio"),
        "median_spikes_per_sample": results.scalar(np.median([len(s.units) for s in samples]), "1",
                                                  "median spikes per recording"),
        "count_readout_test_accuracy": results.scalar(test_acc, "1",
                                                     "test accuracy of a logistic readout on spike counts"),
        **results.memory_vars(),
    })
    results.benchmark_attrs(ds, "cochlea_conversion", started, workers=workers, config=config_json(CochleaParams()))
    return ds


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="FSDD recordings (default: $FSDD_DIR)")
    parser.add_argument("--n-files", type=int, default=None, help="convert a random subset (default all)")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and the validation split")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    ds = run(args.data_dir, args.n_files, args.workers, args.seed)
    path = files.write_netcdf(ds, Path(args.out) / "bench_cochlea.nc")
    print(f"{int(ds.files)} recordings ({float(ds.audio_seconds):.0f} s of audio) in "
          f"{float(ds.conversion_seconds):.0f} s; count readout test accuracy "
          f"{float(ds.count_readout_test_accuracy):.3f} (chance 0.1)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
