"""Parameter scans: Dask local cluster, kill and resume, failing points, bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from studies import scan

BASE = ["--rule", "bptt", "--dataset", "synthetic", "--n-train", "40", "--n-test", "20", "--set", "epochs=1"]
METRICS = ["test_accuracy", "best_val_accuracy", "spikes_per_sample", "synaptic_operations_per_sample", "error"]


def test_scan_on_a_dask_local_cluster_matches_local_processes(tmp_path):
    grid = ["--param", "tau_mem=10ms,30ms"]
    local = xr.load_dataset(scan.main(BASE + grid + ["--workers", "2", "--out", str(tmp_path / "local")]))
    # from the command line, as a researcher runs it (the script's functions must reach the workers)
    subprocess.run([sys.executable, str(Path(scan.__file__)), *BASE, *grid, "--local-cluster", "2", "--out",
                    str(tmp_path / "dask")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dask = xr.load_dataset(tmp_path / "dask" / "scan_bptt.nc")
    assert local.test_accuracy.dims == ("tau_mem", "seed") and list(local.tau_mem.values) == ["10ms", "30ms"]
    for name in METRICS:
        np.testing.assert_array_equal(local[name].values, dask[name].values)


@pytest.mark.slow
def test_killed_scan_resumes_to_the_uninterrupted_result(tmp_path):
    args = BASE + ["--param", "tau_mem=10ms,20ms,40ms", "--param", "v_threshold=10mV,12mV", "--workers", "1"]
    whole = xr.load_dataset(scan.main(args + ["--out", str(tmp_path / "whole")]))
    out = tmp_path / "killed"
    script = Path(scan.__file__)
    proc = subprocess.Popen([sys.executable, str(script), *args, "--out", str(out)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    points = out / "scan_bptt" / "points"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(points.glob("*.nc"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(points.glob("*.nc")))
    assert 2 <= done < 6, f"the scan should have been killed midway ({done} of 6 points done)"
    resumed = xr.load_dataset(scan.main(args + ["--out", str(out), "--resume"]))
    for name in METRICS:
        np.testing.assert_array_equal(whole[name].values, resumed[name].values)


@pytest.mark.parametrize("argv, message", [
    (["--param", "tau_foo=1ms"], "unknown option 'tau_foo'"),
    (["--param", "tau_mem="], "no values"),
    (["--param", "dt=10ms,2s"], "dt must not exceed the sample duration"),
    (["--param", "tau_mem=10ms", "--set", "epochz=2"], "unknown option 'epochz'"),
    (["--param", "seed=1,2"], "run setting"),
    (["--param", "tau_mem=10mV"], "wrong units"),
    (["--param", "tau_mem=-3ms"], "positive"),
    (["--param", "tau_mem=ten"], "unknown unit .ten."),
    (["--param", "n_hidden=1.5"], "whole number"),
])
def test_bad_names_values_and_units_give_clear_errors(tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        scan.main(BASE + argv + ["--out", str(tmp_path)])


def test_grid_file_and_malformed_param(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text('{"tau_syn": ["3ms", "6ms"], "learning_rate": [0.001]}')
    from studies import registry

    checked = scan.check_grid(registry.get("bptt"), {"tau_syn": ["3ms", "6ms"], "learning_rate": ["0.001"]}, {})
    assert checked["tau_syn"] == ["3ms", "6ms"]
    with pytest.raises(ValueError, match="NAME=V1,V2"):
        scan.main(BASE + ["--param", "tau_mem", "--out", str(tmp_path)])
    ds = xr.load_dataset(scan.main(BASE + ["--grid", str(grid), "--out", str(tmp_path)]))
    assert ds.test_accuracy.dims == ("tau_syn", "learning_rate", "seed") and ds.attrs["failed_points"] == 0


def test_points_of_other_configurations_are_never_reused(tmp_path):
    """A resume after changing --n-train runs every point again instead of mixing in the old ones."""
    first = xr.load_dataset(scan.main(BASE + ["--param", "tau_mem=10ms", "--out", str(tmp_path)]))
    points = tmp_path / "scan_bptt" / "points"
    assert len(list(points.glob("*.nc"))) == 1
    changed = [a if a != "40" else "50" for a in BASE]
    second = xr.load_dataset(scan.main(changed + ["--param", "tau_mem=10ms", "--out", str(tmp_path), "--resume"]))
    assert len(list(points.glob("*.nc"))) == 2, "a point of another configuration is a new point"
    assert first.attrs["failed_points"] == second.attrs["failed_points"] == 0


def test_brian2_scan_reuses_one_binary_per_worker_and_matches_fresh_builds(tmp_path):
    """tau_mem is a (shared, constant) variable of the liquid: the second point runs on the first
    point's binary, and gives what the same scan gives with every point built afresh."""
    lsm = ["--rule", "lsm", "--dataset", "synthetic", "--n-train", "40", "--n-test", "20",
           "--set", "device=cpp_standalone", "--param", "n_neurons=200", "--param", "tau_mem=10ms,30ms",
           "--workers", "1"]
    ds = xr.load_dataset(scan.main(lsm + ["--out", str(tmp_path / "reused")]))
    fresh = xr.load_dataset(scan.main(lsm + ["--no-reuse", "--out", str(tmp_path / "fresh")]))
    assert ds.attrs["failed_points"] == 0 and fresh.attrs["failed_points"] == 0
    np.testing.assert_array_equal(ds.reused_binary.values.ravel(), [0, 1])
    np.testing.assert_array_equal(fresh.reused_binary.values.ravel(), [0, 0])
    assert float(ds.build_seconds.values.ravel()[0]) > 0 and float(ds.build_seconds.values.ravel()[1]) == 0
    assert (fresh.build_seconds > 0).all()
    spikes = ds.spikes_per_sample.values.ravel()
    assert spikes[0] != spikes[1], "tau_mem must change the reservoir's activity"
    for name in ("test_accuracy", "spikes_per_sample", "synaptic_operations_per_sample"):
        np.testing.assert_array_equal(ds[name].values, fresh[name].values, err_msg=name)
    assert not (tmp_path / "reused" / "scan_lsm" / "build").exists(), "kept binaries are removed after the scan"


def test_a_point_made_from_another_version_of_a_generated_set_is_a_new_point(monkeypatch):
    from brian2 import ms

    from datasets import TimingConfig
    from models.units import config_json
    from studies import registry

    config = scan.point_config(registry.get("counts"), {"dataset": "synthetic"}, {"n_bins": "4"}, 0)
    key = scan.point_key(config)
    assert scan.point_key(config) == key
    monkeypatch.setattr(scan, "default_generator", lambda name: config_json(TimingConfig(spread=7 * ms)))
    assert scan.point_key(config) != key, "the set's constants are part of the point"
