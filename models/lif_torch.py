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
    """
    k = lif_constants(params, dt)
    batch, steps, _ = inputs.shape
    n = w_in.shape[1]
    opts = {"dtype": inputs.dtype, "device": inputs.device}
    v = torch.full((batch, n), k.v_rest, **opts)
    current = torch.zeros((batch, n), **opts)
    since_spike = torch.full((batch, n), 10 ** 9, dtype=torch.long, device=inputs.device)
    drive = inputs @ w_in  # (batch, steps, n)
    spikes, voltages = [], []
    scale = k.v_threshold - k.v_rest
    for step in range(steps):
        since_spike = since_spike + 1
        free = since_spike >= k.refractory_steps
        v = torch.where(free, k.v_rest + (v - k.v_rest) * k.alpha_mem + k.coupling * current, v)
        s = spike_fn((v - k.v_threshold) / scale, slope) * free.to(inputs.dtype)
        current = k.alpha_syn * current + drive[:, step]
        if w_rec is not None:
            current = current + s @ w_rec
        if record_v:
            voltages.append(v)
        reset = s.detach() if detach_reset else s
        v = v * (1 - reset) + k.v_reset * reset
        since_spike = torch.where(s.detach() > 0, torch.zeros_like(since_spike), since_spike)
        spikes.append(s)
    out = torch.stack(spikes, dim=1)
    return (out, torch.stack(voltages, dim=1)) if record_v else out
