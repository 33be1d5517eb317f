"""Earlier builds kept on disk, so that a standalone project built again in a fresh folder or in
another process compiles only the files whose code changed.

Brian2's standalone devices rewrite a generated file only when its text changes, and compile with
``make``, which recompiles only the sources newer than their objects. A fresh build folder seeded
with an earlier build of the same network (sources, objects and binary, modification times kept)
therefore recompiles exactly what differs: nothing when only ``run_args`` values differ (a new
seed, a resumed run, the next pair of a comparison), a few files when a constant baked into the
code changed. The key only chooses which earlier build to start from; ``make`` decides what to
recompile from the files themselves, so a seed from another network costs time, never correctness.

The store lives in ``$SNN_RULES_BUILD_STORE`` if set (``off`` switches it off), else in
``$XDG_CACHE_HOME/snn-rules-study/brian2-builds/`` (default ``~/.cache``). It holds at most
:data:`MAX_ENTRIES` builds (a few MiB each); the least recently used go first. Only
``cpp_standalone`` builds are kept (a brian2cuda makefile names its build folder, so a seed from
another folder would recompile everything anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ENV = "SNN_RULES_BUILD_STORE"
MAX_ENTRIES = 32
#: what a build folder holds that is data of one run, not part of the build
_NOT_KEPT = ("results", "static_arrays")
_STALE_SECONDS = 3600  # a half-written entry older than this was left by a killed process


def root() -> Path | None:
    """The store's folder, or ``None`` when it is switched off."""
    where = os.environ.get(ENV)
    if where is not None:
        return None if where.strip().lower() in ("", "off", "0", "none") else Path(where)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "snn-rules-study" / "brian2-builds"


def project_key(network, device_name: str) -> str:
    """Which earlier build a new one starts from: the device, Brian2's version, the Python that
    builds (its paths are in the makefile) and the network's objects by class and name."""
    import brian2

    parts = [device_name, brian2.__version__, sys.executable]
    parts += sorted(f"{type(obj).__name__}:{obj.name}" for obj in network.objects)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def seed(build_dir: Path, key: str) -> bool:
    """Copy the kept build ``key`` into the empty folder ``build_dir``; ``True`` if one was copied.
    A copy that fails part-way is removed: a truncated object newer than its source would pass
    for up to date."""
    store = root()
    if store is None or not _is_empty(build_dir):
        return False
    entry = store / key
    if not entry.is_dir():
        return False
    try:
        shutil.copytree(entry, build_dir, symlinks=True, dirs_exist_ok=True)
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used
        return True
    except (OSError, shutil.Error):
        for child in list(build_dir.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        return False


def keep(build_dir: Path, key: str) -> None:
    """Keep the build in ``build_dir`` under ``key`` (replacing an older one); never raises: the
    store only saves time."""
    store = root()
    if store is None:
        return
    try:
        store.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=store))
    except OSError:
        return
    try:
        shutil.copytree(build_dir, staging, symlinks=True, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if Path(folder) == build_dir and n in _NOT_KEPT])
        entry, retired = store / key, store / f".{key}-retired-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry, retired)
        os.rename(staging, entry)  # fails only if another process kept one in between: theirs stays
    except (OSError, shutil.Error):
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(store / f".{key}-retired-{os.getpid()}", ignore_errors=True)
    _evict(store)


def _evict(store: Path) -> None:
    with contextlib.suppress(OSError):
        entries, now = [], time.time()
        for path in store.iterdir():
            if path.name.startswith("."):
                if now - path.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            elif path.is_dir():
                entries.append((path.stat().st_mtime, path))
        for _, path in sorted(entries, reverse=True)[MAX_ENTRIES:]:
            shutil.rmtree(path, ignore_errors=True)
