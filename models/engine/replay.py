"""Present many samples to a compiled Brian2 network, chunk by chunk, optionally in parallel processes.

A network built on :class:`models.inputs.SpikeReplay` runs ``chunk_size`` samples per run of its
binary; the replay table (and whatever else a subclass passes in ``run_args``) changes between
runs, the code never does. Independent chunks (no learning) can run in several processes at once,
each with its own results folder: the processes are forked after the build, so they share the
compiled binary.

Constants that a subclass declares in ``RUN_ARG_CONSTANTS`` (fields of its parameter dataclass,
``lif.NAME`` for the neuron's) reach the binary through ``run_args`` whenever they differ from the
values it was built with. A network given a :class:`~models.engine.compiled.BuildCache` (as a
parameter scan's workers do) reuses the kept binary when its other constants and build arguments
equal those of the kept one, instead of compiling again.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.engine.compiled import BuildCache, die_with_parent
from models.engine.inputs import table_values
from models.spikes import SpikeSample

# The network of a forked worker process. Set in the child only, by the pool's initializer, which
# receives the network from the parent at the fork (nothing is pickled): the parent holds none.
_WORKER_NETWORK = None


def _start_worker(network, parent: int) -> None:
    global _WORKER_NETWORK
    die_with_parent(parent)  # a killed study takes its workers (and so their binaries) with it
    _WORKER_NETWORK = network
    network.compiled.clean_after_run = False  # the parent removes the run_args arrays afterwards


def _run_in_worker(job):
    index, samples, kwargs = job
    result = _WORKER_NETWORK.run_chunk(samples, results_subdir=f"results_{os.getpid()}", **kwargs)
    return index, result, _WORKER_NETWORK.compiled.peak_binary_memory


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How another process builds a network again: its class and constructor arguments, the build
    folder left out (each process builds in a folder of its own). ``token`` names the network, so
    that a process builds it once for all the jobs it gets."""

    cls: type
    args: tuple
    kwargs: dict
    token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)


# The network a process rebuilt from a recipe (see :func:`_run_remote`), one at a time: its token and
# build folder, the jobs it ran, and a lock (a Dask worker may run several tasks at once in threads,
# and one binary runs one chunk at a time).
_REMOTE_TOKEN: str | None = None
_REMOTE_FOLDER: Path | None = None
_REMOTE_JOBS = 0
_REMOTE_LOCK = threading.Lock()


def _remove_remote_folder() -> None:
    if _REMOTE_FOLDER is not None:
        shutil.rmtree(_REMOTE_FOLDER, ignore_errors=True)


atexit.register(_remove_remote_folder)


def _run_remote(recipe: Recipe, job):
    """Run ``job`` (a chunk, as :func:`_run_in_worker` takes it) in this process, on the network of
    ``recipe``, built here once per network and process, in a folder of its own (removed when the
    next network replaces it, or when the process ends)."""
    global _WORKER_NETWORK, _REMOTE_TOKEN, _REMOTE_FOLDER, _REMOTE_JOBS
    with _REMOTE_LOCK:
        if _REMOTE_TOKEN != recipe.token:
            _remove_remote_folder()
            _WORKER_NETWORK, _REMOTE_TOKEN = None, None
            _REMOTE_FOLDER = Path(tempfile.mkdtemp(prefix=f"{recipe.cls.__name__.lower()}_remote_"))
            _WORKER_NETWORK = recipe.cls(*recipe.args, build_dir=_REMOTE_FOLDER, **recipe.kwargs)
            _REMOTE_TOKEN = recipe.token
        _REMOTE_JOBS += 1
        return _run_in_worker(job)


class RemotePool:
    """Runs the chunks of :meth:`ChunkedReplayNetwork.present` as jobs of an executor
    (:mod:`studies.executors`: spawned processes or a Dask cluster, whose workers share no memory
    with this process): each worker builds the network from its recipe for its first job and keeps
    it. As with a forked pool, whatever changed since the network was made travels in the chunks'
    keyword arguments."""

    def __init__(self, executor, recipe: Recipe):
        self.executor, self.recipe = executor, recipe

    def imap(self, function, jobs):
        if function is not _run_in_worker:
            raise ValueError("a remote pool runs chunks only")
        futures = [self.executor.submit(_run_remote, self.recipe, job) for job in jobs]
        for future in futures:  # in order, as multiprocessing's imap
            yield future.result()


class ChunkedReplayNetwork:
    """Base for networks driven by a :class:`SpikeReplay` group; subclasses build ``self.compiled``,
    ``self.replay`` and implement :meth:`collect` (what to read back after each run)."""

    n_inputs: int
    chunk_size: int
    sample_steps: int
    #: Constants taken through ``run_args`` on a compiled binary (``lif.NAME`` for the neuron's).
    RUN_ARG_CONSTANTS: tuple[str, ...] = ()

    def constant_variables(self) -> dict:
        """``{"group.variable": (variable, value)}`` for the Brian2 variables set from the
        ``RUN_ARG_CONSTANTS`` of ``self.params`` (constants that only seed Python-side state have none)."""
        return {}

    def compile(self, build, build_dir: Path, cache: BuildCache | None = None, **build_args) -> None:
        """Run ``build(folder)`` (which makes ``self.compiled`` and the Brian2 objects), or reuse the
        build kept in ``cache`` when its structure is the same.

        The structure is the class, ``build_args`` (everything else the build depends on) and every
        constant of ``self.params`` outside ``RUN_ARG_CONSTANTS``.
        """
        key = repr((type(self).__qualname__, sorted(build_args.items()),
                    structural_constants(self.params, self.RUN_ARG_CONSTANTS)))
        handles = cache.lookup(key) if cache is not None else None
        if handles is not None:
            vars(self).update(handles)
            self.compiled.peak_binary_memory = 0.0
            self.reused_binary = True
            self._constant_args = self._changed_constants()  # params are frozen: once per network
            return
        before = set(vars(self))
        folder = cache.new_folder() if cache is not None else build_dir
        build(folder)
        # what the binary holds (instance state such as a seeded draw included), to compare with later
        self.built_values = {name: value for name, (_, value) in self.constant_variables().items()}
        self.reused_binary = False
        self._constant_args = {}
        if cache is not None:
            cache.remember(key, {k: v for k, v in vars(self).items() if k not in before}, folder)

    @property
    def build_seconds(self) -> float:
        """Code generation and compilation time of this network (0 when it reused a kept binary)."""
        return 0.0 if self.reused_binary else self.compiled.build_seconds

    def _changed_constants(self) -> dict:
        """``run_args`` for the constants whose values differ from those the binary was built with."""
        args = {}
        for name, (variable, value) in self.constant_variables().items():
            if not np.array_equal(np.asarray(value), np.asarray(self.built_values[name])):
                args[variable] = value
        return args

    def extra_run_args(self, samples: list[SpikeSample], **kwargs) -> dict:
        return {}

    def samples_per_run(self, **kwargs) -> int:
        """How many samples one :meth:`run_chunk` with these keyword arguments takes: ``chunk_size``,
        unless a subclass presents a sample more than once (e-prop's maximum-over-time loss)."""
        return self.chunk_size

    def collect(self, n_samples: int, **kwargs):
        raise NotImplementedError

    def run_chunk(self, samples: list[SpikeSample], results_subdir: str | None = None, **kwargs):
        """Run up to ``chunk_size`` samples (the rest of the chunk is silent); returns :meth:`collect`."""
        if len(samples) > self.chunk_size:
            raise ValueError(f"a chunk holds at most {self.chunk_size} samples, got {len(samples)}")
        args = {self.replay.table: table_values(samples, self.n_inputs, self.replay.capacity,
                                                self.sample_steps, self.dt)}
        args.update(self._constant_args)
        # a subclass's own values win over constants (one entry per variable)
        extra = self.extra_run_args(samples, **kwargs)
        overridden = {_variable_name(key) for key in extra}
        args = {key: value for key, value in args.items() if _variable_name(key) not in overridden}
        args.update(extra)
        self.compiled.run(args, results_subdir=results_subdir)
        return self.collect(len(samples), **kwargs)

    def remote_pool(self, executor) -> RemotePool:
        """A pool (for :meth:`present`'s ``pool=``) whose chunks run as jobs of ``executor``, on
        machines that share nothing with this one: needs ``self.recipe`` (set by the subclass)."""
        recipe = getattr(self, "recipe", None)
        if recipe is None:
            raise ValueError(f"{type(self).__name__} has no recipe: it cannot be rebuilt in another process")
        return RemotePool(executor, recipe)

    @contextlib.contextmanager
    def worker_pool(self, workers: int):
        """``workers`` forked processes kept open for many :meth:`present` calls (``pool=``), so that
        a loop of short parallel calls (a mini-batch each) forks once. The workers hold the network
        as it was when the pool opened: whatever changes between calls must travel in the chunks'
        keyword arguments (e-prop's ``weights``). Yields None when there is nothing to parallelise
        (one worker, or the runtime device)."""
        if workers <= 1 or self.compiled.device_name == "runtime":
            yield None
            return
        self.compiled.build()
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker,
                                                          initargs=(self, os.getpid())) as pool:
                yield pool
        finally:
            self.compiled.remove_run_arrays()

    def present(self, samples: list[SpikeSample], *, progress: str | None = None, workers: int = 1,
                start_chunk: int = 0, on_chunk=None, pool=None, **kwargs) -> list:
        """Run all ``samples`` in chunks; returns the list of per-chunk :meth:`collect` results.

        ``workers > 1`` runs chunks in forked processes (standalone devices only; the chunks must
        not depend on each other); ``pool`` (from :meth:`worker_pool`) runs them in an open pool
        instead of forking a new one, for chunks whose keyword arguments carry everything that changed
        since the pool opened. ``on_chunk(index)`` is called after each chunk, in order.
        """
        size = self.samples_per_run(**kwargs)
        chunks = [samples[i:i + size] for i in range(0, len(samples), size)]
        bar = tqdm(total=len(samples), desc=progress, disable=progress is None, unit="sample",
                   initial=sum(len(c) for c in chunks[:start_chunk]))
        pending = list(range(start_chunk, len(chunks)))
        results = {}
        parallel = pool is not None or (workers > 1 and self.compiled.device_name != "runtime")
        if parallel and len(pending) > 1:
            with contextlib.ExitStack() as stack:
                if pool is None:
                    pool = stack.enter_context(self.worker_pool(min(workers, len(pending))))
                for index, result, peak_mib in pool.imap(_run_in_worker, [(i, chunks[i], kwargs) for i in pending]):
                    results[index] = result
                    self.compiled.peak_binary_memory = max(self.compiled.peak_binary_memory, peak_mib)
                    bar.update(len(chunks[index]))
                    if on_chunk is not None:
                        on_chunk(index)
                # every worker is idle now; after an error the pool is terminated first, and
                # worker_pool removes the arrays once it has
                self.compiled.remove_run_arrays()
        else:
            for index in pending:
                results[index] = self.run_chunk(chunks[index], **kwargs)
                bar.update(len(chunks[index]))
                if on_chunk is not None:
                    on_chunk(index)
        bar.close()
        return [results[i] for i in pending]


def _variable_name(key) -> str:
    """``group.variable`` for a variable view, the name of a TimedArray."""
    return f"{key.group_name}.{key.name}" if hasattr(key, "group_name") else key.name


def structural_constants(params, run_arg_constants) -> dict[str, str]:
    """``{name: repr(value)}`` of every constant of ``params`` not in ``run_arg_constants``
    (nested dataclasses such as ``lif`` flattened to ``lif.NAME``)."""
    out = {}
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if dataclasses.is_dataclass(value):
            inner = structural_constants(value, [n.split(".", 1)[1] for n in run_arg_constants
                                                 if n.startswith(field.name + ".")])
            out.update({f"{field.name}.{k}": v for k, v in inner.items()})
        elif field.name not in run_arg_constants:
            out[field.name] = repr(value)
    return out


def stack_counts(parts: list[np.ndarray], n_bins: int, n_neurons: int) -> np.ndarray:
    """Concatenate per-chunk ``(sample, bin, neuron)`` arrays (an empty result keeps its shape)."""
    if not parts:
        return np.zeros((0, n_bins, n_neurons), dtype=np.float32)
    return np.concatenate(parts)
