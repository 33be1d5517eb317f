"""A rule brought by a researcher: one module (this one) and one registry entry, nothing else.

The toy rule is a readout-only baseline, the logistic readout of the input's total spike counts
per channel; it runs through a scan and through the comparison without any other file knowing it.
"""

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import ms

from datasets import Preprocessing, spike_counts
from learning_rules.readout import fit_logistic_readout, score_readout
from studies import compare_shd, registry, scan
from studies.config import RunConfig
from studies.results import scalar
from studies.run import Run


@dataclass(frozen=True)
class ToyParams:
    n_bins: int = 1  # time bins of the count features
    fail: bool = False  # raise inside the run (a point that fails at run time)


@dataclass(frozen=True)
class ToyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=1 * ms))  # time grid
    params: ToyParams = dataclasses.field(default_factory=ToyParams)  # the rule's constants


def run_toy(config: ToyConfig, cache=None) -> xr.Dataset:
    if config.params.fail:
        raise RuntimeError("the toy rule was asked to fail")
    job = Run("toy", config)
    t0 = time.perf_counter()
    splits = job.load_splits(config.input)
    x = [spike_counts(d.samples, splits.n_channels, config.params.n_bins, config.input.duration)
         for d in (splits.train, splits.val, splits.test)]
    fit = fit_logistic_readout(x[0], splits.train.labels, x[1], splits.val.labels, seed=config.run.seed)
    ds = xr.Dataset({
        "val_accuracy": ("epoch", [fit.val_accuracy], {"units": "1", "long_name": "validation accuracy"}),
        "test_accuracy": scalar(score_readout(fit, x[2], splits.test.labels), "1", "test accuracy"),
        "train_seconds": scalar(time.perf_counter() - t0, "s", "fitting time"),
        "trainable_parameters": scalar(x[0].shape[1] * splits.n_classes, "1", "readout weights"),
        "synaptic_operations_per_sample": scalar(0.0, "1", "none"),
    }, coords={"epoch": [1]})
    return job.finish(ds, device="none")


def summarize_toy(ds: xr.Dataset) -> str:
    return f"toy readout: test accuracy {float(ds.test_accuracy):.3f}"


TOY = registry.RuleSpec(name="toy", config=ToyConfig, run=run_toy, params=ToyParams, locality="no network",
                        summarize=summarize_toy, compare_defaults={"n_bins": 2})
BASE = ["--dataset", "synthetic", "--n-train", "40", "--n-test", "20"]


def test_a_toy_rule_runs_through_a_scan_and_a_comparison(tmp_path):
    registry.register(TOY)
    ds = xr.load_dataset(scan.main(["--rule", "toy", *BASE, "--param", "n_bins=1,4", "--param", "fail=false,true",
                                    "--workers", "2", "--out", str(tmp_path)]))
    assert ds.test_accuracy.dims == ("n_bins", "fail", "seed")
    ok = ds.test_accuracy.sel(fail="false").values
    assert np.all((ok >= 0) & (ok <= 1)) and ds.attrs["failed_points"] == 2
    assert "asked to fail" in str(ds.error.sel(n_bins="1", fail="true").values)
    path = compare_shd.main(["--rules", "toy", "counts", *BASE, "--seeds", "2", "--trials", "0", "--n-bins", "3",
                             "--out", str(tmp_path / "cmp")])
    combined = xr.load_dataset(path)
    assert list(combined.rule.values) == ["toy", "counts"] and not np.isnan(combined.test_accuracy.values).any()
    assert list(combined.locality.values) == ["no network", "no network"]
    # the shared option reached the toy rule (it has n_bins) over its own budget
    toy = xr.load_dataset(tmp_path / "cmp" / "runs" / "toy_seed0.nc")
    assert '"n_bins": 3' in toy.attrs["config"]


def run_toy_noting_where(config: ToyConfig, cache=None) -> xr.Dataset:
    ds = run_toy(config, cache)
    ds.attrs["seen_mark"] = os.environ.get("SNN_RULES_TEST_MARK", "")
    ds.attrs["seen_folder"] = os.getcwd()
    return ds


def test_a_comparisons_run_sees_its_environment_and_folder_as_they_are_when_it_starts(tmp_path, monkeypatch):
    # runs are forked from a server process started with the first of them: later runs must not
    # inherit the server's (stale) environment and working folder
    spec = dataclasses.replace(TOY, run=run_toy_noting_where)
    config = ToyConfig(run=RunConfig(dataset="synthetic", n_train=40, n_test=20, out=tmp_path))
    for mark in ("first", "second"):
        folder = tmp_path / mark
        folder.mkdir()
        monkeypatch.setenv("SNN_RULES_TEST_MARK", mark)
        monkeypatch.chdir(folder)
        ds = compare_shd.run_pair(spec, config, tmp_path / f"{mark}.nc", resume=False)
        assert ds.attrs["seen_mark"] == mark and Path(ds.attrs["seen_folder"]) == folder.resolve()


def test_registry_names_every_builtin_rule_and_refuses_unknown_ones():
    import pytest

    assert {"stdp", "lsm", "eprop", "bptt", "counts"} <= set(registry.names())
    for name in ("stdp", "lsm", "eprop", "bptt", "counts"):
        spec = registry.get(name)
        assert spec.name == name and dataclasses.is_dataclass(spec.config)
    with pytest.raises(ValueError, match="unknown rule 'hebb'"):
        registry.get("hebb")
