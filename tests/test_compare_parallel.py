"""The comparison's rule/seed runs trained at once: local processes and a Dask cluster give the
serial result."""

import numpy as np
import pytest
import xarray as xr


def _compare(out, *extra):
    from studies import compare_shd

    return xr.load_dataset(compare_shd.main([
        "--dataset", "synthetic", "--n-train", "40", "--n-test", "20", "--seeds", "2", "--trials", "0", "--dt", "10ms",
        "--rules", "bptt", "counts", "--set", "bptt.epochs=2", "bptt.n_hidden=12",
        "--out", str(out), *extra]))


@pytest.mark.slow
def test_runs_at_once_match_runs_one_after_another(tmp_path):
    serial = _compare(tmp_path / "serial")
    local = _compare(tmp_path / "local", "--pair-workers", "2")
    dask = _compare(tmp_path / "dask", "--local-cluster", "2")
    assert list(serial.rule.values) == ["bptt", "bptt_off", "counts"]
    for other in (local, dask):
        np.testing.assert_array_equal(other.test_accuracy.sel(rule="counts"), serial.test_accuracy.sel(rule="counts"))
        # BPTT in float32: a different thread count may reorder sums, and flip a sample at most
        np.testing.assert_allclose(other.test_accuracy.sel(rule=["bptt", "bptt_off"]),
                                   serial.test_accuracy.sel(rule=["bptt", "bptt_off"]), atol=1 / 20 + 1e-9)
    assert sorted(p.name for p in (tmp_path / "dask" / "runs").glob("*.nc")) == sorted(
        p.name for p in (tmp_path / "serial" / "runs").glob("*.nc"))
