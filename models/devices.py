"""The one place that selects a Brian2 device and runs a network compiled once, many times.

``runtime`` simulates in this Python process (numpy code generation: no compile step, slow,
for tests and tiny runs); ``cpp_standalone`` and ``cuda_standalone`` generate a C++ or CUDA
project, compile it once and rerun the binary with new values through ``run_args``.
``cuda_standalone`` compiles without a GPU where ``nvcc`` exists (``compile_only=True``)
and runs where there is one.

A process that runs many networks of one structure (a parameter scan) calls :func:`keep_builds`:
from then on the last compiled network is kept, and a network whose structure equals it takes
the new constants through ``run_args`` instead of building again (see
:class:`models.replay_network.ChunkedReplayNetwork`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
from brian2 import Network, TimedArray, defaultclock, device, get_device, ms, prefs, set_device
from brian2.core.variables import VariableView
from brian2.devices.device import reset_device

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot build or run on this machine."""


def check_device_name(name: str) -> str:
    if name not in DEVICES:
        raise ValueError(f"unknown Brian2 device {name!r}; choose one of {', '.join(DEVICES)}")
    return name


def _require_cxx() -> None:
    cxx = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "g++"
    compiler = cxx.split()[0]
    if shutil.which(compiler) is None and shutil.which("g++") is None:
        raise DeviceUnavailableError(
            f"cpp_standalone needs a C++ compiler, but neither {compiler!r} nor 'g++' is on PATH; "
            "install one (Debian: apt-get install g++) or use --device runtime"
        )


def _curand_dirs(build_dir: Path) -> tuple[list[str], list[str]]:
    """Include and library folders of cuRAND from the ``nvidia-curand`` wheel, if installed.

    The wheel ships only ``libcurand.so.10``; the linker's ``-lcurand`` needs ``libcurand.so``,
    so a link is made in the build folder.
    """
    includes, libs = [], []
    for base in sys.path:
        for header in glob.glob(os.path.join(base, "nvidia", "*", "include", "curand.h")):
            root = Path(header).parent.parent
            includes.append(str(root / "include"))
            found = sorted(glob.glob(str(root / "lib" / "libcurand.so*")))
            if found:
                link_dir = build_dir / "_curand"
                link_dir.mkdir(parents=True, exist_ok=True)
                link = link_dir / "libcurand.so"
                if not link.exists():
                    link.symlink_to(found[-1])
                libs += [str(link_dir), str(root / "lib")]
            return includes, libs
    return includes, libs


def configure_cuda(build_dir: Path, *, compile_only: bool, compute_capability: float = 9.0) -> None:
    """Preferences for brian2cuda; without a GPU only code generation and compilation work."""
    if shutil.which("nvcc") is None:
        raise DeviceUnavailableError(
            "cuda_standalone needs the CUDA compiler nvcc on PATH; install the CUDA toolkit "
            "or use --device cpp_standalone"
        )
    import brian2cuda  # noqa: F401  (registers the device)

    backend = prefs.devices.cuda_standalone.cuda_backend
    if compile_only:
        backend.detect_gpus = False
        backend.gpu_id = 0
        backend.compute_capability = compute_capability
    # nvcc 13's Thrust needs C++17; brian2cuda passes -std=c++11 first and the later flag wins.
    flags = list(backend.extra_compile_args_nvcc)
    if "-std=c++17" not in flags:
        backend.extra_compile_args_nvcc = flags + ["-std=c++17"]
    gcc = [flag for flag in prefs.codegen.cpp.extra_compile_args_gcc if not flag.startswith("-std=")]
    prefs.codegen.cpp.extra_compile_args_gcc = gcc + ["-std=c++17"]
    includes, libs = _curand_dirs(build_dir)
    prefs.codegen.cpp.include_dirs = list(prefs.codegen.cpp.include_dirs) + includes
    prefs.codegen.cpp.library_dirs = list(prefs.codegen.cpp.library_dirs) + libs
    prefs.codegen.cpp.runtime_library_dirs = list(prefs.codegen.cpp.runtime_library_dirs) + libs


def activate(name: str, build_dir: str | os.PathLike, *, compile_only: bool = False) -> Path:
    """Reset Brian2 and select device ``name``; returns the (fresh) build folder.

    Call once per study before any Brian2 object is made.
    """
    check_device_name(name)
    build_dir = Path(build_dir).resolve()
    reset_brian()
    if name == "runtime":
        prefs.codegen.target = "numpy"
        set_device("runtime")
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    if name == "cpp_standalone":
        _require_cxx()
    else:
        configure_cuda(build_dir, compile_only=compile_only)
    set_device(name, build_on_run=False, directory=str(build_dir))
    return build_dir


def reset_brian() -> None:
    """Forget every object of a previous network and return to the runtime device."""
    forget_kept_build()
    dev = get_device()
    if hasattr(dev, "reinit"):
        dev.reinit()
    reset_device("runtime")
    get_device().reinit()
    defaultclock.dt = 0.1 * ms


# The network this process keeps for reuse: its structure key, the Brian2 objects a network needs
# to run it again (``handles``) and the folder it was built in. One at most: Brian2 has one device.
_KEPT = {"root": None, "key": None, "handles": None, "folder": None}


def keep_builds(root: str | os.PathLike | None) -> None:
    """Keep the last compiled network of this process for reuse, building under ``root``.

    ``None`` switches reuse off (the default: every network builds in the folder it is given).
    Calling it again with the same root changes nothing.
    """
    root = None if root is None else Path(root).resolve()
    if root == _KEPT["root"]:
        return
    forget_kept_build()
    _KEPT["root"] = root


def keeping_builds() -> bool:
    return _KEPT["root"] is not None


def kept_build(key: str) -> dict | None:
    """The Brian2 objects of the kept network if its structure key is ``key``, else ``None``."""
    if _KEPT["root"] is None or _KEPT["key"] != key or not _KEPT["folder"].is_dir():
        return None
    return _KEPT["handles"]


def kept_folder() -> Path:
    """A fresh folder under the keep root for the next build (the previous kept build is gone by then)."""
    _KEPT["root"].mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"kept_{os.getpid()}_", dir=_KEPT["root"]))


def remember_build(key: str, handles: dict, folder: Path) -> None:
    _KEPT.update(key=key, handles=handles, folder=Path(folder))


def forget_kept_build() -> None:
    """Drop the kept network (and its build folder); called whenever Brian2 is reset."""
    folder = _KEPT["folder"]
    _KEPT.update(key=None, handles=None, folder=None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


class _PeakChildMemory:
    """Polls the resident memory of this process's children (the simulator binary) while active."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak_mib = interval, 0.0

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    self.peak_mib = max(self.peak_mib, child.memory_info().rss / 2 ** 20)
                except psutil.Error:
                    pass
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
        start = time.perf_counter()
        try:
            device.build(directory=str(self.build_dir), compile=True, run=False, clean=False)
        except Exception as error:  # compiler failures surface with the project folder named
            raise DeviceUnavailableError(
                f"building the {self.device_name} project in {self.build_dir} failed: {error}"
            ) from error
        self.build_seconds = time.perf_counter() - start
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
        with _PeakChildMemory() as watch:
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
