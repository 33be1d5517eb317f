"""The state each rule keeps in order to learn, computed from the network's size, against what the
simulators actually hold: the tensors autograd saves for BPTT's backward pass, and the trace
variables of the Brian2 networks of e-prop and STDP."""

import numpy as np
import pytest
import torch
from brian2 import ms, second

from datasets import Preprocessing
from datasets.records import SpikeSample, preprocess
from learning_rules import eprop, stdp
from models.engine import devices
from models.lif import LIFParams
from models.lif_torch import RecurrentLIFNetwork, held_for_backward


def _saved_bytes(net, x, per_step: bool):
    target = torch.zeros(x.shape[0], dtype=torch.long)

    def loss_of(model):
        readout, _ = model(x)
        if per_step:
            return torch.nn.functional.cross_entropy(readout.flatten(0, 1), target.repeat_interleave(x.shape[1]))
        return torch.nn.functional.cross_entropy(readout.max(dim=1).values, target)

    return held_for_backward(net, loss_of)


@pytest.mark.parametrize("dt", [1 * ms, 5 * ms])  # with and without the refractory bookkeeping (t_ref 2 ms)
@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("train_hidden", [True, False])
def test_bptt_state_equals_what_autograd_saves(recurrent, train_hidden, dt):
    batch, steps, n_in, n_hidden, n_out = 3, 150, 40, 24, 5
    net = RecurrentLIFNetwork(n_in, n_hidden, n_out, LIFParams(), dt, recurrent=recurrent,
                              generator=torch.Generator().manual_seed(0))
    if not train_hidden:
        for p in (net.w_in, net.w_rec):
            if p is not None:
                p.requires_grad_(False)
    x = (torch.rand(batch, steps, n_in, generator=torch.Generator().manual_seed(1)) < 0.05).float()
    computed = sum(net.backward_state_bytes(batch, steps, train_hidden=train_hidden).values())
    for per_step in (False, True):
        measured = _saved_bytes(net, x, per_step)
        loss = 4 * batch * n_out * (steps if per_step else 1)  # the loss's softmax, not the network's state
        assert 0.95 * computed <= measured <= 1.05 * computed + loss, (computed, measured)
    longer = sum(net.backward_state_bytes(batch, 2 * steps, train_hidden=train_hidden).values())
    assert longer > 1.9 * computed, "BPTT's state grows with the sample's length"


def _samples(n_in):
    rng = np.random.default_rng(0)
    return [preprocess(SpikeSample(rng.integers(0, n_in, 100), rng.uniform(0, 0.05, 100) * second, 0),
                       Preprocessing(duration=50 * ms, dt=1 * ms))]


@pytest.mark.parametrize("self_connections", [True, False])
def test_eprop_state_counts_the_traces_of_the_built_network(tmp_path, self_connections):
    n_in, n_out = 12, 3
    params = eprop.EPropParams(n_hidden=7, self_connections=self_connections)
    net = eprop.EPropNetwork(params, n_in, n_out, dt=1 * ms, sample_duration=50 * ms, chunk_size=1, capacity=200,
                             device_name="runtime", build_dir=tmp_path, seed=0)
    try:
        synapse_values = sum(len(getattr(syn, name)[:]) for syn in net.plastic for name in ("eps", "ebar_I", "ebar_v"))
        stored = {np.dtype(syn.variables[name].dtype) for syn in net.plastic for name in ("eps", "ebar_I", "ebar_v")}
        neuron_values = len(net.replay.group.pI[:]) + sum(len(getattr(net.hidden, name)[:])
                                                          for name in ("pI", "qv", "L", "psi", "rate_error"))
    finally:
        devices.reset_brian()
    parts = eprop.learning_state_bytes(params, n_in)
    assert stored == {np.dtype(np.float32)}, f"the traces are stored as {stored}"
    assert parts["eligibility traces, three per plastic synapse"] == 4 * synapse_values  # float32 by default
    assert parts["traces per neuron (one per input, five per hidden neuron)"] == 8 * neuron_values
    assert eprop.learning_state_bytes(params, 2 * n_in) != parts, "more inputs, more traces"


def test_eprop_state_with_the_maximum_over_time_counts_the_replayed_sample_and_the_per_class_peaks(tmp_path):
    """The maximum-over-time loss presents each training sample twice, so it keeps the sample's input
    spikes (8 bytes each) and, per class, the readout's running maximum, its step, the error and the peak
    step: the state grows with the sample's length again, as BPTT's does, if far more slowly."""
    n_in, n_out = 12, 3
    params = eprop.EPropParams(n_hidden=7, readout_reduction="max")
    net = eprop.EPropNetwork(params, n_in, n_out, dt=1 * ms, sample_duration=50 * ms, chunk_size=2, capacity=200,
                             device_name="runtime", build_dir=tmp_path, seed=0)
    try:
        per_class = sum(len(getattr(net.readout, name)[:]) for name in ("ymax", "peak", "err", "tstar"))
    finally:
        devices.reset_brian()
    parts = eprop.learning_state_bytes(params, n_in, n_out, sample_spikes=300)
    per_step = eprop.learning_state_bytes(eprop.EPropParams(n_hidden=7), n_in, n_out, sample_spikes=300)
    extra = {k: v for k, v in parts.items() if k not in per_step}
    assert extra == {"the sample's input spikes, kept to present it again (maximum over time)": 8 * 300,
                     "per class: maximum, its step, error and peak step (maximum over time)": 8 * per_class}
    assert per_class == 4 * n_out


@pytest.mark.parametrize("max_delay", [0 * ms, 5 * ms])
def test_stdp_state_counts_the_traces_of_the_built_network(tmp_path, max_delay):
    n_in = 15
    params = stdp.STDPParams(n_neurons=6, rule="triplet", max_delay=max_delay)
    net = stdp.STDPNetwork(params, n_in, sample_duration=50 * ms, dt=0.5 * ms, chunk_size=1, capacity=200, n_bins=1,
                           device_name="runtime", build_dir=tmp_path, seed=0)
    try:
        pre = len(net.syn.xpre[:]) if max_delay > 0 else len(net.replay.group.apre[:])
        post = len(net.exc.post1[:]) + len(net.exc.post2[:])
        thresholds = len(net.exc.theta[:])
    finally:
        devices.reset_brian()
    assert sum(stdp.learning_state_bytes(params, n_in).values()) == 8 * (pre + post + thresholds)
