"""Fault injection: long-running commands killed for real (SIGKILL) at a point in their work, then
resumed, end with the numbers of an uninterrupted run and leave no debris; bad input ends with one
line naming the cause and exit status 2 (usage) or 1 (data)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parent.parent
DATA = ["--dataset", "synthetic", "--n-train", "40", "--n-test", "20"]


def _command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "studies" / script), *args]


def _kill_when(command: list[str], ready, timeout: float = 600) -> None:
    """Start ``command``, SIGKILL its whole process group (simulator binaries included) as soon as
    ``ready()`` is true."""
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        assert proc.poll() is None, "the command finished before it could be killed; make its work longer"
        assert ready(), "the command never reached the point where it should be killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _no_debris(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == "checkpoints"
                 or (p.parent.name == "build")]
    assert not leftovers, f"left behind: {leftovers}"


CASES = {
    # rule: (script, options, checkpoint that marks the point to kill at, variables that must agree)
    "bptt": ("bptt_shd.py", ["--epochs", "3", "--n-hidden", "16", "--dt", "20ms"],
             "checkpoints/bptt_synthetic_seed0/state.pt", ("train_loss", "val_accuracy", "test_prediction")),
    "lsm": ("lsm_shd.py", ["--n-neurons", "60", "--chunk-size", "10", "--workers", "1", "--no-spike-time-readout"],
            "checkpoints/lsm_synthetic_seed0/train.npz", ("val_accuracy", "test_accuracy", "test_counts")),
    # Brian2's runtime device: no compilation, so three tiny runs take a minute or two (the compiled binary
    # is killed in the LSM case above and in test_no_simulator_outlives_a_killed_study); killed after
    # the first of 4 training chunks (22 samples in chunks of 6) of the first of 2 epochs
    "stdp": ("stdp_shd.py", ["--device", "runtime", "--n-train", "24", "--n-test", "10", "--dt", "1ms",
                             "--duration", "50ms", "--n-neurons", "10", "--chunk-size", "6", "--epochs", "2",
                             "--no-frozen-control"],
             "checkpoints/stdp_synthetic_seed0/state.npz",
             ("val_accuracy", "test_accuracy", "test_accuracy_assignment", "weights", "test_counts")),
    "eprop": ("eprop_shd.py", ["--device", "runtime", "--n-train", "24", "--n-test", "10", "--duration", "50ms",
                               "--n-hidden", "8", "--chunk-size", "6", "--epochs", "2", "--workers", "1"],
              "checkpoints/eprop_synthetic_seed0/state.npz", ("train_loss", "val_accuracy", "test_prediction")),
}


@pytest.mark.slow
@pytest.mark.parametrize("rule", sorted(CASES))
def test_a_killed_study_resumes_to_the_uninterrupted_result(tmp_path, rule):
    script, options, marker, names = CASES[rule]
    whole = tmp_path / "whole"
    _run(_command(script, *DATA, *options, "--out", str(whole)))
    killed = tmp_path / "killed"
    _kill_when(_command(script, *DATA, *options, "--out", str(killed)), lambda: (killed / marker).exists())
    resumed = _run(_command(script, *DATA, *options, "--out", str(killed), "--resume"))
    assert f"resuming {rule}" in resumed.stderr, "the rerun must go on from the checkpoint, not start over"
    a = xr.load_dataset(next(whole.glob(f"{rule}_*.nc")))
    b = xr.load_dataset(next(killed.glob(f"{rule}_*.nc")))
    for name in names:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    _no_debris(killed)


def _shd_layout(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return {"times": [t.tolist() for t in f["spikes/times"]], "units": [u.tolist() for u in f["spikes/units"]],
                **{key: f[key][()].tolist() for key in ("labels", "extra/speaker", "extra/keys", "extra/file",
                                                        "extra/duration_s", "extra/speaker_names")}}


@pytest.mark.slow
def test_a_killed_cochlea_conversion_goes_on_to_the_uninterrupted_set(tmp_path):
    """FSDD through the cochlea, killed while it converts: the rerun converts only what is missing and
    assembles the set an uninterrupted conversion makes."""
    from tests.test_fsdd import _wav_bytes

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for k, speaker in enumerate(("anna", "bob")):
        for digit in (1, 7):
            for index in range(10):  # 0-4: test
                (recordings / f"{digit}_{speaker}_{index}.wav").write_bytes(
                    _wav_bytes(200 + 150 * digit + 40 * index + 20 * k, seconds=0.5))
    options = ["--dataset", "fsdd", "--data-dir", str(recordings), "--n-bins", "2"]

    def command(name):
        return _command("counts_shd.py", *options, "--out", str(tmp_path / name / "out"))

    def env(name):
        return {**os.environ, "SNN_DATA_DIR": str(tmp_path / name / "data")}

    whole = subprocess.run(command("whole"), capture_output=True, text=True, timeout=900, env=env("whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    entries = tmp_path / "killed" / "data" / "fsdd-spikes" / "files"
    proc = subprocess.Popen(command("killed"), start_new_session=True, env=env("killed"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None and not list(entries.rglob("*.npz")):
            time.sleep(0.02)
        done = {p: p.stat().st_mtime_ns for p in entries.rglob("*.npz")}
        assert proc.poll() is None and 0 < len(done) < 40, f"not killed midway: {len(done)} of 40 converted"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rerun = subprocess.run(command("killed"), capture_output=True, text=True, timeout=900, env=env("killed"))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "what was converted before the kill is kept"
    assert len(list(entries.rglob("*.npz"))) == 40
    leftovers = [p for p in (tmp_path / "killed").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, f"left behind: {leftovers}"
    for split in ("train", "test"):
        a, b = (next((tmp_path / name / "data" / "fsdd-spikes").glob(f"*/SHD/shd_{split}.h5"))
                for name in ("whole", "killed"))
        assert _shd_layout(a) == _shd_layout(b), split
    a, b = (xr.load_dataset(next((tmp_path / name / "out").glob("counts_*.nc"))) for name in ("whole", "killed"))
    assert a.attrs["n_train"] + a.attrs["n_val"] == 20 and a.attrs["n_test"] == 20
    for name in ("val_accuracy", "test_accuracy", "input_spikes_per_sample"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def _still_running(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_no_simulator_outlives_a_killed_study(tmp_path):
    """SIGKILL to the study alone (not its process group): its worker processes and the simulator
    binaries they run must end with it, at once, not run on as orphans."""
    import psutil

    command = _command("lsm_shd.py", *DATA, "--n-neurons", "60", "--chunk-size", "18", "--workers", "2",
                       "--no-spike-time-readout", "--duration", "4s", "--out", str(tmp_path))
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        study, family, deadline = psutil.Process(proc.pid), [], time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                family = study.children(recursive=True)
                if any(p.name() == "main" for p in family):
                    break
            time.sleep(0.02)
        binaries = [p for p in family if _still_running(p) and p.name() == "main"]
        assert binaries, "no simulator binary was seen running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 3  # the kernel kills them at once; a chunk takes far longer
        while time.time() < deadline and any(map(_still_running, family)):
            time.sleep(0.05)
        left = [(p.pid, p.name()) for p in family if _still_running(p)]
        assert not left, f"still running after the study was killed: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_killed_comparison_resumes_to_the_uninterrupted_result(tmp_path):
    options = [*DATA, "--rules", "counts", "bptt", "--seeds", "2", "--trials", "0", "--no-ablations", "--set", "bptt.epochs=2", "bptt.n_hidden=8",
               "--dt", "20ms"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(_command("compare_shd.py", *options, "--out", str(whole)))
    _kill_when(_command("compare_shd.py", *options, "--out", str(killed)),
               lambda: (killed / "runs" / "checkpoints" / "bptt_synthetic_seed1" / "state.pt").exists())
    assert (killed / "runs" / "bptt_seed0.nc").exists() and not (killed / "runs" / "bptt_seed1.nc").exists()
    _run(_command("compare_shd.py", *options, "--out", str(killed), "--resume"))
    a = xr.load_dataset(whole / "compare_synthetic.nc")
    b = xr.load_dataset(killed / "compare_synthetic.nc")
    np.testing.assert_array_equal(a.test_accuracy.values, b.test_accuracy.values)
    np.testing.assert_array_equal(a.val_accuracy.values, b.val_accuracy.values)
    # a resume with another configuration stops and names what differs
    other = subprocess.run(_command("compare_shd.py", *[o if o != "40" else "50" for o in options],
                                    "--out", str(killed), "--resume"), capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "run.n_train: 40 -> 50" in other.stderr


@pytest.mark.parametrize("script, options, message", [
    ("compare_shd.py", ["--seeds", "0"], "--seeds must be at least 1"),
    ("bptt_shd.py", ["--seed", "-1"], "seed must be a whole number >= 0"),
    ("bptt_shd.py", ["--dt", "5mV"], "wrong units"),
    ("bptt_shd.py", ["--pool", "1000", "--n-train", "20"], "--pool 1000 merges every input channel"),
    ("scan.py", ["--rule", "hebb", "--param", "tau_mem=1ms"], "unknown rule 'hebb'"),
    ("lsm_shd.py", ["--lif", "tau_mem=-1ms"], "tau_mem must be positive"),
])
def test_bad_input_ends_with_one_line_and_exit_status_2(tmp_path, script, options, message):
    result = subprocess.run(_command(script, "--dataset", "synthetic", *options, "--out", str(tmp_path)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.nc")), "no results file for bad input"


@pytest.mark.parametrize("broken, dataset", [("shd_test.h5", []), ("shd_train.h5", ["--dataset", "shd"])])
def test_unusable_data_ends_with_one_line_naming_the_file_and_exit_status_1(tmp_path, broken, dataset):
    from tests.test_datasets import _fake_heidelberg

    _fake_heidelberg(tmp_path / "data")
    path = tmp_path / "data" / "SHD" / broken
    path.write_bytes(path.read_bytes()[:2000])  # truncated
    result = subprocess.run(_command("counts_shd.py", *dataset, "--data-dir", str(tmp_path / "data"),
                                     "--out", str(tmp_path / "out")), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in result.stderr
    assert "SYNTHETIC" not in result.stderr, "a corrupt local SHD must not fall back to the built-in set"
    assert not list(tmp_path.rglob("*.nc"))


def test_a_torn_checkpoint_ends_with_one_line_naming_it_and_exit_status_1(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "bptt_synthetic_seed0" / "state.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 torn")
    result = subprocess.run(_command("bptt_shd.py", *DATA, "--epochs", "1", "--n-hidden", "8", "--dt", "20ms",
                                     "--out", str(tmp_path), "--resume"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error: cannot read {checkpoint}" in result.stderr and "Traceback" not in result.stderr


def test_a_bug_still_shows_its_traceback():
    from studies.cli import run_main

    def buggy(argv):
        return len(3)

    with pytest.raises(TypeError):
        run_main(buggy, [])
    result = subprocess.run([sys.executable, "-c", "from studies.cli import run_main\n"
                             "run_main(lambda argv: len(3), [])"], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and "Traceback" in result.stderr and "TypeError" in result.stderr
