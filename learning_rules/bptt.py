"""The baseline: a recurrent LIF network trained with BPTT and surrogate gradients (PyTorch).

Neftci, Mostafa & Zenke (2019), "Surrogate gradient learning in spiking neural networks", IEEE
Signal Process. Mag. 36:51; the SHD recipe of Cramer et al. (2020) and Zenke & Vogels (2021).

The network is :class:`models.lif_torch.RecurrentLIFNetwork`, the exact twin of the Brian2 LIF.
The loss is the cross-entropy of the readout potentials reduced over time (maximum, or mean),

.. math:: L = -\\log \\operatorname{softmax}_y\\big(\\max_t u_k(t)\\big) + \\lambda \\frac{1}{N}\\sum_j (r_j - r_0)^2,

with the optional firing-rate term on the hidden rates :math:`r_j` (spikes per second, target
:math:`r_0`). The gradient flows through time by backpropagation, through spikes by the fast-sigmoid
surrogate (slope documented in :mod:`models.lif_torch`); the reset is kept out of the gradient.
Adam optimises all weights. Departure from the papers: the neuron is integrated exactly with the
project's constants and time step rather than with forward Euler.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from brian2 import Hz, Quantity, ms, second

from datasets.records import SpikeSample, to_dense
from models.lif import LIFParams, check_quantity, const
from models.lif_torch import RecurrentLIFNetwork


@dataclass(frozen=True)
class BPTTParams:
    """Constants of the baseline and its training."""

    n_hidden: int = 128  # recurrent LIF neurons
    recurrent: bool = True  # recurrent hidden weights
    lif: LIFParams = dataclasses.field(default_factory=LIFParams)  # the shared neuron
    dt: Quantity = const(10 * ms)  # time step (inputs are binned to it)
    learning_rate: float = 2e-3  # Adam step size
    batch_size: int = 64  # samples per gradient step
    readout_reduction: str = "max"  # reduce readout potentials over time: 'max' or 'mean'
    rate_penalty: float = 0.0  # lambda of the firing-rate term (0: off)
    target_rate: Quantity = const(10 * Hz)  # r_0 of the firing-rate term
    surrogate_slope: float = 10.0  # beta of the fast sigmoid
    weight_scale: float = 5.0  # initial input weight scale, in (v_threshold - v_rest) / sqrt(fan-in)

    def __post_init__(self):
        check_quantity("dt", self.dt, second, positive=True)
        check_quantity("target_rate", self.target_rate, Hz)
        if self.readout_reduction not in ("max", "mean"):
            raise ValueError(f"readout_reduction must be 'max' or 'mean', got {self.readout_reduction!r}")
        if self.n_hidden < 1 or self.batch_size < 1:
            raise ValueError("n_hidden and batch_size must be positive")
        if self.learning_rate <= 0 or self.rate_penalty < 0:
            raise ValueError("learning_rate must be positive and rate_penalty not negative")


class BPTTClassifier:
    """scikit-learn-shaped classifier; ``fit`` trains ``epochs`` epochs, ``train_epoch`` one."""

    def __init__(self, params: BPTTParams = BPTTParams(), *, n_steps: int, epochs: int = 1, seed: int = 0,
                 device: str = "cpu"):
        self.params = params
        self.n_steps = n_steps
        self.epochs = epochs
        self.seed = seed
        self.device = device

    def _init(self, n_in: int, n_classes: int):
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(self.seed).generate_state(1)[0]))
        p = self.params
        self.n_in_, self.n_classes_ = n_in, n_classes
        self.model_ = RecurrentLIFNetwork(n_in, p.n_hidden, n_classes, p.lif, p.dt, recurrent=p.recurrent,
                                          slope=p.surrogate_slope, weight_scale=p.weight_scale,
                                          generator=generator).to(self.device)
        self.optimizer_ = torch.optim.Adam(self.model_.parameters(), lr=p.learning_rate)
        self.epochs_done_ = 0

    def _dense(self, samples: list[SpikeSample]) -> torch.Tensor:
        return torch.from_numpy(to_dense(samples, self.n_in_, self.n_steps, self.params.dt)).to(self.device)

    def _logits(self, readout: torch.Tensor) -> torch.Tensor:
        return readout.max(dim=1).values if self.params.readout_reduction == "max" else readout.mean(dim=1)

    def train_epoch(self, samples: list[SpikeSample], y: np.ndarray) -> tuple[float, float]:
        """One epoch in a seeded order; returns (mean loss, training accuracy)."""
        order = np.random.default_rng([self.seed, self.epochs_done_]).permutation(len(samples))
        p = self.params
        duration_s = self.n_steps * float(p.dt / second)
        total_loss, correct = 0.0, 0
        self.model_.train()
        for start in range(0, len(order), p.batch_size):
            batch = order[start:start + p.batch_size]
            x = self._dense([samples[i] for i in batch])
            target = torch.as_tensor(y[batch], device=self.device)
            readout, spikes = self.model_(x)
            logits = self._logits(readout)
            loss = torch.nn.functional.cross_entropy(logits, target)
            if p.rate_penalty > 0:
                rates = spikes.sum(dim=1).mean(dim=0) / duration_s
                loss = loss + p.rate_penalty * torch.mean((rates - float(p.target_rate / Hz)) ** 2)
            self.optimizer_.zero_grad()
            loss.backward()
            self.optimizer_.step()
            total_loss += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(dim=1) == target).sum())
        self.epochs_done_ += 1
        return total_loss / len(samples), correct / len(samples)

    def fit(self, samples: list[SpikeSample], y: np.ndarray, n_in: int, n_classes: int) -> "BPTTClassifier":
        self._init(n_in, n_classes)
        for _ in range(self.epochs):
            self.train_epoch(samples, y)
        return self

    @torch.no_grad()
    def evaluate(self, samples: list[SpikeSample]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted classes and hidden spike counts per sample."""
        self.model_.eval()
        predictions, counts = [], []
        for start in range(0, len(samples), 256):
            readout, spikes = self.model_(self._dense(samples[start:start + 256]))
            predictions.append(self._logits(readout).argmax(dim=1).cpu().numpy())
            counts.append(spikes.sum(dim=1).cpu().numpy())
        return np.concatenate(predictions), np.concatenate(counts)

    def predict(self, samples: list[SpikeSample]) -> np.ndarray:
        return self.evaluate(samples)[0]

    def score(self, samples: list[SpikeSample], y: np.ndarray) -> float:
        return float(np.mean(self.predict(samples) == y))

    def state(self) -> dict:
        """Everything a checkpoint needs; loadable with ``torch.load(..., weights_only=True)``."""
        return {"model": self.model_.state_dict(), "optimizer": self.optimizer_.state_dict(),
                "epochs_done": self.epochs_done_}

    def load_state(self, state: dict, n_in: int, n_classes: int) -> None:
        self._init(n_in, n_classes)
        self.model_.load_state_dict(state["model"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.epochs_done_ = int(state["epochs_done"])

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model_.parameters()))
