"""Where independent jobs run: local worker processes or a Dask cluster, behind one interface.

Scans and tuning searches submit ``function(*args)`` and consume results as they complete. Local
workers are spawned processes; on Dask, a scheduler address (``tcp://HOST:8786``, from
dask-jobqueue on SLURM, say) or an in-process ``LocalCluster`` of N single-threaded workers.
Each job should use one core: see :func:`one_core`.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait


def one_core() -> None:
    """Limit this process to one core: the compiler (make -j1), PyTorch and BLAS."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from brian2 import prefs
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j1"]
    threadpool_limits(limits=1)


class LocalExecutor:
    """Jobs in ``workers`` spawned processes on this machine."""

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        from models.engine.compiled import die_with_parent

        # a killed scan takes its workers (and so their simulator binaries) with it
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=die_with_parent, initargs=(os.getpid(),))

    def submit(self, function, *args):
        return self.pool.submit(function, *args)

    def as_completed(self, futures):
        return as_completed(futures)

    def wait_first(self, futures):
        """``(done, not_done)`` as soon as one of ``futures`` is done."""
        return wait(futures, return_when=FIRST_COMPLETED)

    def close(self):
        self.pool.shutdown(cancel_futures=True)


class DaskExecutor:
    """Jobs on a Dask cluster: the scheduler at ``scheduler``, or a local cluster of ``n_local`` workers."""

    def __init__(self, scheduler: str | None = None, n_local: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as error:
            raise ValueError("Dask is not installed: pip install -e .[cluster] (or 'dask[distributed]')") from error
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)

    def submit(self, function, *args):
        return self.client.submit(function, *args, pure=False)

    def as_completed(self, futures):
        from distributed import as_completed as dask_completed

        return dask_completed(futures)

    def wait_first(self, futures):
        from distributed import wait as dask_wait

        result = dask_wait(futures, return_when="FIRST_COMPLETED")
        return result.done, result.not_done

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(workers: int = 1, scheduler: str | None = None, local_cluster: int | None = None):
    """Dask when a scheduler or a local cluster is asked for, else local processes."""
    if scheduler or local_cluster:
        return DaskExecutor(scheduler, local_cluster)
    return LocalExecutor(workers)
