"""The comparison's rule/seed runs trained at once: local processes and a Dask cluster give the
serial result."""

import json
import os

import numpy as np
import pytest
import xarray as xr


def _compare(out, *extra):
    from studies import compare_shd

    return xr.load_dataset(compare_shd.main([
        "--dataset", "synthetic", "--n-train", "40", "--n-test", "20", "--seeds", "1", "--trials", "0", "--dt", "10ms",
        "--rules", "bptt", "counts", "--set", "bptt.epochs=2", "bptt.n_hidden=12",
        "--out", str(out), *extra]))


@pytest.mark.slow
def test_runs_at_once_match_runs_one_after_another(tmp_path):
    serial = _compare(tmp_path / "serial")
    local = _compare(tmp_path / "local", "--pair-workers", "2")
    dask = _compare(tmp_path / "dask", "--local-cluster", "2")
    assert list(serial.rule.values) == ["bptt", "bptt_off", "counts"]
    for other in (local, dask):
        # a Dask task uses one thread, a spawned run as many as BLAS and PyTorch take: sums in another
        # order may flip one of the 20 test samples (or a tie between readout strengths on validation)
        np.testing.assert_allclose(other.test_accuracy, serial.test_accuracy, atol=1 / 20 + 1e-9)
        assert other.test_accuracy.notnull().all()
    # runs at once share the cores out: each of 2 runs takes half of them (PyTorch's threads), not all
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for path in (tmp_path / "local" / "runs").glob("bptt*.nc"):
        assert json.loads(xr.load_dataset(path).attrs["hardware"])["torch_threads"] == max(1, cores // 2)
    assert sorted(p.name for p in (tmp_path / "dask" / "runs").glob("*.nc")) == sorted(
        p.name for p in (tmp_path / "serial" / "runs").glob("*.nc"))
