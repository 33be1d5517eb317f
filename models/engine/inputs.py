"""Spike input that a compiled binary can replay with new data on every run.

Brian2's ``SpikeGeneratorGroup`` compiles its spikes into the project and cannot take new ones
through ``run_args`` (brian2 issue 1578). Here the spikes live in a :class:`~brian2.TimedArray`
table instead, which ``run_args`` can replace as long as its shape stays the same:
``table[k, i]`` is the time step of unit ``i``'s ``k``-th spike (a sentinel after the last). A
unit fires when the clock reaches its next entry and then moves to the following one, so
each step costs one comparison per unit and one look-up per spike.

Many samples are laid end to end in one run (sample ``s`` starts at step ``s * sample_steps``);
the group of neurons it drives resets its state at every sample start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Quantity, TimedArray, second

from models.spikes import SpikeSample

#: Time-step index that is never reached: marks the end of a unit's spikes.
NEVER = 1e15


@dataclass
class SpikeReplay:
    """A group of ``n_units`` input neurons replaying a table of spike steps."""

    group: NeuronGroup
    table: TimedArray
    capacity: int

    @classmethod
    def create(cls, n_units: int, capacity: int, name: str = "spike_input", *, extra_equations: str = "",
               extra_reset: str = "", namespace: dict | None = None) -> "SpikeReplay":
        """``extra_equations``/``extra_reset`` add state to the input units (presynaptic traces)."""
        values = np.full((capacity + 1, n_units), NEVER)
        table = TimedArray(values, dt=1 * second, name=f"{name}_table")
        group = NeuronGroup(
            n_units,
            "k : integer\n" + extra_equations,
            threshold=f"timestep(t, dt) >= {table.name}(k * second, i)",
            reset="k += 1\n" + extra_reset,
            method="exact",
            name=name,
            namespace={table.name: table, **(namespace or {})},
        )
        return cls(group=group, table=table, capacity=capacity)


def spike_steps(sample: SpikeSample, dt: Quantity) -> np.ndarray:
    """Time-step index of each spike of ``sample`` (its times lie on the ``dt`` grid)."""
    return np.rint(np.asarray(sample.times / dt)).astype(np.int64)


def required_capacity(chunks: list[list[SpikeSample]], n_units: int) -> int:
    """Largest number of spikes any unit fires within one chunk of samples."""
    most = 1
    for chunk in chunks:
        counts = np.zeros(n_units, dtype=np.int64)
        for sample in chunk:
            counts += np.bincount(sample.units, minlength=n_units)
        most = max(most, int(counts.max(initial=0)))
    return most


def table_values(samples: list[SpikeSample], n_units: int, capacity: int,
                 sample_steps: int, dt: Quantity) -> np.ndarray:
    """The replay table for ``samples`` played one after the other, ``sample_steps`` apart."""
    units = [s.units.astype(np.int64) for s in samples]
    steps = [spike_steps(s, dt) + index * sample_steps for index, s in enumerate(samples)]
    values = np.full((capacity + 1, n_units), NEVER)
    if not samples or sum(len(u) for u in units) == 0:
        return values
    units = np.concatenate(units)
    steps = np.concatenate(steps)
    if units.size and (units.min() < 0 or units.max() >= n_units):
        raise ValueError(f"spike unit indices must lie in [0, {n_units}), got {units.min()}..{units.max()}")
    order = np.lexsort((steps, units))
    units, steps = units[order], steps[order]
    if np.any((np.diff(units) == 0) & (np.diff(steps) == 0)):
        raise ValueError("a unit spikes twice in one time step; merge them with datasets.records.preprocess")
    first = np.searchsorted(units, np.arange(n_units))
    rank = np.arange(units.size) - first[units]
    if rank.size and rank.max() >= capacity:
        raise ValueError(f"a unit fires {rank.max() + 1} spikes in one run; the table holds {capacity}")
    values[rank, units] = steps
    return values


def balanced_chunk_size(set_sizes: list[int], largest: int, run_cost: float = 5.0) -> int:
    """Samples per run of the binary for presenting sets of ``set_sizes`` samples, at most ``largest``.

    A run always simulates a whole chunk (its unused places are silent samples), and starting the
    binary costs about ``run_cost`` samples; this picks the size with the least total cost. Sets of
    75, 25 and 25 samples with chunks of 100 would simulate 300 samples; chunks of 25 simulate 125.
    """
    if largest < 1:
        raise ValueError(f"the chunk size must be at least 1, got {largest}")
    sizes = [n for n in set_sizes if n > 0]
    if not sizes:
        return largest

    def cost(size: int) -> float:
        return sum(-(-n // size) for n in sizes) * (size + run_cost)

    # the largest size among equally cheap ones: fewer runs
    return min(range(largest, 0, -1), key=cost)


def chunk_capacity(sample_sets: list[list[SpikeSample]], chunk_size: int, n_inputs: int) -> int:
    """Replay-table rows needed for any chunk of any of the given sets (in any order)."""
    per_sample = [np.bincount(s.units, minlength=n_inputs).max(initial=0) for samples in sample_sets for s in samples]
    # Any chunk_size samples together: at most the sum of the largest per-sample, per-unit counts,
    # so shuffling the order between epochs never overflows the table.
    return max(int(np.sum(np.sort(per_sample)[::-1][:chunk_size])), 1)
