"""The PyTorch twin of :mod:`models.lif`: the same neuron, stepped exactly as Brian2 steps it.

Brian2 integrates the linear LIF equations exactly (``method='exact'``), and within one time
step it updates the state, tests the threshold, delivers spikes (which raise ``I_syn``), then
resets. With :math:`\\alpha_m = e^{-dt/\\tau_\\mathrm{mem}}`, :math:`\\alpha_s = e^{-dt/\\tau_\\mathrm{syn}}` and
:math:`c = \\tau_\\mathrm{syn}(\\alpha_s - \\alpha_m)/(\\tau_\\mathrm{syn} - \\tau_\\mathrm{mem})`, step ``n`` is

.. math::

    v_n &= v_\\mathrm{rest} + (v_{n-1} - v_\\mathrm{rest})\\alpha_m + c\\,I_{n-1}
          \\quad (\\text{held while refractory}) \\\\
    s_n &= H(v_n - v_\\mathrm{threshold}) \\quad (0 \\text{ while refractory}) \\\\
    I_n &= \\alpha_s I_{n-1} + W_\\mathrm{in}^\\top x_n + W_\\mathrm{rec}^\\top s_n \\\\
    v_n &\\leftarrow v_\\mathrm{reset} \\text{ where } s_n = 1,

and a neuron is refractory in the ``round(t_ref/dt) - 1`` steps after a spike (Brian2's
``timestep(t - lastspike, dt) >= timestep(t_ref, dt)``). Voltages are in millivolts here; the
units are stripped in :func:`lif_constants` and nowhere else.

The spike nonlinearity has a surrogate gradient (fast sigmoid, Zenke & Ganguli 2018, SuperSpike):
:math:`\\partial s/\\partial v = 1/(\\beta |u| + 1)^2` with :math:`u = (v - v_\\mathrm{threshold}) /
(v_\\mathrm{threshold} - v_\\mathrm{rest})`, slope :math:`\\beta = 10` by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from brian2 import Quantity, mV, ms

from models.lif import LIFParams


@dataclass(frozen=True)
class LIFConstants:
    """Per-step constants of the exact integrator, units stripped (ms, mV)."""

    alpha_mem: float
    alpha_syn: float
    coupling: float
    v_rest: float
    v_reset: float
    v_threshold: float
    refractory_steps: int


def lif_constants(params: LIFParams, dt: Quantity) -> LIFConstants:
    dt_ms = float(dt / ms)
    tau_m, tau_s = float(params.tau_mem / ms), float(params.tau_syn / ms)
    alpha_m, alpha_s = np.exp(-dt_ms / tau_m), np.exp(-dt_ms / tau_s)
    return LIFConstants(
        alpha_mem=float(alpha_m),
        alpha_syn=float(alpha_s),
        coupling=float(tau_s * (alpha_s - alpha_m) / (tau_s - tau_m)),
        v_rest=float(params.v_rest / mV),
        v_reset=float(params.v_reset / mV),
        v_threshold=float(params.v_threshold / mV),
        refractory_steps=int(round(float(params.t_ref / dt))),
    )


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward; ``1 / (slope * |u| + 1)**2`` backward."""

    @staticmethod
    def forward(ctx, u, slope: float):
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (u,) = ctx.saved_tensors
        return grad_output / (ctx.slope * u.abs() + 1.0) ** 2, None


def spike_fn(u: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    return FastSigmoidSpike.apply(u, slope)


def run_lif(inputs: torch.Tensor, w_in: torch.Tensor, params: LIFParams, dt: Quantity,
            w_rec: torch.Tensor | None = None, *, slope: float = 10.0, detach_reset: bool = True,
            record_v: bool = False):
    """Simulate a layer of LIF neurons.

    ``inputs`` is ``(batch, steps, n_in)`` (spike counts per step), ``w_in`` ``(n_in, n)`` and
    ``w_rec`` ``(n, n)``, all weights in mV. Returns the spikes ``(batch, steps, n)`` and, with
    ``record_v``, the membrane potential after the threshold test and before the reset.
    ``detach_reset`` keeps the reset out of the gradient (as e-prop assumes and as is usual for BPTT).
    """
    return _run_lif(inputs @ w_in, lif_constants(params, dt), w_rec, slope, detach_reset, record_v)


def _run_lif(drive, k: LIFConstants, w_rec, slope, detach_reset, record_v, detach_recurrent=False):
    batch, steps, n = drive.shape
    opts = {"dtype": drive.dtype, "device": drive.device}
    v = torch.full((batch, n), k.v_rest, **opts)
    current = torch.zeros((batch, n), **opts)
    # With refractory_steps <= 1 a neuron is never held, and the bookkeeping can be skipped.
    refractory = k.refractory_steps > 1
    since_spike = torch.full((batch, n), 10 ** 9, dtype=torch.long, device=drive.device)
    spikes, voltages = [], []
    scale = k.v_threshold - k.v_rest
    # one unbind, not a slice per step: each slice's backward would write a zero tensor of the whole
    # drive (batch x steps x neurons), which makes the backward pass quadratic in the steps
    steps_of_drive = drive.unbind(dim=1)
    for step in range(steps):
        integrated = k.v_rest + (v - k.v_rest) * k.alpha_mem + k.coupling * current
        if refractory:
            since_spike = since_spike + 1
            free = since_spike >= k.refractory_steps
            v = torch.where(free, integrated, v)
            s = spike_fn((v - k.v_threshold) / scale, slope) * free.to(drive.dtype)
        else:
            v = integrated
            s = spike_fn((v - k.v_threshold) / scale, slope)
        current = k.alpha_syn * current + steps_of_drive[step]
        if w_rec is not None:
            current = current + (s.detach() if detach_recurrent else s) @ w_rec
        if record_v:
            voltages.append(v)
        reset = s.detach() if detach_reset else s
        v = v - (v - k.v_reset) * reset
        if refractory:
            since_spike = torch.where(s.detach() > 0, torch.zeros_like(since_spike), since_spike)
        spikes.append(s)
    out = torch.stack(spikes, dim=1)
    return (out, torch.stack(voltages, dim=1)) if record_v else out


def readout_kernel(k: LIFConstants, n_steps: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(n_steps, n_steps)`` matrix ``M`` with ``v = M @ drive``: the membrane (relative to rest) of a
    non-spiking LIF neuron fed ``drive[m]`` into its synaptic current at step ``m``.

    An impulse at step 0 gives :math:`v_n = c(\alpha_m^n - \alpha_s^n)/(\alpha_m - \alpha_s)` for
    :math:`n \ge 1` (0 at :math:`n = 0`), the same recursion as :func:`run_lif` without threshold.
    """
    n = torch.arange(n_steps, dtype=torch.float64)
    lag = n[:, None] - n[None, :]
    a_m, a_s = k.alpha_mem, k.alpha_syn
    if np.isclose(a_m, a_s):
        raise ValueError("the readout kernel needs tau_mem != tau_syn")
    safe = lag.clamp(min=0)
    kernel = k.coupling * (a_m ** safe - a_s ** safe) / (a_m - a_s)
    return torch.where(lag >= 1, kernel, torch.zeros_like(kernel)).to(dtype=dtype, device=device)


def run_readout(spikes: torch.Tensor, w_out: torch.Tensor, params: LIFParams, dt: Quantity,
                kernel: torch.Tensor | None = None) -> torch.Tensor:
    """Leaky, non-spiking readout: the LIF membrane without threshold, relative to rest.

    Linear, so it is one matrix product over time instead of a loop."""
    if kernel is None:
        kernel = readout_kernel(lif_constants(params, dt), spikes.shape[1], spikes.dtype, spikes.device)
    return torch.einsum("ts,bso->bto", kernel, spikes @ w_out)


class RecurrentLIFNetwork(torch.nn.Module):
    """Input -> recurrent spiking LIF layer -> leaky non-spiking readout.

    The trainable weights are kept in units of ``v_threshold - v_rest`` (so that Adam's step size
    means the same for any neuron constants); :meth:`weights_mV` gives them in millivolt, as the
    Brian2 model takes them. Initial weights are normal with standard deviation
    ``weight_scale / sqrt(fan_in)``: the input and the readout (fan-in ``n_hidden``) with the same
    ``weight_scale``, the recurrent weights with half of it, as the SpyTorch tutorial of Zenke &
    Vogels (2021) draws its input and readout weights with one scale.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, params: LIFParams, dt: Quantity, *,
                 recurrent: bool = True, self_connections: bool = True, slope: float = 10.0, weight_scale: float = 5.0,
                 generator: torch.Generator | None = None, dtype=torch.float32, detach_recurrent: bool = False):
        super().__init__()
        self.params, self.dt, self.slope = params, dt, slope
        # keep the recurrent spikes out of the gradient: what is left is e-prop's gradient exactly
        # (Bellec et al. 2020, eq. 4: only each neuron's own dynamics carry credit)
        self.detach_recurrent = detach_recurrent
        self.constants = lif_constants(params, dt)
        self.unit = self.constants.v_threshold - self.constants.v_rest

        def init(rows, cols, std):
            return torch.nn.Parameter(torch.randn(rows, cols, generator=generator, dtype=dtype) * std / np.sqrt(rows))

        self.w_in = init(n_in, n_hidden, weight_scale)
        self.w_rec = init(n_hidden, n_hidden, weight_scale / 2) if recurrent else None
        self.w_out = init(n_hidden, n_out, weight_scale)
        # without self-connections the diagonal is held at 0 (masked in forward, so it gets no gradient)
        self.register_buffer("rec_mask", None if self_connections or not recurrent else
                             1 - torch.eye(n_hidden, dtype=dtype))
        if self.rec_mask is not None:
            with torch.no_grad():
                self.w_rec.mul_(self.rec_mask)
        self._kernel = None

    def backward_state_bytes(self, batch: int, steps: int, train_hidden: bool = True) -> dict[str, int]:
        """What autograd keeps from the forward pass for the backward one, computed from the sizes:
        per sample, step and hidden neuron three values (the scaled distance to threshold the
        surrogate needs, ``v - v_reset`` of the reset, the spikes the readout multiplies) and a
        boolean (the surrogate's mask), plus one value and one boolean more while the refractory
        bookkeeping runs (refractory period longer than a step); per sample and step the dense input;
        and the readout kernel (steps x steps). When only the readout learns (``train_hidden``
        off), only the spikes and the kernel. The loss keeps a little more (its softmax). Checked
        against the tensors autograd saves, within 5% (``tests/test_learning_state.py``)."""
        size = self.w_in.element_size()
        n_in, n_hidden = self.w_in.shape
        kernel = {"readout kernel": size * steps * steps}
        if not train_hidden:
            return {"hidden spikes, every step": size * batch * steps * n_hidden, **kernel}
        refractory = self.constants.refractory_steps > 1
        per_neuron = (4 * size + 2) if refractory else (3 * size + 1)
        return {"hidden states, every step": per_neuron * batch * steps * n_hidden,
                "dense input, every step": size * batch * steps * n_in, **kernel}

    def weights_mV(self) -> dict[str, torch.Tensor]:
        return {name: w.detach() * self.unit for name, w in
                (("w_in", self.w_in), ("w_rec", self.w_rec), ("w_out", self.w_out)) if w is not None}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, steps, n_in)`` -> readout potentials ``(batch, steps, n_out)`` in units of
        ``v_threshold - v_rest``, and the hidden spikes."""
        w_rec = None if self.w_rec is None else self.w_rec * self.unit
        if self.rec_mask is not None:
            w_rec = w_rec * self.rec_mask
        spikes = _run_lif(x @ (self.w_in * self.unit), self.constants, w_rec, self.slope, True, False,
                          self.detach_recurrent)
        steps = x.shape[1]
        if self._kernel is None or self._kernel.shape[0] != steps or self._kernel.dtype != x.dtype:
            self._kernel = readout_kernel(self.constants, steps, x.dtype, x.device)
        return run_readout(spikes, self.w_out, self.params, self.dt, self._kernel), spikes


def held_for_backward(model: torch.nn.Module, loss_of) -> int:
    """Bytes that autograd keeps from ``loss_of(model)`` (a forward pass and its loss) for the
    backward pass: the distinct storages of the tensors it saves, the model's parameters excluded
    (they exist for inference too). A measurement, for checking
    :meth:`RecurrentLIFNetwork.backward_state_bytes` and comparing implementations."""
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_of(model)
    del loss
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)
