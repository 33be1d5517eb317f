"""The Free Spoken Digit Dataset as spikes: recordings converted by the cochlea model, cached.

Recordings named ``{digit}_{speaker}_{index}.wav`` are read from ``--data-dir`` or, when that is
not given, from ``$FSDD_DIR``; where neither holds any, from ``<data folder>/fsdd/recordings``
(the data folder is ``--data-dir`` or ``$SNN_DATA_DIR``, default ``./data``), and where that is
empty too they are downloaded there from the pinned upstream commit (:data:`PINNED`) and checked
against its manifest. Index 0-4 of every digit and speaker is the official test split.

Conversion runs in parallel processes and is cached in two layers under
``$SNN_DATA_DIR/fsdd-spikes/`` (default ``./data``):

- ``files/<params key>/<sha256 of the wav>.npz``: one recording's spikes, written as soon as it is
  converted, so that a run stopped by a bad recording (or by anything else) keeps what it did and
  the next run converts only what is missing or changed;
- ``<key>/SHD/shd_{train,test}.h5``: the whole set in SHD's layout, keyed by every file's name and
  content and the converter's constants, read by the SHD reader unchanged.

Nothing derived from the recordings belongs in the repository (CC BY-SA 4.0 data).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from brian2 import second

from datasets.cochlea import _NAME, BadRecordingError, CochleaParams, convert_files, parse_name
from datasets.heidelberg import DatasetUnavailableError, load_heidelberg, write_shd_layout
from datasets.records import SpikeDataset, SpikeSample
from models import files
from models.units import config_json

FSDD_DIR_ENV = "FSDD_DIR"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_INDICES = range(5)
REPOSITORY = "https://github.com/Jakobovski/free-spoken-digit-dataset"


@dataclass(frozen=True)
class FSDDSource:
    """Where the recordings are downloaded from and what the download must hold."""

    url: str  # a .tar.gz archive of the repository at one commit
    min_files: int  # the archive holds at least this many recordings/*.wav
    speakers: tuple[str, ...]  # the speakers whose files the digest covers
    digest: str  # recordings_digest(folder, speakers) of the expected files


#: Commit 26eb9aa (full id below), the commit the project's reference copy was taken from
#: (``../shared/data/fsdd``). A commit, not a tag or branch: a commit archive cannot change under us,
#: and the recordings of the five speakers we hold (george, jackson, lucas, nicolas, theo;
#: 50 per digit each) are exactly the ones every result so far was computed on. The archive
#: may hold further speakers (upstream added a sixth); they are extracted too, counted in
#: ``min_files``, and left out of the digest because no reference copy of them was at hand.
#: ``digest`` was computed with :func:`recordings_digest` on the reference copy; it equals
#: ``sha256sum <the files, sorted by name> | sha256sum`` run in the recordings folder.
PINNED_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
PINNED = FSDDSource(
    url=f"{REPOSITORY}/archive/{PINNED_COMMIT}.tar.gz",
    min_files=2500,
    speakers=("george", "jackson", "lucas", "nicolas", "theo"),
    digest="6683e4cce57553414a3f46d7e6159c614cdbba1313f3ca0f3ea109523db11ea6",
)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recordings_digest(folder: str | os.PathLike, speakers=None) -> tuple[int, str]:
    """``(number of files, combined sha256)`` of the recordings of ``speakers`` (all when None).

    The combined digest is the sha256 of the text ``sha256sum`` prints for the files sorted by name
    (one line ``<sha256 of the content>  <name>`` each), so it can be checked by hand.
    """
    paths = sorted(Path(folder).glob("*_*_*.wav"), key=lambda p: p.name)
    if speakers is not None:
        paths = [p for p in paths if _NAME.match(p.name) and parse_name(p)[1] in set(speakers)]
    lines = "".join(f"{file_sha256(p)}  {p.name}\n" for p in paths)
    return len(paths), hashlib.sha256(lines.encode()).hexdigest()


def check_recordings(folder: Path, source: FSDDSource) -> None:
    """Raise DatasetUnavailableError unless ``folder`` holds what ``source`` promises."""
    n_all = len(list(folder.glob("*_*_*.wav")))
    n, digest = recordings_digest(folder, source.speakers)
    if n_all < source.min_files:
        raise DatasetUnavailableError(
            f"the FSDD archive {source.url} held {n_all} recordings, expected at least {source.min_files}")
    if digest != source.digest:
        raise DatasetUnavailableError(
            f"the FSDD recordings from {source.url} fail their checksum: the {n} files of "
            f"{', '.join(source.speakers)} have combined sha256 {digest}, expected {source.digest} "
            "(a changed, missing or extra file; see recordings_digest in datasets/fsdd.py)")


def _wav_members(archive: tarfile.TarFile):
    """The archive's ``<top>/recordings/<name>.wav`` regular files, by their bare file name.

    Only a name that parses as ``{digit}_{speaker}_{index}.wav`` is taken, so nothing can be
    written outside the target folder (no ``..``, no absolute paths, no links)."""
    for member in archive:
        parts = member.name.split("/")
        if (member.isfile() and len(parts) == 3 and parts[1] == "recordings" and _NAME.match(parts[2])
                and parts[0] not in ("", ".", "..")):
            yield parts[2], member


def download_fsdd(target: Path, source: FSDDSource = PINNED) -> Path:
    """Download ``source`` and put its checked recordings into ``target``; returns ``target``.

    The archive goes to a temporary file, the recordings to a temporary folder beside ``target``;
    only when they pass :func:`check_recordings` is that folder renamed to ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    by_hand = (f"Download {source.url} yourself and unpack its recordings/*.wav into {target}, "
               "or name a folder of {digit}_{speaker}_{index}.wav files with --data-dir or $FSDD_DIR.")
    staging = Path(tempfile.mkdtemp(prefix=".fsdd-download-", dir=target.parent))
    try:
        archive_path = staging / "archive.tar.gz"
        try:
            with urlopen(source.url, timeout=60) as response, open(archive_path, "wb") as out:
                shutil.copyfileobj(response, out)
        except Exception as error:  # URLError, HTTPError, timeouts, resets...
            raise DatasetUnavailableError(
                f"downloading them from {source.url} failed ({type(error).__name__}: {error}). {by_hand}") from error
        folder = staging / "recordings"
        folder.mkdir()
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                for name, member in _wav_members(archive):
                    with archive.extractfile(member) as src, open(folder / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetUnavailableError(
                f"the FSDD archive from {source.url} cannot be unpacked ({type(error).__name__}: {error}). "
                f"{by_hand}") from error
        try:
            check_recordings(folder, source)
        except DatasetUnavailableError as error:
            raise DatasetUnavailableError(f"{error}. {by_hand}") from error
        os.replace(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_recordings_dir(data_dir: str | os.PathLike | None) -> Path:
    """Where downloaded recordings are kept: ``<data folder>/fsdd/recordings``."""
    from datasets import default_data_dir

    return (Path(data_dir) if data_dir is not None else default_data_dir()) / "fsdd" / "recordings"


def _candidates(data_dir) -> list[Path]:
    candidates = []
    if data_dir is not None:
        candidates += [Path(data_dir), Path(data_dir) / "recordings"]
    if os.environ.get(FSDD_DIR_ENV):
        candidates += [Path(os.environ[FSDD_DIR_ENV]), Path(os.environ[FSDD_DIR_ENV]) / "recordings"]
    return candidates + [default_recordings_dir(data_dir)]


def _found(data_dir) -> Path | None:
    for folder in _candidates(data_dir):
        if folder.is_dir() and any(folder.glob("*_*_*.wav")):
            return folder
    return None


def _not_found(data_dir) -> str:
    return "the FSDD recordings were not found (looked in " + ", ".join(str(c) for c in _candidates(data_dir)) + ")"


def recordings_dir(data_dir: str | os.PathLike | None) -> Path:
    """The folder of wav files: ``data_dir`` if it holds them, else ``$FSDD_DIR``, else the download folder."""
    folder = _found(data_dir)
    if folder is None:
        raise DatasetUnavailableError(
            _not_found(data_dir) + ". Name the folder of {digit}_{speaker}_{index}.wav files with --data-dir "
            f"or $FSDD_DIR (the recordings: {REPOSITORY}).")
    return folder


def find_or_download(data_dir, source: FSDDSource = PINNED) -> Path:
    """:func:`recordings_dir`, downloading into :func:`default_recordings_dir` where nothing is found."""
    folder = _found(data_dir)
    if folder is not None:
        return folder
    try:
        return download_fsdd(default_recordings_dir(data_dir), source)
    except DatasetUnavailableError as error:
        raise DatasetUnavailableError(f"{_not_found(data_dir)}; {error}") from error


def _params_key(params: CochleaParams) -> str:
    return hashlib.sha256(config_json(params).encode()).hexdigest()[:16]


def cache_key(names: list[str], hashes: list[str], params: CochleaParams) -> str:
    """Key of the assembled set: the converter's constants, every file's name and content."""
    digest = hashlib.sha256(_params_key(params).encode())
    for name, content in zip(names, hashes):
        digest.update(f"{content}  {name}\n".encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    from datasets import default_data_dir

    return default_data_dir() / "fsdd-spikes"


def _read_one(path: Path):
    """A cached recording's (units, times in s, duration in s), or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["units"], f["times"], float(f["duration"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # torn by a crash: convert again
        return None


def _write_one(path: Path, result) -> None:
    """One recording's spikes, atomically (what a killed run left half-written is removed here)."""
    units, times, duration = result
    files.save_arrays(path, units=np.asarray(units, dtype=np.int64), times=np.asarray(times, dtype=np.float64),
                      duration=np.float64(duration))


def convert_cached(paths: list[Path], hashes: list[str], params: CochleaParams, folder: Path,
                   workers: int | None = None) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Each recording's spikes, from ``folder/<content sha256>.npz`` or converted and stored there.

    A recording that cannot be converted ends in one DatasetUnavailableError naming it and why; the
    others are cached by then, so the next run converts only what is still missing."""
    results = [_read_one(folder / f"{h}.npz") for h in hashes]
    missing = [k for k, r in enumerate(results) if r is None]
    if not missing:
        return results

    def keep(index, result):
        k = missing[index]
        _write_one(folder / f"{hashes[k]}.npz", result)
        results[k] = result

    try:
        convert_files([paths[k] for k in missing], params, workers, progress="FSDD -> spikes", on_result=keep)
    except BadRecordingError as error:
        done = sum(r is not None for r in results)
        raise DatasetUnavailableError(
            f"{error}. Replace or remove these files in {paths[0].parent} and run again: the {done} "
            f"recordings converted are cached in {folder}, only the rest will be converted.") from error
    return results


def load_fsdd(data_dir=None, params: CochleaParams = CochleaParams(), workers: int | None = None,
              cache: Path | None = None, source: FSDDSource = PINNED) -> tuple[SpikeDataset, SpikeDataset]:
    """FSDD (train, test) as spikes, downloading, converting and caching on first use."""
    folder = find_or_download(data_dir, source)
    paths = sorted(folder.glob("*_*_*.wav"))
    names = [parse_name(p) for p in paths]
    hashes = [file_sha256(p) for p in paths]
    root = cache or cache_root()
    shd_dir = root / cache_key([p.name for p in paths], hashes, params)
    if not (shd_dir / "SHD" / "shd_test.h5").exists():
        speakers = sorted({n[1] for n in names})
        converted = convert_cached(paths, hashes, params, root / "files" / _params_key(params), workers)
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
