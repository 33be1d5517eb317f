"""Three-factor e-prop in Brian2: eligibility traces times a broadcast learning signal, online.

Bellec, G. et al. (2020), "A solution to the learning dilemma for recurrent networks of spiking
neurons", Nature Communications 11:3625 (eqs. 1-4 and Methods, "e-prop for LIF neurons").

Network: input -> recurrent LIF layer (:mod:`models.lif`, the same neuron as every other rule) ->
leaky non-spiking readout (the LIF membrane without threshold, integrated exactly). The readout
:math:`y_k(t)` (in units of :math:`v_\\mathrm{threshold} - v_\\mathrm{rest}`) gives
:math:`\\pi_k(t) = \\mathrm{softmax}_k\\, y(t)` and the loss :math:`E = -\\sum_t \\sum_k \\pi^*_k \\log \\pi_k(t)`.

For the synapse :math:`i \\to j` (input or recurrent), with :math:`\\alpha_m, \\alpha_s, c` the exact
integration constants of :mod:`models.lif_torch`:

- presynaptic trace (per neuron): :math:`\\epsilon^I_i(t) = \\alpha_s \\epsilon^I_i(t-1) + z_i(t)`;
- eligibility vector: :math:`\\epsilon_{ji}(t) = \\alpha_m \\epsilon_{ji}(t-1) + c\\,\\epsilon^I_i(t-1)`
  (held while :math:`j` is refractory, set to 0 when :math:`j` spikes, since the reset to
  :math:`v_\\mathrm{reset}` is kept out of the gradient);
- pseudo-derivative: :math:`\\psi_j(t) = \\frac{1}{v_\\mathrm{threshold} - v_\\mathrm{rest}}\\,
  (\\beta |u_j| + 1)^{-2}` (0 while refractory), the surrogate of the BPTT baseline;
- eligibility trace :math:`e_{ji} = \\psi_j \\epsilon_{ji}`, filtered with the readout's own kernel
  :math:`\\kappa` (synaptic current, then membrane): :math:`\\bar e_{ji} = \\kappa * e_{ji}`;
- learning signal: :math:`L_j(t) = \\sum_k B_{jk} (\\pi_k(t) - \\pi^*_k)` with :math:`B = W_\\mathrm{out}^\\top`
  (symmetric e-prop) or fixed random :math:`B` (random e-prop);
- gradient: :math:`g_{ji} = \\sum_t L_j(t)\\, \\bar e_{ji}(t)`; readout:
  :math:`g^\\mathrm{out}_{kj} = \\sum_t (\\pi_k(t) - \\pi^*_k)\\, (\\kappa * z_j)(t)`;
- firing-rate regulariser :math:`\\frac{\\lambda}{2}\\sum_j (r_j - r_0)^2`, :math:`r_j` the sample's mean rate:
  adds :math:`\\lambda (r_j - r_0) \\frac{1}{T} \\sum_t \\psi_j(t) \\epsilon_{ji}(t)`.

Updates: Adam on :math:`g` at the end of every sample (``update='sample'``), or plain gradient steps
every time step (``update='online'``). Without recurrence and with the true learning signal
(symmetric), :math:`g` is exactly the BPTT gradient of the same network (tested against PyTorch
autograd); with recurrence it omits the paths through other neurons (the e-prop approximation).

Departures from the paper: current-based LIF with an exponential synaptic current (so the
eligibility vector has two components and the readout kernel is second order) instead of
plain LIF; reset to :math:`v_\\mathrm{reset}` instead of reset by subtraction; no adaptation (ALIF).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from brian2 import (Hz, Network, NeuronGroup, Quantity, StateMonitor, Synapses, TimedArray, defaultclock, mV,
                    ms, second, volt)

from datasets.records import SpikeSample
from models import devices
from models.counting import COUNT_EQUATION, COUNT_RESET, BinnedCounter
from models.inputs import SpikeReplay
from models.lif import LIF_RUN_ARG_CONSTANTS, LIFParams, check_quantity, const, lif_group
from models.lif_torch import lif_constants
from models.replay_network import ChunkedReplayNetwork


@dataclass(frozen=True)
class EPropParams:
    """Constants of the e-prop network and its learning."""

    n_hidden: int = 128  # recurrent LIF neurons
    recurrent: bool = True  # recurrent hidden weights
    lif: LIFParams = dataclasses.field(default_factory=LIFParams)  # the shared neuron
    dt: Quantity = const(1 * ms)  # time step
    feedback: str = "symmetric"  # learning signal through W_out^T ('symmetric') or fixed random B ('random')
    update: str = "sample"  # Adam after every sample ('sample') or a gradient step every time step ('online')
    learning_rate: Quantity = const(0.02 * mV)  # Adam step (or SGD step scale), in weight units
    rate_penalty: float = 0.0  # lambda of the firing-rate regulariser (per Hz^2); 0: off
    target_rate: Quantity = const(10 * Hz)  # r_0 of the regulariser
    surrogate_slope: float = 10.0  # beta of the pseudo-derivative
    weight_scale: float = 5.0  # initial weights, as in the BPTT baseline (threshold units / sqrt(fan-in))

    def __post_init__(self):
        check_quantity("dt", self.dt, second, positive=True)
        check_quantity("learning_rate", self.learning_rate, volt)
        check_quantity("target_rate", self.target_rate, Hz)
        if self.feedback not in ("symmetric", "random"):
            raise ValueError(f"feedback must be 'symmetric' or 'random', got {self.feedback!r}")
        if self.update not in ("sample", "online"):
            raise ValueError(f"update must be 'sample' or 'online', got {self.update!r}")
        if self.n_hidden < 1 or self.rate_penalty < 0:
            raise ValueError("n_hidden must be positive and rate_penalty not negative")


# Plastic synapses onto the hidden layer (input or recurrent). ``eps`` is the eligibility vector,
# ``ebar_I``/``ebar_v`` the eligibility trace filtered by the readout kernel, ``grad`` the gradient
# of this sample; m/s2 are Adam's moments.
PLASTIC_MODEL = """
w : volt
eps : 1
ebar_I : 1/volt
ebar_v : 1/volt
grad : 1/volt
reg : 1/volt
m : 1/volt
s2 : 1/volt**2
"""

READOUT_MODEL = """
w : volt
grad : 1/volt
m : 1/volt
s2 : 1/volt**2
"""


#: Integration constants of the LIF (see :func:`models.lif_torch.lif_constants`) and the unit of
#: the readout and the pseudo-derivative, on every group that needs them.
KERNEL_CONSTANTS = """
alpha_m : 1 (shared, constant)
alpha_s : 1 (shared, constant)
c_mv : 1 (shared, constant)
unit : volt (shared, constant)
"""


def _adam(side: str) -> str:
    """Adam on ``grad`` for synapses whose hidden neuron is on ``side`` ('pre' or 'post'), applied only
    when that sample learned; bias-corrected with the hidden layer's shared step counter."""
    # the step counter is 0 before the first update; clip so that 0 * (0/0) never appears
    gate, lr, n = f"learn_{side}", f"lr_{side}", f"clip(adam_step_{side}, 1, 1e30)"
    return (
        f"m = m + {gate} * ((beta1 - 1) * m + (1 - beta1) * grad)\n"
        f"s2 = s2 + {gate} * ((beta2 - 1) * s2 + (1 - beta2) * grad**2)\n"
        f"w = w - {gate} * {lr} * (m / (1 - beta1**{n})) / (sqrt(s2 / (1 - beta2**{n})) + adam_eps)\n"
    )


class EPropNetwork(ChunkedReplayNetwork):
    """The compiled e-prop network and its learned state (weights in volt, Adam moments).

    The neuron's constants, the step size, the surrogate slope and the initial weight scale reach the
    binary through ``run_args``; the layer sizes, ``dt`` and the kind of feedback and update are built in.
    """

    RUN_ARG_CONSTANTS = LIF_RUN_ARG_CONSTANTS + (
        "learning_rate", "surrogate_slope", "weight_scale")

    def __init__(self, params: EPropParams, n_inputs: int, n_classes: int, *, sample_duration: Quantity,
                 chunk_size: int, capacity: int, device_name: str, build_dir: Path, seed: int = 0):
        self.params, self.n_inputs, self.n_classes = params, n_inputs, n_classes
        self.dt, self.sample_duration, self.chunk_size = params.dt, sample_duration, chunk_size
        self.sample_steps = int(round(float(sample_duration / params.dt)))
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
            self.state_[f"m_{name}"] = np.zeros(shape)
            self.state_[f"s2_{name}"] = np.zeros(shape)
        self.feedback_ = rng.standard_normal((n_h, n_classes)) * scale / np.sqrt(n_h)  # random e-prop's B (volt)
        self.compile(lambda folder: self._build(device_name, folder, capacity), build_dir, n_inputs=n_inputs,
                     n_classes=n_classes, sample_duration=repr(sample_duration), chunk_size=chunk_size,
                     capacity=capacity, device=device_name)

    def constant_variables(self) -> dict:
        params = self.params
        k = lif_constants(params.lif, params.dt)
        unit = params.lif.v_threshold - params.lif.v_rest
        out = params.lif.variables(self.hidden)
        for group in (self.replay.group, self.hidden, self.readout):
            out.update({f"{group.name}.alpha_m": (group.alpha_m, k.alpha_mem),
                        f"{group.name}.alpha_s": (group.alpha_s, k.alpha_syn),
                        f"{group.name}.c_mv": (group.c_mv, k.coupling), f"{group.name}.unit": (group.unit, unit)})
        out["hidden.lr"] = (self.hidden.lr, params.learning_rate)
        out["hidden.slope"] = (self.hidden.slope, params.surrogate_slope)
        if params.feedback == "random":  # drawn for this network's own seed and constants
            out["random_feedback.b"] = (self.signal.b, self.feedback_.T.ravel() * volt)
        return out

    def _build(self, device_name, build_dir, capacity):
        p = self.params
        k = lif_constants(p.lif, p.dt)
        build_dir = devices.activate(device_name, build_dir)
        defaultclock.dt = p.dt
        t_sample = self.sample_duration
        n_h, n_out = p.n_hidden, self.n_classes
        self.target = TimedArray(np.zeros((self.chunk_size + 1, n_out)), dt=t_sample, name="class_target")
        self.gate = TimedArray(np.zeros(self.chunk_size + 1), dt=t_sample, name="learning_gate")
        # The integration constants (alpha_m, alpha_s, c_mv: see models.lif_torch), the unit and the
        # surrogate slope are (shared, constant) variables of each group that needs them, so that
        # run_args can change them with the neuron's constants; the rest is built in.
        consts = dict(beta1=0.9, beta2=0.999, adam_eps=1e-8 / volt, T=t_sample,
                      rate_penalty=p.rate_penalty / Hz ** 2, target_rate=p.target_rate,
                      class_target=self.target, learning_gate=self.gate)
        self.replay = SpikeReplay.create(self.n_inputs, capacity, extra_equations="pI : 1\n" + KERNEL_CONSTANTS,
                                         extra_reset="pI += 1", namespace=consts)
        hidden = lif_group(n_h, p.lif, extra_equations=COUNT_EQUATION + """
pI : 1
qv : 1
L : 1
rate_error : 1
lr : volt (shared, constant)
slope : 1 (shared, constant)
adam_step : 1 (shared)
learn : 1 (shared)
""" + KERNEL_CONSTANTS, reset="v = v_reset\npI += 1\n" + COUNT_RESET, name="hidden", namespace=consts)
        hidden.lr, hidden.slope = p.learning_rate, p.surrogate_slope
        readout = NeuronGroup(n_out, """
y : volt
I_out : volt
ysum : 1
ce : 1
Z : 1
target : 1
prob = exp(y / unit) / Z : 1
""" + KERNEL_CONSTANTS, name="readout", namespace=consts)
        for group in (self.replay.group, hidden, readout):
            group.alpha_m, group.alpha_s, group.c_mv, group.unit = k.alpha_mem, k.alpha_syn, k.coupling, self.unit
        norm = Synapses(readout, readout, "Z_post = exp(y_pre / unit_post) : 1 (summed)", name="softmax_norm",
                        namespace=consts)
        norm.connect()
        plastic = []
        inp = Synapses(self.replay.group, hidden, PLASTIC_MODEL, on_pre="I_syn_post += w", on_post="eps = 0",
                       name="input_synapses", namespace=consts)
        inp.connect()
        plastic.append(inp)
        if p.recurrent:
            rec = Synapses(hidden, hidden, PLASTIC_MODEL, on_pre="I_syn_post += w", on_post="eps = 0",
                           name="recurrent_synapses", namespace=consts)
            rec.connect()
            plastic.append(rec)
        # The learning signal L_j = sum_k B_jk (pi_k - target_k): through the readout weights themselves
        # (symmetric e-prop, so B follows W_out as it learns) or through fixed random weights.
        readout_model = READOUT_MODEL
        if p.feedback == "symmetric":
            readout_model += "L_pre = (w / unit_post) * (prob_post - target_post) : 1 (summed)\n"
        out = Synapses(hidden, readout, readout_model, on_pre="I_out_post += w", name="readout_synapses",
                       namespace=consts)
        out.connect()
        objects = [self.replay.group, hidden, readout, norm, *plastic, out]
        if p.feedback == "random":
            signal = Synapses(readout, hidden, "L_post = (b / unit_post) * (prob_pre - target_pre) : 1 (summed)\nb : volt",
                              name="random_feedback", namespace=consts)
            signal.connect()
            signal.b = self.feedback_.T.ravel() * volt  # synapse (k, j) holds B_jk
            objects.append(signal)
            self.signal = signal
        # Within the 'groups' slot the softmax normaliser must be summed before the learning signal.
        norm.summed_updaters["Z_post"].order = hidden.order - 10

        ops = []
        # -- at each sample start: the update of the sample that just ended (gated by its 'learn'),
        #    then every state back to rest
        ops.append(hidden.run_regularly("adam_step = adam_step + learn", dt=t_sample, when="start", order=-45))
        if p.rate_penalty > 0:
            ops.append(hidden.run_regularly("rate_error = rate_penalty * (count / T - target_rate) / T",
                                            dt=t_sample, when="start", order=-45))
        if p.update == "sample":
            add_reg = "grad = grad + reg * rate_error_post\n" if p.rate_penalty > 0 else ""
            for syn in plastic:
                ops.append(syn.run_regularly(add_reg + _adam("post"), dt=t_sample,
                                             when="start", order=-40))
            ops.append(out.run_regularly(_adam("pre"), dt=t_sample, when="start", order=-40))
        ops.append(hidden.run_regularly(
            "learn = learning_gate(t)\nv = v_rest\nI_syn = 0*volt\npI = 0\nqv = 0\n"
            "lastspike = -1e4*second\nnot_refractory = True", dt=t_sample, when="start", order=-30))
        ops.append(self.replay.group.run_regularly("pI = 0", dt=t_sample, when="start", order=-30))
        for syn in plastic:
            ops.append(syn.run_regularly("eps = 0\nebar_I = 0/volt\nebar_v = 0/volt\ngrad = 0/volt\nreg = 0/volt",
                                         dt=t_sample, when="start", order=-29))
        ops.append(out.run_regularly("grad = 0/volt", dt=t_sample, when="start", order=-29))
        ops.append(readout.run_regularly("y = 0*volt\nI_out = 0*volt\nysum = 0\nce = 0\ntarget = class_target(t, i)",
                                         dt=t_sample, when="start", order=-28))
        # -- every step, 'start': the readout and the readout-kernel trace of the hidden spikes
        #    advance (exact integration); eligibility vectors advance with last step's presynaptic
        #    traces; then those traces decay (this step's spikes add to them in the resets)
        ops.append(readout.run_regularly("y = alpha_m * y + c_mv * I_out\nI_out = alpha_s * I_out",
                                         when="start", order=0))
        ops.append(hidden.run_regularly("qv = alpha_m * qv + c_mv * pI", when="start", order=0))
        free = "int(timestep(t - lastspike_post, dt) >= timestep(t_ref_post, dt))"
        for syn in plastic:
            ops.append(syn.run_regularly(f"eps = eps + {free} * ((alpha_m_post - 1) * eps + c_mv_post * pI_pre)",
                                         when="start", order=1))
        ops.append(self.replay.group.run_regularly("pI = alpha_s * pI", when="start", order=3))
        ops.append(hidden.run_regularly("pI = alpha_s * pI", when="start", order=3))
        # -- 'thresholds', before the threshold test (this step's v, softmax and learning signal are
        #    known): pseudo-derivative, filtered eligibility trace, gradients
        psi = ("int(not_refractory_post) / (unit_post * (slope_post * abs((v_post - v_threshold_post) / unit_post)"
               " + 1)**2)")
        step = (f"ebar_v = alpha_m_post * ebar_v + c_mv_post * ebar_I\n"
                f"ebar_I = alpha_s_post * ebar_I + {psi} * eps\n"
                f"grad = grad + L_post * ebar_v\n")
        if p.rate_penalty > 0:
            step += f"reg = reg + {psi} * eps\n"
        if p.update == "online":
            step += "w = w - learn_post * lr_post * unit_post * L_post * ebar_v\n"
        for syn in plastic:
            ops.append(syn.run_regularly(step, when="thresholds", order=-5))
        out_step = "grad = grad + (prob_post - target_post) * qv_pre / unit_post\n"
        if p.update == "online":
            out_step += "w = w - learn_pre * lr_pre * (prob_post - target_post) * qv_pre\n"
        ops.append(out.run_regularly(out_step, when="thresholds", order=-5))
        ops.append(readout.run_regularly("ysum = ysum + y / unit\nce = ce - target * log(prob)",
                                         when="thresholds", order=-5))
        # -- per-sample records, read at the next sample start before anything is reset
        self.readout_monitor = StateMonitor(readout, ["ysum", "ce"], record=True, dt=t_sample, when="start",
                                            order=-50)
        self.counter, counter_objects = BinnedCounter.attach(hidden, t_sample, 1)
        self.hidden, self.readout, self.plastic, self.out = hidden, readout, plastic, out
        net = Network(*objects, self.readout_monitor, *counter_objects)
        self.compiled = devices.CompiledNetwork(net, self.chunk_size * t_sample + self.dt, device_name, build_dir)

    def _synapses(self):
        names = ["in", "rec"] if self.params.recurrent else ["in"]
        return list(zip(names, self.plastic)) + [("out", self.out)]

    def extra_run_args(self, samples: list[SpikeSample], learn: bool = False, probe: bool = False) -> dict:
        """``probe``: step size 0 and fresh Adam moments (see :meth:`gradient`)."""
        target = np.zeros((self.chunk_size + 1, self.n_classes))
        target[np.arange(len(samples)), [s.label for s in samples]] = 1.0
        gate = np.zeros(self.chunk_size + 1)
        gate[:len(samples)] = 1.0 if learn else 0.0
        args = {self.target: target, self.gate: gate, self.hidden.adam_step: self.state_["adam_step"]}
        if probe:
            args[self.hidden.lr] = 0 * volt
        for name, syn in self._synapses():
            keep = 0.0 if probe else 1.0
            args[syn.w] = self.state_[f"w_{name}"].ravel() * volt
            args[syn.m] = keep * self.state_[f"m_{name}"].ravel() / volt
            args[syn.s2] = keep * self.state_[f"s2_{name}"].ravel() / volt ** 2
        return args

    def collect(self, n_samples: int, learn: bool = False, probe: bool = False) -> dict:
        if learn and not probe:
            for name, syn in self._synapses():
                shape = self.state_[f"w_{name}"].shape
                self.state_[f"w_{name}"] = np.asarray(syn.w[:] / volt).reshape(shape)
                self.state_[f"m_{name}"] = np.asarray(syn.m[:] * volt).reshape(shape)
                self.state_[f"s2_{name}"] = np.asarray(syn.s2[:] * volt ** 2).reshape(shape)
            self.state_["adam_step"] = float(np.asarray(self.hidden.adam_step[:]).ravel()[0])
        ysum = np.asarray(self.readout_monitor.ysum)[:, 1:1 + n_samples].T
        ce = np.asarray(self.readout_monitor.ce)[:, 1:1 + n_samples].sum(axis=0)
        return {"logits": ysum, "loss": ce, "counts": self.counter.counts(n_samples)[:, 0]}

    def gradient(self, sample: SpikeSample) -> dict[str, np.ndarray]:
        """e-prop's ``dE/dW`` (1/volt) for one sample at the current weights, which stay unchanged.

        The sample runs with learning on, a step size of 0 and fresh Adam moments, so Adam's first
        moment after the sample's update is exactly ``(1 - beta1) * grad``.
        """
        self.run_chunk([sample], learn=True, probe=True)
        return {name: np.asarray(syn.m[:] * volt).reshape(self.state_[f"w_{name}"].shape) / 0.1
                for name, syn in self._synapses()}

    def present(self, samples: list[SpikeSample], learn: bool, progress: str | None = None, workers: int = 1,
                start_chunk: int = 0, on_chunk=None) -> dict:
        parts = super().present(samples, progress=progress, workers=1 if learn else workers,
                                start_chunk=start_chunk, on_chunk=on_chunk, learn=learn)
        if not parts:
            return {"logits": np.zeros((0, self.n_classes)), "loss": np.zeros(0), "counts": np.zeros((0, self.params.n_hidden))}
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
