"""Configurations: quantities from text, command lines generated from the config dataclasses,
--config files, and the one resume check that names what differs."""

import dataclasses
import json
import types

import pytest
from brian2 import Hz, metre, mV, ms, second, siemens, usecond, volt

from datasets import TimingConfig
from models.units import config_diff, config_json, quantity_text, to_quantity
from studies import registry
from studies.config import RunConfig, build_parser, config_from_args, config_from_json, leaves
from studies.run import ConfigMismatchError, Run


@pytest.mark.parametrize("text, value", [
    ("20ms", 20 * ms), ("20 ms", 20 * ms), ("20*ms", 20 * ms), ("-65 mV", -65 * mV), ("1/ms", 1 / ms),
    ("5 μs", 5 * usecond), ("5µs", 5 * usecond), ("10 Hz", 10 * Hz), ("2 / second", 2 * Hz), ("100. us", 100 * usecond),
])
def test_quantities_are_read_from_text(text, value):
    assert abs(float(to_quantity(text, value)) - float(value)) <= 1e-12 * abs(float(value))


@pytest.mark.parametrize("text, message", [("ten ms", "unknown unit 'ten'"), ("3 foo", "unknown unit"),
                                           ("20 mV", "wrong units"), ("", "empty")])
def test_bad_quantities_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        to_quantity(text, ms)


@pytest.mark.parametrize("value, text", [
    (0.1663128889534534 * second, "166.31288895345338 ms"),  # a drawn value: every digit, in its best unit
    (1.3460293000032343e-05 * volt, "13.460293000032344 uV"),
    (0.26325653206182503 * second, "0.26325653206182503 s"),  # no float in ms reads back to it
    (0.05 * mV, "0.05 mV"), (0.1 * ms, "0.1 ms"),  # Brian2 writes '50. uV' and '100. us', which read back otherwise
    (20 * ms, "20. ms"), (-65 * mV, "-65. mV"), (0 * mV, "0. V"),
    (1.2345678901234567e-8 * siemens / metre ** 2, "1.2345678901234567e-08 * metre ** -4 * kilogram ** -1 * second ** 3 * amp ** 2"),  # no named unit
])
def test_quantities_are_written_as_text_that_reads_back_exactly(value, text):
    assert quantity_text(value) == text
    assert float(to_quantity(text, value)) == float(value)


def test_one_quantity_written_two_ways_is_no_difference_between_configs():
    stored = json.dumps({"tau": "0.1663128889534534 * second ** 1", "v": "-65. mV", "device": "cpp_standalone"})
    assert config_diff(stored, json.dumps({"tau": "166.31288895345338 ms", "v": "-65 mV", "device": "cpp_standalone"})) == []
    assert config_diff(stored, json.dumps({"tau": "166.3128889534534 ms", "v": "-65. mV", "device": "cuda_standalone"})) == [
        "device: cpp_standalone -> cuda_standalone", "tau: 0.1663128889534534 * second ** 1 -> 166.3128889534534 ms"]
    assert config_diff(json.dumps({"x": "1 ms"}), json.dumps({"x": "1 mV"})) == ["x: 1 ms -> 1 mV"]
    assert config_diff(json.dumps({"x": "5"}), json.dumps({"x": "5.0"})) == ["x: 5 -> 5.0"], "text, not a quantity"
    # an option added since, off (None), matches a stored run made before it existed; set, it does not
    assert config_diff(json.dumps({"a": {"x": 1}}), json.dumps({"a": {"x": 1, "cap": None}})) == []
    assert config_diff(json.dumps({"a": {"x": 1}}), json.dumps({"a": {"x": 1, "cap": 280}})) == ["a.cap: (absent) -> 280"]
    # fields a caller does not depend on, named in full, are left out
    assert config_diff(json.dumps({"a": {"x": 1}, "x": 1}), json.dumps({"a": {"x": 2}, "x": 1}), ignored=("a.x",)) == []
    assert config_diff(json.dumps({"a": {"x": 1}, "x": 1}), json.dumps({"a": {"x": 1}, "x": 2}), ignored=("a.x",)) == ["x: 1 -> 2"]


@pytest.mark.parametrize("rule", ["stdp", "lsm", "eprop", "bptt", "counts"])
def test_every_default_configuration_is_written_readably_and_reads_back(rule):
    spec = registry.get(rule)
    text = config_json(spec.config())
    assert "**" not in text, text  # no value fell back to the long form in base units
    assert config_json(config_from_json(spec.config, text)) == text


@pytest.mark.parametrize("rule", ["stdp", "lsm", "eprop", "bptt", "counts"])
def test_every_study_command_line_is_generated_from_its_config(rule):
    spec = registry.get(rule)
    parser = build_parser(spec.config, "test")
    text = parser.format_help()
    for leaf in leaves(spec.config).values():
        flag = f"--{leaf.assign_group}" if leaf.assign_group else "--" + leaf.name.replace("_", "-")
        assert flag in text, flag
    assert "(default: all) (default" not in text and "(default: none) (default" not in text
    # every config written as JSON reads back to itself (units included)
    config = spec.config()
    assert config_from_json(spec.config, config_json(config)) == config


def test_options_reach_the_nested_fields_and_config_files_are_overridden(tmp_path):
    spec = registry.get("lsm")
    parser = build_parser(spec.config, "test")
    config = config_from_args(spec.config, parser.parse_args(
        ["--dt", "0.5ms", "--lif", "tau_mem=30ms", "--n-neurons", "7", "--n-train", "12", "--no-resume"]))
    assert config.input.dt == 0.5 * ms and config.params.lif.tau_mem == 30 * ms and config.params.n_neurons == 7
    assert config.run.n_train == 12 and config.run.resume is False
    path = tmp_path / "best.json"
    path.write_text(config_json(config))
    again = config_from_args(spec.config, parser.parse_args(["--config", str(path), "--n-neurons", "9"]))
    assert again == dataclasses.replace(config, params=dataclasses.replace(config.params, n_neurons=9))
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps({"params": {"w_input": "0.03 mV"}, "n_bins": 2}))
    partial = config_from_args(spec.config, parser.parse_args(["--config", str(subset)]))
    assert partial.params.w_input == 0.03 * mV and partial.n_bins == 2 and partial.input.dt == 0.1 * ms


@pytest.mark.parametrize("argv, message", [
    (["--lif", "tau_foo=1ms"], "unknown lif constant 'tau_foo'"),
    (["--lif", "tau_mem"], "NAME=VALUE"),
    (["--lif", "tau_mem=-3ms"], "positive"),
    (["--duration", "0.5ms", "--dt", "1ms"], "dt must not exceed"),
])
def test_bad_options_name_the_problem(argv, message):
    spec = registry.get("eprop")
    with pytest.raises(ValueError, match=message):
        config_from_args(spec.config, build_parser(spec.config, "test").parse_args(argv))


def test_wrong_units_on_the_command_line_are_a_usage_error(capsys):
    spec = registry.get("bptt")
    with pytest.raises(SystemExit) as stop:
        build_parser(spec.config, "test").parse_args(["--dt", "5mV"])
    assert stop.value.code == 2 and "wrong units" in capsys.readouterr().err


def test_resume_with_another_configuration_names_the_fields_that_differ(tmp_path):
    spec = registry.get("counts")
    config = spec.config()
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=tmp_path, n_train=60, resume=True))
    run = Run("counts", config)
    run.splits = _splits_of(TimingConfig())  # what load_splits would record
    run.save_checkpoint(step=3)
    assert run.load_checkpoint()["step"] == 3
    other = dataclasses.replace(config, run=dataclasses.replace(config.run, n_train=200), n_bins=4)
    changed = Run("counts", other)
    changed.splits = run.splits
    with pytest.raises(ConfigMismatchError) as error:
        changed.load_checkpoint()
    assert "run.n_train: 60 -> 200" in str(error.value) and "n_bins: None -> 4" in str(error.value)


def test_where_a_run_computes_is_not_part_of_its_configuration(tmp_path):
    """A checkpoint written on local processes resumes on a Dask cluster (and one written before
    the cluster options existed resumes at all): the scheduler's address is not what a run computes."""
    config = registry.get("eprop").config()
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=tmp_path, resume=True))
    run = Run("eprop", config)
    run.splits = _splits_of(TimingConfig())
    run.save_checkpoint(step=3)
    on_cluster = Run("eprop", dataclasses.replace(config, scheduler="tcp://head:8786", local_cluster=4))
    on_cluster.splits = run.splits
    assert on_cluster.load_checkpoint()["step"] == 3
    assert "scheduler" not in on_cluster.config_text and "local_cluster" not in on_cluster.config_text
    more_workers = Run("eprop", dataclasses.replace(config, workers=7))  # what a run computes still counts
    more_workers.splits = run.splits
    with pytest.raises(ConfigMismatchError, match="workers: 2 -> 7"):
        more_workers.load_checkpoint()


def _splits_of(generator_config):
    """The part of the splits that a checkpoint records: the dataset and its generator's constants."""
    train = types.SimpleNamespace(generator=config_json(generator_config))
    return types.SimpleNamespace(dataset="synthetic", train=train)


def test_resume_from_another_version_of_a_generated_set_names_the_constants(tmp_path):
    """The configuration names only the set; a checkpoint made from other generator constants is refused."""
    spec = registry.get("counts")
    config = spec.config()
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=tmp_path, resume=True))
    run = Run("counts", config)
    run.splits = _splits_of(TimingConfig(shared_onsets=False))
    run.save_checkpoint(step=3)
    same = Run("counts", config)
    same.splits = _splits_of(TimingConfig(shared_onsets=False))
    assert same.load_checkpoint()["step"] == 3
    newer = Run("counts", config)
    newer.splits = _splits_of(TimingConfig())
    with pytest.raises(ConfigMismatchError, match="another version of the synthetic set.*shared_onsets: False -> True"):
        newer.load_checkpoint()


def _stored_pair(tmp_path, dataset, **attrs):
    """The counts rule's study config on ``dataset`` and a stand-in for its stored comparison pair with ``attrs``."""
    import xarray as xr

    spec = registry.get("counts")
    config = spec.config()
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, dataset=dataset, out=tmp_path))
    current = config_json(dataclasses.replace(config, run=dataclasses.replace(config.run, resume=False)))
    path = tmp_path / "counts_seed0.nc"
    xr.Dataset(attrs={"config": current, "dataset": dataset, **attrs}).to_netcdf(path)
    return spec, config, path


@pytest.mark.not_results("a stand-in for a stored comparison pair, with only the attributes a resume reads")
def test_a_stored_comparison_pair_from_another_version_of_the_set_is_refused(tmp_path):
    from studies import compare_shd

    for generator, refused in ((TimingConfig(), False), (TimingConfig(spread=7 * ms), True)):
        spec, config, path = _stored_pair(tmp_path, "synthetic", dataset_generator=config_json(generator))
        if refused:
            with pytest.raises(ConfigMismatchError, match=r"another version of the synthetic set.*spread"):
                compare_shd.stored_pair(spec, config, path, resume=True)
        else:
            assert compare_shd.stored_pair(spec, config, path, resume=True).attrs["dataset"] == "synthetic"


def test_a_finished_run_is_extended_from_the_state_of_its_own_version_of_the_set(tmp_path):
    """Beside one results file of an older version of the set, the state of this version is found."""
    from models import files

    spec = registry.get("counts")
    config = spec.config()
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, out=tmp_path, resume=True))
    run = Run("counts", config, extendable=("n_bins",))
    run.splits = _splits_of(TimingConfig())
    old, new = config_json(TimingConfig(shared_onsets=False)), run.data_generator
    files.save_arrays(tmp_path / f"{run.stem}.state.npz", config=run.config_text, dataset_generator=old, step=1)
    files.save_arrays(tmp_path / f"{run.stem}_0123abcd.state.npz", config=run.config_text, dataset_generator=new,
                      step=2)
    assert run.load_checkpoint()["step"] == 2
    (tmp_path / f"{run.stem}_0123abcd.state.npz").unlink()
    with pytest.raises(ConfigMismatchError, match="another version of the synthetic set.*shared_onsets"):
        run.load_checkpoint()


@pytest.mark.not_results("a stand-in for a stored comparison pair, with only the attributes a resume reads")
def test_a_stored_pair_of_recorded_data_from_before_the_generator_was_recorded_resumes(tmp_path):
    from studies import compare_shd

    spec, config, path = _stored_pair(tmp_path, "fsdd")
    assert compare_shd.stored_pair(spec, config, path, resume=True).attrs["dataset_generator"] == ""


@pytest.mark.not_results("a stand-in for a stored combined comparison, with only its configuration")
def test_a_comparison_never_overwrites_the_combined_file_of_another(tmp_path):
    """A resume may add seeds to a comparison; fewer seeds, other rules or other options would replace
    its combined file with another comparison's, and are refused before anything runs."""
    import xarray as xr

    from studies import compare_shd

    config = compare_shd.CompareConfig(run=RunConfig(out=tmp_path, n_train=60), seeds=3)

    def resumed(**changes):
        return dataclasses.replace(config, run=dataclasses.replace(config.run, resume=True), **changes)

    compare_shd.check_stored_comparison(config)  # nothing stored yet
    xr.Dataset(attrs={"config": config_json(resumed())}).to_netcdf(tmp_path / "compare_synthetic.nc")
    with pytest.raises(ValueError, match="add --resume"):
        compare_shd.check_stored_comparison(config)
    compare_shd.check_stored_comparison(resumed())
    compare_shd.check_stored_comparison(resumed(seeds=5))
    with pytest.raises(ConfigMismatchError, match="seeds: 3 -> 2"):
        compare_shd.check_stored_comparison(resumed(seeds=2))
    with pytest.raises(ConfigMismatchError, match="rules: "):
        compare_shd.check_stored_comparison(resumed(rules=("counts",)))


def test_a_trials_checkpoint_does_not_depend_on_the_test_subset_it_never_sees(tmp_path):
    """A validation-only run (a tuning trial) resumes from a checkpoint written with another test
    subset; a run that tests does not."""
    spec = registry.get("counts")

    def run(n_test, validation_only):
        config = spec.config()
        settings = dataclasses.replace(config.run, out=tmp_path, resume=True, n_test=n_test,
                                       validation_only=validation_only)
        job = Run("counts", dataclasses.replace(config, run=settings))
        job.splits = _splits_of(TimingConfig())
        return job

    for validation_only in (True, False):
        run(300, validation_only).save_checkpoint(step=3)
        if validation_only:
            assert run(None, True).load_checkpoint()["step"] == 3
        else:
            with pytest.raises(ConfigMismatchError, match="run.n_test: 300 -> None"):
                run(None, False).load_checkpoint()
