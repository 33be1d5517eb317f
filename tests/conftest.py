"""Shared helpers for the tests: small Brian2 networks run on any device."""

from __future__ import annotations

import json
from pathlib import Path

import models  # noqa: F401  (first: it filters setuptools' warning before Brian2 is imported)
import numpy as np
import pytest
from brian2 import Network, SpikeMonitor, StateMonitor, Synapses, defaultclock, ms, mV

from datasets.records import SpikeSample
from models.engine import devices
from models.engine.compiled import CompiledNetwork
from models.engine.inputs import SpikeReplay, required_capacity, table_values
from models.lif import LIFParams, lif_group


def run_feedforward(samples: list[SpikeSample], w_in_mV: np.ndarray, params: LIFParams, device_name: str,
                    build_dir, *, dt=0.1 * ms, sample_steps: int, record_v: bool = False,
                    w_rec_mV: np.ndarray | None = None):
    """Drive LIF neurons through all-to-all input (and optionally recurrent) weights;
    returns (spike indices, spike steps, v or None)."""
    build_dir = devices.activate(device_name, build_dir)
    defaultclock.dt = dt
    n_in, n_out = w_in_mV.shape
    replay = SpikeReplay.create(n_in, required_capacity([samples], n_in))
    group = lif_group(n_out, params)
    syn = Synapses(replay.group, group, "w : volt", on_pre="I_syn_post += w")
    syn.connect()
    syn.w = w_in_mV.ravel() * mV  # connect() orders synapses by presynaptic index, then postsynaptic
    spikes = SpikeMonitor(group)
    objects = [replay.group, group, syn, spikes]
    if w_rec_mV is not None:
        rec = Synapses(group, group, "w : volt", on_pre="I_syn_post += w")
        rec.connect()
        rec.w = w_rec_mV.ravel() * mV
        objects.append(rec)
    if record_v:
        state = StateMonitor(group, "v", record=True)
        objects.append(state)
    net = Network(*objects)
    compiled = CompiledNetwork(net, len(samples) * sample_steps * dt, device_name, build_dir)
    compiled.run({replay.table: table_values(samples, n_in, replay.capacity, sample_steps, dt)})
    steps = np.rint(np.asarray(spikes.t / dt)).astype(int)
    v = np.asarray(state.v / mV) if record_v else None
    result = (np.asarray(spikes.i), steps, v)
    devices.reset_brian()
    return result


@pytest.fixture
def build_dir(tmp_path):
    return tmp_path / "build"


def pytest_configure(config):
    config.addinivalue_line("markers", "not_results(reason): the test leaves .nc files that are not results files "
                                       "(torn or foreign on purpose); the schema check skips them")
    import os
    import tempfile

    from models.engine import build_store

    if not hasattr(config, "workerinput") and not os.environ.get(build_store.LOG_ENV):
        # set before xdist starts its workers, so they and every process they start log their builds here
        config._build_log = Path(tempfile.mkdtemp(prefix="snn-rules-builds-")) / "builds.jsonl"
        os.environ[build_store.LOG_ENV] = str(config._build_log)


def pytest_unconfigure(config):
    import os
    import shutil

    from models.engine import build_store

    log = getattr(config, "_build_log", None)
    if log is not None:
        os.environ.pop(build_store.LOG_ENV, None)
        shutil.rmtree(log.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Where the suite's time compiling goes: standalone builds by test file, and the slowest tests' builds."""
    log = getattr(config, "_build_log", None)
    if log is None or not log.exists():
        return
    builds = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not builds:
        return
    seconds = sum(b["seconds"] for b in builds)
    write = terminalreporter.write_line
    terminalreporter.section(f"standalone builds: {len(builds)} ({sum(b['seeded'] for b in builds)} seeded from a kept "
                             f"build), {sum(max(b['compiled'], 0) for b in builds)} objects compiled, {seconds:.0f} s")
    for title, key, shown in (("by test file", lambda b: b["by"].split("::")[0], None),
                              ("by test (the 10 slowest)", lambda b: b["by"].rsplit(" (", 1)[0], 10)):
        groups: dict[str, list] = {}
        for b in builds:
            groups.setdefault(key(b), []).append(b)
        rows = sorted(groups.items(), key=lambda kv: -sum(b["seconds"] for b in kv[1]))
        write(f"{title}:   seconds  builds  objects")
        for name, group in rows[:shown]:
            write(f"  {sum(b['seconds'] for b in group):8.0f}  {len(group):6d}  "
                  f"{sum(max(b['compiled'], 0) for b in group):7d}  {name}")


@pytest.fixture(scope="session", autouse=True)
def one_build_store_per_test_session(tmp_path_factory):
    """Builds kept for reuse (models.engine.build_store) go to one folder of this session, shared by
    its workers and the processes they start, never to the user's cache."""
    import os

    from models.engine import build_store

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ[build_store.ENV] = str(shared / "brian2-builds")
    yield


@pytest.fixture(autouse=True)
def results_files_follow_the_schema(request):
    """After each test that used ``tmp_path``: every ``*.nc`` file left there holds what
    ``docs/results-schema.md`` promises (see ``tests/schema.py``)."""
    wanted = "tmp_path" in request.fixturenames and not request.node.get_closest_marker("not_results")
    folder = request.getfixturevalue("tmp_path") if wanted else None  # now: it must outlive this fixture
    yield
    if folder is None:
        return
    from tests.schema import check_folder

    found = check_folder(folder)
    if found:
        pytest.fail("results files that break docs/results-schema.md:\n  " + "\n  ".join(found), pytrace=False)
