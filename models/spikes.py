"""The one spike record every dataset yields and every network consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Quantity


@dataclass(frozen=True)
class SpikeSample:
    """One labelled spike train: which unit fired when."""

    units: np.ndarray  # spike unit (channel) indices, int
    times: Quantity  # spike times, a Brian2 quantity in seconds, same length as units
    label: int  # class index
    speaker: int = -1  # speaker index; -1 where the dataset has none

    def __post_init__(self):
        if len(self.units) != len(self.times):
            raise ValueError(f"{len(self.units)} unit indices but {len(self.times)} spike times")
