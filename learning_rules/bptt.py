"""The baseline: a recurrent LIF network trained with BPTT and surrogate gradients (PyTorch).

Neftci, Mostafa & Zenke (2019), "Surrogate gradient learning in spiking neural networks", IEEE
Signal Process. Mag. 36:51; the SHD recipe of Cramer et al. (2020) and Zenke & Vogels (2021).

The network is :class:`models.lif_torch.RecurrentLIFNetwork`, the exact twin of the Brian2 LIF.
The loss is the cross-entropy of the readout potentials reduced over time (``readout_reduction``:
their maximum, the default, or their mean), or the cross-entropy at every step averaged over the
:math:`T` steps (``'per_step'``, e-prop's loss, predicting from the mean over time as e-prop does),

.. math:: L = -\\log \\operatorname{softmax}_y\\big(\\max_t u_k(t)\\big) + \\lambda \\frac{1}{N}\\sum_j (r_j - r_0)^2,
   \\qquad L_\\mathrm{per\\ step} = -\\frac{1}{T}\\sum_t \\log \\operatorname{softmax}_y u(t) + \\ldots,

with the optional firing-rate term on the sample's hidden rates :math:`r_j` (spikes per second, target
:math:`r_0`, :math:`N` hidden neurons), each averaged over the mini-batch: e-prop's term, with the same
meaning and scale. The gradient flows through time by backpropagation, through spikes by the fast-sigmoid
surrogate (slope documented in :mod:`models.lif_torch`); the reset is kept out of the gradient.
Adam optimises all weights. Initial weights (:class:`models.lif_torch.RecurrentLIFNetwork`) are
normal with standard deviation ``weight_scale / sqrt(fan_in)`` for the input and the readout alike
and half that for the recurrent weights. Departures from the papers: the neuron is integrated
exactly with the project's constants and time step rather than with forward Euler; one
``weight_scale`` (5 threshold units) for input and readout, where the SpyTorch tutorials behind
Zenke & Vogels (2021) tie their one scale to their neuron's membrane decay per step (a different
neuron and step; here the scale is a tuning parameter, ``--weight-scale``). An earlier docstring said the readout started at
``1 / sqrt(n_hidden)``; the code has always used ``weight_scale / sqrt(n_hidden)``, and the docstrings
now say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm
from brian2 import Hz, Quantity, mV, ms, second
from sklearn.base import BaseEstimator, ClassifierMixin

from datasets.records import to_dense
from models.lif import LIFParams
from models.lif_torch import RecurrentLIFNetwork
from models.spikes import SpikeSample
from models.units import ASSIGN, check_quantity, const


@dataclass(frozen=True)
class BPTTParams:
    """Constants of the baseline and its training."""

    n_hidden: int = 128  # recurrent LIF neurons
    recurrent: bool = True  # recurrent hidden weights
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron
    learning_rate: float = 2e-3  # Adam step size
    batch_size: int = 64  # samples per gradient step
    readout_reduction: Literal["max", "mean", "per_step"] = "max"  # the loss: cross-entropy of the readout's maximum or mean over time, or at every step ('per_step'); e-prop offers the same three
    self_connections: bool = True  # recurrent weights from a neuron onto itself
    rate_penalty: float = 0.0  # lambda of the firing-rate term, per Hz^2 (0: off)
    target_rate: Quantity = const(10 * Hz)  # r_0 of the firing-rate term
    surrogate_slope: float = 10.0  # beta of the fast sigmoid
    weight_scale: float = 5.0  # initial input and readout weight scale (recurrent: half), in (v_threshold - v_rest) / sqrt(fan-in)
    train_hidden: bool = True  # learn the input and recurrent weights (off: only the readout learns, the learning-off control)

    def __post_init__(self):
        check_quantity("target_rate", self.target_rate, Hz)
        if self.readout_reduction not in ("max", "mean", "per_step"):
            raise ValueError(f"readout_reduction must be 'max', 'mean' or 'per_step', got {self.readout_reduction!r}")
        if self.n_hidden < 1 or self.batch_size < 1:
            raise ValueError("n_hidden and batch_size must be positive")
        if self.learning_rate <= 0 or self.rate_penalty < 0:
            raise ValueError("learning_rate must be positive and rate_penalty not negative")


class BPTTClassifier(BaseEstimator, ClassifierMixin):
    """scikit-learn classifier: ``fit(X, y)`` trains ``epochs`` epochs from a fresh network,
    ``partial_fit(X, y, classes)`` one more epoch (as scikit-learn's incremental estimators do).

    ``X`` is a list of :class:`~models.spikes.SpikeSample`, binned to ``dt`` over ``duration``;
    ``classes_`` are the labels (from ``y``, or ``classes`` on the first ``partial_fit``);
    ``weights_`` the learned weights (``input``, ``recurrent``, ``output``) as Brian2 quantities
    in volt. ``torch_device`` is PyTorch's device ('cpu', 'cuda').
    """

    def __init__(self, params: BPTTParams = BPTTParams(), *, n_inputs: int = 700, dt=10 * ms,
                 duration=1 * second, epochs: int = 1, seed: int = 0, torch_device: str = "cpu", verbose: bool = False):
        self.params = params
        self.n_inputs = n_inputs
        self.dt = dt
        self.duration = duration
        self.epochs = epochs
        self.seed = seed
        self.torch_device = torch_device
        self.verbose = verbose

    @property
    def n_steps(self) -> int:
        return int(round(float(self.duration / self.dt)))

    def initialize(self, classes) -> "BPTTClassifier":
        """A fresh network and optimiser for ``classes`` (seeded)."""
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(self.seed).generate_state(1)[0]))
        p = self.params
        self.classes_ = np.asarray(classes)
        self.model_ = RecurrentLIFNetwork(self.n_inputs, p.n_hidden, len(self.classes_), p.lif, self.dt,
                                          recurrent=p.recurrent, self_connections=p.self_connections,
                                          slope=p.surrogate_slope,
                                          weight_scale=p.weight_scale, generator=generator).to(self.torch_device)
        if not p.train_hidden:  # frozen, so autograd keeps nothing for them (the learning-off control)
            for frozen in (self.model_.w_in, self.model_.w_rec):
                if frozen is not None:
                    frozen.requires_grad_(False)
        trained = self.model_.parameters() if p.train_hidden else [self.model_.w_out]
        self.optimizer_ = torch.optim.Adam(trained, lr=p.learning_rate)
        self.epochs_done_ = 0
        return self

    def _dense(self, samples: list[SpikeSample]) -> torch.Tensor:
        return torch.from_numpy(to_dense(samples, self.n_inputs, self.n_steps, self.dt)).to(self.torch_device)

    def _logits(self, readout: torch.Tensor) -> torch.Tensor:
        """The class scores a prediction takes the largest of."""
        return readout.max(dim=1).values if self.params.readout_reduction == "max" else readout.mean(dim=1)

    def loss(self, readout: torch.Tensor, spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a mini-batch: ``readout`` ``(sample, step, class)`` in threshold units,
        ``spikes`` ``(sample, step, neuron)``, ``target`` the class indices."""
        p = self.params
        if p.readout_reduction == "per_step":  # mean over samples and steps
            steps = readout.shape[1]
            loss = torch.nn.functional.cross_entropy(readout.flatten(0, 1), target.repeat_interleave(steps))
        else:
            loss = torch.nn.functional.cross_entropy(self._logits(readout), target)
        if p.rate_penalty > 0:
            rates = spikes.sum(dim=1) / (spikes.shape[1] * float(self.dt / second))  # (sample, neuron), Hz
            loss = loss + p.rate_penalty * torch.mean((rates - float(p.target_rate / Hz)) ** 2)
        return loss

    def partial_fit(self, X: list[SpikeSample], y, classes=None) -> "BPTTClassifier":
        """One epoch in a seeded order; ``loss_`` and ``train_accuracy_`` are that epoch's."""
        if not hasattr(self, "model_"):
            self.initialize(np.unique(np.asarray(y)) if classes is None else classes)
        target_index = np.searchsorted(self.classes_, np.asarray(y))
        order = np.random.default_rng([self.seed, self.epochs_done_]).permutation(len(X))
        p = self.params
        total_loss, correct = 0.0, 0
        self.model_.train()
        bar = tqdm(total=len(X), desc=f"epoch {self.epochs_done_ + 1} BPTT", unit="sample", disable=not self.verbose,
                   leave=False)
        for start in range(0, len(order), p.batch_size):
            batch = order[start:start + p.batch_size]
            x = self._dense([X[i] for i in batch])
            target = torch.as_tensor(target_index[batch], device=self.torch_device)
            readout, spikes = self.model_(x)
            logits = self._logits(readout)
            loss = self.loss(readout, spikes, target)
            self.optimizer_.zero_grad()
            loss.backward()
            self.optimizer_.step()
            total_loss += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(dim=1) == target).sum())
            bar.update(len(batch))
        bar.close()
        self.epochs_done_ += 1
        self.loss_, self.train_accuracy_ = total_loss / len(X), correct / len(X)
        return self

    def fit(self, X: list[SpikeSample], y) -> "BPTTClassifier":
        self.initialize(np.unique(np.asarray(y)))
        for _ in range(self.epochs):
            self.partial_fit(X, y)
        return self

    @property
    def weights_(self) -> dict[str, Quantity]:
        names = {"w_in": "input", "w_rec": "recurrent", "w_out": "output"}
        return {names[k]: v.detach().cpu().numpy() * mV for k, v in self.model_.weights_mV().items()}

    @torch.no_grad()
    def evaluate(self, samples: list[SpikeSample]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted classes and hidden spike counts per sample."""
        self.model_.eval()
        predictions, counts = [], []
        for start in range(0, len(samples), 256):
            readout, spikes = self.model_(self._dense(samples[start:start + 256]))
            predictions.append(self._logits(readout).argmax(dim=1).cpu().numpy())
            counts.append(spikes.sum(dim=1).cpu().numpy())
        return self.classes_[np.concatenate(predictions)], np.concatenate(counts)

    def predict(self, samples: list[SpikeSample]) -> np.ndarray:
        return self.evaluate(samples)[0]

    def score(self, samples: list[SpikeSample], y: np.ndarray) -> float:
        return float(np.mean(self.predict(samples) == y))

    def state(self) -> dict:
        """Everything a checkpoint needs; loadable with ``torch.load(..., weights_only=True)``."""
        return {"model": self.model_.state_dict(), "optimizer": self.optimizer_.state_dict(),
                "epochs_done": self.epochs_done_}

    def load_state(self, state: dict, classes) -> None:
        self.initialize(classes)
        self.model_.load_state_dict(state["model"])
        self.optimizer_.load_state_dict(state["optimizer"])
        self.epochs_done_ = int(state["epochs_done"])

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for group in self.optimizer_.param_groups for p in group["params"]))
