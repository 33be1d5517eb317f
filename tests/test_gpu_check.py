"""studies/gpu_check.py: its comparisons, run CPU against CPU here (no GPU), and its refusal without a GPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_rule_agrees_with_itself_across_devices(tmp_path):
    from studies import gpu_check

    ds = xr.load_dataset(gpu_check.main(["--target", "runtime", "--torch-target", "cpu", "--out", str(tmp_path)]))
    assert list(ds.rule.values) == ["stdp", "lsm", "eprop", "bptt"]
    assert ds.passed.all() and (ds.agreement == 1).all() and float(ds.error.max()) < 1e-9
    assert (ds.spikes_reference.sel(rule=["stdp", "lsm", "eprop"]) > 0).all(), "the checks must see spikes"


def test_a_disagreement_fails_the_check(monkeypatch):
    import numpy as np

    from studies import gpu_check

    calls = []

    def fake(rule, device, folder):
        calls.append(device)
        counts = np.ones((4, 3, 5))
        if device == "runtime":
            counts[:, :, :1] = 0  # 20% of the counts differ
        return {"counts": counts, "weights": np.ones(10)}

    monkeypatch.setattr(gpu_check, "_brian2", fake)
    row = gpu_check.check_brian2("stdp", "cpp_standalone", "runtime", Path("unused"))
    assert calls == ["cpp_standalone", "runtime"] and not row["passed"] and row["agreement"] == pytest.approx(0.8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would run")
def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path):
    done = subprocess.run([sys.executable, "studies/gpu_check.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: no GPU to check") and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.nc"))


class _Generated(Exception):
    """Raised in place of compiling: the project's code has been generated."""


@pytest.mark.parametrize("rule", ["stdp", "lsm", "eprop"])
def test_every_brian2_rule_generates_a_cuda_standalone_project(tmp_path, monkeypatch, rule):
    # What the GPU check builds for each rule, generated for brian2cuda here (nvcc compiles one
    # small network in test_lif.py; a rule's project takes nvcc 10-20 minutes on 2 cores).
    import shutil

    from brian2 import device

    from models.engine import devices
    from models.engine.compiled import CompiledNetwork
    from studies import gpu_check

    pytest.importorskip("brian2cuda")
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH: cuda_standalone cannot be selected here")
    activate = devices.activate
    monkeypatch.setattr(devices, "activate",
                        lambda name, build_dir, compile_only=False: activate(name, build_dir, compile_only=True))

    def generate_only(self):
        device.build(directory=str(self.build_dir), compile=False, run=False, clean=False)
        raise _Generated

    monkeypatch.setattr(CompiledNetwork, "build", generate_only)
    with pytest.raises(_Generated):
        gpu_check._brian2(rule, "cuda_standalone", tmp_path / rule)
    kernels = list((tmp_path / rule / "code_objects").glob("*.cu"))
    assert len(kernels) > 10 and (tmp_path / rule / "makefile").exists(), f"{len(kernels)} kernels generated"
