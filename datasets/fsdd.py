"""The Free Spoken Digit Dataset as spikes: recordings converted by the cochlea model, cached.

Recordings named ``{digit}_{speaker}_{index}.wav`` are read from ``--data-dir`` or, when that is
not given, from ``$FSDD_DIR``. Index 0-4 of every digit and speaker is the official test split.
The conversion runs once, in parallel processes, and is cached in SHD's layout under
``$SNN_DATA_DIR/fsdd-spikes/<key>/SHD/`` (default ``./data``), where the key hashes the input
files' contents and the converter's constants; the cached files are then read by the SHD reader,
unchanged. Nothing derived from the recordings belongs in the repository (CC BY-SA 4.0 data).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from brian2 import second

from datasets.cochlea import CochleaParams, convert_files, parse_name
from datasets.heidelberg import DatasetUnavailableError, load_heidelberg, write_shd_layout
from datasets.records import SpikeDataset, SpikeSample

FSDD_DIR_ENV = "FSDD_DIR"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_INDICES = range(5)


def recordings_dir(data_dir: str | os.PathLike | None) -> Path:
    """The folder of wav files: ``data_dir`` if it holds them, else ``$FSDD_DIR``."""
    candidates = []
    if data_dir is not None:
        candidates += [Path(data_dir), Path(data_dir) / "recordings"]
    if os.environ.get(FSDD_DIR_ENV):
        candidates += [Path(os.environ[FSDD_DIR_ENV]), Path(os.environ[FSDD_DIR_ENV]) / "recordings"]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*_*_*.wav")):
            return folder
    raise DatasetUnavailableError(
        "the FSDD recordings were not found: looked in "
        + (", ".join(str(c) for c in candidates) or "no folder (neither --data-dir nor $FSDD_DIR was given)")
        + ". Name the folder of {digit}_{speaker}_{index}.wav files with --data-dir or $FSDD_DIR "
        "(the recordings: github.com/Jakobovski/free-spoken-digit-dataset)."
    )


def cache_key(paths: list[Path], params: CochleaParams) -> str:
    from studies.common import config_json  # JSON of quantities with units

    digest = hashlib.sha256(config_json(params).encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    from datasets import default_data_dir

    return default_data_dir() / "fsdd-spikes"


def load_fsdd(data_dir=None, params: CochleaParams = CochleaParams(), workers: int | None = None,
              cache: Path | None = None) -> tuple[SpikeDataset, SpikeDataset]:
    """FSDD (train, test) as spikes, converting and caching on first use."""
    folder = recordings_dir(data_dir)
    paths = sorted(folder.glob("*_*_*.wav"))
    names = [parse_name(p) for p in paths]
    key = cache_key(paths, params)
    shd_dir = (cache or cache_root()) / key
    if not (shd_dir / "SHD" / "shd_test.h5").exists():
        speakers = sorted({n[1] for n in names})
        converted = convert_files(paths, params, workers, progress="FSDD -> spikes")
        for split, wanted in (("train", lambda i: i not in TEST_INDICES), ("test", lambda i: i in TEST_INDICES)):
            keep = [k for k, n in enumerate(names) if wanted(n[2])]
            samples = [SpikeSample(converted[k][0], converted[k][1] * second, int(names[k][0]),
                                   speakers.index(names[k][1])) for k in keep]
            extra = {"speaker_names": np.array([s.encode() for s in speakers]),
                     "file": np.array([paths[k].name.encode() for k in keep]),
                     "duration_s": np.array([converted[k][2] for k in keep])}
            write_shd_layout(shd_dir / "SHD" / f"shd_{split}.h5", samples, DIGITS, extra)
        (shd_dir / "source.json").write_text(json.dumps({"recordings": str(folder.resolve()), "files": len(paths)}))
    train, test = load_heidelberg("shd", shd_dir)
    for data in (train, test):
        data.name = "fsdd"
        data.n_channels = params.n_channels
    return train, test
