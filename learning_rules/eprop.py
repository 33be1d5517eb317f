"""Three-factor e-prop in Brian2: eligibility traces times a broadcast learning signal, online.

Bellec, G. et al. (2020), "A solution to the learning dilemma for recurrent networks of spiking
neurons", Nature Communications 11:3625 (eqs. 1-4 and Methods, "e-prop for LIF neurons").

Network: input -> recurrent LIF layer (:mod:`models.lif`, the same neuron as every other rule) ->
leaky non-spiking readout (the LIF membrane without threshold, integrated exactly). The readout
:math:`y_k(t)` (in units of :math:`v_\\mathrm{threshold} - v_\\mathrm{rest}`) gives
:math:`\\pi_k(t) = \\mathrm{softmax}_k\\, y(t)` and the loss, the cross-entropy at every step averaged over the
sample's :math:`T` steps, :math:`E = -\\frac{1}{T}\\sum_t \\sum_k \\pi^*_k \\log \\pi_k(t)` (the BPTT baseline's
``readout_reduction='per_step'``). ``readout_reduction='mean'`` takes instead the BPTT baseline's
cross-entropy of the readout's mean over time, :math:`E = -\\sum_k \\pi^*_k \\log \\mathrm{softmax}_k \\bar y`,
:math:`\\bar y = \\frac{1}{T}\\sum_t y(t)`: its learning signal :math:`L_j = \\sum_k B_{jk}(\\mathrm{softmax}_k \\bar y
- \\pi^*_k)` is one number per sample, known at its end (a delayed third factor), so each synapse sums its
filtered eligibility trace over the sample and the gradient is :math:`g_{ji} = L_j \\frac{1}{T}\\sum_t \\bar
e_{ji}(t)`, with the same state as the per-step form (the sum takes the place of the gradient's).
``readout_reduction='max'`` takes the baseline's default, the cross-entropy of each class's maximum over
time, :math:`E = -\\sum_k \\pi^*_k \\log \\mathrm{softmax}_k \\hat y`, :math:`\\hat y_k = \\max_t y_k(t)`. Its
gradient reaches class :math:`k` only at the step :math:`t^*_k` of that class's maximum,
:math:`g_{ji} = \\sum_k B_{jk} (\\mathrm{softmax}_k \\hat y - \\pi^*_k)\\, \\bar e_{ji}(t^*_k)`, and those steps are
known only once the sample has ended. Rather than keep one filtered trace per synapse and class, each
training sample is presented twice with the same weights: the first presentation finds each
:math:`t^*_k` (the first step of the maximum, as ``torch.max``) and the error
:math:`\\mathrm{softmax}_k \\hat y - \\pi^*_k`; the second, the same trajectory, applies the learning signal
:math:`L_j(t) = \\sum_k B_{jk} (\\mathrm{softmax}_k \\hat y - \\pi^*_k)\\,[t = t^*_k]` to the per-step sum
:math:`g_{ji} = \\sum_t L_j(t)\\, \\bar e_{ji}(t)`. The state per synapse is the per-step form's; the
simulation per training sample is twice as long (the comparison counts it in the training cost).

For the synapse :math:`i \\to j` (input or recurrent), with :math:`\\alpha_m, \\alpha_s, c` the exact
integration constants of :mod:`models.lif_torch`:

- presynaptic trace (per neuron): :math:`\\epsilon^I_i(t) = \\alpha_s \\epsilon^I_i(t-1) + z_i(t)`;
- eligibility vector: :math:`\\epsilon_{ji}(t) = \\alpha_m \\epsilon_{ji}(t-1) + c\\,\\epsilon^I_i(t-1)`
  (held while :math:`j` is refractory, set to 0 when :math:`j` spikes, since the reset to
  :math:`v_\\mathrm{reset}` is kept out of the gradient);
- pseudo-derivative: :math:`\\psi_j(t) = \\frac{\\gamma_\\mathrm{pd}}{v_\\mathrm{threshold} - v_\\mathrm{rest}}\\,
  (\\beta |u_j| + 1)^{-2}` (0 while refractory), the surrogate of the BPTT baseline times the damping
  :math:`\\gamma_\\mathrm{pd}` (``damping``, 1 by default);
- eligibility trace :math:`e_{ji} = \\psi_j \\epsilon_{ji}`, filtered with the readout's own kernel
  :math:`\\kappa` (synaptic current, then membrane): :math:`\\bar e_{ji} = \\kappa * e_{ji}`;
- learning signal: :math:`L_j(t) = \\sum_k B_{jk} (\\pi_k(t) - \\pi^*_k)` with :math:`B = W_\\mathrm{out}^\\top`
  (symmetric e-prop) or fixed random :math:`B` (random e-prop);
- gradient: :math:`g_{ji} = \\frac{1}{T}\\sum_t L_j(t)\\, \\bar e_{ji}(t)`; readout:
  :math:`g^\\mathrm{out}_{kj} = \\frac{1}{T}\\sum_t (\\pi_k(t) - \\pi^*_k)\\, (\\kappa * z_j)(t)`;
- firing-rate regulariser :math:`\\lambda \\frac{1}{N}\\sum_j (r_j - r_0)^2`, :math:`r_j` the sample's mean rate
  in Hz and :math:`N` the hidden layer's size, the BPTT baseline's term with the same meaning and scale:
  adds :math:`\\frac{2\\lambda}{N} (r_j - r_0) \\frac{1}{T_s} \\sum_t \\psi_j(t) \\epsilon_{ji}(t)`
  (:math:`T_s` the duration in seconds).

Updates: Adam on :math:`g` at the end of every sample (``update='sample'``), or plain gradient steps
every time step on that step's cross-entropy (``update='online'``, without the :math:`1/T`). Without recurrence and with the true learning signal
(symmetric), :math:`g` is exactly the BPTT gradient of the same network (tested against PyTorch
autograd); with recurrence it omits the paths through other neurons (the e-prop approximation).

Cost: every step each plastic synapse advances its eligibility vector and its two filters and adds
to its gradient, in one pass over the synapses (the pseudo-derivative is computed once per neuron).
That pass is bound by memory traffic, so the three traces are stored in float32 by default
(``trace_dtype``; arithmetic and the gradient's sum stay float64). Measured side by side in one run on
the benchmark's 700-128-20 network (16 samples of 1 s, twice each): 0.95 s per training sample with
float64 traces, 0.44-0.54 s with float32, gradients equal to 1e-7 relative (tested against autograd
either way). ``trace_dtype='float64'`` keeps them in double precision.

Departures from the paper, and why (the comparison wants e-prop and the BPTT baseline to train
the same network with the same surrogate, so that they differ only in how credit is assigned):

- Current-based LIF with an exponential synaptic current (so the eligibility vector has two
  components and the readout kernel is second order) instead of plain LIF; reset to
  :math:`v_\\mathrm{reset}` instead of reset by subtraction; no adaptation (ALIF). The project's one
  neuron is this LIF; every rule uses it.
- No pseudo-derivative damping by default (``damping=0.3`` gives the paper's :math:`\\gamma_\\mathrm{pd}`),
  and the fast-sigmoid shape of the BPTT baseline instead of the paper's triangle
  :math:`\\max(0, 1 - |v - v_\\mathrm{th}|/v_\\mathrm{th})`, so that the e-prop gradient can be checked
  against autograd of the same network. A constant :math:`\\gamma` scales every hidden-weight
  gradient alike: Adam (``update='sample'``) normalises each weight's steps and is unchanged by it
  (up to its epsilon); with ``update='online'`` it is a factor on the step size.
- Cross-entropy at every time step, not only in a final decision window as in the paper's
  evidence-accumulation task (the paper does use per-step targets for its frame-wise TIMIT task).
  A spoken-digit label holds for the whole sample and has no recall period; with a learning
  signal at every step the update sees the whole sample, whereas eligibility traces, which forget
  within about :math:`\\tau_\\mathrm{mem}`, would carry only the end of it to a final-window signal.
  ``readout_reduction='mean'`` gives one signal at the end instead, applied to each synapse's
  eligibility summed over the whole sample (not online: it needs ``update='sample'``).
- Self-connections are kept in the recurrent weights by default (the paper has none:
  ``self_connections=False``, which the BPTT baseline offers too): the baseline's recurrent matrix
  (after Zenke & Vogels' recurrent SHD network) is full, and both rules train the same network.
- Adam after every sample (batch size 1) by default, where the paper averages gradients over
  mini-batches before each Adam step: e-prop's claim is learning online, one sample at a time, with
  nothing stored across samples but the weights and Adam's moments. ``batch_size`` restores the
  paper's mini-batches (one Adam step on the mean gradient of each batch), which
  :meth:`EPropNetwork.learn_batch` computes data-parallel: the batch's chunks run at once in forked
  processes, or on a Dask cluster's workers, from the same weights, their gradient sums added
  before the step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from brian2 import (Hz, Network, NeuronGroup, Quantity, StateMonitor, Synapses, TimedArray, defaultclock, mV,
                    ms, second, volt)

from models.engine import devices
from models.engine.compiled import BuildCache, CompiledNetwork
from models.engine.counting import COUNT_EQUATION, COUNT_RESET, BinnedCounter
from models.engine.inputs import SpikeReplay
from models.engine.replay import ChunkedReplayNetwork, Recipe
from models.lif import LIF_RUN_ARG_CONSTANTS, LIFParams, lif_group
from models.lif_torch import lif_constants
from models.spikes import SpikeSample
from models.units import ASSIGN, check_quantity, const


@dataclass(frozen=True)
class EPropParams:
    """Constants of the e-prop network and its learning."""

    n_hidden: int = 128  # recurrent LIF neurons
    recurrent: bool = True  # recurrent hidden weights
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron
    feedback: Literal["symmetric", "random"] = "symmetric"  # learning signal through W_out^T ('symmetric') or fixed random B ('random')
    update: Literal["sample", "online"] = "sample"  # Adam after every sample ('sample') or a gradient step every time step ('online')
    learning_rate: Quantity = const(0.02 * mV)  # Adam step (or SGD step scale), in weight units
    rate_penalty: float = 0.0  # lambda of the firing-rate regulariser (per Hz^2); 0: off
    target_rate: Quantity = const(10 * Hz)  # r_0 of the regulariser
    surrogate_slope: float = 10.0  # beta of the pseudo-derivative
    damping: float = 1.0  # gamma_pd, a factor on the pseudo-derivative (the paper: 0.3)
    self_connections: bool = True  # recurrent synapses from a neuron onto itself (the paper: none)
    weight_scale: float = 5.0  # initial weights, as in the BPTT baseline (threshold units / sqrt(fan-in))
    train_hidden: bool = True  # learn the input and recurrent weights (off: only the readout learns, the learning-off control)
    batch_size: int = 1  # samples per Adam step: 1 learns online after every sample; more averages a mini-batch's gradients (data-parallel over the study's workers)
    trace_dtype: Literal["float32", "float64"] = "float32"  # storage of the per-synapse eligibility traces (the gradient itself sums in float64)
    readout_reduction: Literal["per_step", "mean", "max"] = "per_step"  # the loss: cross-entropy at every step, of the readout's mean over time, or of its maximum over time (the BPTT baseline's three); 'mean' and 'max' learn from a signal known at the sample's end

    def __post_init__(self):
        check_quantity("learning_rate", self.learning_rate, volt)
        check_quantity("target_rate", self.target_rate, Hz)
        if self.feedback not in ("symmetric", "random"):
            raise ValueError(f"feedback must be 'symmetric' or 'random', got {self.feedback!r}")
        if self.update not in ("sample", "online"):
            raise ValueError(f"update must be 'sample' or 'online', got {self.update!r}")
        if self.n_hidden < 1 or self.rate_penalty < 0 or self.damping <= 0:
            raise ValueError("n_hidden and damping must be positive and rate_penalty not negative")
        if self.trace_dtype not in ("float32", "float64"):
            raise ValueError(f"trace_dtype must be 'float32' or 'float64', got {self.trace_dtype!r}")
        if self.readout_reduction not in ("per_step", "mean", "max"):
            raise ValueError(f"readout_reduction must be 'per_step', 'mean' or 'max', got {self.readout_reduction!r}")
        if self.readout_reduction != "per_step" and self.update != "sample":
            raise ValueError(f"readout_reduction={self.readout_reduction!r} needs update='sample': its learning signal is "
                             "known only at the sample's end")
        if self.batch_size < 1 or (self.batch_size > 1 and self.update != "sample"):
            raise ValueError(f"batch_size must be at least 1, and 1 with update='online' (got {self.batch_size})")

    @property
    def presentations(self) -> int:
        """How many times a training sample runs: twice for the maximum-over-time loss (the first
        presentation finds each class's peak step, the second learns there), else once."""
        return 2 if self.readout_reduction == "max" else 1


# ---------------------------------------------------------------------------------------------
# The model, in named blocks (Brian2 equations and code), then the order in which they run.
# ---------------------------------------------------------------------------------------------

#: Integration constants of the LIF (see :func:`models.lif_torch.lif_constants`) and the unit of
#: the readout and the pseudo-derivative, on every group that needs them.
KERNEL_CONSTANTS = """
alpha_m : 1 (shared, constant)
alpha_s : 1 (shared, constant)
c_mv : 1 (shared, constant)
unit : volt (shared, constant)
"""

#: Input units: the presynaptic trace epsilon^I.
INPUT_EQUATIONS = "pI : 1\n" + KERNEL_CONSTANTS
INPUT_RESET = "pI += 1"

#: Hidden LIF neurons (added to the shared LIF equations): presynaptic trace ``pI`` of their own
#: spikes, its readout-kernel filter ``qv``, learning signal ``L``, this step's pseudo-derivative
#: ``psi`` (computed once per neuron, read by all its synapses), rate error, step size, slope,
#: Adam's step counter and the per-sample learning gate.
HIDDEN_EQUATIONS = COUNT_EQUATION + """
pI : 1
qv : 1
L : 1
psi : 1/volt
rate_error : 1
lr : volt (shared, constant)
slope : 1 (shared, constant)
gamma_pd : 1 (shared, constant)
adam_step : 1 (shared)
learn : 1 (shared)
accumulate : 1 (shared, constant)
""" + KERNEL_CONSTANTS
HIDDEN_RESET = "v = v_reset\npI += 1\n" + COUNT_RESET

#: Leaky readout (integrated exactly in :data:`ADVANCE_READOUT`), its softmax and cross-entropy.
READOUT_EQUATIONS = """
y : volt
I_out : volt
ysum : 1
ce : 1
Z : 1
target : 1
prob = exp(y / unit) / Z : 1
""" + KERNEL_CONSTANTS
SOFTMAX_NORM = "Z_post = exp(y_pre / unit_post) : 1 (summed)"

#: Plastic synapses onto the hidden layer (input or recurrent). ``eps`` is the eligibility vector,
#: ``ebar_I``/``ebar_v`` the eligibility trace filtered by the readout kernel, ``grad`` the gradient
#: of this sample, ``reg`` the regulariser's; m/s2 are Adam's moments; ``gsum`` sums the samples'
#: gradients when the run only accumulates (a mini-batch, see :meth:`EPropNetwork.learn_batch`). A
#: hidden spike resets ``eps`` (the reset is kept out of the gradient).
PLASTIC_MODEL = """
w : volt
eps : 1
ebar_I : 1/volt
ebar_v : 1/volt
grad : 1/volt
reg : 1/volt
m : 1/volt
s2 : 1/volt**2
gsum : 1/volt
"""
PLASTIC_ON_PRE = "I_syn_post += w"
#: The per-synapse traces whose precision ``EPropParams.trace_dtype`` sets.
TRACES = ("eps", "ebar_I", "ebar_v")
PLASTIC_ON_POST = "eps = 0"

READOUT_MODEL = """
w : volt
grad : 1/volt
m : 1/volt
s2 : 1/volt**2
gsum : 1/volt
"""
READOUT_ON_PRE = "I_out_post += w"
#: The learning signal L_j = sum_k B_jk (pi_k - target_k): through the readout weights themselves
#: (symmetric e-prop, so B follows W_out as it learns) or through fixed random weights.
SYMMETRIC_SIGNAL = "L_pre = (w / unit_post) * (prob_post - target_post) : 1 (summed)\n"
RANDOM_SIGNAL = "L_post = (b / unit_post) * (prob_pre - target_pre) : 1 (summed)\nb : volt"

# -- at each sample start
COUNT_UPDATE = "adam_step = adam_step + learn * (1 - accumulate)"
#: dR/dr_j / T for R = rate_penalty * mean_j (r_j - target_rate)^2 (N: the hidden layer's size), so that
#: grad += reg * rate_error with reg = sum_t psi_j eps_ji (dr_j/dw_ji = reg / T).
RATE_ERROR = "rate_error = 2 * rate_penalty * (count / T - target_rate) / (N * T)"
ADD_REGULARISER = "grad = grad + reg * rate_error_post\n"
RESET_HIDDEN = ("learn = learning_gate(t)\nv = v_rest\nI_syn = 0*volt\npI = 0\nqv = 0\n"
                "lastspike = -1e4*second\nnot_refractory = True")
RESET_INPUT = "pI = 0"
RESET_PLASTIC = "eps = 0\nebar_I = 0/volt\nebar_v = 0/volt\ngrad = 0/volt\nreg = 0/volt"
RESET_READOUT_SYNAPSES = "grad = 0/volt"
RESET_READOUT = "y = 0*volt\nI_out = 0*volt\nysum = 0\nce = 0\ntarget = class_target(t, i)"
# -- every time step
ADVANCE_READOUT = "y = alpha_m * y + c_mv * I_out\nI_out = alpha_s * I_out"
ADVANCE_HIDDEN_FILTER = "qv = alpha_m * qv + c_mv * pI"
DECAY_TRACE = "pI = alpha_s * pI"
#: The pseudo-derivative psi_j of this step (0 while refractory), once per hidden neuron.
PSEUDO_DERIVATIVE = "psi = gamma_pd * int(not_refractory) / (unit * (slope * abs((v - v_threshold) / unit) + 1)**2)"
#: Everything a plastic synapse does in a step, in one pass over the synapses. The eligibility
#: vector advances with last step's presynaptic trace (``pI`` decays after this block), held while
#: the hidden neuron is refractory (``not_refractory`` is this step's, set by the state update);
#: then the filtered eligibility trace and the gradient, with this step's pseudo-derivative and
#: learning signal.
ELIGIBILITY = ("eps = eps + int(not_refractory_post) * ((alpha_m_post - 1) * eps + c_mv_post * pI_pre)\n"
               "ebar_v = alpha_m_post * ebar_v + c_mv_post * ebar_I\n"
               "ebar_I = alpha_s_post * ebar_I + psi_post * eps\n")
ACCUMULATE_GRADIENT = ELIGIBILITY + "grad = grad + inv_steps * L_post * ebar_v\n"
ACCUMULATE_REGULARISER = "reg = reg + psi_post * eps\n"
ONLINE_STEP = "w = w - learn_post * lr_post * unit_post * L_post * ebar_v\n"
ACCUMULATE_READOUT_GRADIENT = "grad = grad + inv_steps * (prob_post - target_post) * qv_pre / unit_post\n"
ONLINE_READOUT_STEP = "w = w - learn_pre * lr_pre * (prob_post - target_post) * qv_pre\n"
ACCUMULATE_LOSS = "ysum = ysum + y / unit\nce = ce - inv_steps * target * log(prob)"

#: The loss on the readout's mean over time (``readout_reduction='mean'``), the cross-entropy of
#: softmax(ysum / T). Its learning signal L_j = sum_k B_jk (pm_k - target_k) is one number per
#: sample, known once the sample has ended, so each synapse sums its filtered eligibility trace
#: over the sample in ``grad`` and multiplies it by L_j / T at the end (g_ji = L_j (1/T) sum_t
#: ebar_ji(t)); the readout likewise. ``ysum`` advances in the 'start' slot, before the summed
#: ``Zm`` and ``L`` of the 'groups' slot, so that after a sample's last step they hold its whole mean.
READOUT_MEAN_EQUATIONS = "Zm : 1\npm = exp(inv_steps * ysum) / Zm : 1\n"
SOFTMAX_MEAN_NORM = "Zm_post = exp(inv_steps * ysum_pre) : 1 (summed)"
SYMMETRIC_MEAN_SIGNAL = "L_pre = (w / unit_post) * (pm_post - target_post) : 1 (summed)\n"
RANDOM_MEAN_SIGNAL = "L_post = (b / unit_post) * (pm_pre - target_pre) : 1 (summed)\nb : volt"
ACCUMULATE_MEAN_GRADIENT = ELIGIBILITY + "grad = grad + ebar_v\n"
FINISH_MEAN_GRADIENT = "grad = inv_steps * L_post * grad\n"
ACCUMULATE_MEAN_READOUT_GRADIENT = "grad = grad + qv_pre / unit_post\n"
FINISH_MEAN_READOUT_GRADIENT = "grad = inv_steps * (pm_post - target_post) * grad\n"
ACCUMULATE_MEAN_READOUT = "ysum = ysum + y / unit"
MEAN_LOSS = "ce = -target * log(pm)"

#: The loss on the readout's maximum over time (``readout_reduction='max'``), the cross-entropy of
#: softmax(ymax). Each training sample is presented twice (see :meth:`EPropNetwork.run_chunk`): every
#: presentation tracks its running maximum ``ymax`` and the step ``peak`` where it was first reached
#: (``n_step`` counts the steps since the presentation began); at the next sample start, before the
#: reset, ``err`` and ``tstar`` take the finished presentation's error softmax(ymax) - target and
#: its peak step, so that the second presentation of the same sample, on the same trajectory, learns
#: from the signal err_k at step tstar_k only. (The first presentation's signal, from the sample
#: before it, is never applied: its learning gate is off.) ``ymax`` advances in the 'start' slot, so
#: that the softmax summed in the 'groups' slot sees the sample so far.
READOUT_MAX_EQUATIONS = ("ymax : 1\npeak : 1\nn_step : 1\nZx : 1\nerr : 1\ntstar : 1\n"
                         "px = exp(ymax) / Zx : 1\nat_peak = int(n_step == tstar) : 1\n")
SOFTMAX_MAX_NORM = "Zx_post = exp(ymax_pre) : 1 (summed)"
SYMMETRIC_MAX_SIGNAL = "L_pre = (w / unit_post) * err_post * at_peak_post : 1 (summed)\n"
RANDOM_MAX_SIGNAL = "L_post = (b / unit_post) * err_pre * at_peak_pre : 1 (summed)\nb : volt"
#: the first step of the maximum, as torch.max (clip: a maximum without cancellation against -1e30)
ACCUMULATE_MAX_READOUT = ("n_step = n_step + 1\npeak = peak + (n_step - peak) * int(y / unit > ymax)\n"
                          "ymax = clip(y / unit, ymax, 1e30)")
FINISH_MAX = "err = px - target\ntstar = peak"
RESET_MAX = "ymax = -1e30\npeak = 0\nn_step = 0"
ACCUMULATE_MAX_GRADIENT = ELIGIBILITY + "grad = grad + L_post * ebar_v\n"
ACCUMULATE_MAX_READOUT_GRADIENT = "grad = grad + err_post * at_peak_post * qv_pre / unit_post\n"
MAX_LOSS = "ce = -target * log(px)"

#: When each block runs: Brian2's ``when`` slot and the ``order`` within it. At every sample start
#: the per-sample record is read first, then the update of the sample that just ended is applied
#: (gated by its ``learn``), then every state goes back to rest. Within each step, in the 'start'
#: slot the readout and the hidden neurons' filtered traces advance; in the 'thresholds' slot,
#: before the threshold test (this step's v, softmax and learning signal are known), the
#: pseudo-derivative is computed per neuron, then each synapse advances its eligibility vector with
#: last step's presynaptic trace and accumulates its filtered eligibility trace and gradient, and
#: then the presynaptic traces decay (this step's spikes add to them in the resets). With the mean
#: loss the readout's running sum advances in the 'start' slot, right after the readout itself, so
#: that the softmax and learning signal summed in the 'groups' slot see the sample so far.
SCHEDULE = {
    "record_sample": ("start", -50),
    "count_update": ("start", -45),
    "apply_update": ("start", -40),
    "finish_max": ("start", -35),
    "reset_neurons": ("start", -30),
    "reset_synapses": ("start", -29),
    "reset_readout": ("start", -28),
    "advance_filters": ("start", 0),
    "accumulate_readout": ("start", 5),
    "pseudo_derivative": ("thresholds", -6),
    "accumulate_gradient": ("thresholds", -5),
    "decay_traces": ("thresholds", -4),
}


def _adam(side: str) -> str:
    """Adam on ``grad`` for synapses whose hidden neuron is on ``side`` ('pre' or 'post'), applied only
    when that sample learned; bias-corrected with the hidden layer's shared step counter. A run that
    only accumulates adds ``grad`` to ``gsum`` instead and leaves the weights and moments alone."""
    # the step counter is 0 before the first update; clip so that 0 * (0/0) never appears
    gate, lr, n = f"learn_{side} * (1 - accumulate_{side})", f"lr_{side}", f"clip(adam_step_{side}, 1, 1e30)"
    return (
        f"gsum = gsum + learn_{side} * accumulate_{side} * grad\n"
        f"m = m + {gate} * ((beta1 - 1) * m + (1 - beta1) * grad)\n"
        f"s2 = s2 + {gate} * ((beta2 - 1) * s2 + (1 - beta2) * grad**2)\n"
        f"w = w - {gate} * {lr} * (m / (1 - beta1**{n})) / (sqrt(s2 / (1 - beta2**{n})) + adam_eps)\n"
    )


def _every_sample(group, code: str, block: str, t_sample):
    when, order = SCHEDULE[block]
    return group.run_regularly(code, dt=t_sample, when=when, order=order)


def _every_step(group, code: str, block: str):
    when, order = SCHEDULE[block]
    return group.run_regularly(code, when=when, order=order)


def learning_state_bytes(params: EPropParams, n_inputs: int, n_classes: int = 0,
                         sample_spikes: int = 0) -> dict[str, int]:
    """What e-prop keeps in order to learn, from the sizes: per plastic synapse the eligibility trace
    and its two readout filters (``eps``, ``ebar_I``, ``ebar_v``, in ``trace_dtype``); per input the
    filtered spike train ``pI``; per hidden neuron ``pI``, its readout filter ``qv``, the learning
    signal ``L``, the pseudo-derivative ``psi`` and the rate error. Independent of the sample's length (BPTT's grows with
    it), except with the maximum-over-time loss, which presents each sample twice: it keeps the sample's
    input spikes to present them again (``sample_spikes``, the largest training sample's, 8 bytes each: a
    unit index and a step) and, per class (``n_classes``), the running maximum, its step, the error and
    the peak step. With ``train_hidden`` off only the readout learns, from the hidden ``pI`` and its
    filter ``qv``. Per-neuron values are float64."""
    n_hidden = params.n_hidden
    replay = {}
    if params.readout_reduction == "max":
        replay = {"the sample's input spikes, kept to present it again (maximum over time)": 8 * int(sample_spikes),
                  "per class: maximum, its step, error and peak step (maximum over time)": 8 * 4 * int(n_classes)}
    if not params.train_hidden:
        return {"filtered hidden spikes and their readout filter, two per hidden neuron": 8 * 2 * n_hidden, **replay}
    synapses = n_inputs * n_hidden
    if params.recurrent:
        synapses += n_hidden * n_hidden - (0 if params.self_connections else n_hidden)
    return {"eligibility traces, three per plastic synapse": np.dtype(params.trace_dtype).itemsize * 3 * synapses,
            "traces per neuron (one per input, five per hidden neuron)": 8 * (n_inputs + 5 * n_hidden), **replay}


class EPropNetwork(ChunkedReplayNetwork):
    """The compiled e-prop network and its learned state (weights in volt, Adam moments).

    The neuron's constants, the step size, the surrogate slope and the initial weight scale reach the
    binary through ``run_args``; the layer sizes, ``dt`` and the kind of feedback and update are built in.
    ``state_`` holds the weights and Adam's moments as plain arrays in SI units (volt, 1/volt,
    1/volt**2), the form the checkpoints store; :attr:`weights_` gives the weights as quantities.
    """

    RUN_ARG_CONSTANTS = LIF_RUN_ARG_CONSTANTS + (
        "learning_rate", "surrogate_slope", "damping", "weight_scale")

    def __init__(self, params: EPropParams, n_inputs: int, n_classes: int, *, dt: Quantity, sample_duration: Quantity,
                 chunk_size: int, capacity: int, device_name: str, build_dir: Path, seed: int = 0,
                 cache: BuildCache | None = None):
        self.params, self.n_inputs, self.n_classes = params, n_inputs, n_classes
        self.dt, self.sample_duration, self.chunk_size = dt, sample_duration, chunk_size
        self.sample_steps = int(round(float(sample_duration / dt)))
        if chunk_size < self.params.presentations:
            raise ValueError(f"readout_reduction='max' presents each training sample twice in one run: chunk_size must "
                             f"be at least 2, got {chunk_size}")
        self.unit = params.lif.v_threshold - params.lif.v_rest
        rng = np.random.default_rng(seed)
        n_h = params.n_hidden
        scale = params.weight_scale * float(self.unit / volt)
        shapes = {"in": (n_inputs, n_h), "out": (n_h, n_classes)}
        if params.recurrent:
            shapes["rec"] = (n_h, n_h)
        self.state_ = {"adam_step": 0.0}
        for name, shape in shapes.items():
            gain = 0.5 if name == "rec" else 1.0
            self.state_[f"w_{name}"] = rng.standard_normal(shape) * gain * scale / np.sqrt(shape[0])
            if name == "rec" and not params.self_connections:
                np.fill_diagonal(self.state_[f"w_{name}"], 0.0)  # no such synapses
            self.state_[f"m_{name}"] = np.zeros(shape)
            self.state_[f"s2_{name}"] = np.zeros(shape)
        self.feedback_ = rng.standard_normal((n_h, n_classes)) * scale / np.sqrt(n_h)  # random e-prop's B (volt)
        # how another process (a Dask worker) builds this network again: see remote_pool
        self.recipe = Recipe(type(self), (params, n_inputs, n_classes),
                             dict(dt=dt, sample_duration=sample_duration, chunk_size=chunk_size, capacity=capacity,
                                  device_name=device_name, seed=seed))
        self.compile(lambda folder: self._build(device_name, folder, capacity), build_dir, cache, n_inputs=n_inputs,
                     n_classes=n_classes, sample_duration=repr(sample_duration), dt=repr(dt), chunk_size=chunk_size,
                     capacity=capacity, device=device_name)

    @property
    def weights_(self) -> dict[str, Quantity]:
        """The weights as Brian2 quantities: ``input``, ``recurrent`` (when present), ``output``."""
        names = {"in": "input", "rec": "recurrent", "out": "output"}
        return {names[k[2:]]: v * volt for k, v in self.state_.items() if k.startswith("w_")}

    def constant_variables(self) -> dict:
        params = self.params
        k = lif_constants(params.lif, self.dt)
        unit = params.lif.v_threshold - params.lif.v_rest
        out = params.lif.variables(self.hidden)
        for group in (self.replay.group, self.hidden, self.readout):
            out.update({f"{group.name}.alpha_m": (group.alpha_m, k.alpha_mem),
                        f"{group.name}.alpha_s": (group.alpha_s, k.alpha_syn),
                        f"{group.name}.c_mv": (group.c_mv, k.coupling), f"{group.name}.unit": (group.unit, unit)})
        out["hidden.lr"] = (self.hidden.lr, params.learning_rate)
        out["hidden.slope"] = (self.hidden.slope, params.surrogate_slope)
        out["hidden.gamma_pd"] = (self.hidden.gamma_pd, params.damping)
        if params.feedback == "random":  # drawn for this network's own seed and constants
            out["random_feedback.b"] = (self.signal.b, self.feedback_.T.ravel() * volt)
        return out

    def _build(self, device_name, build_dir, capacity):
        p = self.params
        k = lif_constants(p.lif, self.dt)
        build_dir = devices.activate(device_name, build_dir)
        defaultclock.dt = self.dt
        t_sample = self.sample_duration
        n_h, n_out = p.n_hidden, self.n_classes
        self.target = TimedArray(np.zeros((self.chunk_size + 1, n_out)), dt=t_sample, name="class_target")
        self.gate = TimedArray(np.zeros(self.chunk_size + 1), dt=t_sample, name="learning_gate")
        # The integration constants (alpha_m, alpha_s, c_mv: see models.lif_torch), the unit and the
        # surrogate slope are (shared, constant) variables of each group that needs them, so that
        # run_args can change them with the neuron's constants; the rest is built in.
        consts = dict(beta1=0.9, beta2=0.999, adam_eps=1e-8 / volt, T=t_sample, inv_steps=1.0 / self.sample_steps,
                      rate_penalty=p.rate_penalty / Hz ** 2, target_rate=p.target_rate,
                      class_target=self.target, learning_gate=self.gate)
        self.replay = SpikeReplay.create(self.n_inputs, capacity, extra_equations=INPUT_EQUATIONS,
                                         extra_reset=INPUT_RESET, namespace=consts)
        hidden = lif_group(n_h, p.lif, extra_equations=HIDDEN_EQUATIONS, reset=HIDDEN_RESET, name="hidden",
                           namespace=consts)
        hidden.lr, hidden.slope, hidden.gamma_pd = p.learning_rate, p.surrogate_slope, p.damping
        hidden.accumulate = 0.0
        mean, peak = p.readout_reduction == "mean", p.readout_reduction == "max"
        readout = NeuronGroup(n_out, READOUT_EQUATIONS + (READOUT_MEAN_EQUATIONS if mean else "")
                              + (READOUT_MAX_EQUATIONS if peak else ""), name="readout", namespace=consts)
        if mean:  # the softmax of an all-zero sum, so that the update at the first sample start is finite
            readout.Zm = n_out
        if peak:
            readout.Zx = n_out
        for group in (self.replay.group, hidden, readout):
            group.alpha_m, group.alpha_s, group.c_mv, group.unit = k.alpha_mem, k.alpha_syn, k.coupling, self.unit
        norm = Synapses(readout, readout, SOFTMAX_MEAN_NORM if mean else SOFTMAX_MAX_NORM if peak else SOFTMAX_NORM,
                        name="softmax_norm", namespace=consts)
        norm.connect()
        plastic = []
        traces = {name: np.dtype(p.trace_dtype) for name in TRACES}
        inp = Synapses(self.replay.group, hidden, PLASTIC_MODEL, on_pre=PLASTIC_ON_PRE, on_post=PLASTIC_ON_POST,
                       name="input_synapses", namespace=consts, dtype=traces)
        inp.connect()
        plastic.append(inp)
        if p.recurrent:
            rec = Synapses(hidden, hidden, PLASTIC_MODEL, on_pre=PLASTIC_ON_PRE, on_post=PLASTIC_ON_POST,
                           name="recurrent_synapses", namespace=consts, dtype=traces)
            rec.connect(condition=None if p.self_connections else "i != j")
            plastic.append(rec)
        readout_model = READOUT_MODEL + ("" if p.feedback != "symmetric" else SYMMETRIC_MEAN_SIGNAL if mean
                                         else SYMMETRIC_MAX_SIGNAL if peak else SYMMETRIC_SIGNAL)
        out = Synapses(hidden, readout, readout_model, on_pre=READOUT_ON_PRE, name="readout_synapses",
                       namespace=consts)
        out.connect()
        objects = [self.replay.group, hidden, readout, norm, *plastic, out]
        if p.feedback == "random":
            signal = Synapses(readout, hidden, RANDOM_MEAN_SIGNAL if mean else RANDOM_MAX_SIGNAL if peak else RANDOM_SIGNAL,
                              name="random_feedback", namespace=consts)
            signal.connect()
            signal.b = self.feedback_.T.ravel() * volt  # synapse (k, j) holds B_jk
            objects.append(signal)
            self.signal = signal
        # Within the 'groups' slot the softmax normaliser must be summed before the learning signal.
        norm.summed_updaters["Zm_post" if mean else "Zx_post" if peak else "Z_post"].order = hidden.order - 10

        ops = [_every_sample(hidden, COUNT_UPDATE, "count_update", t_sample)]
        if p.rate_penalty > 0:
            ops.append(_every_sample(hidden, RATE_ERROR, "count_update", t_sample))
        if p.update == "sample":
            add_reg = ADD_REGULARISER if p.rate_penalty > 0 else ""
            finish, finish_out = (FINISH_MEAN_GRADIENT, FINISH_MEAN_READOUT_GRADIENT) if mean else ("", "")
            if p.train_hidden:
                ops += [_every_sample(syn, finish + add_reg + _adam("post"), "apply_update", t_sample)
                        for syn in plastic]
            ops.append(_every_sample(out, finish_out + _adam("pre"), "apply_update", t_sample))
        ops.append(_every_sample(hidden, RESET_HIDDEN, "reset_neurons", t_sample))
        ops.append(_every_sample(self.replay.group, RESET_INPUT, "reset_neurons", t_sample))
        ops += [_every_sample(syn, RESET_PLASTIC, "reset_synapses", t_sample) for syn in plastic]
        ops.append(_every_sample(out, RESET_READOUT_SYNAPSES, "reset_synapses", t_sample))
        if peak:
            ops.append(_every_sample(readout, FINISH_MAX, "finish_max", t_sample))
        ops.append(_every_sample(readout, RESET_READOUT + ("\n" + RESET_MAX if peak else ""), "reset_readout",
                                 t_sample))
        ops.append(_every_step(readout, ADVANCE_READOUT, "advance_filters"))
        ops.append(_every_step(hidden, ADVANCE_HIDDEN_FILTER, "advance_filters"))
        ops.append(_every_step(self.replay.group, DECAY_TRACE, "decay_traces"))
        ops.append(_every_step(hidden, DECAY_TRACE, "decay_traces"))
        if p.train_hidden:  # the learning-off control needs no eligibility (only its readout's gradient)
            ops.append(_every_step(hidden, PSEUDO_DERIVATIVE, "pseudo_derivative"))
            step = ACCUMULATE_MEAN_GRADIENT if mean else ACCUMULATE_MAX_GRADIENT if peak else ACCUMULATE_GRADIENT
            if p.rate_penalty > 0:
                step += ACCUMULATE_REGULARISER
            if p.update == "online":
                step += ONLINE_STEP
            ops += [_every_step(syn, step, "accumulate_gradient") for syn in plastic]
        if mean:
            ops.append(_every_step(out, ACCUMULATE_MEAN_READOUT_GRADIENT, "accumulate_gradient"))
            ops.append(_every_step(readout, ACCUMULATE_MEAN_READOUT, "accumulate_readout"))
            ops.append(_every_step(readout, MEAN_LOSS, "accumulate_gradient"))
        elif peak:
            ops.append(_every_step(out, ACCUMULATE_MAX_READOUT_GRADIENT, "accumulate_gradient"))
            ops.append(_every_step(readout, ACCUMULATE_MAX_READOUT, "accumulate_readout"))
            ops.append(_every_step(readout, MAX_LOSS, "accumulate_gradient"))
        else:
            out_step = ACCUMULATE_READOUT_GRADIENT + (ONLINE_READOUT_STEP if p.update == "online" else "")
            ops.append(_every_step(out, out_step, "accumulate_gradient"))
            ops.append(_every_step(readout, ACCUMULATE_LOSS, "accumulate_gradient"))
        when, order = SCHEDULE["record_sample"]
        self.readout_monitor = StateMonitor(readout, ["ymax" if peak else "ysum", "ce"], record=True, dt=t_sample, when=when,
                                            order=order)
        self.counter, counter_objects = BinnedCounter.attach(hidden, t_sample, 1)
        self.hidden, self.readout, self.plastic, self.out = hidden, readout, plastic, out
        # the operations (ops) belong to their groups, which bring them into the network
        net = Network(*objects, self.readout_monitor, *counter_objects)
        self.compiled = CompiledNetwork(net, self.chunk_size * t_sample + self.dt, device_name, build_dir)

    def _mask(self, name: str) -> np.ndarray | None:
        """Which entries of the dense ``(pre, post)`` matrix ``name`` exist as synapses (None: all)."""
        if name == "rec" and not self.params.self_connections:
            return ~np.eye(self.params.n_hidden, dtype=bool)
        return None

    def _to_synapses(self, name: str, matrix: np.ndarray) -> np.ndarray:
        """The synapses' values (Brian2's order: by presynaptic, then postsynaptic index)."""
        mask = self._mask(name)
        return matrix.ravel() if mask is None else matrix[mask]

    def _from_synapses(self, name: str, values) -> np.ndarray:
        """The dense matrix of the synapses' ``values`` (0 where there is no synapse)."""
        shape = self.state_[f"w_{name}"].shape
        mask = self._mask(name)
        if mask is None:
            return np.asarray(values, dtype=float).reshape(shape)
        matrix = np.zeros(shape)
        matrix[mask] = np.asarray(values, dtype=float)
        return matrix

    def _synapses(self):
        names = ["in", "rec"] if self.params.recurrent else ["in"]
        return list(zip(names, self.plastic)) + [("out", self.out)]

    def samples_per_run(self, learn: bool = False, **kwargs) -> int:
        return self.chunk_size // self.params.presentations if learn else self.chunk_size

    def run_chunk(self, samples: list[SpikeSample], results_subdir: str | None = None, learn: bool = False,
                  **kwargs):
        """Run up to :meth:`samples_per_run` samples; learning with the maximum-over-time loss, each
        sample runs twice in a row, learning only in its second presentation (see
        :data:`READOUT_MAX_EQUATIONS`), and the results are the second presentation's."""
        if not learn or self.params.presentations == 1:
            return super().run_chunk(samples, results_subdir, learn=learn, **kwargs)
        if len(samples) > self.samples_per_run(learn=True):
            raise ValueError(f"with readout_reduction='max' a chunk of {self.chunk_size} runs learns from at most "
                             f"{self.samples_per_run(learn=True)} samples (each runs twice), got {len(samples)}")
        twice = [sample for sample in samples for _ in range(2)]
        result = super().run_chunk(twice, results_subdir, learn=True, **kwargs)
        return {key: value if key == "gradient_sum" else value[1::2] for key, value in result.items()}

    def extra_run_args(self, samples: list[SpikeSample], learn: bool = False, probe: bool = False,
                       accumulate: bool = False, weights: dict | None = None) -> dict:
        """``probe``: step size 0 and fresh Adam moments (see :meth:`gradient`); ``accumulate``: sum
        the samples' gradients into ``gsum`` and change nothing (see :meth:`learn_batch`), at
        ``weights`` (``{"w_in": ...}``, volt) when given, else at the current ones. Learning with
        the maximum-over-time loss, ``samples`` holds each sample twice and only the second learns."""
        target = np.zeros((self.chunk_size + 1, self.n_classes))
        target[np.arange(len(samples)), [s.label for s in samples]] = 1.0
        gate = np.zeros(self.chunk_size + 1)
        gate[:len(samples)] = 1.0 if learn else 0.0
        if learn and self.params.presentations == 2:
            gate[:len(samples):2] = 0.0
        args = {self.target: target, self.gate: gate, self.hidden.adam_step: self.state_["adam_step"]}
        if probe:
            args[self.hidden.lr] = 0 * volt
        if accumulate:
            args[self.hidden.accumulate] = 1.0
        for name, syn in self._synapses():
            keep = 0.0 if probe else 1.0
            w = self.state_[f"w_{name}"] if weights is None else weights[f"w_{name}"]
            args[syn.w] = self._to_synapses(name, w) * volt
            args[syn.m] = keep * self._to_synapses(name, self.state_[f"m_{name}"]) / volt
            args[syn.s2] = keep * self._to_synapses(name, self.state_[f"s2_{name}"]) / volt ** 2
        return args

    def collect(self, n_samples: int, learn: bool = False, probe: bool = False, accumulate: bool = False,
                weights: dict | None = None) -> dict:
        gradients = {}
        if accumulate:
            gradients = {name: self._from_synapses(name, syn.gsum[:] * volt) for name, syn in self._synapses()}
        elif learn and not probe:
            for name, syn in self._synapses():
                self.state_[f"w_{name}"] = self._from_synapses(name, syn.w[:] / volt)
                self.state_[f"m_{name}"] = self._from_synapses(name, syn.m[:] * volt)
                self.state_[f"s2_{name}"] = self._from_synapses(name, syn.s2[:] * volt ** 2)
            self.state_["adam_step"] = float(np.asarray(self.hidden.adam_step[:]).ravel()[0])
        # the readout's sum over time, or its maximum with the maximum-over-time loss
        logits = np.asarray(getattr(self.readout_monitor, "ymax" if self.params.presentations == 2 else "ysum"))
        ce = np.asarray(self.readout_monitor.ce)[:, 1:1 + n_samples].sum(axis=0)
        return {"logits": logits[:, 1:1 + n_samples].T, "loss": ce, "counts": self.counter.counts(n_samples)[:, 0],
                **({"gradient_sum": gradients} if accumulate else {})}

    def learn_batch(self, samples: list[SpikeSample], workers: int = 1, pool=None) -> dict:
        """One Adam step on the mean gradient of ``samples`` (a mini-batch) at the current weights.

        The samples' gradients are summed in the binary, chunk by chunk; with ``workers > 1`` the
        chunks run at once in forked processes (data-parallel e-prop: every process starts from the
        same weights, their sums are added here); ``pool`` (from :meth:`worker_pool`, open for a
        whole epoch) saves forking them for every batch, and one from :meth:`remote_pool` runs them
        on an executor's workers (a Dask cluster's), each of which builds the network once. The
        weights travel with every chunk, so the pool's workers need nothing else from the current
        state. The step is the binary's Adam (same constants and
        bias correction), so a batch of one sample updates exactly as :meth:`run_chunk` with
        ``learn=True`` does. Returns the samples' logits, losses and hidden counts."""
        if self.params.update != "sample":
            raise ValueError("mini-batches need update='sample' (the online update changes the weights every step)")
        parts = ChunkedReplayNetwork.present(self, samples, workers=workers, pool=pool, learn=True, accumulate=True,
                                             weights=self._weights())
        total = {name: sum(part["gradient_sum"][name] for part in parts) for name, _ in self._synapses()}
        self.state_["adam_step"] += 1.0
        self._adam_step({name: value / len(samples) for name, value in total.items()})
        return {key: np.concatenate([part[key] for part in parts]) for key in ("logits", "loss", "counts")}

    def _weights(self) -> dict[str, np.ndarray]:
        """The current weights (``{"w_in": ...}``, volt), as chunks run elsewhere take them."""
        return {k: v for k, v in self.state_.items() if k.startswith("w_")}

    def _adam_step(self, gradient: dict[str, np.ndarray]) -> None:
        """The binary's Adam (see :func:`_adam`) on dense gradients (1/volt), in place on ``state_``."""
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        lr, n = float(self.params.learning_rate / volt), max(self.state_["adam_step"], 1.0)
        for name, g in gradient.items():
            if name != "out" and not self.params.train_hidden:
                continue
            m = self.state_[f"m_{name}"] = self.state_[f"m_{name}"] + ((beta1 - 1) * self.state_[f"m_{name}"] + (1 - beta1) * g)
            s2 = self.state_[f"s2_{name}"] = self.state_[f"s2_{name}"] + ((beta2 - 1) * self.state_[f"s2_{name}"]
                                                                          + (1 - beta2) * g ** 2)
            step = lr * (m / (1 - beta1 ** n)) / (np.sqrt(s2 / (1 - beta2 ** n)) + eps)
            mask = self._mask(name)
            self.state_[f"w_{name}"] = self.state_[f"w_{name}"] - (step if mask is None else step * mask)

    def gradient(self, sample: SpikeSample) -> dict[str, np.ndarray]:
        """e-prop's ``dE/dW`` (1/volt) for one sample at the current weights, which stay unchanged.

        The sample runs with learning on, a step size of 0 and fresh Adam moments, so Adam's first
        moment after the sample's update is exactly ``(1 - beta1) * grad``.
        """
        self.run_chunk([sample], learn=True, probe=True)
        return {name: self._from_synapses(name, syn.m[:] * volt) / 0.1 for name, syn in self._synapses()}

    def present(self, samples: list[SpikeSample], learn: bool, progress: str | None = None, workers: int = 1,
                start_chunk: int = 0, on_chunk=None, pool=None) -> dict:
        """Run ``samples`` in chunks, learning online (one after the other) or not (``workers``
        processes, or the chunks of an open ``pool``, which get the current weights)."""
        extra = {"weights": self._weights()} if pool is not None and not learn else {}
        parts = super().present(samples, progress=progress, workers=1 if learn else workers,
                                start_chunk=start_chunk, on_chunk=on_chunk, learn=learn,
                                pool=None if learn else pool, **extra)
        if not parts:
            return {"logits": np.zeros((0, self.n_classes)), "loss": np.zeros(0), "counts": np.zeros((0, self.params.n_hidden))}
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


class EPropClassifier(BaseEstimator, ClassifierMixin):
    """scikit-learn face of e-prop: ``fit(X, y)`` compiles the network and learns online for
    ``epochs`` epochs (seeded order); ``predict`` gives the class with the largest time-averaged
    readout (its largest maximum over time with ``readout_reduction='max'``). ``classes_`` are the labels seen in ``fit``; ``weights_`` the learned weights
    (``input``, ``recurrent``, ``output``) as Brian2 quantities in volt.
    """

    def __init__(self, params: EPropParams = EPropParams(), *, n_inputs: int = 700, sample_duration=1 * second,
                 dt=1 * ms, epochs: int = 1, chunk_size: int = 100, device: str = "cpp_standalone",
                 build_dir: str = "build/eprop", seed: int = 0, workers: int = 1):
        self.params, self.n_inputs, self.sample_duration, self.dt = params, n_inputs, sample_duration, dt
        self.epochs, self.chunk_size, self.device, self.build_dir = epochs, chunk_size, device, build_dir
        self.seed, self.workers = seed, workers

    def fit(self, X: list[SpikeSample], y) -> "EPropClassifier":
        from models.engine.inputs import chunk_capacity

        self.classes_ = np.unique(np.asarray(y))
        index = np.searchsorted(self.classes_, np.asarray(y))
        samples = [dataclasses.replace(sample, label=int(k)) for sample, k in zip(X, index)]
        # Room for chunks of later input twice as dense as the densest in X.
        self.network_ = EPropNetwork(self.params, self.n_inputs, len(self.classes_), dt=self.dt,
                                     sample_duration=self.sample_duration, chunk_size=self.chunk_size,
                                     capacity=2 * chunk_capacity([[s for s in samples
                                                                   for _ in range(self.params.presentations)]],
                                                                 self.chunk_size, self.n_inputs),
                                     device_name=self.device, build_dir=Path(self.build_dir), seed=self.seed)
        for epoch in range(self.epochs):
            order = np.random.default_rng([self.seed, epoch]).permutation(len(samples))
            self.network_.present([samples[i] for i in order], learn=True)
        self.weights_ = self.network_.weights_
        return self

    def decision_function(self, X: list[SpikeSample]) -> np.ndarray:
        """Time-summed readout per class, ``(sample, class)`` (its maximum over time with
        ``readout_reduction='max'``)."""
        unlabelled = [dataclasses.replace(sample, label=0) for sample in X]
        return self.network_.present(unlabelled, learn=False, workers=self.workers)["logits"]

    def predict(self, X: list[SpikeSample]) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]
