"""The tuning search: spaces checked before anything runs, failing trials recorded, one pruner for
rules trained over epochs, a killed search that resumes to the same trials, and a Dask cluster.

A toy rule trained over epochs (its validation accuracy a known curve of its options) keeps the
search tests fast; the Dask test tunes the real input-count control.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from brian2 import Quantity, ms, second

from datasets import Preprocessing
from models import files
from models.units import const
from studies import registry, tune
from studies.config import RunConfig, apply
from studies.results import scalar
from studies.run import Run, check_same_config
from studies.space import Choice, Float, Int, check_space

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CurveParams:
    rate: float = 0.5  # how fast validation accuracy rises with the epochs
    ceiling: float = 0.8  # where it saturates
    delay: float = 0.0  # seconds of sleep per epoch (to be killed mid-search)
    fail: bool = False  # raise inside the run
    last_samples: int = 0  # training samples the last epoch learned from, as when a budget stopped it (0: all)


@dataclass(frozen=True)
class CurveConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=1 * ms))  # time grid
    epochs: int = 4  # epochs
    max_train_seconds: float | None = None  # training wall time cap, checked after each epoch
    params: CurveParams = dataclasses.field(default_factory=CurveParams)  # the curve


def run_curve(config: CurveConfig, cache=None) -> xr.Dataset:
    """Validation accuracy ceiling * (1 - exp(-rate * epoch)), one epoch at a time, told to the listeners;
    a checkpoint after every epoch, from which ``--resume`` goes on as a study does."""
    p = config.params
    if p.fail:
        raise RuntimeError("the curve rule was asked to fail")
    if not config.run.validation_only:
        raise RuntimeError("a trial must run validation-only: the test split never enters the search")
    job = Run("curve", config)
    checkpoint = Path(config.run.out) / "checkpoints" / "curve.npz"
    state = files.load_arrays(checkpoint) if config.run.resume else None
    if state is not None:
        check_same_config(str(state.pop("config")), job.config_text, str(checkpoint))
    history = [] if state is None else list(state["history"])
    job.restored_epochs(history)
    resumed_at = len(history)
    for epoch in range(resumed_at + 1, config.epochs + 1):
        time.sleep(p.delay)
        if os.environ.get("CURVE_EPOCH_LOG"):  # which epochs this process computed, for the tests
            with open(os.environ["CURVE_EPOCH_LOG"], "a") as log:
                log.write(f"{Path(config.run.out).name} {epoch}\n")
        history.append(p.ceiling * (1 - np.exp(-p.rate * epoch)))
        files.save_arrays(checkpoint, config=job.config_text, history=np.array(history))
        stopped = p.last_samples > 0 and epoch == config.epochs
        job.end_epoch(epoch, history[-1], p.last_samples if stopped else None)
    return xr.Dataset({"val_accuracy": ("epoch", np.array(history), {"units": "1", "long_name": "validation accuracy"}),
                       "train_seconds": scalar(p.delay * (config.epochs - resumed_at), "s",
                                               "training time of this process (the epochs before a resume left out)")},
                      coords={"epoch": np.arange(1, config.epochs + 1)})


SPACE = {"rate": Float(0.05, 2.0, log=True), "ceiling": Float(0.2, 0.9), "fail": Choice(False, True)}
CURVE = registry.RuleSpec(name="curve", config=CurveConfig, run=run_curve, summarize=str, params=CurveParams,
                          locality="no network", search_space=SPACE)
DATA = ["--dataset", "synthetic_bursts", "--n-train", "40", "--n-test", "10"]


def test_a_search_records_failures_prunes_and_writes_a_usable_best_configuration(tmp_path):
    registry.register(CURVE)
    path = tune.main(["--rule", "curve", "--trials", "8", "--startup-trials", "2", *DATA,
                      "--max-sample-epochs", "100", "--out", str(tmp_path)])
    ds = xr.load_dataset(path)
    states = list(ds.state.values)
    assert ds.sizes["trial"] == 8 and ds.attrs["n_trials"] == 8
    # 36 training samples after validation: the cap of 100 sample-epochs leaves 2 of the 4 epochs
    assert ds.attrs["epochs_per_trial"] == 2 and ds.attrs["n_fit_samples"] == 36
    assert ds.attrs["max_sample_epochs"] == 100 and set(ds.sample_epochs.values) <= {0, 36, 72}
    failed = [i for i, s in enumerate(states) if s == "fail"]
    assert failed and all("asked to fail" in ds.error.values[i] for i in failed)
    assert all(ds.param_fail.values[i] == "True" for i in failed)
    assert "complete" in states
    # the objective is the best validation accuracy of the epochs trained, the curve's value at epoch 2
    done = ds.where(ds.state == "complete", drop=True)
    expected = done.param_ceiling * (1 - np.exp(-done.param_rate * 2))
    np.testing.assert_allclose(done.val_accuracy, expected, rtol=1e-12)
    assert ds.attrs["best_val_accuracy"] == pytest.approx(float(done.val_accuracy.max()))
    best = json.loads((tmp_path / "tune_curve" / "best.json").read_text())
    assert best["epochs"] == 2 and "run" not in best
    assert float(best["params"]["rate"]) == pytest.approx(float(done.param_rate.values[np.argmax(done.val_accuracy.values)]))
    # the study's own command line takes it, and an explicit option still wins
    from studies.config import build_parser, config_from_args

    args = build_parser(CurveConfig, "curve").parse_args(["--config", str(tmp_path / "tune_curve" / "best.json"),
                                                           "--epochs", "3"])
    config = config_from_args(CurveConfig, args)
    assert config.epochs == 3 and config.params.rate == pytest.approx(float(best["params"]["rate"]))
    assert ds.importance.dims == ("parameter",) and set(ds.parameter.values) == set(SPACE)
    from analysis.figures import draw

    drawn = {f.name for f in draw(path, tmp_path / "figures")}
    assert drawn == {"tune_curve_optimization_history.png", "tune_curve_param_importances.png"}


def test_an_epoch_a_budget_stopped_counts_the_samples_it_learned_from(tmp_path):
    registry.register(CURVE)
    path = tune.main(["--rule", "curve", "--trials", "2", "--startup-trials", "2", *DATA, "--max-sample-epochs", "100",
                      "--set", "fail=False", "--set", "last_samples=5", "--out", str(tmp_path)])
    ds = xr.load_dataset(path)
    # 2 epochs of 36 training samples, the second stopped after 5
    assert list(ds.state.values) == ["complete"] * 2 and ds.sample_epochs.values.tolist() == [41, 41]


def test_a_sample_epoch_cap_gives_every_rule_the_same_budget():
    """e-prop (5 epochs by default) and BPTT (20) both get the epochs the cap affords; --set fixes fewer."""
    settings = RunConfig(dataset="synthetic_bursts", n_train=40)

    def epochs(rule, *fixed):
        return tune.plan(tune.TuneConfig(run=settings, rule=rule, max_sample_epochs=360, set=fixed)).base.epochs

    assert epochs("eprop") == epochs("bptt") == 10  # 36 training samples after validation
    assert epochs("bptt", "epochs=3") == 3


def test_the_best_configuration_learns_from_the_samples_its_trial_did_not_from_a_clock(tmp_path):
    """A trial's wall-time cap ends training where the machine's load puts it; the best configuration
    (what a comparison's seeds and their learning-off controls run, what best.json holds) learns from
    as many samples as the trial did: whole epochs, or for e-prop a sample cap inside an epoch."""
    from studies.bptt_shd import BPTTStudyConfig
    from studies.eprop_shd import EPropStudyConfig

    bptt = apply(BPTTStudyConfig(), {"epochs": 20, "max_train_seconds": 90})
    fixed = tune.sample_budget(bptt, 3 * 900, 900)
    assert (fixed.max_train_seconds, fixed.epochs) == (None, 3)
    eprop = apply(EPropStudyConfig(), {"epochs": 5, "max_train_seconds": 90})
    fixed = tune.sample_budget(eprop, 280, 900)
    assert (fixed.max_train_seconds, fixed.epochs, fixed.max_train_samples) == (None, 1, 280)
    assert (tune.sample_budget(eprop, 1180, 900).epochs, tune.sample_budget(eprop, 1180, 900).max_train_samples) == (2, 1180)
    assert tune.sample_budget(EPropStudyConfig(), 280, 900) == EPropStudyConfig(), "no cap: nothing to replace"
    registry.register(CURVE)
    path = tune.main(["--rule", "curve", "--trials", "2", "--startup-trials", "2", *DATA, "--max-sample-epochs", "100",
                      "--max-trial-seconds", "1000", "--set", "fail=False", "--out", str(tmp_path)])
    best = json.loads(Path(xr.load_dataset(path).attrs["best_config_file"]).read_text())
    assert best["max_train_seconds"] is None and best["epochs"] == 2, best


def test_one_pruner_stops_trials_below_the_median(tmp_path):
    registry.register(dataclasses.replace(CURVE, search_space={"rate": Float(0.01, 3.0, log=True)}))
    ds = xr.load_dataset(tune.main(["--rule", "curve", "--trials", "10", "--startup-trials", "2", *DATA,
                                    "--set", "epochs=5", "--out", str(tmp_path)]))
    pruned = ds.where(ds.state == "pruned", drop=True)
    assert ds.attrs["pruner"].startswith("MedianPruner") and pruned.sizes["trial"] >= 1
    assert (pruned.epochs_done < 5).all() and (pruned.epochs_done >= 2).all()  # never before the second epoch
    # a pruned trial is scored at the epoch it reached
    reached = pruned.val_accuracy_per_epoch.max("epoch")
    np.testing.assert_allclose(pruned.val_accuracy, reached)
    none = xr.load_dataset(tune.main(["--rule", "curve", "--trials", "4", "--startup-trials", "2", *DATA,
                                      "--set", "epochs=5", "--no-prune", "--out", str(tmp_path / "off")]))
    assert set(none.state.values) == {"complete"} and none.attrs["pruner"] == "none"


SUBPROCESS = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
import test_tune
from studies import registry, tune
registry.register(test_tune.CURVE_SLOW)
tune.main({argv!r})
"""
CURVE_SLOW = dataclasses.replace(CURVE, search_space={"rate": Float(0.05, 2.0, log=True), "ceiling": Float(0.2, 0.9)})


def _finished_trials(out: Path) -> int:
    import optuna

    db = out / "tune_curve" / "study.db"
    if not db.exists():
        return 0
    try:
        study = optuna.load_study(study_name="tune_curve", storage=f"sqlite:///{db}")
    except (KeyError, Exception):
        return 0
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def test_a_killed_search_resumes_to_the_same_trials_and_best_value(tmp_path, monkeypatch):
    registry.register(CURVE_SLOW)
    argv = ["--rule", "curve", "--trials", "6", "--startup-trials", "2", *DATA, "--set", "delay=0.4", "epochs=3"]
    whole = xr.load_dataset(tune.main(argv + ["--out", str(tmp_path / "whole")]))

    out = tmp_path / "killed"
    script = SUBPROCESS.format(tests=str(ROOT / "tests"), root=str(ROOT), argv=argv + ["--out", str(out)])
    log = tmp_path / "killed_search.log"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    deadline = time.time() + 300
    while _finished_trials(out) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    # into the third trial's epochs: killed once it has checkpointed its first
    checkpoint = out / "tune_curve" / "work" / "trial_2" / "checkpoints" / "curve.npz"
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, f"the search ended before it could be killed:\n{log.read_text()[-2000:]}"
    os.killpg(process.pid, signal.SIGKILL)  # the search and its worker processes
    process.wait()
    with pytest.raises(ValueError, match="already stored"):
        tune.main(argv + ["--out", str(out)])  # without --resume: refused, nothing overwritten
    monkeypatch.setenv("CURVE_EPOCH_LOG", str(tmp_path / "epochs.log"))
    resumed = xr.load_dataset(tune.main(argv + ["--out", str(out), "--resume"]))

    for name in ("param_rate", "param_ceiling", "val_accuracy", "state", "epochs_done"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values, err_msg=name)
    assert resumed.attrs["best_val_accuracy"] == whole.attrs["best_val_accuracy"]
    assert resumed.attrs["best_params"] == whole.attrs["best_params"]
    # the third trial's rerun went on from the killed trial's checkpoints, not from its first epoch
    assert list(resumed.continues.values) == [-1, -1, 2, -1, -1, -1] and list(whole.continues.values) == [-1] * 6
    rerun = [line.split()[1] for line in (tmp_path / "epochs.log").read_text().splitlines() if line.startswith("trial_2 ")]
    assert rerun and "1" not in rerun, f"the rerun computed epochs {rerun}"
    assert not (out / "tune_curve" / "work").exists(), "a finished search leaves no trial folders"
    # a resume with another configuration names the difference
    with pytest.raises(ValueError, match="n_train"):
        tune.main(["--rule", "curve", "--trials", "6", "--startup-trials", "2", "--dataset", "synthetic_bursts",
                   "--n-train", "50", "--set", "delay=0.4", "epochs=3", "--out", str(out), "--resume"])


@pytest.mark.parametrize("space, message", [
    ({"no_such_option": Int(1, 4)}, "unknown option 'no_such_option'"),
    ({"tau_mem": Float("1 mV", "2 mV")}, "wrong units"),
    ({"n_bins": Int(5, 5)}, "empty range"),
    ({"rate": Float(0.0, 1.0, log=True)}, "log range"),
    ({"ceiling": Float("1 ms", "2 s")}, "one unit"),
    ({"fail": Choice(True)}, "at least two"),
])
def test_bad_search_spaces_are_refused_before_anything_runs(space, message):
    @dataclass(frozen=True)
    class WithNeuron:
        run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
        n_bins: int = 1  # time bins
        tau_mem: Quantity = const(20 * ms)  # membrane time constant
        params: CurveParams = dataclasses.field(default_factory=CurveParams)  # the curve

    with pytest.raises(ValueError, match=message):
        check_space(WithNeuron(), space, "toy")


def test_the_command_line_refuses_bad_options_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="wrong units"):
        tune.main(["--rule", "eprop", "--set", "learning_rate=3ms", *DATA, "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="plain number"):
        tune.main(["--rule", "bptt", "--set", "learning_rate=3ms", *DATA, "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown option 'learnig_rate'"):
        tune.main(["--rule", "bptt", "--set", "learnig_rate=0.1", *DATA, "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="trials must be"):
        tune.main(["--rule", "bptt", "--trials", "0", *DATA, "--out", str(tmp_path)])
    assert not (tmp_path / "tune_bptt").exists()


def test_every_builtin_rule_declares_a_valid_search_space():
    for name in ("stdp", "lsm", "eprop", "bptt", "counts"):
        spec = registry.get(name)
        check_space(spec.config(), spec.search_space, name)


def test_bins_that_do_not_divide_a_sample_are_refused_before_anything_runs(tmp_path):
    stdp = registry.get("stdp")  # 1 s at 0.5 ms: 2,000 steps
    with pytest.raises(ValueError, match="n_bins: n_bins 3 does not divide a sample of 2000 steps"):
        check_space(stdp.config(), {**stdp.search_space, "n_bins": Int(1, 20)}, "stdp")
    with pytest.raises(ValueError, match="n_bins 6 does not divide"):
        check_space(stdp.config(), {"n_bins": Choice(5, 6)}, "stdp")
    with pytest.raises(ValueError, match="n_bins 3 does not divide a sample of 10000 steps"):
        tune.main(["--rule", "lsm", "--set", "n_bins=3", *DATA, "--out", str(tmp_path)])
    assert not (tmp_path / "tune_lsm").exists()
    # the networks, used directly as estimators, check with the same function before building anything
    from learning_rules.lsm import Liquid, ReservoirParams
    from learning_rules.stdp import STDPNetwork, STDPParams

    options = dict(sample_duration=1 * second, dt=0.5 * ms, chunk_size=4, capacity=10, device_name="runtime")
    for network, params in ((STDPNetwork, STDPParams(n_neurons=4)), (Liquid, ReservoirParams(n_neurons=4))):
        with pytest.raises(ValueError, match=r"n_bins 3 does not divide a sample of 2000 steps \(1\. s at dt 0\.5 ms\)"):
            network(params, 5, n_bins=3, build_dir=tmp_path / "build", **options)
        assert not (tmp_path / "build").exists()


@pytest.mark.slow
def test_a_search_runs_on_a_dask_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    ds = xr.load_dataset(tune.main(["--rule", "counts", "--trials", "3", "--startup-trials", "1", *DATA,
                                    "--local-cluster", "2", "--out", str(tmp_path)]))
    assert list(ds.state.values) == ["complete"] * 3
    assert ((ds.val_accuracy >= 0) & (ds.val_accuracy <= 1)).all() and ds.attrs["best_trial"] in ds.trial
    assert ds.param_n_bins.min() >= 1 and ds.param_n_bins.max() <= 200


def test_a_search_on_a_generated_set_is_tied_to_the_sets_version(monkeypatch):
    """The configuration names only the set: its generator's constants are part of what a resume checks."""
    from datasets import TimingConfig
    from models.units import config_json
    from studies.run import ConfigMismatchError, check_same_config

    config = tune.TuneConfig(run=RunConfig(dataset="synthetic"), rule="counts")
    stored = tune.identity(config)
    assert json.loads(stored)["dataset_generator"] == json.loads(config_json(TimingConfig()))
    fsdd = tune.TuneConfig(run=RunConfig(dataset="fsdd"), rule="counts")
    assert "dataset_generator" not in json.loads(tune.identity(fsdd)), "recorded data has no generator"
    default = tune.TuneConfig(run=RunConfig(), rule="counts")  # SHD, or the built-in set where SHD is missing
    assert json.loads(tune.identity(default))["dataset_generator"] == json.loads(config_json(TimingConfig()))
    monkeypatch.setattr(tune, "default_generator", lambda name: config_json(TimingConfig(spread=7 * ms)))
    with pytest.raises(ConfigMismatchError, match=r"dataset_generator\.spread"):
        check_same_config(stored, tune.identity(config), "the search")


def test_a_search_is_not_tied_to_the_test_subset_it_never_sees(tmp_path):
    """The test split never enters a search: a comparison that tests on more samples resumes its
    searches, and so does a search stored when the test subset's size was part of its identity."""
    from studies.bptt_shd import BPTTStudyConfig
    from studies.run import ConfigMismatchError

    def config(n_test):
        return tune.TuneConfig(run=RunConfig(dataset="fsdd", n_test=n_test), rule="bptt")

    base = BPTTStudyConfig()
    base300 = dataclasses.replace(base, run=dataclasses.replace(base.run, n_test=300))
    for stored, current in ((tune.identity(config(300)), tune.identity(config(None))),
                            (tune.identity(config(300), base300), tune.identity(config(None), base))):
        check_same_config(stored, current, "the search", ignored=tune.UNSEEN)
        with pytest.raises(ConfigMismatchError, match="n_test: 300 -> None"):  # recorded, not compared
            check_same_config(stored, current, "the search")
    registry.register(CURVE)
    first = ["--rule", "curve", "--startup-trials", "2", *DATA, "--set", "fail=False", "--out", str(tmp_path)]
    tune.main(first + ["--trials", "2"])
    more = [o if o != "10" else "5" for o in first]  # DATA's --n-test 10 -> 5
    assert xr.load_dataset(tune.main(more + ["--trials", "3", "--resume"])).attrs["n_trials"] == 3


def test_a_search_is_tied_to_its_space():
    """A rule whose search space changed (a range, a kind, a new option) starts a new search: a resume
    of one stored under another space is refused, naming the option."""
    from studies.run import ConfigMismatchError, check_same_config
    from studies.space import Choice, Int

    config = tune.TuneConfig(run=RunConfig(dataset="fsdd"), rule="counts")
    stored = tune.identity(config, space={"n_bins": Int(1, 50, log=True)})
    check_same_config(stored, tune.identity(config, space={"n_bins": Int(1, 50, log=True)}), "the search")
    with pytest.raises(ConfigMismatchError, match=r"space\.n_bins"):
        check_same_config(stored, tune.identity(config, space={"n_bins": Choice(1, 2, 5, 10)}), "the search")


VALIDATION_ONLY = {
    # rule: options of a tiny run (Brian2's runtime device: nothing to compile)
    "counts": ["--n-bins", "4"],
    "bptt": ["--epochs", "2", "--n-hidden", "8", "--dt", "20ms"],
    # --chunk-size 8: the full run's 22 training, 2 validation and 10 test samples balance to chunks of
    # 6, training and validation alone to 8; a trial must train in the full run's chunks
    "lsm": ["--device", "runtime", "--duration", "50ms", "--n-neurons", "20", "--workers", "1",
            "--no-spike-time-readout", "--chunk-size", "8"],
    "stdp": ["--device", "runtime", "--duration", "50ms", "--dt", "1ms", "--n-neurons", "6", "--epochs", "1",
             "--workers", "1", "--no-frozen-control", "--chunk-size", "8"],
    "eprop": ["--device", "runtime", "--duration", "50ms", "--n-hidden", "8", "--epochs", "1", "--workers", "1",
              "--chunk-size", "8"],
}


@pytest.mark.slow
@pytest.mark.parametrize("rule", sorted(VALIDATION_ONLY))
def test_a_trial_runs_validation_only_and_scores_as_the_full_run(tmp_path, rule):
    """What a trial runs (``validation_only``) leaves the test split out, simulated or scored, and
    reaches the full run's validation accuracy: leaving the test split out changes nothing the search sees."""
    from studies.config import build_parser, config_from_args

    spec = registry.get(rule)
    args = build_parser(spec.config, rule).parse_args(["--dataset", "synthetic", "--n-train", "24", "--n-test", "10",
                                                       *VALIDATION_ONLY[rule], "--out", str(tmp_path / "full")])
    full = spec.run(config_from_args(spec.config, args))
    config = config_from_args(spec.config, args)
    trial = spec.run(dataclasses.replace(config, run=dataclasses.replace(config.run, out=tmp_path / "trial",
                                                                         validation_only=True)))
    assert full.attrs["n_test"] == 10 and "test_accuracy" in full
    assert trial.attrs["n_test"] == 0 and trial.attrs["validation_only"] == 1
    # the setting is written only where it is on: configurations stored before it existed stay the same
    assert "validation_only" not in full.attrs["config"] and '"validation_only": true' in trial.attrs["config"]
    assert not [name for name in trial.data_vars if "test" in name], "a trial must not score the test split"
    np.testing.assert_array_equal(trial.val_accuracy.values, full.val_accuracy.values)
    assert float(trial.train_seconds) > 0
    if "chunk_size" in full:
        assert full.chunk_size == 6, "the case must be one where leaving out the test split changes the balance"


@pytest.mark.slow
def test_a_tuned_comparison_trains_its_seeds_and_controls_on_the_best_trials_samples(tmp_path):
    """With a wall-time cap per trial, the seeds' runs and their learning-off controls learn from as many
    samples as the best trial did (here one epoch: the cap passes within it), with no clock of their own."""
    from analysis import report
    from studies import compare_shd

    path = compare_shd.main(["--dataset", "synthetic_bursts", "--n-train", "40", "--n-test", "10", "--rules", "bptt",
                             "counts", "--set", "bptt.n_hidden=8", "--dt", "20ms", "--trials", "2",
                             "--startup-trials", "2", "--seeds", "2", "--max-trial-seconds", "1e-9",
                             "--out", str(tmp_path)])
    ds = xr.load_dataset(path)
    tuning = xr.load_dataset(tmp_path / "tuning" / "tune_bptt.nc")
    assert set(tuning.sample_epochs.values) == {36}, "every trial stopped after its first epoch"
    assert (ds.train_sample_epochs.sel(rule=["bptt", "bptt_off"]) == 36).all()
    for name in ("bptt_seed0", "bptt_off_seed1"):
        config = json.loads(xr.load_dataset(tmp_path / "runs" / f"{name}.nc").attrs["config"])
        assert config["max_train_seconds"] is None and config["epochs"] == 1, config
    md = report.main([str(path), "--out", str(tmp_path / "report")]).read_text()
    assert "learn from as many training samples as the best trial did" in md
