"""Earlier builds kept on disk, so that a standalone project built again in a fresh folder or in
another process compiles only the files whose code changed.

Brian2's standalone devices rewrite a generated file only when its text changes, and compile with
``make``, which recompiles only the sources newer than their objects. A fresh build folder seeded
with an earlier build of the same network (sources, objects and binary, modification times kept)
therefore recompiles exactly what differs: nothing when only ``run_args`` values differ (a new
seed, a resumed run, the next pair of a comparison), a few files when a constant baked into the
code changed. The key only chooses which earlier build to start from; ``make`` decides what to
recompile from the files themselves, so a seed from another network costs time, never correctness.

Each kept build is a folder that is never changed once written (``KEY-<unique>``); the link
``KEY`` points to the newest and is replaced atomically, so a build is always seeded from one
consistent earlier build (a source and its object from the same build), even while another
process keeps a newer one. The key names the host and its processor: Brian2 compiles with
``-march=native``, so objects never travel between machines through a shared home folder.

``$SNN_RULES_BUILD_LOG`` names a file to which every standalone build of any process adds one line
(JSON): seconds, objects compiled, whether it was seeded, the device and the test or command that
built (see :func:`log_build`; the test suite prints a summary from it).

The store lives in ``$SNN_RULES_BUILD_STORE`` if set (``off`` switches it off), else in
``$XDG_CACHE_HOME/snn-rules-study/brian2-builds/`` (default ``~/.cache``). It holds at most
:data:`MAX_ENTRIES` builds (a few MiB each); the least recently used go first. Only
``cpp_standalone`` builds are kept (a brian2cuda makefile names its build folder, so a seed from
another folder would recompile everything anyway).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ENV = "SNN_RULES_BUILD_STORE"
LOG_ENV = "SNN_RULES_BUILD_LOG"
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


@functools.lru_cache(maxsize=None)
def cpu_info(*fields: str) -> dict[str, str]:
    """The first value of each of ``fields`` in /proc/cpuinfo (``"model name"``, ``"flags"``), for
    those present; empty where the file cannot be read (not Linux)."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() in fields and name.strip() not in found:
                found[name.strip()] = value.strip()
    return found


def _machine() -> str:
    """The host and its processor (Brian2 compiles with -march=native)."""
    info = cpu_info("model name", "flags")
    model = "|".join([platform.processor() or platform.machine()] + [info[k] for k in ("model name", "flags") if k in info])
    return f"{platform.node()}|{platform.machine()}|{model}|{os.environ.get('CXX', '')}"


def project_key(network, device_name: str) -> str:
    """Which earlier build a new one starts from: the machine, the device, Brian2's version, the
    Python that builds (its paths are in the makefile) and the network's objects by class and name."""
    import brian2

    parts = [_machine(), device_name, brian2.__version__, sys.executable]
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
    try:
        entry = store / os.readlink(store / key)  # resolved once: an entry never changes
    except OSError:
        return False
    if not entry.is_dir():
        return False
    try:
        shutil.copytree(entry, build_dir, symlinks=True, dirs_exist_ok=True)
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(store / key, follow_symlinks=False)  # recently used
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
    name = f"{key}-{uuid.uuid4().hex[:12]}"
    link = store / f".{name}.link"
    try:
        shutil.copytree(build_dir, staging, symlinks=True, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if Path(folder) == build_dir and n in _NOT_KEPT])
        os.rename(staging, store / name)  # complete before anything points to it
        os.symlink(name, link)
        os.replace(link, store / key)  # atomic: a reader sees the old entry or the new one
    except (OSError, shutil.Error):
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            link.unlink()
    _evict(store)


def log_build(build_dir: Path, device_name: str, seconds: float, started: float, seeded: bool) -> None:
    """Add one line to ``$SNN_RULES_BUILD_LOG`` (if set) about a build just done: its seconds, how
    many object files it compiled (those written since ``started``, a ``time.time()``), whether it
    started from a kept build, and who built it (the test running, else the command). One
    ``O_APPEND`` write per line, so processes building at once never interleave; never raises."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    compiled = -1  # unknown
    with contextlib.suppress(OSError):
        compiled = sum(1 for obj in Path(build_dir).rglob("*.o") if obj.stat().st_mtime >= started)
    line = json.dumps({"by": os.environ.get("PYTEST_CURRENT_TEST") or " ".join(sys.argv), "device": device_name,
                       "seconds": round(seconds, 2), "compiled": compiled, "seeded": seeded, "pid": os.getpid()})
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def _evict(store: Path) -> None:
    """Drop the least recently used keys beyond :data:`MAX_ENTRIES`, and entries no key points to
    any more once they are old enough that no copy from them can still be running."""
    with contextlib.suppress(OSError):
        now = time.time()
        links = sorted((p for p in store.iterdir() if p.is_symlink() and not p.name.startswith(".")),
                       key=lambda p: p.lstat().st_mtime, reverse=True)
        for link in links[MAX_ENTRIES:]:
            link.unlink(missing_ok=True)
        kept = {p.name for p in links[:MAX_ENTRIES]}
        current = {os.readlink(p) for p in links[:MAX_ENTRIES]}
        for path in store.iterdir():
            if path.is_symlink() and not path.name.startswith("."):
                continue
            if path.name in current:
                continue
            dropped = not path.name.startswith(".") and path.name.rsplit("-", 1)[0] not in kept
            if dropped or now - path.lstat().st_mtime > _STALE_SECONDS:
                if path.is_symlink() or path.is_file():
                    path.unlink(missing_ok=True)
                else:
                    shutil.rmtree(path, ignore_errors=True)
