"""Analysis: plots from small results files, intervals, synaptic-operation counts, the report end to end."""

import json

import numpy as np
import pytest
import xarray as xr

from analysis import plots
from analysis.stats import mean_ci


def _compare_ds():
    rules, seeds = ["stdp", "bptt", "counts"], [0, 1, 2]
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.3, 0.9, (3, 3))
    ds = xr.Dataset({
        "test_accuracy": (("rule", "seed"), acc, {"units": "1", "long_name": "test accuracy"}),
        "synaptic_operations_per_sample": (("rule", "seed"), rng.uniform(1e4, 1e6, (3, 3)),
                                           {"units": "1", "long_name": "synaptic events per inference"}),
        "val_accuracy": (("rule", "seed", "epoch"), rng.uniform(0, 1, (3, 3, 4)), {"units": "1", "long_name": "validation accuracy"}),
        "train_accuracy": (("rule", "seed", "epoch"), rng.uniform(0, 1, (3, 3, 4)), {"units": "1", "long_name": "training accuracy"}),
        "energy_per_inference": (("rule", "seed"), rng.uniform(0.1, 2, (3, 3)), {"units": "uJ", "long_name": "energy"}),
        "train_seconds": (("rule", "seed"), rng.uniform(1, 100, (3, 3)), {"units": "s", "long_name": "training time"}),
        "confusion": (("rule", "true_class", "predicted_class"), rng.integers(0, 5, (3, 4, 4)),
                      {"units": "1", "long_name": "test confusion matrix"}),
    }, coords={"rule": rules, "seed": seeds, "epoch": [1, 2, 3, 4]})
    ds.attrs.update(n_classes=10, dataset="synthetic", class_names='["zero", "one", "two", "three"]')
    return ds


def _single_ds():
    return xr.Dataset({
        "val_accuracy": ("epoch", [0.2, 0.5, 0.4], {"units": "1", "long_name": "validation accuracy"}),
        "train_accuracy": ("epoch", [0.3, 0.6, 0.7], {"units": "1", "long_name": "training accuracy"}),
        "best_epoch": ((), 2, {"units": "1", "long_name": "epoch chosen"}),
        "confusion": (("true_class", "predicted_class"), np.eye(4, dtype=int) * 5, {"units": "1", "long_name": "test confusion matrix"}),
        "test_counts": (("test_sample", "time_bin", "neuron"), np.ones((2, 5, 8)), {"units": "1", "long_name": "counts"}),
        "test_label": ("test_sample", [3, 1], {"units": "1", "long_name": "class"}),
    }, coords={"epoch": [1, 2, 3]}, attrs={"rule": "stdp", "dataset": "synthetic"})


def _summary_ds():
    return xr.Dataset({
        "spikes_per_sample": ("sample", [100.0, 200.0, 150.0], {"units": "1", "long_name": "spikes per training sample"}),
        "active_channels": ("sample", [10.0, 20.0, 15.0], {"units": "1", "long_name": "active channels"}),
        "channel_rate": ("channel", np.arange(5.0), {"units": "Hz", "long_name": "rate per channel"}),
        "raster_unit": ("spike", [0, 1, 2, 3], {"units": "1", "long_name": "channel"}),
        "raster_time": ("spike", [0.1, 0.2, 0.1, 0.3], {"units": "s", "long_name": "time"}),
        "raster_class": ("spike", [0, 0, 1, 1], {"units": "1", "long_name": "class"}),
    }, coords={"channel": np.arange(5)}, attrs={"dataset": "fsdd"})


def _bench_ds():
    return xr.Dataset({
        "eprop_peak_memory": ("sequence_steps", [15.0, 15.2], {"units": "MiB", "long_name": "e-prop"}),
        "bptt_peak_memory": ("sequence_steps", [18.0, 175.0], {"units": "MiB", "long_name": "BPTT"}),
    }, coords={"sequence_steps": [100, 1000]}, attrs={"benchmark": "eprop_speed_memory"})


def _scan_ds():
    ds = xr.Dataset({"test_accuracy": (("tau_mem", "v_threshold", "seed"), np.random.default_rng(1).uniform(0, 1, (3, 2, 2)),
                                       {"units": "1", "long_name": "test accuracy"})},
                    coords={"tau_mem": ["10. ms", "20. ms", "40. ms"], "v_threshold": ["10. mV", "15. mV"], "seed": [0, 1]})
    ds.attrs["scan_parameters"] = "tau_mem,v_threshold"
    return ds


def _stdp_ds():
    rng = np.random.default_rng(2)
    ds = _single_ds()
    ds["weights"] = (("input", "neuron"), rng.uniform(0, 1, (12, 8)), {"units": "1", "long_name": "learned weights"})
    ds["initial_weights"] = (("input", "neuron"), rng.uniform(0, 0.3, (12, 8)), {"units": "1", "long_name": "initial weights"})
    ds["active_neurons"] = ("test_sample", [1, 2], {"units": "1", "long_name": "neurons active per test sample"})
    ds["active_neurons_frozen"] = ("test_sample", [3, 5], {"units": "1", "long_name": "neurons active, frozen"})
    return ds


def _evidence_ds():
    rng = np.random.default_rng(3)
    ds = xr.Dataset({
        "test_accuracy": (("dataset", "seed", "network", "readout"), rng.uniform(0, 1, (2, 3, 2, 2)),
                          {"units": "1", "long_name": "test accuracy"}),
        "accuracy_gain_mean": (("dataset", "readout"), rng.uniform(-0.1, 0.1, (2, 2)), {"units": "1", "long_name": "gain"}),
        "accuracy_gain_low": (("dataset", "readout"), np.full((2, 2), -0.2), {"units": "1", "long_name": "low"}),
        "accuracy_gain_high": (("dataset", "readout"), np.full((2, 2), 0.2), {"units": "1", "long_name": "high"}),
        "chance": ("dataset", [0.05, 0.1], {"units": "1", "long_name": "chance"}),
        "stdp_weights": (("dataset", "network", "input", "neuron"), rng.uniform(0, 1, (2, 2, 12, 8)),
                         {"units": "1", "long_name": "weights"}),
    }, coords={"dataset": ["synthetic", "fsdd"], "seed": [0, 1, 2], "network": ["trained", "frozen"],
               "readout": ["assignment", "logistic"]})
    return ds


@pytest.mark.parametrize("make, expected", [
    (_compare_ds, {"accuracy_by_rule", "accuracy_vs_synops", "accuracy_vs_energy", "accuracy_vs_training_time",
                   "learning_curves", "confusions"}),
    (_single_ds, {"learning_curve", "confusion", "response"}),
    (_summary_ds, {"raster", "channel_rates", "spikes_per_sample"}),
    (_bench_ds, {"memory_vs_length"}),
    (_scan_ds, {"scan"}),
    (_stdp_ds, {"learning_curve", "confusion", "response", "stdp_weights", "active_neurons"}),
    (_evidence_ds, {"stdp_weights", "stdp_evidence"}),
])
def test_every_plot_builds_with_labelled_axes(make, expected):
    ds = make()
    found = dict(plots.applicable(ds))
    assert set(found) == expected
    for name, plot in found.items():
        ax = plot(ds)
        assert ax.get_xlabel() and ax.get_ylabel(), f"{name} needs labelled axes"
        if name == "confusions":  # one panel per rule, classes by name
            panels = [a for a in ax.figure.axes if a.get_title()]
            assert [a.get_title() for a in panels] == ["stdp", "bptt", "counts"]
            assert [t.get_text() for t in panels[0].get_xticklabels()] == ["zero", "one", "two", "three"]
        plots.plt.close(ax.figure)


def test_interval_of_the_mean():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 1
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert np.isnan(mean_ci([0.5])[1]) and mean_ci([0.5])[0] == 0.5
    assert mean_ci([1.0, np.nan, 3.0])[0] == 2.0


def test_synaptic_operations_counted_by_hand():
    """Reservoir of 3 neurons: 0 -> 1, 0 -> 2, 2 -> 1; input channel 0 -> neurons 0 and 1, channel 1 -> neuron 2.
    One sample with input spikes on channels 0, 0, 1 and reservoir spikes 2 x neuron 0, 1 x neuron 2:
    input events 2 + 2 + 1 = 5, recurrent events 2 x 2 + 1 x 1 = 5, so 10 in all."""
    from brian2 import second

    from datasets.records import SpikeSample
    from learning_rules.lsm import Liquid

    liquid = object.__new__(Liquid)
    liquid.out_degree_ = np.bincount([0, 0, 2], minlength=3)
    liquid.input_out_degree_ = np.bincount([0, 0, 1], minlength=2)
    sample = SpikeSample(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3]) * second, 0)
    counts = np.array([[[2, 0, 1]]], dtype=float)  # (sample, bin, neuron)
    assert liquid.synaptic_operations([sample], counts).tolist() == [10.0]


@pytest.mark.slow
def test_report_builds_end_to_end_from_a_tiny_comparison(tmp_path, tmp_path_factory):
    from analysis import report
    from studies import compare_shd

    path = compare_shd.main(["--dataset", "synthetic", "--n-train", "60", "--n-test", "30", "--duration", "300ms", "--seeds", "2", "--trials", "0",
                             "--rules", "stdp", "bptt", "counts", "--set", "bptt.epochs=2", "bptt.n_hidden=16",
                             "stdp.n_neurons=20", "stdp.epochs=1", "counts.dt=10ms", "--out", str(tmp_path / "cmp")])
    ds = xr.load_dataset(path)
    # the learning-off controls of STDP and BPTT run beside them; every run is scored on the same test samples
    assert list(ds.rule.values) == ["stdp", "stdp_off", "bptt", "bptt_off", "counts"]
    assert ds.test_accuracy.shape == (5, 2) and not np.isnan(ds.test_accuracy.values).any()
    assert ds.test_correct.shape == (5, 2, 30) and set(np.unique(ds.test_correct.values)) <= {0, 1}
    np.testing.assert_allclose(ds.test_correct.mean("test_sample").sel(rule=["bptt", "counts"]),
                               ds.test_accuracy.sel(rule=["bptt", "counts"]))
    # a rule's own time step (counts.dt) is recorded per rule, not hidden behind the first rule's
    assert ds.attrs["preprocessing_per_rule"] == 1
    steps = {rule: prep["dt"] for rule, prep in json.loads(ds.attrs["preprocessing"]).items()}
    assert steps["counts"] != steps["bptt"] == steps["stdp"], steps
    # the frozen STDP network's training cost: presenting the training and validation samples, fitting its readout
    assert (ds.train_seconds.sel(rule="stdp_off") > 0).all()
    # a learning-off control is its rule's network: the same same-size dense cost, on the rule's own time grid
    dense = ds.dense_energy_per_inference
    np.testing.assert_allclose(dense.sel(rule="bptt_off"), dense.sel(rule="bptt"))
    np.testing.assert_allclose(dense.sel(rule="bptt"), ds.trainable_parameters.sel(rule="bptt") * 300 * compare_shd.ENERGY_MAC_PJ * 1e-6)
    assert np.isnan(dense.sel(rule="counts")).all()
    # every operation of an inference, the readouts' included (the count control's dense readout too)
    np.testing.assert_allclose(ds.operations_per_inference,
                               ds.synaptic_operations_per_sample + ds.readout_macs_per_sample.fillna(0))
    assert (ds.operations_per_inference.sel(rule="counts") > ds.synaptic_operations_per_sample.sel(rule="counts")).all()
    # the load each run's wall time was measured under, run by run
    assert len(json.loads(ds.attrs["run_load_1min"])) == 10
    # every run's whole wall time is kept, the count control's too, at least its training time
    assert (ds.wall_seconds >= ds.train_seconds).all()
    off = xr.load_dataset(tmp_path / "cmp" / "runs" / "bptt_off_seed0.nc")
    assert '"train_hidden": false' in off.attrs["config"]
    md = report.main([str(path), "--out", str(tmp_path / "report")]).read_text()
    assert "the 1-minute load ranged from" in md
    assert "| stdp |" in md and "## Conclusions" in md and "figures/" in md
    cost = md.split("### Cost of learning")[1]
    row = next(line for line in cost.splitlines() if line.startswith("| counts |")).split(" | ")
    assert row[4] == f"{float(ds.wall_seconds.sel(rule='counts').sum()) / 60:.1f}", row
    # training events: every presentation of a training sample (STDP presents a sample again while its layer is silent)
    stdp = xr.load_dataset(tmp_path / "cmp" / "runs" / "stdp_seed0.nc")
    presented = float(ds.train_sample_epochs.sel(rule="stdp", seed=0)) * float(stdp.presentations_per_sample.mean())
    np.testing.assert_allclose(ds.train_synaptic_events.sel(rule="stdp", seed=0),
                               presented * ds.synaptic_operations_per_sample.sel(rule="stdp", seed=0))
    assert np.isfinite(ds.train_synaptic_events).all(), "every run's training events are counted, STDP frozen's too"
    others = ds.drop_sel(rule=["stdp"])
    np.testing.assert_allclose(others.train_synaptic_events,
                               others.train_sample_epochs * others.synaptic_operations_per_sample)
    assert "its generator's constants: `{" in md, "the report names the version of a generated set"
    assert "### Which rules can be told apart" in md and "| bptt | bptt_off |" in md and "Not tuned" in md
    # an untuned comparison names the options fixed by hand, rule by rule, rather than calling them defaults
    assert "  - bptt: `epochs=2, n_hidden=16`" in md and "  - stdp: `n_neurons=20, epochs=1`" in md
    assert "ran its default configuration" not in md
    # a learning-off control is described as its rule with the options that switch learning off
    assert "- **bptt_off** (local (readout only)): bptt with learning switched off (`train_hidden=false`)" in md
    # a file that is not a results file is refused with one line
    junk = tmp_path_factory.mktemp("junk") / "junk.nc"  # outside tmp_path, which holds results files only
    junk.write_text("not netCDF")
    with pytest.raises(SystemExit):
        report.main([str(junk), "--out", str(tmp_path / "report2")])
    best = str(ds.rule.values[np.argmax(ds.test_accuracy.mean("seed").values)])
    assert f"Highest mean test accuracy: **{best}**" in md
    assert (tmp_path / "report" / "figures").is_dir()
    # resume: nothing is rerun, the same combined numbers come back
    again = xr.load_dataset(compare_shd.main(["--dataset", "synthetic", "--n-train", "60", "--n-test", "30", "--duration", "300ms", "--seeds", "2", "--trials", "0",
                                              "--rules", "stdp", "bptt", "counts", "--set", "bptt.epochs=2",
                                              "bptt.n_hidden=16", "stdp.n_neurons=20", "stdp.epochs=1", "counts.dt=10ms", "--out", str(tmp_path / "cmp"), "--resume"]))
    np.testing.assert_array_equal(again.test_accuracy.values, ds.test_accuracy.values)


def _gain_ds():
    """Three local rules over 5 seeds and 400 test samples: learning helps a, hurts b, leaves c alone."""
    rng = np.random.default_rng(0)
    rules = ["a", "a_off", "b", "b_off", "c", "c_off"]
    rate = {"a": 0.9, "a_off": 0.5, "b": 0.3, "b_off": 0.7, "c": 0.6, "c_off": 0.6}
    correct = np.stack([(rng.random((5, 400)) < rate[r]).astype(np.int8) for r in rules])
    return xr.Dataset(
        {"test_accuracy": (("rule", "seed"), correct.mean(axis=2)),
         "test_correct": (("rule", "seed", "test_sample"), correct),
         "locality": ("rule", ["local", "local (readout only)", "three-factor", "local (readout only)", "local",
                               "local (readout only)"])},
        coords={"rule": rules, "seed": np.arange(5)}, attrs={"tuned": 1, "runs_at_once": "1"})


def test_the_locality_advice_says_whether_learning_helped_hurt_or_showed_nothing():
    from analysis.report import recommendations

    (line,) = [r for r in recommendations(_gain_ds()) if r.startswith("- **Locality**")]
    assert "measurably improved a over" in line
    assert "for b the network with learning switched off did measurably better" in line
    assert "for c no gain was shown" in line


@pytest.mark.not_results("files that are not results files, on purpose")
def test_the_report_refuses_a_file_it_cannot_read_or_that_is_not_results_with_one_line(tmp_path, capsys):
    from analysis import report

    junk = tmp_path / "junk.nc"
    junk.write_text("not netCDF")
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(foreign)
    for path, reason in ((junk, "cannot be read as netCDF"), (foreign, "not a results file of this project"),
                         (tmp_path / "absent.nc", "no such results file")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            report.main([str(path), "--out", str(tmp_path / "report")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(lines) == 1 and reason in lines[0], lines
