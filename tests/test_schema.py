"""The schema checker of tests/schema.py: it passes a real results file and catches what one lacks."""

import re

import pytest
import xarray as xr

from tests import schema


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    from studies import counts_shd

    out = tmp_path_factory.mktemp("counts")
    return counts_shd.main(["--dataset", "synthetic", "--n-train", "40", "--n-test", "20", "--n-bins", "2",
                            "--out", str(out)])


def test_a_study_file_meets_the_schema(counts_file):
    assert schema.kind_of(xr.load_dataset(counts_file)) == "run"
    assert schema.problems(counts_file) == []


@pytest.mark.not_results
@pytest.mark.parametrize("change, expected", [
    (lambda ds: ds.attrs.pop("package_versions"), "lacks the global attribute 'package_versions'"),
    (lambda ds: ds.attrs.pop("split"), "lacks the global attribute 'split'"),
    (lambda ds: ds.drop_vars("peak_memory"), "lacks the variable 'peak_memory'"),
    (lambda ds: ds.test_accuracy.attrs.pop("long_name"), "the variable 'test_accuracy' has no long_name"),
    (lambda ds: ds.epoch.attrs.pop("units"), "the coordinate 'epoch' holds numbers but has no units"),
    (lambda ds: ds.attrs.update(config="{not json"), "the attribute 'config' is not JSON text"),
    (lambda ds: ds.attrs.update(end_time="yesterday"), "'end_time' is not an ISO 8601 time"),
    (lambda ds: ds.attrs.update(Conventions="CF-1.6"), "Conventions is 'CF-1.6'"),
    (lambda ds: ds.assign(trainable_parameters=ds.trainable_parameters.astype(float)),
     "'trainable_parameters' holds whole numbers but is stored as float64"),
    (lambda ds: ds.attrs.clear(), "is none of the kinds of results file"),
])
def test_the_checker_catches_a_file_that_lacks_a_promise(counts_file, tmp_path, change, expected):
    ds = xr.load_dataset(counts_file)
    changed = change(ds)
    ds = changed if isinstance(changed, xr.Dataset) else ds
    ds.to_netcdf(tmp_path / "broken.nc", engine="h5netcdf")
    found = schema.problems(tmp_path / "broken.nc")
    assert any(expected in p for p in found), found
    assert any(expected in line and "broken.nc" in line for line in schema.check_folder(tmp_path))


@pytest.mark.not_results
def test_a_torn_file_is_a_problem(counts_file, tmp_path):
    data = counts_file.read_bytes()
    (tmp_path / "torn.nc").write_bytes(data[: len(data) // 2])
    assert "cannot be opened as netCDF" in schema.problems(tmp_path / "torn.nc")[0]


def test_the_checker_reads_its_tables_from_the_schema_and_promises_nothing_else():
    every = schema.table_names("Global attributes (every file)")
    assert {"Conventions", "git_commit", "package_versions", "host", "command", "start_time", "end_time"} <= set(every)
    assert "n_val" in schema.table_names("Global attributes of a run (every study's file, and the dataset summary)")
    assert "peak_memory_children" in schema.table_names("Variables of a rule's run (every study's file)")
    named = set(re.findall(r"`([A-Za-z_]+)", schema.SCHEMA.read_text()))
    checked = {n for names in (*schema.VARIABLES.values(), *schema.ATTRIBUTES.values()) for n in names}
    assert checked - named == set(), "the checker asks for names the schema does not promise"
