"""Unsupervised STDP with adaptive thresholds and winner-take-all, after Diehl & Cook (2015).

Diehl, P. U. & Cook, M. (2015), "Unsupervised learning of digit recognition using
spike-timing-dependent plasticity", Front. Comput. Neurosci. 9:99.

Input channels drive ``n_neurons`` excitatory LIF neurons (:mod:`models.lif`) through plastic
synapses; every excitatory spike inhibits all other excitatory neurons. Pair-based, trace-based
STDP with hard bounds (``apre`` and ``apost`` (the traces) jump by 1 at each spike and decay with
:math:`\\tau_\\mathrm{pre}`, :math:`\\tau_\\mathrm{post}`):

.. math::

    \\text{post spike: } w &\\leftarrow \\mathrm{clip}(w + A_+ \\mathrm{trace}_\\mathrm{pre}, 0, w_\\max) \\\\
    \\text{pre spike: }  w &\\leftarrow \\mathrm{clip}(w - A_- x_\\mathrm{post}, 0, w_\\max)

so a single pair with :math:`\\Delta t = t_\\mathrm{post} - t_\\mathrm{pre}` changes the weight by
:math:`A_+ e^{-\\Delta t/\\tau_\\mathrm{pre}}` for :math:`\\Delta t > 0` and
:math:`-A_- e^{\\Delta t/\\tau_\\mathrm{post}}` for :math:`\\Delta t < 0`. Homeostasis: the threshold is
:math:`v_\\mathrm{threshold} + \\theta` with :math:`\\theta \\mathrel{+}= \\theta_+` at each spike (eq. 3 of
the paper). At each sample start every neuron's incoming weights are scaled to sum to
``n_inputs * w_mean`` (the paper's normalisation to 78, section 2.3).

Departures from the paper, and why:

- Time-varying audio spike trains are replayed as they are, one sample after the other, each for
  the sample duration; the paper showed static Poisson images for 350 ms and raised the input rate
  until enough neurons fired. Instead of a rest of 150 ms, the state (membrane, synaptic current,
  traces) is reset at every sample start.
- Lateral inhibition is a direct all-to-all inhibitory connection between excitatory neurons,
  not a separate inhibitory population with one-to-one wiring.
- The neuron is the project's current-based LIF, not conductance-based.
- :math:`\\theta` decays only between samples, by :math:`e^{-T/\\tau_\\theta}` per training sample,
  rather than continuously; with the paper's :math:`\\tau_\\theta = 10^7` ms the difference vanishes.
- Plain pair STDP with both signs instead of the paper's offset rule (``x_tar``); the bounds and
  the normalisation keep weights in check.
- Weights are clipped to [0, w_max] after normalisation; when the clip binds, a neuron's sum can
  fall short of the target until the next sample.
- Learning is gated per sample (a TimedArray), so padding samples at the end of a chunk and
  evaluation runs leave weights and thresholds untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from brian2 import Network, Quantity, Synapses, TimedArray, defaultclock, mV, ms, second, volt
from sklearn.base import BaseEstimator, TransformerMixin

from models.engine import devices
from models.engine.compiled import BuildCache, CompiledNetwork
from models.engine.counting import COUNT_EQUATION, COUNT_RESET, BinnedCounter
from models.engine.inputs import SpikeReplay, chunk_capacity
from models.engine.replay import ChunkedReplayNetwork, stack_counts
from models.lif import LIF_RUN_ARG_CONSTANTS, LIFParams, lif_group
from models.spikes import SpikeSample
from models.units import ASSIGN, check_quantity, const


@dataclass(frozen=True)
class STDPParams:
    """Constants of the STDP network (Brian2 quantities)."""

    n_neurons: int = 100  # excitatory neurons
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron
    w_max: Quantity = const(3 * mV)  # upper weight bound
    w_init_max: Quantity = const(1 * mV)  # initial weights uniform in [0, w_init_max]
    w_mean: Quantity = const(0.5 * mV)  # normalisation: incoming weights sum to n_inputs * w_mean
    a_plus: Quantity = const(0.02 * mV)  # potentiation amplitude A+
    a_minus: Quantity = const(0.021 * mV)  # depression amplitude A-
    tau_pre: Quantity = const(20 * ms)  # presynaptic trace time constant
    tau_post: Quantity = const(20 * ms)  # postsynaptic trace time constant
    theta_plus: Quantity = const(0.05 * mV)  # threshold increase per spike
    tau_theta: Quantity = const(20 * second)  # threshold decay time constant (applied between samples)
    w_inhibition: Quantity = const(4 * mV)  # lateral inhibition added to I_syn of all other neurons

    def __post_init__(self):
        if self.n_neurons < 1:
            raise ValueError("n_neurons must be at least 1")
        for name in ("w_max", "w_init_max", "w_mean", "a_plus", "a_minus", "theta_plus", "w_inhibition"):
            check_quantity(name, getattr(self, name), volt)
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("tau_pre", "tau_post", "tau_theta"):
            check_quantity(name, getattr(self, name), second, positive=True)
        if float(self.w_mean) > float(self.w_max):
            raise ValueError("w_mean must not exceed w_max")


#: The excitatory neurons: adaptive threshold, postsynaptic trace, incoming-weight sum, spike count.
EXCITATORY_EXTRA = COUNT_EQUATION + """
dapost/dt = -apost / taupost : 1
theta : volt
w_total : volt
learning : 1 (shared)
taupost : second (shared, constant)  # tau_post of STDPParams ("_post" is reserved)
theta_plus : volt (shared, constant)
tau_theta : second (shared, constant)
w_sum_target : volt (shared, constant)
sample_duration : second (shared, constant)
"""
EXCITATORY_RESET = "v = v_reset\ntheta += learning * theta_plus\napost += 1\n" + COUNT_RESET

#: The input units: presynaptic trace.
PRESYNAPTIC_EXTRA = """
dapre/dt = -apre / taupre : 1
taupre : second (shared, constant)  # tau_pre of STDPParams ("_pre" is reserved)
"""
PRESYNAPTIC_RESET = "apre += 1"

# The traces live on the neurons, not on each synapse: with all-to-all input and a common reset
# at every sample start, every synapse of one neuron would hold the same trace, and a neuron's
# trace decays once per step instead of once per synaptic event (an exponential per event).
SYNAPSE_MODEL = """
w : volt
a_plus : volt (shared, constant)
a_minus : volt (shared, constant)
w_max : volt (shared, constant)
"""

ON_PRE = """
I_syn_post += w
w_new = clip(w - learning_post * a_minus * apost_post, 0*volt, w_max)
w_total_post += w_new - w
w = w_new
"""

ON_POST = """
w_new = clip(w + learning_post * a_plus * apre_pre, 0*volt, w_max)
w_total_post += w_new - w
w = w_new
"""


def stdp_synapses(source, target, params: STDPParams, name: str = "stdp_synapses", **connect) -> Synapses:
    """Plastic synapses from ``source`` (which needs the trace ``apre``) onto ``target`` (which needs
    ``I_syn``, ``apost``, ``w_total`` and ``learning``), connected with ``connect`` (all to all when empty).

    Within one time step Brian2 delivers spikes before it resets neurons, so a pre and a post spike
    in the same step do not see each other's trace increment.
    """
    syn = Synapses(source, target, SYNAPSE_MODEL, on_pre=ON_PRE, on_post=ON_POST, name=name)
    syn.connect(**connect)
    syn.a_plus, syn.a_minus, syn.w_max = params.a_plus, params.a_minus, params.w_max
    return syn


class STDPNetwork(ChunkedReplayNetwork):
    """The compiled network plus its learned state; one binary serves every chunk of samples.

    ``weights_`` is ``(n_inputs, n_neurons)`` and ``theta_`` ``(n_neurons,)``, both in volt.
    Every constant but ``n_neurons`` reaches the binary through ``run_args`` (``w_init_max`` only
    draws the initial weights, which are passed on every run anyway).
    """

    RUN_ARG_CONSTANTS = LIF_RUN_ARG_CONSTANTS + (
        "w_max", "w_init_max", "w_mean", "a_plus", "a_minus", "tau_pre", "tau_post", "theta_plus", "tau_theta",
        "w_inhibition")

    def __init__(self, params: STDPParams, n_inputs: int, *, sample_duration: Quantity, dt: Quantity,
                 chunk_size: int, capacity: int, n_bins: int, device_name: str, build_dir: Path,
                 seed: int = 0, cache: BuildCache | None = None):
        self.params, self.n_inputs = params, n_inputs
        self.sample_duration, self.dt, self.chunk_size, self.n_bins = sample_duration, dt, chunk_size, n_bins
        self.sample_steps = int(round(float(sample_duration / dt)))
        if self.sample_steps % n_bins:
            raise ValueError(f"{n_bins} bins do not divide a sample of {self.sample_steps} steps")
        rng = np.random.default_rng(seed)
        self.weights_ = rng.uniform(0, 1, (n_inputs, params.n_neurons)) * params.w_init_max
        self.theta_ = np.zeros(params.n_neurons) * volt
        self.compile(lambda folder: self._build(device_name, folder, capacity), build_dir, cache, n_inputs=n_inputs,
                     sample_duration=repr(sample_duration), dt=repr(dt), chunk_size=chunk_size, capacity=capacity,
                     n_bins=n_bins, device=device_name)

    def constant_variables(self) -> dict:
        params = self.params
        exc, syn = self.exc, self.syn
        out = params.lif.variables(exc)
        out.update({
            "excitatory.theta_plus": (exc.theta_plus, params.theta_plus),
            "excitatory.tau_theta": (exc.tau_theta, params.tau_theta),
            "excitatory.taupost": (exc.taupost, params.tau_post),
            "excitatory.w_sum_target": (exc.w_sum_target, self.n_inputs * params.w_mean),
            "spike_input.taupre": (self.replay.group.taupre, params.tau_pre),
            "input_synapses.a_plus": (syn.a_plus, params.a_plus),
            "input_synapses.a_minus": (syn.a_minus, params.a_minus),
            "input_synapses.w_max": (syn.w_max, params.w_max),
            "lateral_inhibition.w_inh": (self.inhibition.w_inh, params.w_inhibition),
        })
        return out

    def _build(self, device_name, build_dir, capacity):
        p, n = self.params, self.params.n_neurons
        build_dir = devices.activate(device_name, build_dir)
        defaultclock.dt = self.dt
        self.replay = SpikeReplay.create(self.n_inputs, capacity, extra_equations=PRESYNAPTIC_EXTRA,
                                         extra_reset=PRESYNAPTIC_RESET)
        self.replay.group.taupre = p.tau_pre
        self.gate = TimedArray(np.zeros(self.chunk_size + 1), dt=self.sample_duration, name="learning_gate")
        exc = lif_group(n, p.lif, extra_equations=EXCITATORY_EXTRA, threshold="v > v_threshold + theta",
                        reset=EXCITATORY_RESET, name="excitatory",
                        namespace={"learning_gate": self.gate})
        exc.theta_plus, exc.tau_theta, exc.taupost = p.theta_plus, p.tau_theta, p.tau_post
        exc.w_sum_target = self.n_inputs * p.w_mean
        exc.sample_duration = self.sample_duration
        syn = stdp_synapses(self.replay.group, exc, p, name="input_synapses")
        inhibition = Synapses(exc, exc, "w_inh : volt (shared, constant)", on_pre="I_syn_post -= w_inh",
                              name="lateral_inhibition")
        inhibition.connect(condition="i != j")
        inhibition.w_inh = p.w_inhibition
        t_sample = self.sample_duration
        starts = [
            exc.run_regularly("learning = learning_gate(t)", dt=t_sample, when="start", order=0, name="gate_learning"),
            syn.run_regularly(
                "w = w + learning_post * (clip(w * w_sum_target_post / (w_total_post + 1e-12*volt), 0*volt, w_max) - w)",
                dt=t_sample, when="start", order=1, name="normalise"),
            exc.run_regularly(
                "theta = theta * exp(-learning * sample_duration / tau_theta)\n"
                "w_total = learning * w_sum_target + (1 - learning) * w_total\n"
                "v = v_rest\nI_syn = 0*volt\napost = 0\nlastspike = -1e4*second\nnot_refractory = True",
                dt=t_sample, when="start", order=2, name="reset_state"),
            self.replay.group.run_regularly("apre = 0", dt=t_sample, when="start", order=2, name="reset_input_traces"),
        ]
        self.counter, counter_objects = BinnedCounter.attach(exc, t_sample / self.n_bins, self.n_bins)
        self.exc, self.syn, self.inhibition = exc, syn, inhibition
        net = Network(self.replay.group, exc, syn, inhibition, *starts, *counter_objects)
        duration = self.chunk_size * t_sample + self.dt
        self.compiled = CompiledNetwork(net, duration, device_name, build_dir)

    def extra_run_args(self, samples: list[SpikeSample], learn: bool = False) -> dict:
        gate = np.zeros(self.chunk_size + 1)
        gate[:len(samples)] = 1.0 if learn else 0.0
        return {
            self.gate: gate,
            self.syn.w: self.weights_.reshape(-1),
            self.exc.theta: self.theta_,
            self.exc.w_total: np.sum(self.weights_, axis=0),
        }

    def collect(self, n_samples: int, learn: bool = False) -> np.ndarray:
        """The chunk's ``(sample, bin, neuron)`` counts; after learning, the new weights and thresholds."""
        if learn:
            self.weights_ = np.asarray(self.syn.w[:] / volt).reshape(self.n_inputs, -1) * volt
            self.theta_ = np.asarray(self.exc.theta[:] / volt) * volt
        return self.counter.counts(n_samples)

    def present(self, samples: list[SpikeSample], learn: bool, progress: str | None = None,
                start_chunk: int = 0, on_chunk=None, workers: int = 1) -> np.ndarray:
        """Present all ``samples`` chunk by chunk (learning runs one chunk after the other)."""
        parts = super().present(samples, progress=progress, workers=1 if learn else workers,
                                start_chunk=start_chunk, on_chunk=on_chunk, learn=learn)
        return stack_counts(parts, self.n_bins, self.params.n_neurons)


class STDPTransformer(BaseEstimator, TransformerMixin):
    """scikit-learn face of the STDP layer: ``fit`` compiles the network and learns for ``epochs``
    epochs (seeded order); ``transform`` returns the layer's time-binned spike counts with
    learning off, flattened to ``(sample, bin * neuron)``.

    Learned state: ``weights_`` (``{"input": (n_inputs, n_neurons)}``) and ``theta_``
    (``(n_neurons,)``), Brian2 quantities in volt.
    """

    def __init__(self, params: STDPParams = STDPParams(), *, n_inputs: int = 700, sample_duration=1 * second,
                 dt=0.1 * ms, n_bins: int = 5, chunk_size: int = 100, epochs: int = 1, device: str = "cpp_standalone",
                 build_dir: str = "build/stdp", seed: int = 0, workers: int = 1):
        self.params, self.n_inputs, self.sample_duration, self.dt = params, n_inputs, sample_duration, dt
        self.n_bins, self.chunk_size, self.epochs, self.device = n_bins, chunk_size, epochs, device
        self.build_dir, self.seed, self.workers = build_dir, seed, workers

    def fit(self, X: list[SpikeSample], y=None) -> "STDPTransformer":
        # Room for chunks of later input twice as dense as the densest in X.
        self.network_ = STDPNetwork(self.params, self.n_inputs, sample_duration=self.sample_duration, dt=self.dt,
                                    chunk_size=self.chunk_size,
                                    capacity=2 * chunk_capacity([X], self.chunk_size, self.n_inputs),
                                    n_bins=self.n_bins, device_name=self.device, build_dir=Path(self.build_dir),
                                    seed=self.seed)
        for epoch in range(self.epochs):
            order = np.random.default_rng([self.seed, epoch]).permutation(len(X))
            self.network_.present([X[i] for i in order], learn=True)
        self.weights_ = {"input": self.network_.weights_}
        self.theta_ = self.network_.theta_
        return self

    def transform(self, X: list[SpikeSample]) -> np.ndarray:
        return self.network_.present(X, learn=False, workers=self.workers).reshape(len(X), -1)
