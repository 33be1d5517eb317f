"""Check a GPU in minutes: every rule briefly on the GPU and on the CPU, results compared.

    python studies/gpu_check.py                      # where a CUDA GPU exists
    python studies/gpu_check.py --target runtime --torch-target cpu   # the same checks, CPU against CPU

The Brian2 rules (STDP learning four samples, the liquid's responses, e-prop learning four samples)
run on ``--reference`` (cpp_standalone) and on ``--target`` (cuda_standalone, brian2cuda), same
network, seed and input; BPTT trains three epochs with PyTorch on ``cpu`` and on ``--torch-target``
(cuda). Compared, with the tolerances below (both sides compute in double precision for Brian2, e-prop's
eligibility traces stored in float32 on both, but
a GPU's transcendental functions may differ in the last bits and move a spike by one step, which a
recurrent network can carry on; PyTorch on a GPU sums in another order in float32):

- Brian2 rules: the fraction of (sample, bin, neuron) spike counts that are identical, at least
  :data:`MIN_SAME_COUNTS`; learned weights (STDP, e-prop) within a relative :data:`WEIGHT_RTOL`.
- BPTT: the training loss of every epoch within a relative :data:`LOSS_RTOL`.

Writes ``OUT/gpu_check.nc`` (one row per rule: what was compared, the measured agreement, the
tolerance, pass or fail) and exits with status 1 if any check fails. Without a GPU (and with the
default targets) it says so in one line and exits with status 2; nothing is run.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import mV, ms

from models import files
from models.engine import devices
from models.engine.devices import DEVICES, DeviceUnavailableError
from studies import results
from studies.cli import run_main
from studies.quick_help import HelpCachingParser

MIN_SAME_COUNTS = 0.95  # Brian2 rules: least fraction of identical spike counts
WEIGHT_RTOL = 1e-3  # Brian2 rules: largest difference of learned weights, relative to the largest weight
LOSS_RTOL = 1e-3  # BPTT: largest relative difference of an epoch's training loss
N_IN, N_CLASSES, DURATION = 30, 3, 150 * ms


def _data(dt):
    from datasets import Preprocessing, load_splits
    from datasets.synthetic_bursts import SyntheticConfig

    config = SyntheticConfig(n_channels=N_IN, n_classes=N_CLASSES, n_train=16, n_test=3, duration=DURATION,
                             spikes_per_burst=10, margin=20 * ms)
    return load_splits("synthetic", synthetic=config, preprocessing=Preprocessing(duration=DURATION, dt=dt),
                       val_fraction=0.2)


def _brian2(rule: str, device: str, folder: Path) -> dict:
    """Counts (and learned weights) of ``rule`` on ``device`` for four samples."""
    from models.engine.inputs import chunk_capacity

    dt = 1 * ms if rule == "eprop" else 0.1 * ms
    samples = _data(dt).train.samples[:4]
    capacity = chunk_capacity([samples], 4, N_IN)
    common = dict(sample_duration=DURATION, dt=dt, chunk_size=4, capacity=capacity, device_name=device,
                  build_dir=folder, seed=1)
    try:
        if rule == "stdp":
            from learning_rules.stdp import STDPNetwork, STDPParams

            net = STDPNetwork(STDPParams(n_neurons=20, input_gain=30.0), N_IN, n_bins=3, **common)
            counts = net.run_chunk(samples, learn=True)
            return {"counts": np.asarray(counts), "weights": np.asarray(net.weights_)}
        if rule == "lsm":
            from learning_rules.lsm import Liquid, ReservoirParams

            net = Liquid(ReservoirParams(n_neurons=60, p_input=0.5, w_input=8 * mV), N_IN, n_bins=3, **common)
            return {"counts": np.asarray(net.run_chunk(samples)["counts"])}
        from learning_rules.eprop import EPropNetwork, EPropParams

        net = EPropNetwork(EPropParams(n_hidden=16, weight_scale=15.0), N_IN, N_CLASSES, **common)
        out = net.run_chunk(samples, learn=True)
        weights = np.concatenate([np.ravel(v) for k, v in sorted(net.state_.items()) if k.startswith("w_")])
        return {"counts": np.asarray(out["counts"]), "weights": weights}
    finally:
        devices.reset_brian()


def check_brian2(rule: str, reference: str, target: str, folder: Path) -> dict:
    a = _brian2(rule, reference, folder / f"{rule}_{reference}")
    b = _brian2(rule, target, folder / f"{rule}_{target}")
    same = float(np.mean(a["counts"] == b["counts"]))
    weight_error = 0.0
    if "weights" in a:
        scale = max(float(np.max(np.abs(a["weights"]))), 1e-30)
        weight_error = float(np.max(np.abs(a["weights"] - b["weights"]))) / scale
    passed = same >= MIN_SAME_COUNTS and weight_error <= WEIGHT_RTOL
    return {"agreement": same, "error": weight_error, "passed": passed,
            "compared": f"spike counts identical (>= {MIN_SAME_COUNTS}); learned weights within {WEIGHT_RTOL} relative",
            "spikes": (float(a["counts"].sum()), float(b["counts"].sum()))}


def _bptt_losses(torch_device: str) -> np.ndarray:
    from learning_rules.bptt import BPTTClassifier, BPTTParams

    splits = _data(1 * ms)
    clf = BPTTClassifier(BPTTParams(n_hidden=16, batch_size=4), n_inputs=N_IN, dt=1 * ms, duration=DURATION, epochs=3,
                         seed=1, torch_device=torch_device)
    clf.initialize(np.arange(N_CLASSES))
    losses = []
    for _ in range(3):
        clf.partial_fit(splits.train.samples, splits.train.labels)
        losses.append(clf.loss_)
    return np.asarray(losses)


def check_bptt(target: str) -> dict:
    a, b = _bptt_losses("cpu"), _bptt_losses(target)
    error = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))
    return {"agreement": float(1 - error), "error": error, "passed": error <= LOSS_RTOL,
            "compared": f"training loss of each of 3 epochs within {LOSS_RTOL} relative", "spikes": (np.nan, np.nan)}


def gpu_present() -> str:
    """Why no GPU can be used here ('' when one can)."""
    import torch

    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU (torch.cuda.is_available() is False)"
    if shutil.which("nvcc") is None:
        return "the CUDA compiler nvcc is not on PATH (brian2cuda needs it)"
    return ""


def run(rules: list[str], reference: str, target: str, torch_target: str, out: Path) -> xr.Dataset:
    started = results.now()
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_", dir=Path(out)))
    rows = {}
    try:
        for rule in rules:
            print(f"{rule}: {reference if rule != 'bptt' else 'cpu'} against "
                  f"{target if rule != 'bptt' else torch_target} ...", file=sys.stderr)
            rows[rule] = check_bptt(torch_target) if rule == "bptt" else check_brian2(rule, reference, target, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    names = list(rows)
    ds = xr.Dataset(
        {
            "agreement": ("rule", [rows[r]["agreement"] for r in names],
                          {"units": "1", "long_name": "fraction of identical spike counts (BPTT: 1 - loss error)"}),
            "error": ("rule", [rows[r]["error"] for r in names],
                      {"units": "1", "long_name": "largest relative difference of weights (BPTT: of the loss)"}),
            "passed": ("rule", [int(rows[r]["passed"]) for r in names], {"units": "1", "long_name": "1 when within tolerance"}),
            "compared": ("rule", [rows[r]["compared"] for r in names], {"long_name": "what was compared, and the tolerance"}),
            "spikes_reference": ("rule", [rows[r]["spikes"][0] for r in names],
                                 {"units": "1", "long_name": "spikes counted on the reference device"}),
            "spikes_target": ("rule", [rows[r]["spikes"][1] for r in names],
                              {"units": "1", "long_name": "spikes counted on the target device"}),
        },
        coords={"rule": names},
    )
    results.benchmark_attrs(ds, "gpu_check", started, reference=reference, target=target, torch_target=torch_target,
                           min_same_counts=MIN_SAME_COUNTS, weight_rtol=WEIGHT_RTOL, loss_rtol=LOSS_RTOL)
    return ds


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rules", nargs="+", default=["stdp", "lsm", "eprop", "bptt"],
                        choices=["stdp", "lsm", "eprop", "bptt"], help="rules checked")
    parser.add_argument("--reference", choices=DEVICES, default="cpp_standalone", help="Brian2 device of the reference run")
    parser.add_argument("--target", choices=DEVICES, default="cuda_standalone", help="Brian2 device checked")
    parser.add_argument("--torch-target", choices=("cpu", "cuda"), default="cuda", help="PyTorch device checked (BPTT)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    if args.target == "cuda_standalone" or args.torch_target == "cuda":
        missing = gpu_present()
        if missing:
            raise DeviceUnavailableError(f"no GPU to check: {missing}. Nothing was run; on a machine with a CUDA GPU "
                                         "run this again (or check the comparison itself with --target runtime "
                                         "--torch-target cpu)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    ds = run(args.rules, args.reference, args.target, args.torch_target, args.out)
    path = files.write_netcdf(ds, Path(args.out) / "gpu_check.nc")
    for rule in ds.rule.values:
        r = ds.sel(rule=rule)
        print(f"{rule:6s} {'pass' if int(r.passed) else 'FAIL'}: agreement {float(r.agreement):.4f}, "
              f"error {float(r.error):.2g} ({str(r.compared.values)})")
    print(f"results: {path}")
    if not ds.passed.all():
        raise SystemExit(1)
    return path


if __name__ == "__main__":
    run_main(main)
