"""Nothing lost, nothing mixed, every error names its cause: faults injected for real."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from models import files

ROOT = Path(__file__).resolve().parent.parent


def test_atomic_writes_leave_readable_files_and_no_partial_ones(tmp_path):
    target = tmp_path / "a.npz"
    files.save_arrays(target, x=np.arange(3))
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask, oct(mode)  # like any file the user creates, not 0600

    def fails(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        files.write_atomic(tmp_path / "b.nc", fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"], "a failed write leaves nothing behind"


@pytest.mark.not_results("r.nc holds a few bytes, not netCDF")
def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a process id that no longer exists
    orphan = tmp_path / f".r.nc.pid{proc.pid}_abc.tmp"
    orphan.write_bytes(b"x" * 1000)
    mine = tmp_path / f".r.nc.pid{os.getpid()}_def.tmp"  # a live writer's: kept
    mine.write_bytes(b"x")
    files.write_atomic(tmp_path / "r.nc", lambda tmp: Path(tmp).write_bytes(b"done"))
    assert not orphan.exists() and mine.exists() and (tmp_path / "r.nc").read_bytes() == b"done"


@pytest.mark.parametrize("kind", ["file", "read-only folder"])
def test_an_unwritable_out_fails_at_once_with_one_line(tmp_path, kind):
    if kind == "file":
        out = tmp_path / "taken"
        out.write_text("")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    result = subprocess.run([sys.executable, str(ROOT / "studies" / "bptt_shd.py"), "--dataset", "synthetic",
                             "--n-train", "20", "--n-test", "10", "--epochs", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--out" in lines[0] and "Traceback" not in result.stderr
    assert "epoch 1" not in result.stderr, "the check must come before training"


@pytest.mark.slow
def test_a_second_configuration_never_overwrites_the_first_results(tmp_path):
    from studies import bptt_shd

    base = ["--dataset", "synthetic", "--n-train", "30", "--n-test", "10", "--epochs", "1", "--dt", "20ms",
            "--out", str(tmp_path)]
    first = bptt_shd.main(base + ["--n-hidden", "16"])
    second = bptt_shd.main(base + ["--n-hidden", "8"])
    assert first != second and first.exists() and second.exists()
    assert '"n_hidden": 16' in xr.load_dataset(first).attrs["config"]
    assert '"n_hidden": 8' in xr.load_dataset(second).attrs["config"]
    again = bptt_shd.main(base + ["--n-hidden", "16"])
    assert again == first, "the same configuration writes its own file again"
    assert not (tmp_path / "checkpoints").exists(), "checkpoints go once the results are written"
    assert not (tmp_path / "build").exists()


def test_results_files_follow_the_conventions(tmp_path):
    from studies import counts_shd

    path = counts_shd.main(["--dataset", "synthetic", "--n-train", "40", "--n-test", "20", "--n-bins", "2",
                            "--out", str(tmp_path)])
    ds = xr.load_dataset(path)
    assert ds.attrs["Conventions"] == "CF-1.8" and len(eval_list(ds.attrs["class_names"])) == 20
    assert all("long_name" in ds[c].attrs for c in ds.coords)
    assert np.issubdtype(ds.trainable_parameters.dtype, np.integer)


def eval_list(text: str) -> list:
    import json

    return json.loads(text)


def test_a_finished_run_goes_on_to_more_epochs_as_if_never_stopped(tmp_path):
    from studies import bptt_shd
    from studies.run import ConfigMismatchError

    base = ["--dataset", "synthetic", "--n-train", "30", "--n-test", "10", "--dt", "20ms", "--n-hidden", "8"]
    whole = xr.load_dataset(bptt_shd.main(base + ["--epochs", "3", "--out", str(tmp_path / "whole")]))
    out = tmp_path / "extended"
    first = xr.load_dataset(bptt_shd.main(base + ["--epochs", "2", "--out", str(out)]))
    assert (out / "bptt_synthetic_seed0.state.pt").exists() and not (out / "checkpoints").exists()
    path = bptt_shd.main(base + ["--epochs", "3", "--out", str(out), "--resume"])
    extended = xr.load_dataset(path)
    for name in ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy", "best_epoch", "test_prediction"):
        np.testing.assert_array_equal(whole[name].values, extended[name].values, err_msg=name)
    # it went on from the finished state: the first two epochs are the finished run's own, not run again
    np.testing.assert_array_equal(extended.epoch_seconds.values[:2], first.epoch_seconds.values)
    assert first.sizes["epoch"] == 2 and (out / "bptt_synthetic_seed0.nc").exists()  # the shorter run's results stay
    assert path.with_name(path.stem + ".state.pt").exists()
    # any other difference is refused, naming it; so is going back to fewer epochs
    with pytest.raises(ConfigMismatchError, match=r"params\.n_hidden: 8 -> 16") as info:
        bptt_shd.main(base + ["--n-hidden", "16", "--epochs", "4", "--out", str(out), "--resume"])
    assert "epochs" not in str(info.value)
    with pytest.raises(ConfigMismatchError, match="epochs: 2 -> 1"):
        bptt_shd.main(base + ["--epochs", "1", "--out", str(out), "--resume"])
