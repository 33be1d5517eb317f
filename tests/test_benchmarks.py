"""Smoke tests: every benchmark study runs at a tiny size and writes a sensible results file."""

import xarray as xr


def test_bench_stdp_tiny(tmp_path):
    from studies import bench_stdp

    ds = xr.load_dataset(bench_stdp.main(["--n-neurons", "10", "--n-samples", "4", "--out", str(tmp_path)]))
    assert ds.samples_per_second > 0 and ds.input_spikes_per_sample > 1000
    assert ds.synaptic_events_per_second > 0


def test_bench_bptt_tiny(tmp_path):
    from studies import bench_bptt

    ds = xr.load_dataset(bench_bptt.main(["--n-samples", "64", "--repeats", "1", "--out", str(tmp_path)]))
    assert (ds.epoch_seconds_per_1000 > 0).all() and ds.speedup > 0
