"""Files written atomically and read without running code.

Every results file, checkpoint and cache entry goes through :func:`write_atomic`: the data are
written to a temporary file in the target folder, flushed to disk, and renamed over the target,
so a reader sees the old file or the new one, never half of one. Checkpoints hold plain arrays
(``.npz``, read with ``allow_pickle=False``) or PyTorch state read with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

#: Permissions of the files written here (before the umask), like any file a user creates.
FILE_MODE = 0o666


class DataError(Exception):
    """Input a run needs that is missing, truncated or corrupt (a dataset file, a recording, a
    checkpoint). Commands end with exit status 1 on it; errors in how they were called, 2."""


class UnreadableFileError(DataError, OSError):
    """A file written here earlier (a checkpoint, a cache entry) that cannot be read back."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(folder: Path, pattern: str) -> None:
    """Remove the files and folders matching ``pattern`` (their names hold ``pid<N>_``) whose
    process is gone: what a killed run left behind."""
    for path in Path(folder).glob(pattern):
        match = re.search(r"pid(\d+)_", path.name)
        if match and not _pid_alive(int(match.group(1))):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def write_atomic(path: str | os.PathLike, write, suffix: str = ".tmp") -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path``.

    The temporary file lies beside ``path`` (same file system, so the rename is atomic); it is
    removed when ``write`` fails, and the file is synced before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, f".{path.name}.pid*_*{suffix}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}_", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, FILE_MODE & ~umask)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    return path


def write_netcdf(ds, path: str | os.PathLike) -> Path:
    """An xarray dataset to ``path`` (netCDF4 through h5netcdf), atomically."""
    return write_atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def save_arrays(path: str | os.PathLike, **arrays) -> Path:
    """Plain arrays to ``path`` (.npz), atomically."""

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})

    return write_atomic(path, write)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz file (``None`` when there is none); never unpickles."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UnreadableFileError(f"cannot read {path}: {type(error).__name__}: {error} "
                                  "(truncated or corrupt? delete it)") from error


def save_torch(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to ``path``, atomically; ``state`` holds only tensors, numbers, text and lists,
    so :func:`load_torch` can read it with ``weights_only=True``."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_torch(path: str | os.PathLike) -> dict | None:
    import torch

    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        # a torn zip archive comes as RuntimeError ("PytorchStreamReader failed ...")
        raise UnreadableFileError(f"cannot read {path}: {type(error).__name__}: {error} "
                                  "(truncated or corrupt? delete it)") from error
