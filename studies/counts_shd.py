"""The no-network control: a logistic readout of the input's own time-binned spike counts.

    python studies/counts_shd.py                # bin count chosen on validation
    python studies/counts_shd.py --n-bins 10    # fixed

Whatever a network adds must beat what a linear readout of the input's spike counts already
tells. The readout is the one every rule ends in (log1p, standardised, logistic regression with
its strength chosen on validation); the number of equal time bins is chosen on validation too,
among :data:`learning_rules.count_control.N_BINS_OPTIONS` (1 to 200; ties go to fewer bins), unless
``--n-bins`` fixes it (as a tuning search's trial does). The test set is scored once.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr
from brian2 import ms

from datasets import Preprocessing, spike_counts
from learning_rules.count_control import N_BINS_OPTIONS
from learning_rules.readout import fit_logistic_readout, predict_readout, score_readout
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Int

RULE = "counts"


@dataclass(frozen=True)
class CountsStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=1 * ms))  # time step, duration, pooling
    n_bins: int | None = None  # equal time bins of the count features; none: the option of N_BINS_OPTIONS (1 to 200) best on validation

    def __post_init__(self):
        if self.n_bins is not None and self.n_bins < 1:
            raise ValueError(f"n_bins must be at least 1 (or none: chosen on validation), got {self.n_bins}")


def run(config: CountsStudyConfig, cache=None) -> xr.Dataset:
    """Fit on training, choose the readout strength and the bin count on validation, test once (``cache``
    is unused)."""
    job = Run(RULE, config)
    t0 = time.perf_counter()
    splits = job.load_splits(config.input)
    options = N_BINS_OPTIONS if config.n_bins is None else (config.n_bins,)
    counts = lambda d, n_bins: spike_counts(d.samples, splits.n_channels, n_bins, config.input.duration)  # noqa: E731
    scores, fit, n_bins = [], None, None
    for option in options:
        candidate = fit_logistic_readout(counts(splits.train, option), splits.train.labels, counts(splits.val, option),
                                         splits.val.labels, seed=config.run.seed)
        scores.append(candidate.val_accuracy)
        if fit is None or candidate.val_accuracy > fit.val_accuracy:  # the first best: ties go to fewer bins
            fit, n_bins = candidate, option
    if job.validation_only:
        return job.finish_validation([fit.val_accuracy], time.perf_counter() - t0, "none", [fit.train_accuracy])
    x_test = counts(splits.test, n_bins)
    n_features = splits.n_channels * n_bins
    input_spikes = float(np.mean([len(s.units) for s in splits.test.samples]))
    ds = xr.Dataset({
        "val_accuracy": ("epoch", [fit.val_accuracy], {"units": "1", "long_name": "validation accuracy"}),
        "n_bins": results.scalar(n_bins, "1", "equal time bins of the count features (chosen on validation "
                                 "unless fixed)"),
        "val_accuracy_per_n_bins": ("n_bins_option", scores,
                                    {"units": "1", "long_name": "validation accuracy of each bin count tried"}),
        "test_accuracy": results.scalar(score_readout(fit, x_test, splits.test.labels), "1", "test accuracy"),
        "train_seconds": results.scalar(time.perf_counter() - t0, "s", "fitting wall time"),
        "trainable_parameters": results.scalar(n_features * splits.n_classes + splits.n_classes, "1", "readout weights"),
        **results.prediction_vars(predict_readout(fit, x_test), splits.test.labels),
        **results.readout_macs(n_features, splits.n_classes),
        **results.learning_state_vars(results.readout_features_bytes(len(splits.train), n_features)),
        "input_spikes_per_sample": results.scalar(input_spikes, "1", "input spikes per test sample"),
        "spikes_per_sample": results.scalar(0.0, "1", "no network: no spikes of its own"),
        "synaptic_operations_per_sample": results.scalar(input_spikes, "1", "one count increment per input spike"),
        **results.memory_vars(),
        "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
    }, coords={"epoch": [1], "n_bins_option": list(options)})
    return job.finish(ds, device="none")


def summarize(ds: xr.Dataset) -> str:
    return (f"test accuracy of the input-count readout: {float(ds.test_accuracy):.3f} "
            f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")


SPEC = RuleSpec(name=RULE, config=CountsStudyConfig, run=run, summarize=summarize, locality="no network",
                search_space={"n_bins": Int(1, 200, log=True)},  # from one bin to 5 ms bins of 1 s
                chosen_on_validation=("n_bins",))


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    from studies import counts_shd

    run_main(counts_shd.main)
