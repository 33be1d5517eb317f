"""Per-sample, per-bin spike counts without a full SpikeMonitor.

The group increments an integer ``count`` in its reset; a StateMonitor reads it at every bin
boundary (``when='start'``, first) and a ``run_regularly`` zeroes it right after. A run of
``n`` samples lasts ``n * sample_duration + dt`` so that the last bin is read too. The counts
equal those from a full SpikeMonitor (checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Quantity, StateMonitor

#: Add to a group's equations and reset to count its spikes.
COUNT_EQUATION = "count : integer\n"
COUNT_RESET = "count += 1"


def check_bins(n_bins, n_steps: int, sample: str = "") -> None:
    """Equal time bins of whole steps: ``n_bins`` must be a positive whole number dividing the
    sample's ``n_steps``; ``sample`` describes the sample in the message (``1. s at dt 0.5 ms``)."""
    if not (isinstance(n_bins, (int, np.integer)) and not isinstance(n_bins, bool) and n_bins >= 1):
        raise ValueError(f"n_bins must be a positive whole number, got {n_bins!r}")
    if n_steps % n_bins:
        raise ValueError(f"n_bins {n_bins} does not divide a sample of {n_steps} steps"
                         + (f" ({sample})" if sample else "")
                         + f"; divisors up to 50: {[k for k in range(1, 51) if n_steps % k == 0]}")


@dataclass
class BinnedCounter:
    monitor: StateMonitor
    n_bins: int  # bins per sample

    @classmethod
    def attach(cls, group: NeuronGroup, bin_duration: Quantity, n_bins: int) -> tuple["BinnedCounter", list]:
        """Monitor and zeroing operation for ``group`` (which must count in its reset)."""
        monitor = StateMonitor(group, "count", record=True, dt=bin_duration, when="start", order=-10,
                               name=f"{group.name}_count_monitor")
        zero = group.run_regularly("count = 0", dt=bin_duration, when="start", order=-9,
                                   name=f"{group.name}_count_zero")
        return cls(monitor, n_bins), [monitor, zero]

    def counts(self, n_samples: int) -> np.ndarray:
        """``(sample, bin, neuron)`` counts of the last run (the first record, at t = 0, is empty)."""
        values = np.asarray(self.monitor.count)  # (neuron, record)
        values = values[:, 1:1 + n_samples * self.n_bins]
        return values.T.reshape(n_samples, self.n_bins, -1).astype(np.float32)
