"""A liquid state machine: a fixed recurrent LIF reservoir, read out by scikit-learn.

Maass, Natschläger & Markram (2002), "Real-time computing without stable states", Neural
Computation 14:2531. The reservoir is ``n_neurons`` LIF neurons of :mod:`models.lif`, a fraction
``frac_excitatory`` excitatory. Connections are drawn either uniformly at random (probability
``p_connect``) or, as in the paper, by distance on a 3-D integer grid,
:math:`p(a, b) = C_{ab}\\, e^{-(D(a,b)/\\lambda)^2}` with :math:`C_{EE}=0.3, C_{EI}=0.2, C_{IE}=0.4,
C_{II}=0.1` (section 4 of the paper). Weights are fixed: ``w_ee`` ... ``w_ii`` (inhibitory ones
negative) times one global ``weight_scale`` that moves the reservoir between quiet, critical and
saturated regimes. Every input channel projects to each neuron with probability ``p_input``.

Departures from the paper: current-based LIF with exponential synapses instead of dynamic
(depressing/facilitating) synapses and conductance noise; no synaptic delays; the state is reset
at every sample start, so a sample's response does not depend on the samples before it.

The liquid is a scikit-learn transformer: ``fit`` builds (and compiles) the network, ``transform``
returns per-neuron spike counts in ``n_bins`` time bins per sample, and, with ``trace_tau`` set,
exponentially filtered spike trains read at the end of each bin.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from brian2 import (Network, Quantity, SpikeMonitor, StateMonitor, Synapses, defaultclock, mV, ms, second,
                    volt)
from sklearn.base import BaseEstimator, TransformerMixin

from models.engine import devices
from models.engine.compiled import BuildCache, CompiledNetwork
from models.engine.counting import COUNT_EQUATION, COUNT_RESET, BinnedCounter, check_bins
from models.engine.inputs import SpikeReplay, chunk_capacity
from models.engine.replay import ChunkedReplayNetwork
from models.lif import LIF_RUN_ARG_CONSTANTS, LIFParams, lif_group
from models.spikes import SpikeSample
from models.units import ASSIGN, check_quantity, const

#: Connection probability scale C by (pre, post) type, Maass et al. (2002).
MAASS_C = {("E", "E"): 0.3, ("E", "I"): 0.2, ("I", "E"): 0.4, ("I", "I"): 0.1}


@dataclass(frozen=True)
class ReservoirParams:
    """Constants of the liquid."""

    n_neurons: int = 1000  # reservoir neurons
    frac_excitatory: float = 0.8  # fraction of excitatory neurons
    connectivity: str = "random"  # 'random' (p_connect) or 'distance' (Maass 2002, lambda_distance)
    p_connect: float = 0.1  # connection probability for 'random'
    lambda_distance: float = 2.0  # lambda of the distance rule, in grid units
    w_ee: Quantity = const(1.0 * mV)  # excitatory -> excitatory weight
    w_ei: Quantity = const(2.0 * mV)  # excitatory -> inhibitory weight
    w_ie: Quantity = const(-4.0 * mV)  # inhibitory -> excitatory weight
    w_ii: Quantity = const(-4.0 * mV)  # inhibitory -> inhibitory weight
    weight_scale: float = 1.0  # global factor on all recurrent weights (quiet < 1 < saturated)
    p_input: float = 0.1  # probability that an input channel projects to a neuron
    w_input: Quantity = const(3.0 * mV)  # input weight
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron

    def __post_init__(self):
        if self.connectivity not in ("random", "distance"):
            raise ValueError(f"connectivity must be 'random' or 'distance', got {self.connectivity!r}")
        for name in ("w_ee", "w_ei", "w_ie", "w_ii", "w_input"):
            check_quantity(name, getattr(self, name), volt)
        for name in ("frac_excitatory", "p_connect", "p_input"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1]")
        if self.n_neurons < 2 or self.weight_scale < 0 or self.lambda_distance <= 0:
            raise ValueError("n_neurons >= 2, weight_scale >= 0 and lambda_distance > 0 are required")

    @property
    def n_excitatory(self) -> int:
        return int(round(self.frac_excitatory * self.n_neurons))


def reservoir_connectivity(params: ReservoirParams, rng: np.random.Generator):
    """(pre, post, weight in volt) of the recurrent synapses; no self-connections."""
    n, n_exc = params.n_neurons, params.n_excitatory
    kind = np.where(np.arange(n) < n_exc, "E", "I")
    if params.connectivity == "random":
        prob = np.full((n, n), params.p_connect)
    else:
        side = int(np.ceil(n ** (1 / 3)))
        grid = np.stack(np.unravel_index(np.arange(n), (side, side, side)), axis=1).astype(float)
        order = rng.permutation(n)  # types scattered over the grid
        grid = grid[order]
        dist2 = ((grid[:, None, :] - grid[None, :, :]) ** 2).sum(-1)
        scale = np.array([[MAASS_C[(a, b)] for b in kind] for a in kind])
        prob = scale * np.exp(-dist2 / params.lambda_distance ** 2)
    np.fill_diagonal(prob, 0.0)
    pre, post = np.nonzero(rng.random((n, n)) < prob)
    return pre, post, connection_weights(params, pre, post)


def connection_weights(params: ReservoirParams, pre: np.ndarray, post: np.ndarray) -> Quantity:
    """Weight of each recurrent synapse ``pre -> post`` by the types of its neurons, times ``weight_scale``."""
    excitatory = np.arange(params.n_neurons) < params.n_excitatory
    table = {(True, True): params.w_ee, (True, False): params.w_ei, (False, True): params.w_ie,
             (False, False): params.w_ii}
    weights = np.zeros(len(pre))
    for (pre_exc, post_exc), w in table.items():
        weights[(excitatory[pre] == pre_exc) & (excitatory[post] == post_exc)] = float(w / volt)
    return weights * params.weight_scale * volt


class Liquid(ChunkedReplayNetwork):
    """The compiled reservoir; :meth:`responses` gives features and, if asked, spike trains.

    The neuron's constants and every weight reach the binary through ``run_args``; the wiring
    (size, connectivity, the seed) is built in.
    """

    RUN_ARG_CONSTANTS = LIF_RUN_ARG_CONSTANTS + (
        "w_ee", "w_ei", "w_ie", "w_ii", "weight_scale", "w_input")

    def __init__(self, params: ReservoirParams, n_inputs: int, *, sample_duration: Quantity, dt: Quantity,
                 chunk_size: int, capacity: int, n_bins: int, device_name: str, build_dir: Path,
                 seed: int = 0, trace_tau: Quantity | None = None, record_spikes: bool = False,
                 cache: BuildCache | None = None):
        self.params, self.n_inputs = params, n_inputs
        self.sample_duration, self.dt, self.chunk_size, self.n_bins = sample_duration, dt, chunk_size, n_bins
        self.sample_steps = int(round(float(sample_duration / dt)))
        check_bins(n_bins, self.sample_steps, f"{sample_duration} at dt {dt}")
        self.trace_tau, self.record_spikes = trace_tau, record_spikes
        rng = np.random.default_rng(seed)
        self.pre_, self.post_, self.weights_ = reservoir_connectivity(params, rng)
        in_pre, in_post = np.nonzero(rng.random((n_inputs, params.n_neurons)) < params.p_input)
        self.input_pre_, self.input_post_ = in_pre, in_post
        self.out_degree_ = np.bincount(self.pre_, minlength=params.n_neurons)
        self.input_out_degree_ = np.bincount(in_pre, minlength=n_inputs)
        self.compile(lambda folder: self._build(device_name, folder, capacity), build_dir, cache, n_inputs=n_inputs,
                     sample_duration=repr(sample_duration), dt=repr(dt), chunk_size=chunk_size, capacity=capacity,
                     n_bins=n_bins, device=device_name, seed=seed, trace_tau=repr(trace_tau),
                     record_spikes=record_spikes)

    def constant_variables(self) -> dict:
        params = self.params
        out = params.lif.variables(self.group)
        # the same wiring (seed and structure are built in), so only the weights differ
        out["recurrent.w"] = (self.recurrent.w, connection_weights(params, self.pre_, self.post_))
        out["input_projection.w"] = (self.input_projection.w, params.w_input)
        return out

    def _build(self, device_name, build_dir, capacity):
        p = self.params
        build_dir = devices.activate(device_name, build_dir)
        defaultclock.dt = self.dt
        self.replay = SpikeReplay.create(self.n_inputs, capacity)
        extra, reset = COUNT_EQUATION, "v = v_reset\n" + COUNT_RESET
        if self.trace_tau is not None:
            extra += "dtrace/dt = -trace / tau_trace : 1\ntau_trace : second (shared, constant)\n"
            reset += "\ntrace += 1"
        res = lif_group(p.n_neurons, p.lif, extra_equations=extra, reset=reset, name="reservoir")
        if self.trace_tau is not None:
            res.tau_trace = self.trace_tau
        inp = Synapses(self.replay.group, res, "w : volt (shared, constant)", on_pre="I_syn_post += w",
                       name="input_projection")
        inp.connect(i=self.input_pre_, j=self.input_post_)
        inp.w = p.w_input
        rec = Synapses(res, res, "w : volt (constant)", on_pre="I_syn_post += w", name="recurrent")
        rec.connect(i=self.pre_, j=self.post_)
        rec.w = self.weights_
        t_sample = self.sample_duration
        state_reset = "v = v_rest\nI_syn = 0*volt\nlastspike = -1e4*second\nnot_refractory = True"
        if self.trace_tau is not None:
            state_reset += "\ntrace = 0"
        objects = [self.replay.group, res, inp, rec,
                   res.run_regularly(state_reset, dt=t_sample, when="start", order=2, name="reset_state")]
        bin_duration = t_sample / self.n_bins
        self.counter, counter_objects = BinnedCounter.attach(res, bin_duration, self.n_bins)
        objects += counter_objects
        if self.trace_tau is not None:
            # read at the end of each bin, before the sample reset at the next sample's start
            self.trace_monitor = StateMonitor(res, "trace", record=True, dt=bin_duration, when="start", order=-10)
            objects.append(self.trace_monitor)
        if self.record_spikes:
            self.spike_monitor = SpikeMonitor(res)
            objects.append(self.spike_monitor)
        self.group, self.recurrent, self.input_projection = res, rec, inp
        net = Network(*objects)
        self.compiled = CompiledNetwork(net, self.chunk_size * t_sample + self.dt, device_name, build_dir)

    def collect(self, n_samples: int) -> dict:
        out = {"counts": self.counter.counts(n_samples)}
        if self.trace_tau is not None:
            values = np.asarray(self.trace_monitor.trace)[:, 1:1 + n_samples * self.n_bins]
            out["traces"] = values.T.reshape(n_samples, self.n_bins, -1).astype(np.float32)
        if self.record_spikes:
            steps = np.rint(np.asarray(self.spike_monitor.t / self.dt)).astype(np.int64)
            sample = steps // self.sample_steps
            keep = sample < n_samples
            units = np.asarray(self.spike_monitor.i)[keep]
            local = (steps[keep] - sample[keep] * self.sample_steps) * float(self.dt / second)
            out["spikes"] = [(units[sample[keep] == s], local[sample[keep] == s]) for s in range(n_samples)]
        return out

    def responses(self, samples: list[SpikeSample], progress: str | None = None, workers: int = 1) -> dict:
        parts = self.present(samples, progress=progress, workers=workers)
        if not parts:
            return {"counts": np.zeros((0, self.n_bins, self.params.n_neurons), dtype=np.float32)}
        out = {key: np.concatenate([p[key] for p in parts]) for key in ("counts", "traces") if key in parts[0]}
        if self.record_spikes:
            out["spikes"] = [train for p in parts for train in p["spikes"]]
        return out

    def synaptic_operations(self, samples: list[SpikeSample], counts: np.ndarray) -> np.ndarray:
        """Synaptic events per sample: every spike times the fan-out of the neuron or channel that fired."""
        inputs = np.array([self.input_out_degree_[s.units].sum() for s in samples], dtype=float)
        return inputs + counts.sum(axis=1) @ self.out_degree_


class LiquidTransformer(BaseEstimator, TransformerMixin):
    """scikit-learn face of the liquid: ``fit`` builds (compiles) it, ``transform`` gives the reservoir's
    time-binned spike counts, flattened to ``(sample, bin * neuron)``.

    Fixed state, in the form every rule's learned state has: ``weights_`` (``{"input": ...,
    "recurrent": ...}``, Brian2 quantities in volt, one entry per synapse) with ``input_pre_``,
    ``input_post_``, ``pre_`` and ``post_`` naming the synapses.
    """

    def __init__(self, params: ReservoirParams = ReservoirParams(), *, n_inputs: int = 700,
                 sample_duration=1 * second, dt=0.1 * ms, n_bins: int = 10, chunk_size: int = 100,
                 device: str = "cpp_standalone", build_dir: str = "build/lsm", seed: int = 0, workers: int = 1):
        self.params, self.n_inputs, self.sample_duration, self.dt = params, n_inputs, sample_duration, dt
        self.n_bins, self.chunk_size, self.device, self.build_dir = n_bins, chunk_size, device, build_dir
        self.seed, self.workers = seed, workers

    def fit(self, X: list[SpikeSample], y=None):
        # Room for chunks of any later input twice as dense as the densest in X.
        self.liquid_ = Liquid(self.params, self.n_inputs, sample_duration=self.sample_duration, dt=self.dt,
                              chunk_size=self.chunk_size, capacity=2 * chunk_capacity([X], self.chunk_size, self.n_inputs),
                              n_bins=self.n_bins, device_name=self.device, build_dir=Path(self.build_dir),
                              seed=self.seed)
        liquid = self.liquid_
        self.weights_ = {"input": np.full(len(liquid.input_pre_), float(self.params.w_input / volt)) * volt,
                         "recurrent": liquid.weights_}
        self.input_pre_, self.input_post_ = liquid.input_pre_, liquid.input_post_
        self.pre_, self.post_ = liquid.pre_, liquid.post_
        return self

    def transform(self, X: list[SpikeSample]) -> np.ndarray:
        counts = self.liquid_.responses(X, workers=self.workers)["counts"]
        return counts.reshape(len(X), -1)
