"""The one place that selects a Brian2 device.

``runtime`` simulates in this Python process (numpy code generation: no compile step, slow,
for tests and tiny runs); ``cpp_standalone`` and ``cuda_standalone`` generate a C++ or CUDA
project, compile it once and rerun the binary with new values through ``run_args``
(:class:`models.engine.compiled.CompiledNetwork`). ``cuda_standalone`` compiles without a GPU
where ``nvcc`` exists (``compile_only=True``) and runs where there is one.

Brian2 has one device per process; :func:`activate` resets it for each new network.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from brian2 import defaultclock, get_device, ms, prefs, set_device
from brian2.devices.device import reset_device

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")


def _no_debug_log_file() -> None:
    """Brian2 keeps a debug log file per process in the temporary folder and deletes it only at a clean
    exit, so every killed run would leave one behind; its messages still go to the terminal."""
    import logging

    from brian2.utils.logger import BrianLogger

    if BrianLogger.file_handler is not None:
        logging.getLogger("brian2").removeHandler(BrianLogger.file_handler)
        BrianLogger.file_handler.close()
        BrianLogger.file_handler = None
    if BrianLogger.tmp_log is not None:
        with contextlib.suppress(OSError):
            os.remove(BrianLogger.tmp_log)
        BrianLogger.tmp_log = None


_no_debug_log_file()


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
    try:
        import brian2cuda  # noqa: F401  (registers the device)
    except ImportError as error:
        raise DeviceUnavailableError("cuda_standalone needs brian2cuda: pip install -e .[cuda]") from error

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
    # Brian2 runs a bare "make -j": as many compilers as source files (dozens), which thrash a small
    # machine and multiply when several processes build at once: one per usable core.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{cores}"]
    if name == "cpp_standalone":
        _require_cxx()
    else:
        configure_cuda(build_dir, compile_only=compile_only)
    set_device(name, build_on_run=False, directory=str(build_dir))
    return build_dir


# Brian2's device is one per process; this counts its resets so that a kept network can tell
# whether its Brian2 objects still exist (see models.engine.compiled.BuildCache).
_RESETS = [0]


def resets() -> int:
    """How many times this process has reset Brian2."""
    return _RESETS[0]


def reset_brian() -> None:
    """Forget every object of a previous network and return to the runtime device.

    Brian2 names a new object after the ones still alive (``hidden_run_regularly_clock_1`` while an
    uncollected ``hidden_run_regularly_clock`` exists), and the generated files are named after
    the objects. Brian2's objects refer to each other in cycles, which only the cyclic garbage
    collector frees, so it runs here: a network built again in this process then takes the same
    names, and a build seeded from a kept one (:mod:`models.engine.build_store`) recompiles only the
    files whose code changed, not all of them."""
    _RESETS[0] += 1
    dev = get_device()
    if hasattr(dev, "reinit"):
        dev.reinit()
    reset_device("runtime")
    get_device().reinit()
    gc.collect()
    defaultclock.dt = 0.1 * ms


