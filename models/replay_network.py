"""Present many samples to a compiled Brian2 network, chunk by chunk, optionally in parallel processes.

A network built on :class:`models.inputs.SpikeReplay` runs ``chunk_size`` samples per run of its
binary; the replay table (and whatever else a subclass passes in ``run_args``) changes between
runs, the code never does. Independent chunks (no learning) can run in several processes at once,
each with its own results folder: the processes are forked after the build, so they share the
compiled binary.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
from tqdm import tqdm

from datasets.records import SpikeSample
from models.inputs import table_values

_ACTIVE = None  # the network a forked worker runs (set just before the pool forks)


def _run_in_worker(job):
    index, samples, kwargs = job
    result = _ACTIVE.run_chunk(samples, results_subdir=f"results_{os.getpid()}", **kwargs)
    return index, result, _ACTIVE.compiled.peak_binary_memory


class ChunkedReplayNetwork:
    """Base for networks driven by a :class:`SpikeReplay` group; subclasses build ``self.compiled``,
    ``self.replay`` and implement :meth:`collect` (what to read back after each run)."""

    n_inputs: int
    chunk_size: int
    sample_steps: int

    def extra_run_args(self, samples: list[SpikeSample], **kwargs) -> dict:
        return {}

    def collect(self, n_samples: int, **kwargs):
        raise NotImplementedError

    def run_chunk(self, samples: list[SpikeSample], results_subdir: str | None = None, **kwargs):
        """Run up to ``chunk_size`` samples (the rest of the chunk is silent); returns :meth:`collect`."""
        if len(samples) > self.chunk_size:
            raise ValueError(f"a chunk holds at most {self.chunk_size} samples, got {len(samples)}")
        args = {self.replay.table: table_values(samples, self.n_inputs, self.replay.capacity,
                                                self.sample_steps, self.dt)}
        args.update(self.extra_run_args(samples, **kwargs))
        self.compiled.run(args, results_subdir=results_subdir)
        return self.collect(len(samples), **kwargs)

    def present(self, samples: list[SpikeSample], *, progress: str | None = None, workers: int = 1,
                start_chunk: int = 0, on_chunk=None, **kwargs) -> list:
        """Run all ``samples`` in chunks; returns the list of per-chunk :meth:`collect` results.

        ``workers > 1`` runs chunks in forked processes (standalone devices only; the chunks must
        not depend on each other). ``on_chunk(index)`` is called after each chunk, in order.
        """
        chunks = [samples[i:i + self.chunk_size] for i in range(0, len(samples), self.chunk_size)]
        bar = tqdm(total=len(samples), desc=progress, disable=progress is None, unit="sample",
                   initial=sum(len(c) for c in chunks[:start_chunk]))
        pending = list(range(start_chunk, len(chunks)))
        results = {}
        if workers > 1 and self.compiled.device_name != "runtime" and len(pending) > 1:
            global _ACTIVE
            self.compiled.build()
            _ACTIVE = self
            jobs = [(i, chunks[i], kwargs) for i in pending]
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                for index, result, peak_mib in pool.imap(_run_in_worker, jobs):
                    results[index] = result
                    self.compiled.peak_binary_memory = max(self.compiled.peak_binary_memory, peak_mib)
                    bar.update(len(chunks[index]))
                    if on_chunk is not None:
                        on_chunk(index)
            _ACTIVE = None
        else:
            for index in pending:
                results[index] = self.run_chunk(chunks[index], **kwargs)
                bar.update(len(chunks[index]))
                if on_chunk is not None:
                    on_chunk(index)
        bar.close()
        return [results[i] for i in pending]


def stack_counts(parts: list[np.ndarray], n_bins: int, n_neurons: int) -> np.ndarray:
    """Concatenate per-chunk ``(sample, bin, neuron)`` arrays (an empty result keeps its shape)."""
    if not parts:
        return np.zeros((0, n_bins, n_neurons), dtype=np.float32)
    return np.concatenate(parts)
