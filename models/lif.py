"""Current-based leaky integrate-and-fire neuron with an exponential synaptic current.

The same :class:`LIFParams` feeds the Brian2 model here and its PyTorch twin in
:mod:`models.lif_torch`, so both simulators run the same neuron:

.. math::

    \\tau_\\mathrm{mem} \\dot v = v_\\mathrm{rest} - v + I_\\mathrm{syn} \\quad (\\text{unless refractory}),
    \\qquad \\tau_\\mathrm{syn} \\dot I_\\mathrm{syn} = -I_\\mathrm{syn},

a spike when :math:`v > v_\\mathrm{threshold}`, then :math:`v \\leftarrow v_\\mathrm{reset}` and
:math:`v` is held for :math:`t_\\mathrm{ref}`. A presynaptic spike adds its weight (in volt) to
:math:`I_\\mathrm{syn}`: the synaptic current is expressed as the voltage it would hold the membrane at.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Quantity, mV, ms, second, volt

from models.units import check_quantity, const

#: The membrane and synaptic current, every constant a (shared, constant) variable so that a
#: scan or ``run_args`` can change it on a compiled binary.
LIF_EQUATIONS = """
dv/dt = (v_rest - v + I_syn) / tau_mem : volt (unless refractory)
dI_syn/dt = -I_syn / tau_syn : volt
tau_mem : second (shared, constant)
tau_syn : second (shared, constant)
v_rest : volt (shared, constant)
v_reset : volt (shared, constant)
v_threshold : volt (shared, constant)
t_ref : second (shared, constant)
"""


@dataclass(frozen=True)
class LIFParams:
    """Constants of the LIF neuron, shared by the Brian2 model and its PyTorch twin."""

    tau_mem: Quantity = const(20 * ms)  # membrane time constant
    tau_syn: Quantity = const(5 * ms)  # decay time constant of the synaptic current
    v_rest: Quantity = const(0 * mV)  # resting potential
    v_reset: Quantity = const(0 * mV)  # potential right after a spike
    v_threshold: Quantity = const(10 * mV)  # firing threshold
    t_ref: Quantity = const(2 * ms)  # absolute refractory period

    def __post_init__(self):
        for name in ("tau_mem", "tau_syn"):
            check_quantity(name, getattr(self, name), second, positive=True)
        check_quantity("t_ref", self.t_ref, second)
        if float(self.t_ref) < 0:
            raise ValueError(f"t_ref must not be negative, got {self.t_ref!r}")
        for name in ("v_rest", "v_reset", "v_threshold"):
            check_quantity(name, getattr(self, name), volt)
        if float(self.v_threshold) <= float(self.v_rest):
            raise ValueError(
                f"v_threshold ({self.v_threshold!r}) must lie above v_rest ({self.v_rest!r})"
            )
        if np.isclose(float(self.tau_mem), float(self.tau_syn), rtol=1e-9, atol=0):
            # The exact solution divides by (tau_mem - tau_syn).
            raise ValueError("tau_mem and tau_syn must differ (the exact integrator divides by their difference)")

    def replace(self, **changes) -> "LIFParams":
        """A copy with some constants changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_namespace(self) -> dict[str, Quantity]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def variables(self, group) -> dict:
        """``{"group.NAME": (variable, value)}`` for these constants on a group made by :func:`lif_group`
        (what a network passes through ``run_args`` to change them on a compiled binary)."""
        return {f"{group.name}.{name}": (getattr(group, name), value) for name, value in self.as_namespace().items()}


#: The LIF constants as a network's ``RUN_ARG_CONSTANTS`` name them.
LIF_RUN_ARG_CONSTANTS = tuple(f"lif.{f.name}" for f in dataclasses.fields(LIFParams))


def lif_group(
    n: int,
    params: LIFParams,
    *,
    extra_equations: str = "",
    threshold: str = "v > v_threshold",
    reset: str = "v = v_reset",
    name: str | None = None,
    dt: Quantity | None = None,
    namespace: dict | None = None,
) -> NeuronGroup:
    """A Brian2 group of ``n`` LIF neurons at rest, its constants set from ``params``.

    ``extra_equations``, ``threshold`` and ``reset`` let a learning rule add state (adaptive
    thresholds, counters, traces) without rewriting the membrane equations.
    """
    kwargs = {"name": name} if name else {}
    if namespace:
        kwargs["namespace"] = namespace
    if dt is not None:
        kwargs["dt"] = dt
    group = NeuronGroup(
        n,
        LIF_EQUATIONS + extra_equations,
        threshold=threshold,
        reset=reset,
        refractory="t_ref",
        method="exact",
        **kwargs,
    )
    for key, value in params.as_namespace().items():
        setattr(group, key, value)
    group.v = params.v_rest
    return group
