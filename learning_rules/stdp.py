"""Unsupervised STDP with adaptive thresholds and winner-take-all: Diehl & Cook (2015).

Diehl, P. U. & Cook, M. (2015), "Unsupervised learning of digit recognition using
spike-timing-dependent plasticity", Front. Comput. Neurosci. 9:99. Constants the paper leaves out
are those of the authors' released Brian code (``Diehl_and_Cook_spiking_MNIST.py``); each is marked
"code" below.

**Network** (section 2.2): ``n_inputs`` input channels project all-to-all onto ``n_neurons``
excitatory neurons through plastic synapses. Each excitatory neuron drives one inhibitory neuron
(weight :math:`w_{ei} = 10.4`, code), which inhibits every excitatory neuron but the one it came
from (:math:`w_{ie} = 17`, code): the first neuron to fire silences the others, a hard
winner-take-all.

**Neurons** (eq. 1, conductance-based leaky integrate-and-fire; constants from section 2.1 and the code):

.. math::

    \\tau \\frac{dv}{dt} = (E_\\mathrm{rest} - v) + g_e (E_\\mathrm{exc} - v) + g_i (E_\\mathrm{inh} - v),
    \\qquad \\tau_{g_e} \\dot g_e = -g_e, \\quad \\tau_{g_i} \\dot g_i = -g_i,

conductances in units of the leak conductance, a presynaptic spike adding its weight to
:math:`g_e` or :math:`g_i`. Excitatory: :math:`E_\\mathrm{rest} = -65` mV, reset -65 mV, threshold
:math:`v_\\mathrm{thresh} + \\theta` with :math:`v_\\mathrm{thresh} = -52` mV, :math:`\\tau = 100` ms,
refractory 5 ms, :math:`E_\\mathrm{exc} = 0` mV, :math:`E_\\mathrm{inh} = -100` mV. Inhibitory:
:math:`E_\\mathrm{rest} = -60` mV, reset -45 mV, threshold -40 mV, :math:`\\tau = 10` ms, refractory
2 ms, :math:`E_\\mathrm{inh} = -85` mV. :math:`\\tau_{g_e} = 1` ms, :math:`\\tau_{g_i} = 2` ms.

**Homeostasis** (eq. 3): :math:`\\theta \\mathrel{+}= \\theta_+ = 0.05` mV at each spike, decaying with
:math:`\\tau_\\theta = 10^7` ms, during learning only (the code freezes :math:`\\theta` for testing).

**Plasticity** (eq. 4, the weight-dependent rule, ``rule='power_law'``): the presynaptic trace
:math:`x_\\mathrm{pre}` jumps by 1 at each input spike and decays with :math:`\\tau_\\mathrm{pre} = 20` ms;
at each postsynaptic spike

.. math:: \\Delta w = \\eta\\, (x_\\mathrm{pre} - x_\\mathrm{tar})\\, (w_\\max - w)^{\\mu},

:math:`\\eta = 0.01`, :math:`x_\\mathrm{tar} = 0.4`, :math:`\\mu = 0.2`, :math:`w_\\max = 1` (the code's
``nu_ee_post``, ``STDP_offset``, ``exp_ee_post``, ``wmax_ee``), weights kept in :math:`[0, w_\\max]`.
Inputs that did not fire shortly before the postsynaptic spike are depressed. ``rule='triplet'`` is
the rule the released code runs by default: a pre spike sets :math:`x_\\mathrm{pre} = 1` and
:math:`w \\mathrel{-}= \\eta_\\mathrm{pre} x_\\mathrm{post1}`; a post spike adds
:math:`\\eta\\, x_\\mathrm{pre} x_\\mathrm{post2}` (its value before this spike) and sets both post traces to
1 (:math:`\\eta_\\mathrm{pre} = 10^{-4}`, :math:`\\tau_\\mathrm{post1} = 20` ms, :math:`\\tau_\\mathrm{post2} = 40` ms).
Before every training sample each neuron's incoming weights are scaled to sum to
:math:`78/784` per input (78 over MNIST's 784 pixels, section 2.3; the code normalises before
every example). Initial weights are :math:`0.3\\,(U + 0.01)`, :math:`U` uniform on [0, 1] (code),
normalised once.

**Input** (section 2.4): the paper turns pixel intensities into Poisson rates (up to 63.75 Hz),
shows each image for 350 ms, and when the excitatory layer fires fewer than 5 spikes raises every
rate by 32 Hz (the intensity from 2 to 3: a factor 1.5) and shows the image again.

**Order within a time step** (Brian2's schedule): input and layer spikes are detected, then the
synapses act (``on_pre`` adds to the conductances, ``on_post`` updates weights and so reads the
traces before this step's spikes increment them, which is the code's ``post2before``), then the
resets increment traces and :math:`\\theta`. At every sample start: learning switch and input gain
read, weights normalised (when learning), all state reset.

Departures from the paper, each with its reason (options that restore the paper where one exists):

- **Input rates, adapted to audio.** Audio arrives as spike trains whose timing matters, so they
  are replayed as they are, for the sample's own duration (``Preprocessing.duration``; the paper's
  350 ms showed a static image), instead of being turned into Poisson rates. The paper's remedy for
  a silent layer is kept in the form spike trains allow: every input spike counts ``input_gain``
  times its weight, and a sample after which the layer fired fewer than ``min_spikes`` spikes is
  presented again with the gain raised by ``gain_step`` (1 to 1.5: the paper's factor from
  intensity 2 to 3), at most ``max_presentations`` times in all. A higher rate and a larger
  efficacy per spike raise the mean drive alike. ``gain_step=0`` turns re-presentation off.
- **When a sample is presented again.** The paper presents it again at once; here the samples of
  one chunk that stayed below ``min_spikes`` are presented again after the chunk, so learning from
  the other samples of the chunk comes in between. ``chunk_size=1`` restores the paper's order
  (one run of the binary per sample: slower).
- **Rest between samples** (``rest``). By default every state variable (membranes, conductances,
  traces) is reset at every sample start instead of the paper's 150 ms without input. After the
  paper's rest conductances and traces have decayed completely, the membrane to within 22% of rest;
  the reset removes that remainder, so a sample's response does not depend on the one before, no
  time is spent simulating silence, and samples can be presented in parallel processes.
  ``rest=150*ms`` restores the paper: nothing is reset, each sample is followed by that much
  silence (its spikes are not counted in the readout's bins), and only the first sample of each
  run of the binary starts from rest exactly.
- **Normalisation target** per input (78/784, as in the paper) rather than the total 78, since the
  number of channels differs from MNIST's 784 (``w_sum_per_input``).
- **No synaptic delays by default** (``max_delay``). The paper does not describe any; the released
  code draws each input synapse's delay uniformly in 0-10 ms (``max_delay=10*ms`` restores it, drawn
  from the run's seed). A delayed spike reaches its synapse later than its input unit fires, so with
  delays the presynaptic trace lives on each synapse (updated when the spike arrives, as in the code)
  instead of once on the input unit; without delays both are the same number. Spikes still in flight
  at a sample's end arrive in the next one.
- **Initial weights normalised once** before learning, so that the frozen network (``learn=False``
  in the study and the estimator: the learning-off ablation) is exactly the network learning starts
  from; the paper's first normalisation happens before its first example anyway.
- **Numerics.** Exponential Euler integration at the study's ``dt`` (0.5 ms by default, the code's
  step); the clip to :math:`[0, w_\\max]` after normalisation can leave a neuron's sum short of its
  target until the next sample.
- **Readouts.** The paper's readout is label assignment (:class:`learning_rules.readout.LabelAssignment`);
  the study reports it and, as every rule in this project ends in one, a logistic readout of the
  layer's time-binned spike counts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from brian2 import Network, NeuronGroup, Quantity, Synapses, TimedArray, defaultclock, mV, ms, second, volt
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm import tqdm

from models.engine import devices
from models.engine.compiled import BuildCache, CompiledNetwork
from models.engine.counting import COUNT_EQUATION, COUNT_RESET, BinnedCounter, check_bins
from models.engine.inputs import SpikeReplay, chunk_capacity
from models.engine.replay import ChunkedReplayNetwork, stack_counts
from models.spikes import SpikeSample
from models.units import check_quantity, const

RULES = ("power_law", "triplet")


@dataclass(frozen=True)
class STDPParams:
    """Constants of the Diehl & Cook (2015) network; the defaults are the paper's (see the module docstring)."""

    n_neurons: int = 100  # excitatory neurons (each with its own inhibitory neuron)
    # -- excitatory neurons
    v_rest_e: Quantity = const(-65 * mV)  # resting potential
    v_reset_e: Quantity = const(-65 * mV)  # potential after a spike
    v_threshold_e: Quantity = const(-52 * mV)  # threshold before adaptation (theta adds to it)
    tau_mem_e: Quantity = const(100 * ms)  # membrane time constant
    t_ref_e: Quantity = const(5 * ms)  # refractory period
    e_inh_e: Quantity = const(-100 * mV)  # inhibitory reversal potential
    # -- inhibitory neurons
    v_rest_i: Quantity = const(-60 * mV)  # resting potential
    v_reset_i: Quantity = const(-45 * mV)  # potential after a spike
    v_threshold_i: Quantity = const(-40 * mV)  # threshold
    tau_mem_i: Quantity = const(10 * ms)  # membrane time constant
    t_ref_i: Quantity = const(2 * ms)  # refractory period
    e_inh_i: Quantity = const(-85 * mV)  # inhibitory reversal potential
    # -- synapses (conductances in units of the leak conductance)
    e_exc: Quantity = const(0 * mV)  # excitatory reversal potential
    tau_ge: Quantity = const(1 * ms)  # excitatory conductance decay
    tau_gi: Quantity = const(2 * ms)  # inhibitory conductance decay
    w_ei: float = 10.4  # excitatory neuron -> its inhibitory neuron
    w_ie: float = 17.0  # inhibitory neuron -> every other excitatory neuron
    # -- plasticity
    rule: Literal["power_law", "triplet"] = "power_law"  # eq. 4 of the paper, or the released code's triplet rule
    eta: float = 0.01  # learning rate (the triplet rule's potentiation rate)
    x_target: float = 0.4  # x_tar of eq. 4
    mu: float = 0.2  # weight dependence exponent of eq. 4
    eta_pre: float = 1e-4  # triplet rule only: depression rate
    w_max: float = 1.0  # upper weight bound
    tau_pre: Quantity = const(20 * ms)  # presynaptic trace time constant
    tau_post: Quantity = const(20 * ms)  # triplet rule only: fast postsynaptic trace
    tau_post_slow: Quantity = const(40 * ms)  # triplet rule only: slow postsynaptic trace
    w_init_max: float = 0.3  # initial weights w_init_max * (U + 0.01), then normalised
    w_sum_per_input: float = 78 / 784  # normalisation: a neuron's incoming weights sum to n_inputs times this
    max_delay: Quantity = const(0 * ms)  # input delays drawn uniformly in [0, max_delay] (the released code: 10 ms)
    theta_plus: Quantity = const(0.05 * mV)  # threshold increase per spike
    tau_theta: Quantity = const(1e7 * ms)  # threshold decay time constant (while learning)
    # -- input
    input_gain: float = 1.0  # each input spike counts input_gain times its weight (first presentation)
    gain_step: float = 0.5  # gain added at each presentation again (0: never present again)
    min_spikes: int = 5  # fewer layer spikes than this: present the sample again
    max_presentations: int = 5  # most presentations of one sample
    rest: Quantity = const(0 * ms)  # silence after each sample, nothing reset (the paper: 150 ms); 0: reset every state

    def __post_init__(self):
        if self.n_neurons < 1:
            raise ValueError("n_neurons must be at least 1")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for name in ("v_rest_e", "v_reset_e", "v_threshold_e", "e_inh_e", "v_rest_i", "v_reset_i", "v_threshold_i",
                     "e_inh_i", "e_exc", "theta_plus"):
            check_quantity(name, getattr(self, name), volt)
        for name in ("tau_mem_e", "tau_mem_i", "tau_ge", "tau_gi", "tau_pre", "tau_post", "tau_post_slow", "tau_theta"):
            check_quantity(name, getattr(self, name), second, positive=True)
        for name in ("t_ref_e", "t_ref_i", "max_delay", "rest"):
            check_quantity(name, getattr(self, name), second)
        if self.v_threshold_e <= self.v_rest_e or self.v_threshold_i <= self.v_rest_i:
            raise ValueError("thresholds must lie above the resting potentials")
        for name in ("w_ei", "w_ie", "eta", "eta_pre", "w_init_max", "w_sum_per_input", "gain_step", "mu"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.w_max <= 0 or self.input_gain <= 0 or self.max_presentations < 1 or self.min_spikes < 0:
            raise ValueError("w_max and input_gain must be positive, max_presentations at least 1, "
                             "min_spikes not negative")
        if self.w_sum_per_input > self.w_max:
            raise ValueError("w_sum_per_input must not exceed w_max")


# ---------------------------------------------------------------------------------------------
# The model, in named blocks, then the order in which they run (see the module docstring).
# ---------------------------------------------------------------------------------------------

#: Constants shared by both neuron types' equations.
_SYNAPTIC_CONSTANTS = """
e_exc : volt (shared, constant)
tau_ge : second (shared, constant)
tau_gi : second (shared, constant)
"""

#: Excitatory neurons: membrane, conductances, adaptive threshold, the incoming-weight sum, the
#: learning switch and the input gain of the current sample, a spike counter.
EXCITATORY_EQUATIONS = """
dv/dt = ((v_rest_e - v) + ge * (e_exc - v) + gi * (e_inh_e - v)) / tau_mem_e : volt (unless refractory)
dge/dt = -ge / tau_ge : 1
dgi/dt = -gi / tau_gi : 1
dtheta/dt = -learning * theta / tau_theta : volt
w_total : 1
learning : 1 (shared)
gain : 1 (shared)
v_rest_e : volt (shared, constant)
v_reset_e : volt (shared, constant)
v_threshold_e : volt (shared, constant)
tau_mem_e : second (shared, constant)
t_ref_e : second (shared, constant)
e_inh_e : volt (shared, constant)
theta_plus : volt (shared, constant)
tau_theta : second (shared, constant)
w_sum_target : 1 (shared, constant)
""" + _SYNAPTIC_CONSTANTS + COUNT_EQUATION
EXCITATORY_THRESHOLD = "v > v_threshold_e + theta"
EXCITATORY_RESET = "v = v_reset_e\ntheta += learning * theta_plus\n" + COUNT_RESET
#: The triplet rule's postsynaptic traces ("_post" is a reserved suffix, hence the names).
TRIPLET_POST_EQUATIONS = """
dpost1/dt = -post1 / taupost1 : 1
dpost2/dt = -post2 / taupost2 : 1
taupost1 : second (shared, constant)
taupost2 : second (shared, constant)
"""
TRIPLET_POST_RESET = "\npost1 = 1\npost2 = 1"

#: Inhibitory neurons (they receive no inhibition, as in the paper).
INHIBITORY_EQUATIONS = """
dv/dt = ((v_rest_i - v) + ge * (e_exc - v)) / tau_mem_i : volt (unless refractory)
dge/dt = -ge / tau_ge : 1
v_rest_i : volt (shared, constant)
v_reset_i : volt (shared, constant)
v_threshold_i : volt (shared, constant)
tau_mem_i : second (shared, constant)
t_ref_i : second (shared, constant)
""" + _SYNAPTIC_CONSTANTS
INHIBITORY_THRESHOLD = "v > v_threshold_i"
INHIBITORY_RESET = "v = v_reset_i"

#: The input units: the presynaptic trace (eq. 4: +1 per spike; the triplet rule sets it to 1).
PRESYNAPTIC_EXTRA = """
dapre/dt = -apre / taupre : 1
taupre : second (shared, constant)  # tau_pre ("_pre" is reserved)
"""
PRESYNAPTIC_RESET = {"power_law": "apre += 1", "triplet": "apre = 1"}

#: Plastic input synapses. Every weight change also updates the postsynaptic neuron's running sum.
SYNAPSE_MODEL = """
w : 1
eta : 1 (shared, constant)
eta_depression : 1 (shared, constant)
x_target : 1 (shared, constant)
mu : 1 (shared, constant)
w_max : 1 (shared, constant)
"""
#: With delays: the presynaptic trace on each synapse, updated when the delayed spike arrives.
SYNAPTIC_TRACE = """
dxpre/dt = -xpre / tau_trace : 1 (event-driven)
tau_trace : second (shared, constant)
"""
SYNAPTIC_TRACE_ON_PRE = {"power_law": "\nxpre += 1", "triplet": "\nxpre = 1"}
ON_PRE = {
    "power_law": "ge_post += gain_post * w",
    "triplet": """
ge_post += gain_post * w
w_new = clip(w - learning_post * eta_depression * post1_post, 0, w_max)
w_total_post += w_new - w
w = w_new
""",
}
ON_POST = {
    "power_law": """
w_new = clip(w + learning_post * eta * (apre_pre - x_target) * (w_max - w)**mu, 0, w_max)
w_total_post += w_new - w
w = w_new
""",
    "triplet": """
w_new = clip(w + learning_post * eta * apre_pre * post2_post, 0, w_max)
w_total_post += w_new - w
w = w_new
""",
}

# -- at every sample start, in this order
READ_SAMPLE = "learning = learning_gate(t)"
NORMALISE = "w = w + learning_post * (clip(w * w_sum_target_post / (w_total_post + 1e-12), 0, w_max) - w)"
UPDATE_SUMS = "w_total = learning * w_sum_target + (1 - learning) * w_total"
RESET_EXCITATORY = "v = v_rest_e\nge = 0\ngi = 0\nlastspike = -1e4*second\nnot_refractory = True"
RESET_TRIPLET = "\npost1 = 0\npost2 = 0"
RESET_INHIBITORY = "v = v_rest_i\nge = 0\nlastspike = -1e4*second\nnot_refractory = True"
RESET_INPUT = "apre = 0"
RESET_SYNAPTIC_TRACE = "xpre = 0"
SCHEDULE = {"read_sample": ("start", 0), "normalise": ("start", 1), "reset": ("start", 2)}


def stdp_synapses(source, target, params: STDPParams, name: str = "stdp_synapses", *,
                  synaptic_trace: bool = False, **connect) -> Synapses:
    """Plastic synapses of ``params.rule`` from ``source`` (which needs the trace ``apre``) onto ``target``
    (which needs ``ge``, ``gain``, ``w_total``, ``learning`` and, for the triplet rule, ``post1``/``post2``),
    connected with ``connect`` (all to all when empty). With ``synaptic_trace`` the presynaptic trace
    lives on each synapse (``xpre``, updated when a spike arrives: needed once synapses have delays)."""
    model, on_pre, on_post = SYNAPSE_MODEL, ON_PRE[params.rule], ON_POST[params.rule]
    if synaptic_trace:
        model += SYNAPTIC_TRACE
        on_pre += SYNAPTIC_TRACE_ON_PRE[params.rule]
        on_post = on_post.replace("apre_pre", "xpre")
    syn = Synapses(source, target, model, on_pre=on_pre, on_post=on_post, name=name)
    syn.connect(**connect)
    if synaptic_trace:
        syn.tau_trace = params.tau_pre
    syn.eta, syn.eta_depression, syn.x_target, syn.mu, syn.w_max = (params.eta, params.eta_pre, params.x_target,
                                                                     params.mu, params.w_max)
    return syn


def input_delays(params: STDPParams, n_inputs: int, seed: int) -> Quantity:
    """``(n_inputs * n_neurons,)`` delays of the input synapses (presynaptic index first), uniform in
    ``[0, max_delay]``, drawn from a stream of ``seed`` of their own (the weights' draw is unchanged)."""
    rng = np.random.default_rng([seed, 1])
    return rng.uniform(0, float(params.max_delay / ms), n_inputs * params.n_neurons) * ms


def initial_weights(params: STDPParams, n_inputs: int, seed: int) -> np.ndarray:
    """``(n_inputs, n_neurons)``: the code's ``0.3 (U + 0.01)``, each column scaled to the normalisation target."""
    rng = np.random.default_rng(seed)
    w = (rng.uniform(0, 1, (n_inputs, params.n_neurons)) + 0.01) * params.w_init_max
    w = w * (n_inputs * params.w_sum_per_input) / w.sum(axis=0, keepdims=True)
    return np.clip(w, 0, params.w_max)


_EXCITATORY = ("v_rest_e", "v_reset_e", "v_threshold_e", "tau_mem_e", "t_ref_e", "e_inh_e", "theta_plus", "tau_theta")
_INHIBITORY = ("v_rest_i", "v_reset_i", "v_threshold_i", "tau_mem_i", "t_ref_i")
_SHARED = ("e_exc", "tau_ge", "tau_gi")
_SYNAPTIC = ("eta", "x_target", "mu", "w_max")


def learning_state_bytes(params: STDPParams, n_inputs: int) -> dict[str, int]:
    """What the rule keeps in order to learn, from the sizes (float64): a presynaptic trace per input
    (per input synapse when inputs are delayed: the trace then lives on the synapse), the triplet
    rule's two postsynaptic traces per neuron, and each neuron's adaptive threshold."""
    per_synapse = params.max_delay > 0
    out = {("presynaptic traces, one per input synapse" if per_synapse else "presynaptic traces, one per input"):
           8 * n_inputs * (params.n_neurons if per_synapse else 1),
           "adaptive thresholds, one per neuron": 8 * params.n_neurons}
    if params.rule == "triplet":
        out["postsynaptic traces, two per neuron"] = 8 * 2 * params.n_neurons
    return out


class STDPNetwork(ChunkedReplayNetwork):
    """The compiled network plus its learned state; one binary serves every chunk of samples.

    ``weights_`` is ``(n_inputs, n_neurons)`` (dimensionless conductances), ``theta_`` ``(n_neurons,)``
    in volt, ``initial_weights_`` the weights learning started from. Every constant but ``n_neurons``,
    ``rule`` and the input settings reaches the binary through ``run_args`` (``w_init_max`` only draws
    the initial weights, which are passed on every run anyway). :meth:`present` records each sample's
    number of presentations in ``presentations_``.
    """

    RUN_ARG_CONSTANTS = _EXCITATORY + _INHIBITORY + _SHARED + _SYNAPTIC + (
        "eta_pre", "w_ei", "w_ie", "tau_pre", "tau_post", "tau_post_slow", "w_init_max", "w_sum_per_input")

    def __init__(self, params: STDPParams, n_inputs: int, *, sample_duration: Quantity, dt: Quantity,
                 chunk_size: int, capacity: int, n_bins: int, device_name: str, build_dir: Path,
                 seed: int = 0, cache: BuildCache | None = None):
        self.params, self.n_inputs = params, n_inputs
        self.sample_duration, self.dt, self.chunk_size, self.n_bins = sample_duration, dt, chunk_size, n_bins
        duration_steps = int(round(float(sample_duration / dt)))
        check_bins(n_bins, duration_steps, f"{sample_duration} at dt {dt}")
        rest_steps = int(round(float(params.rest / dt)))
        # one slot per sample: the sample, then its rest; the replay table places samples a slot apart
        self.sample_steps = duration_steps + rest_steps
        # spikes are counted in fine bins that tile both the sample's bins and the rest
        self.fine_steps = math.gcd(duration_steps // n_bins, rest_steps)
        self.fine_per_bin = duration_steps // n_bins // self.fine_steps
        self.slot = self.sample_steps * dt
        self.delays = input_delays(params, n_inputs, seed) if params.max_delay > 0 else None
        self.weights_ = initial_weights(params, n_inputs, seed)
        self.initial_weights_ = self.weights_.copy()
        self.theta_ = np.zeros(params.n_neurons) * volt
        self.presentations_ = np.zeros(0, dtype=np.int64)
        self.compile(lambda folder: self._build(device_name, folder, capacity), build_dir, cache, n_inputs=n_inputs,
                     sample_duration=repr(sample_duration), dt=repr(dt), chunk_size=chunk_size, capacity=capacity,
                     n_bins=n_bins, device=device_name, delay_seed=seed if self.delays is not None else None)

    def constant_variables(self) -> dict:
        p = self.params
        out = {}
        for group, names in ((self.exc, _EXCITATORY + _SHARED), (self.inh, _INHIBITORY + _SHARED),
                             (self.syn, _SYNAPTIC)):
            out.update({f"{group.name}.{name}": (getattr(group, name), getattr(p, name)) for name in names})
        out.update({
            "excitatory.w_sum_target": (self.exc.w_sum_target, self.n_inputs * p.w_sum_per_input),
            "spike_input.taupre": (self.replay.group.taupre, p.tau_pre),
            "to_inhibitory.w_ei": (self.to_inhibitory.w_ei, p.w_ei),
            "lateral_inhibition.w_ie": (self.inhibition.w_ie, p.w_ie),
            "input_synapses.eta_depression": (self.syn.eta_depression, p.eta_pre),  # "_pre" is reserved
        })
        if self.delays is not None:
            out["input_synapses.tau_trace"] = (self.syn.tau_trace, p.tau_pre)
        if p.rule == "triplet":
            out["excitatory.taupost1"] = (self.exc.taupost1, p.tau_post)
            out["excitatory.taupost2"] = (self.exc.taupost2, p.tau_post_slow)
        return out

    def _build(self, device_name, build_dir, capacity):
        p, n = self.params, self.params.n_neurons
        triplet = p.rule == "triplet"
        build_dir = devices.activate(device_name, build_dir)
        defaultclock.dt = self.dt
        self.replay = SpikeReplay.create(self.n_inputs, capacity, extra_equations=PRESYNAPTIC_EXTRA,
                                         extra_reset=PRESYNAPTIC_RESET[p.rule])
        self.replay.group.taupre = p.tau_pre
        self.gate = TimedArray(np.zeros(self.chunk_size + 1), dt=self.slot, name="learning_gate")
        exc = NeuronGroup(n, EXCITATORY_EQUATIONS + (TRIPLET_POST_EQUATIONS if triplet else ""),
                          threshold=EXCITATORY_THRESHOLD,
                          reset=EXCITATORY_RESET + (TRIPLET_POST_RESET if triplet else ""),
                          refractory="t_ref_e", method="exponential_euler", name="excitatory",
                          namespace={"learning_gate": self.gate})
        inh = NeuronGroup(n, INHIBITORY_EQUATIONS, threshold=INHIBITORY_THRESHOLD, reset=INHIBITORY_RESET,
                          refractory="t_ref_i", method="exponential_euler", name="inhibitory")
        for group, names in ((exc, _EXCITATORY + _SHARED), (inh, _INHIBITORY + _SHARED)):
            for name in names:
                setattr(group, name, getattr(p, name))
        exc.w_sum_target = self.n_inputs * p.w_sum_per_input
        exc.v, inh.v, exc.gain = p.v_rest_e, p.v_rest_i, p.input_gain
        if triplet:
            exc.taupost1, exc.taupost2 = p.tau_post, p.tau_post_slow
        syn = stdp_synapses(self.replay.group, exc, p, name="input_synapses", synaptic_trace=self.delays is not None)
        if self.delays is not None:
            syn.delay = self.delays
        to_inh = Synapses(exc, inh, "w_ei : 1 (shared, constant)", on_pre="ge_post += w_ei", name="to_inhibitory")
        to_inh.connect(j="i")
        to_inh.w_ei = p.w_ei
        inhibition = Synapses(inh, exc, "w_ie : 1 (shared, constant)", on_pre="gi_post += w_ie",
                              name="lateral_inhibition")
        inhibition.connect(condition="i != j")
        inhibition.w_ie = p.w_ie
        def every_sample(group, code, block, name):
            when, order = SCHEDULE[block]
            return group.run_regularly(code, dt=self.slot, when=when, order=order, name=name)

        starts = [
            every_sample(exc, READ_SAMPLE, "read_sample", "read_sample"),
            every_sample(syn, NORMALISE, "normalise", "normalise"),
            every_sample(exc, UPDATE_SUMS, "reset", "update_sums"),
        ]
        if p.rest == 0 * ms:  # reset instead of a rest
            starts += [
                every_sample(exc, RESET_EXCITATORY + (RESET_TRIPLET if triplet else ""), "reset", "reset_excitatory"),
                every_sample(inh, RESET_INHIBITORY, "reset", "reset_inhibitory"),
                every_sample(self.replay.group, RESET_INPUT, "reset", "reset_input_traces"),
            ]
            if self.delays is not None:
                starts.append(every_sample(syn, RESET_SYNAPTIC_TRACE, "reset", "reset_synaptic_traces"))
        # fine bins over the whole slot; collect() sums them into the sample's bins
        self.counter, counter_objects = BinnedCounter.attach(exc, self.fine_steps * self.dt,
                                                             self.sample_steps // self.fine_steps)
        self.exc, self.inh, self.syn, self.to_inhibitory, self.inhibition = exc, inh, syn, to_inh, inhibition
        net = Network(self.replay.group, exc, inh, syn, to_inh, inhibition, *starts, *counter_objects)
        self.compiled = CompiledNetwork(net, self.chunk_size * self.slot + self.dt, device_name, build_dir)

    def extra_run_args(self, samples: list[SpikeSample], learn: bool = False, gain: float | None = None) -> dict:
        gate = np.zeros(self.chunk_size + 1)
        gate[:len(samples)] = 1.0 if learn else 0.0
        return {
            self.gate: gate,
            self.exc.gain: self.params.input_gain if gain is None else gain,
            self.syn.w: self.weights_.reshape(-1),
            self.exc.theta: self.theta_,
            self.exc.w_total: np.sum(self.weights_, axis=0),
        }

    def collect(self, n_samples: int, learn: bool = False, gain: float | None = None) -> np.ndarray:
        """The chunk's ``(sample, bin, neuron)`` counts; after learning, the new weights and thresholds."""
        if learn:
            self.weights_ = np.array(self.syn.w[:], dtype=float).reshape(self.n_inputs, -1)  # a copy, not a view
            self.theta_ = np.asarray(self.exc.theta[:] / volt) * volt
        fine = self.counter.counts(n_samples)[:, :self.n_bins * self.fine_per_bin]  # the rest is not read out
        return fine.reshape(n_samples, self.n_bins, self.fine_per_bin, -1).sum(axis=2)

    def _again(self, samples, counts, presentations, run) -> None:
        """Present the samples whose layer fired fewer than ``min_spikes`` again, with a larger gain,
        until each has enough or ``max_presentations``; ``run(samples, gain)`` gives their counts."""
        p = self.params
        for k in range(1, p.max_presentations):
            low = np.flatnonzero(counts.sum(axis=(1, 2)) < p.min_spikes)
            if not len(low) or p.gain_step == 0:
                return
            counts[low] = run([samples[i] for i in low], p.input_gain + k * p.gain_step)
            presentations[low] += 1

    def present(self, samples: list[SpikeSample], learn: bool, progress: str | None = None,
                start_chunk: int = 0, on_chunk=None, workers: int = 1) -> np.ndarray:
        """Present all ``samples`` chunk by chunk, each sample again (up to ``max_presentations``) while
        the layer fires fewer than ``min_spikes`` spikes; returns the counts of each sample's last
        presentation. Learning runs one chunk after the other, its samples presented again right
        after their chunk; without learning, chunks run in ``workers`` processes."""
        p = self.params
        if not learn:
            def run(batch, gain):
                parts = ChunkedReplayNetwork.present(self, batch, workers=workers, learn=False, gain=gain)
                return stack_counts(parts, self.n_bins, p.n_neurons)

            counts = stack_counts(ChunkedReplayNetwork.present(self, samples, progress=progress, workers=workers,
                                                               learn=False, gain=p.input_gain),
                                  self.n_bins, p.n_neurons)
            self.presentations_ = np.ones(len(samples), dtype=np.int64)
            self._again(samples, counts, self.presentations_, run)
            return counts

        def run_learning(batch, gain):
            return stack_counts([self.run_chunk(batch[i:i + self.chunk_size], learn=True, gain=gain)
                                 for i in range(0, len(batch), self.chunk_size)], self.n_bins, p.n_neurons)

        chunks = [samples[i:i + self.chunk_size] for i in range(0, len(samples), self.chunk_size)]
        bar = tqdm(total=len(samples), desc=progress, disable=progress is None, unit="sample",
                   initial=sum(len(c) for c in chunks[:start_chunk]))
        parts, presentations = [], []
        for index in range(start_chunk, len(chunks)):
            counts = run_learning(chunks[index], p.input_gain)
            times = np.ones(len(chunks[index]), dtype=np.int64)
            self._again(chunks[index], counts, times, run_learning)
            parts.append(counts)
            presentations.append(times)
            bar.update(len(chunks[index]))
            if on_chunk is not None:
                on_chunk(index)
        bar.close()
        self.presentations_ = np.concatenate(presentations) if presentations else np.zeros(0, dtype=np.int64)
        return stack_counts(parts, self.n_bins, p.n_neurons)


def active_neurons(counts: np.ndarray) -> np.ndarray:
    """Per sample, the number of neurons that fired at least once: ``(sample, bin, neuron)`` -> ``(sample,)``."""
    return (np.asarray(counts).sum(axis=1) > 0).sum(axis=-1)


class STDPTransformer(BaseEstimator, TransformerMixin):
    """scikit-learn face of the STDP layer: ``fit`` compiles the network and, with ``learn`` (the
    default), learns for ``epochs`` epochs (seeded order); with ``learn=False`` the initial weights
    stay frozen (the learning-off ablation). ``transform`` returns the layer's time-binned spike
    counts with learning off, flattened to ``(sample, bin * neuron)``.

    Learned state: ``weights_`` (``{"input": (n_inputs, n_neurons)}``, dimensionless conductances),
    ``initial_weights_`` (the same shape) and ``theta_`` (``(n_neurons,)``, a Brian2 quantity in volt).
    """

    def __init__(self, params: STDPParams = STDPParams(), *, n_inputs: int = 700, sample_duration=1 * second,
                 dt=0.5 * ms, n_bins: int = 5, chunk_size: int = 100, epochs: int = 1, learn: bool = True,
                 device: str = "cpp_standalone", build_dir: str = "build/stdp", seed: int = 0, workers: int = 1):
        self.params, self.n_inputs, self.sample_duration, self.dt = params, n_inputs, sample_duration, dt
        self.n_bins, self.chunk_size, self.epochs, self.learn, self.device = n_bins, chunk_size, epochs, learn, device
        self.build_dir, self.seed, self.workers = build_dir, seed, workers

    def fit(self, X: list[SpikeSample], y=None) -> "STDPTransformer":
        # Room for chunks of later input twice as dense as the densest in X.
        self.network_ = STDPNetwork(self.params, self.n_inputs, sample_duration=self.sample_duration, dt=self.dt,
                                    chunk_size=self.chunk_size,
                                    capacity=2 * chunk_capacity([X], self.chunk_size, self.n_inputs),
                                    n_bins=self.n_bins, device_name=self.device, build_dir=Path(self.build_dir),
                                    seed=self.seed)
        for epoch in range(self.epochs if self.learn else 0):
            order = np.random.default_rng([self.seed, epoch]).permutation(len(X))
            self.network_.present([X[i] for i in order], learn=True)
        self.weights_ = {"input": self.network_.weights_}
        self.initial_weights_ = {"input": self.network_.initial_weights_}
        self.theta_ = self.network_.theta_
        return self

    def transform(self, X: list[SpikeSample]) -> np.ndarray:
        return self.network_.present(X, learn=False, workers=self.workers).reshape(len(X), -1)
