"""Smoke tests: every benchmark study runs at a tiny size and writes a sensible results file."""

import numpy as np
import xarray as xr


def test_bench_stdp_tiny(tmp_path):
    from studies import bench_stdp

    ds = xr.load_dataset(bench_stdp.main(["--n-neurons", "10", "--n-samples", "4", "--out", str(tmp_path)]))
    assert ds.samples_per_second > 0 and ds.input_spikes_per_sample > 1000
    assert ds.synaptic_events_per_second > 0


def test_bench_bptt_tiny(tmp_path):
    from studies import bench_bptt

    ds = xr.load_dataset(bench_bptt.main(["--n-samples", "80", "--repeats", "1", "--steps", "50", "200",
                                          "--out", str(tmp_path)]))
    assert (ds.epoch_seconds_per_1000 > 0).all() and (ds.speedup > 0).all()
    held = ds.held_for_backward.sel(implementation="ours")
    assert float(held[1]) > 3 * float(held[0]), "BPTT's memory grows with the number of steps"
    np.testing.assert_allclose(held, ds.state_computed, rtol=0.05)


def test_bench_cochlea_tiny(tmp_path):
    import pytest

    from tests.test_cochlea import FSDD

    if not FSDD.is_dir():
        pytest.skip("the shared FSDD recordings are not beside the repository")
    from studies import bench_cochlea

    ds = xr.load_dataset(bench_cochlea.main(["--data-dir", str(FSDD), "--n-files", "60", "--out", str(tmp_path)]))
    assert ds.files == 60 and ds.conversion_seconds > 0 and ds.median_spikes_per_sample > 500


def test_bench_lsm_tiny(tmp_path):
    from studies import bench_lsm

    ds = xr.load_dataset(bench_lsm.main(["--n-neurons", "50", "--n-samples", "4", "--chunk-size", "2",
                                         "--out", str(tmp_path)]))
    assert list(ds.workers.values) == [1, 2] and (ds.samples_per_second > 0).all()


def test_bench_eprop_tiny(tmp_path):
    from studies import bench_eprop

    ds = xr.load_dataset(bench_eprop.main(["--n-samples", "4", "--lengths", "50", "400", "--batch-size", "4",
                                           "--out", str(tmp_path)]))
    assert list(ds.implementation.values) == ["ours", "nest"] and (ds.seconds_per_sample > 0).all()
    assert ds.bptt_peak_memory[1] > ds.bptt_peak_memory[0], "BPTT keeps more for longer sequences"
    assert (ds.eprop_peak_memory > 1).all(), "the simulator binary must be seen running"
    assert ds.eprop_peak_memory[1] < 1.5 * ds.eprop_peak_memory[0] + 5, "e-prop's memory should not grow"
    # resident memory also holds the allocator's cached per-step temporaries: at least the computed state
    growth = (ds.bptt_peak_memory[1] - ds.bptt_peak_memory[0]) / (ds.bptt_state_computed[1] - ds.bptt_state_computed[0])
    assert float(growth) > 0.5, f"BPTT's resident memory grows only {float(growth):.2f}x as fast as its computed state"
    assert float(ds.data_parallel_weight_difference) < 1e-12 and float(ds.data_parallel_speedup) > 0
    assert np.isfinite(ds.data_parallel_equal_chunks_speedup) and ds.data_parallel_equal_chunks_speedup > 0


def test_bench_scan_tiny(tmp_path):
    from studies import bench_scan

    ds = xr.load_dataset(bench_scan.main(["--rule", "bptt", "--points", "2", "--n-train", "30", "--out", str(tmp_path)]))
    assert (ds.points_per_second > 0).all() and ds.speedup > 0
    assert list(ds.binaries_built.values) == [0, 0], "the PyTorch baseline compiles nothing"


def test_bench_compare_tiny(tmp_path):
    from studies import bench_compare

    ds = xr.load_dataset(bench_compare.main(["--n-train", "20", "--n-test", "10", "--rules", "bptt", "counts",
                                             "--set", "bptt.n_hidden=8", "--dt", "10ms", "--trials", "3",
                                             "--seeds", "2", "--dask-workers", "4", "--out", str(tmp_path)]))
    assert list(ds.rule.values) == ["bptt", "counts"] and (ds.seconds_per_sample_epoch > 0).all()
    assert ds.protocol_epochs.sel(rule="bptt") == 20, "the comparison's budget for BPTT"
    assert list(ds.has_ablation.values) == [1, 0]
    # the projection, recomputed from the measured figures: 3 trials and 2 seeds (+ control) per rule
    trial = 2250 * ds.protocol_epochs * ds.seconds_per_sample_epoch + ds.overhead_seconds
    run = trial + 250 * ds.seconds_per_sample_epoch  # a seed's run is also tested
    np.testing.assert_allclose(ds.tuning_core_hours * 3600, 3 * trial, rtol=1e-9)
    np.testing.assert_allclose(ds.seed_runs_core_hours * 3600, 2 * (1 + ds.has_ablation) * run, rtol=1e-9)
    total = float((ds.tuning_core_hours + ds.seed_runs_core_hours).sum())
    np.testing.assert_allclose(ds.protocol_wall_hours.values, [max(total / p, float(run.max()) / 3600) for p in (2, 4)])
