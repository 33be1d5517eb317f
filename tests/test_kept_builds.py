"""One compiled binary, many constants: networks that reuse a kept build through ``run_args``."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from brian2 import Hz, mV, ms

from datasets import Preprocessing, load_splits
from datasets.synthetic_bursts import SyntheticConfig
from learning_rules.eprop import EPropNetwork, EPropParams
from learning_rules.lsm import Liquid, ReservoirParams
from learning_rules.stdp import STDPNetwork, STDPParams
from models.engine import devices
from models.engine.compiled import BuildCache
from models.engine.inputs import chunk_capacity
from models.lif import LIFParams

DATA = SyntheticConfig(n_channels=30, n_classes=3, n_train=12, n_test=3, duration=150 * ms, spikes_per_burst=4,
                       margin=20 * ms)
# Every neuron constant differs from the defaults the first network is built with.
LIF_B = LIFParams(tau_mem=14 * ms, tau_syn=7 * ms, v_rest=-1 * mV, v_reset=-2 * mV, v_threshold=8 * mV, t_ref=3 * ms)


def _samples(dt):
    splits = load_splits("synthetic", synthetic=DATA, preprocessing=Preprocessing(duration=150 * ms, dt=dt),
                         val_fraction=0.2)
    return splits.train.samples[:4]


def _stdp(params, device, build_dir, samples, seed=1, cache=None):
    return STDPNetwork(params, 30, sample_duration=150 * ms, dt=0.1 * ms, chunk_size=4,
                       capacity=chunk_capacity([samples], 4, 30), n_bins=3, device_name=device,
                       build_dir=build_dir, seed=seed, cache=cache)


def _liquid(params, device, build_dir, samples, seed=1, cache=None):
    return Liquid(params, 30, sample_duration=150 * ms, dt=0.1 * ms, chunk_size=4,
                  capacity=chunk_capacity([samples], 4, 30), n_bins=3, device_name=device, build_dir=build_dir,
                  seed=seed, cache=cache)


def _eprop(params, device, build_dir, samples, seed=1, cache=None):
    return EPropNetwork(params, 30, 3, dt=1 * ms, sample_duration=150 * ms, chunk_size=4,
                        capacity=chunk_capacity([samples], 4, 30), device_name=device, build_dir=build_dir, seed=seed,
                        cache=cache)


def _run_stdp(net, samples):
    counts = net.run_chunk(samples, learn=True)
    return {"counts": counts, "weights": net.weights_, "theta": net.theta_ / mV}


def _run_liquid(net, samples):
    return {"counts": net.run_chunk(samples)["counts"]}


def _run_eprop(net, samples):
    out = net.run_chunk(samples, learn=True)
    return {"logits": out["logits"], "counts": out["counts"], "w_in": net.state_["w_in"], "w_out": net.state_["w_out"]}


# 30 channels drive the paper's neuron weakly: a larger weight sum and input gain make it fire
STDP_A = STDPParams(n_neurons=8, w_sum_per_input=0.6, input_gain=3.0, min_spikes=0)
LSM_A = ReservoirParams(n_neurons=40, p_input=0.3, weight_scale=1.5)
EPROP_A = EPropParams(n_hidden=10, feedback="random", weight_scale=15.0)
CASES = {
    # every constant the network declares as run_args, changed at once
    "stdp": (_stdp, _run_stdp, 0.1 * ms, STDP_A, dataclasses.replace(
        STDP_A, v_rest_e=-64 * mV, v_reset_e=-66 * mV, v_threshold_e=-53 * mV, tau_mem_e=90 * ms, t_ref_e=4 * ms,
        e_inh_e=-95 * mV, theta_plus=0.1 * mV, tau_theta=5 * ms * 1000, v_rest_i=-61 * mV, v_reset_i=-46 * mV,
        v_threshold_i=-41 * mV, tau_mem_i=11 * ms, t_ref_i=3 * ms, e_exc=-2 * mV, tau_ge=1.5 * ms, tau_gi=2.5 * ms,
        eta=0.02, x_target=0.3, mu=0.3, w_max=0.9, eta_pre=2e-4, w_ei=9.0, w_ie=15.0, tau_pre=15 * ms,
        tau_post=25 * ms, tau_post_slow=35 * ms, w_init_max=0.25, w_sum_per_input=0.5), dict(n_neurons=9)),
    "lsm": (_liquid, _run_liquid, 0.1 * ms, LSM_A, dataclasses.replace(
        LSM_A, lif=LIF_B, w_ee=1.2 * mV, w_ei=2.5 * mV, w_ie=-3 * mV, w_ii=-5 * mV, weight_scale=2.0,
        w_input=4 * mV), dict(p_input=0.25)),
    "eprop": (_eprop, _run_eprop, 1 * ms, EPROP_A, dataclasses.replace(
        EPROP_A, lif=LIF_B, learning_rate=0.05 * mV, surrogate_slope=5.0, weight_scale=12.0),
        dict(target_rate=5 * Hz)),
}


@pytest.fixture(autouse=True)
def _reset_brian_afterwards():
    yield
    devices.reset_brian()


def test_every_rule_declares_only_its_own_constants():
    for network, params in ((STDPNetwork, STDP_A), (Liquid, LSM_A), (EPropNetwork, EPROP_A)):
        own = {f.name for f in dataclasses.fields(params)} | {f"lif.{f.name}" for f in dataclasses.fields(LIFParams)}
        assert set(network.RUN_ARG_CONSTANTS) <= own, network.__name__


@pytest.mark.parametrize("rule", ["stdp", "lsm", "eprop"])
def test_kept_binary_with_new_constants_equals_a_fresh_build(tmp_path, rule):
    make, run, dt, params_a, params_b, _ = CASES[rule]
    samples = _samples(dt)
    cache = BuildCache(tmp_path / "kept")
    first = make(params_a, "cpp_standalone", tmp_path / "unused_a", samples, cache=cache)
    result_a = run(first, samples)
    assert not first.reused_binary and first.build_seconds > 0
    second = make(params_b, "cpp_standalone", tmp_path / "unused_b", samples, cache=cache)
    assert second.reused_binary and second.build_seconds == 0
    assert second.compiled is first.compiled, "the second network must run the first one's binary"
    result_b = run(second, samples)
    cache.close()
    # the same constants built from scratch (runtime device: agrees with cpp_standalone, see the rule's tests)
    fresh = run(make(params_b, "runtime", tmp_path / "fresh", samples), samples)
    assert result_a["counts"].sum() > 0 and result_b["counts"].sum() > 0, "the network must fire"
    assert not np.array_equal(result_a["counts"], result_b["counts"]), "the new constants must change the run"
    for name, value in fresh.items():
        np.testing.assert_allclose(result_b[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("rule", ["stdp", "lsm", "eprop"])
def test_a_structural_constant_or_build_argument_builds_again(tmp_path, rule):
    make, _, dt, params_a, params_b, structural = CASES[rule]
    samples = _samples(dt)
    cache = BuildCache(tmp_path / "kept")
    make(params_a, "runtime", tmp_path, samples, cache=cache)
    assert make(params_b, "runtime", tmp_path, samples, cache=cache).reused_binary
    assert not make(dataclasses.replace(params_b, **structural), "runtime", tmp_path, samples, cache=cache).reused_binary
    # The liquid's seed draws its wiring, so it is part of the structure; the other rules' seeds
    # only draw initial weights, which every run passes anyway.
    again = make(dataclasses.replace(params_b, **structural), "runtime", tmp_path, samples, seed=5, cache=cache)
    assert again.reused_binary == (rule != "lsm")
    assert not make(params_a, "runtime", tmp_path, samples).reused_binary, "no reuse without a cache"
    # a network built outside the cache reset Brian2: the kept objects are gone, so it builds again
    assert not make(params_b, "runtime", tmp_path, samples, cache=cache).reused_binary


def _objects(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.o")}


def test_a_build_seeded_from_the_store_recompiles_only_what_changed(tmp_path, monkeypatch):
    """models.engine.build_store: a second build of one network in a fresh folder compiles nothing;
    a network of another size seeded from it recompiles some files, not all, and spikes exactly as
    a build made without the store."""
    from models.engine import build_store
    from tests.conftest import run_feedforward
    from tests.test_lif import PARAMS, _random_problem

    monkeypatch.setenv(build_store.ENV, str(tmp_path / "store"))
    monkeypatch.setenv(build_store.LOG_ENV, str(tmp_path / "builds.jsonl"))
    sample, weights = _random_problem()
    small = weights[:, :5]

    def run(w, folder):  # devices.reset_brian collects the last network: its objects free their names
        return run_feedforward([sample], w, PARAMS, "cpp_standalone", tmp_path / folder, sample_steps=600)

    first, again = run(weights, "a"), run(weights, "b")
    built = _objects(tmp_path / "a")
    assert built and _objects(tmp_path / "b") == built, "an unchanged network must not recompile"
    for got, expected in zip(again, first):
        np.testing.assert_array_equal(got, expected) if got is not None else None

    seeded = run(small, "c")
    recompiled = {name for name, stamp in _objects(tmp_path / "c").items() if built.get(name) != stamp}
    assert 0 < len(recompiled) < len(built), f"{len(recompiled)} of {len(built)} objects recompiled"
    monkeypatch.setenv(build_store.ENV, "off")
    fresh = run(small, "d")
    assert len(fresh[0]) > 0 and not np.array_equal(fresh[0], first[0])
    for got, expected in zip(seeded, fresh):
        np.testing.assert_array_equal(got, expected) if got is not None else None
    # the build log (the suite's summary of where compile time goes) says what each build did
    log = [json.loads(line) for line in (tmp_path / "builds.jsonl").read_text().splitlines()]
    assert [(b["seeded"], b["compiled"]) for b in log] == [(False, len(built)), (True, 0), (True, len(recompiled)),
                                                            (False, len(built))]
    assert all(b["by"].startswith("tests/test_kept_builds.py::") and b["seconds"] > 0 for b in log)


def test_the_store_survives_a_torn_entry_and_keeps_only_the_newest(tmp_path, monkeypatch):
    from models.engine import build_store

    monkeypatch.setenv(build_store.ENV, str(tmp_path / "store"))
    monkeypatch.setattr(build_store, "MAX_ENTRIES", 2)
    for name in ("k1", "k2", "k3"):
        project = tmp_path / name
        (project / "results").mkdir(parents=True)
        (project / "main.o").write_text(name)
        (project / "results" / "out").write_text("data of one run")
        build_store.keep(project, name)
    store = tmp_path / "store"
    assert sorted(p.name for p in store.iterdir() if p.is_symlink()) == ["k2", "k3"], "the least recently used key goes"
    entries = sorted(p.name.rsplit("-", 1)[0] for p in store.iterdir() if p.is_dir() and not p.is_symlink())
    assert entries == ["k2", "k3"], "and so does its build"
    before = os.readlink(store / "k3")
    build_store.keep(tmp_path / "k3", "k3")  # a newer build of k3: the link moves, the older entry stays a while
    assert os.readlink(store / "k3") != before and (store / before).is_dir()
    assert len([p for p in store.iterdir() if p.is_dir() and not p.is_symlink()]) == 3
    assert not (tmp_path / "store" / "k3" / "results").exists(), "run data is not part of a build"
    target = tmp_path / "fresh"
    target.mkdir()
    assert build_store.seed(target, "k3") and (target / "main.o").read_text() == "k3"
    assert not build_store.seed(target, "k3"), "a folder that already holds files is never overwritten"
    assert not build_store.seed(tmp_path / "other", "missing")

    def torn_copy(source, target, **kwargs):  # a copy that dies part-way (disk full, entry replaced meanwhile)
        (Path(target) / "sub").mkdir(parents=True)
        (Path(target) / "sub" / "half.o").write_text("trunc")
        raise OSError("No space left on device")

    monkeypatch.setattr(build_store.shutil, "copytree", torn_copy)
    torn = tmp_path / "torn"
    assert not build_store.seed(torn, "k3") and not any(torn.iterdir()), "a failed copy leaves nothing behind"
    monkeypatch.undo()
    monkeypatch.setenv(build_store.ENV, "off")
    assert build_store.root() is None and not build_store.seed(tmp_path / "x", "k3")
