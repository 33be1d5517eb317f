"""A Brian2 network built once and run many times, and the cache of builds a process keeps.

:class:`CompiledNetwork` generates and compiles a standalone project once and reruns its binary
with new values through ``run_args`` (in ``runtime``, ``Network.store``/``restore`` give the same
behaviour). :class:`BuildCache` is what a process that runs many networks of one structure (a
parameter scan worker) hands to the networks it makes: the last compiled network is kept, and a
network whose structure equals it takes its new constants through ``run_args`` instead of
building again (see :meth:`models.engine.replay.ChunkedReplayNetwork.compile`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from brian2 import Network, TimedArray, device
from brian2.core.variables import VariableView

from models.engine import build_store, devices
from models.engine.devices import DeviceUnavailableError, check_device_name


_PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


@functools.lru_cache(maxsize=None)
def _prctl():
    """libc's ``prctl`` (Linux), loaded once, before any fork; ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent: int | None = None) -> None:
    """Have Linux SIGKILL this process as soon as the process that started it dies, however it dies
    (a SIGKILL included, which leaves it no chance to clean up). ``parent``: the pid expected as
    parent; when it is already gone, this process ends at once. Does nothing off Linux."""
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def binaries_die_with_this_process():
    """While active, simulator binaries that Brian2's standalone devices start (``./main``, through
    ``subprocess.call`` in :meth:`CPPStandaloneDevice.run`, which brian2cuda inherits) are killed by
    the kernel when this process dies, instead of running on as orphans."""
    from brian2.devices.cpp_standalone import device as standalone

    real = standalone.subprocess
    me = os.getpid()
    _prctl()  # loaded here: the child only calls it

    class _Subprocess:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def call(*args, **kwargs):
            kwargs.setdefault("preexec_fn", lambda: die_with_parent(me))
            return real.call(*args, **kwargs)

    standalone.subprocess = _Subprocess()
    try:
        yield
    finally:
        standalone.subprocess = real


class BuildCache:
    """The last compiled network of this process, kept for reuse, building under ``root``.

    Brian2 has one device per process, so one network at most is kept, and networks that use
    the cache take turns (:attr:`lock`). A kept build stays valid until Brian2 is reset by a
    network built outside the cache; it is then built again.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.lock = threading.RLock()
        self._key = self._handles = self._folder = None
        self._resets = -1

    def lookup(self, key: str) -> dict | None:
        """The Brian2 objects of the kept network if its structure key is ``key``, else ``None``."""
        if self._key != key or self._folder is None or not self._folder.is_dir():
            return None
        if self._resets != devices.resets():
            return None  # Brian2 was reset since (another network was built): the kept objects are gone
        return self._handles

    def new_folder(self) -> Path:
        """A fresh folder for the next build; the previous kept build is dropped first."""
        self.forget()
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"kept_{os.getpid()}_", dir=self.root))

    def remember(self, key: str, handles: dict, folder: Path) -> None:
        """Keep the network just built (``handles``: its Brian2 objects) under ``key``."""
        self._key, self._handles, self._folder = key, handles, Path(folder)
        self._resets = devices.resets()

    def forget(self) -> None:
        """Drop the kept network and its build folder."""
        folder = self._folder
        self._key = self._handles = self._folder = None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        self.forget()
        shutil.rmtree(self.root, ignore_errors=True)


#: The name of the binary Brian2's standalone devices build and start (``./main``).
BINARY_NAME = "main"


def simulator_processes():
    """The simulator binaries this process has started and that are running now: only those, not
    other children (a worker pool of an earlier job, a resource tracker) that would blur a memory
    measurement."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == BINARY_NAME:
                yield child
        except psutil.Error:
            continue


class _PeakChildMemory:
    """Polls the resident memory of the simulator binaries this process runs, while active.

    Finding a binary means scanning every process on the machine for its parent, so the scan runs
    only until the binaries are found; after that only their own memory is read. Scanning at every
    poll cost 13.5% of a core (measured over 10 s, 70 processes running), which the binary's own
    core loses whenever the other core is busy too (data-parallel workers)."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak_mib = interval, 0.0

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        import psutil

        watched: list = []
        while not self._stop.is_set():
            if not watched:
                watched = list(simulator_processes())
            for child in list(watched):
                try:
                    self.peak_mib = max(self.peak_mib, child.memory_info().rss / 2 ** 20)
                except psutil.Error:  # it has ended: scan again for the next one
                    watched.remove(child)
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


class CompiledNetwork:
    """A Brian2 network that is built once and run many times with new ``run_args``.

    In the standalone devices the first :meth:`run` generates and compiles the project; every run
    starts the binary from the network's initial state with ``run_args`` applied. In ``runtime``
    the same behaviour comes from ``Network.store``/``restore``. Values given in ``run_args`` may
    be writable variables (``group.w``, ``group.tau_mem``) or :class:`brian2.TimedArray` objects.
    """

    def __init__(self, network: Network, duration, device_name: str, build_dir: Path,
                 *, compile_only: bool = False):
        self.network = network
        self.duration = duration
        self.device_name = check_device_name(device_name)
        self.build_dir = Path(build_dir)
        self.compile_only = compile_only
        self.build_seconds = 0.0
        self.seeded = False  # the build started from a kept earlier build (models.engine.build_store)
        self.peak_binary_memory = 0.0  # MiB, largest resident memory seen of the simulator binary
        self._built = False
        self._project_arrays: set[str] = set()
        #: remove the run_args arrays after each run (forked workers leave that to their parent,
        #: as they may share one file of identical values)
        self.clean_after_run = True
        if self.device_name == "runtime":
            network.store("initial")
        else:
            network.run(duration)

    def build(self) -> None:
        if self._built or self.device_name == "runtime":
            self._built = True
            return
        start, started = time.perf_counter(), time.time()
        kept = self.device_name == "cpp_standalone" and not self.compile_only
        key = build_store.project_key(self.network, self.device_name) if kept else None
        self.seeded = kept and build_store.seed(self.build_dir, key)
        earlier = " from an earlier build of this network (only changed code recompiles)" if self.seeded else ""
        print(f"generating and compiling the {self.device_name} project in {self.build_dir}{earlier} "
              "(once per network; this can take a minute) ...", file=sys.stderr, flush=True)
        try:
            device.build(directory=str(self.build_dir), compile=True, run=False, clean=False)
        except Exception as error:  # compiler failures surface with the project folder named
            raise DeviceUnavailableError(
                f"building the {self.device_name} project in {self.build_dir} failed: {error}"
            ) from error
        if kept:
            build_store.keep(self.build_dir, key)
        self.build_seconds = time.perf_counter() - start
        build_store.log_build(self.build_dir, self.device_name, self.build_seconds, started, self.seeded)
        folder = self.build_dir / "static_arrays"
        self._project_arrays = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        self._built = True

    def run(self, run_args: dict | None = None, results_subdir: str | None = None) -> None:
        """Run the whole network once from its initial state with ``run_args`` applied."""
        self.build()
        run_args = run_args or {}
        if self.device_name == "runtime":
            self.network.restore("initial")
            for key, value in run_args.items():
                if isinstance(key, TimedArray):
                    if np.shape(value) != key.values.shape:
                        raise ValueError(f"{key.name} needs values of shape {key.values.shape}")
                    key.values[...] = np.asarray(value)
                elif isinstance(key, VariableView):
                    key[:] = value
                else:
                    raise TypeError(f"run_args keys must be variables or TimedArrays, got {key!r}")
            self.network.run(self.duration)
            return
        if self.compile_only:
            raise DeviceUnavailableError(
                f"{self.device_name} was built compile-only (no GPU here); the binary in "
                f"{self.build_dir} cannot run on this machine"
            )
        with _PeakChildMemory() as watch, binaries_die_with_this_process():
            device.run(
                directory=str(self.build_dir),
                results_directory=results_subdir or "results",
                with_output=False,
                run_args=run_args,
            )
        self.peak_binary_memory = max(self.peak_binary_memory, watch.peak_mib)
        if self.clean_after_run:
            self.remove_run_arrays()

    def remove_run_arrays(self) -> None:
        """Delete the arrays ``run_args`` wrote to ``static_arrays/`` (one file per distinct value),
        so long studies do not fill the disk; the project's own arrays stay."""
        folder = self.build_dir / "static_arrays"
        if self.device_name == "runtime" or not folder.is_dir():
            return
        for path in folder.iterdir():
            if path.name not in self._project_arrays:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
