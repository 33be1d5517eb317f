"""Statistics of a spiking dataset, to compare with SHD's: spikes per sample, per-channel rates,
one raster per class, and how much a readout of spike counts alone can tell.

    python studies/dataset_summary.py --dataset fsdd --data-dir ../shared/data/fsdd/recordings \
        --reference ../shared/data/fsdd-lauscher-ref/fsdd_lauscher_ref.h5

Writes ``OUT/summary_<dataset>.nc``; ``python -m analysis.figures OUT/summary_<dataset>.nc`` draws it.
With ``--reference`` (a file in SHD's layout, such as the FSDD recordings passed through SHD's own
cochlea pipeline) the same statistics are computed for it too.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second

from datasets import Preprocessing, spike_counts
from learning_rules.readout import fit_logistic_readout, score_readout
from models import files
from models.units import const
from studies import results
from studies.cli import run_main
from studies.config import RunConfig, build_parser, config_from_args
from studies.run import Run


@dataclass(frozen=True)
class SummaryConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    duration: Quantity = const(1 * second)  # samples cropped to this length
    reference: Path | None = None  # SHD-layout file to compare with
    controls: bool = True  # measure what spike counts alone tell: total counts, and the best time-binned counts
    bptt_seconds: float = 600.0  # training wall time of the BPTT baseline at 1 ms steps, the timing control (0: skip it)


def _statistics(units_list, times_list, n_channels):
    spikes = np.array([len(u) for u in units_list], dtype=float)
    counts = np.zeros(n_channels)
    active = []
    for u in units_list:
        counts += np.bincount(u, minlength=n_channels)[:n_channels]
        active.append(len(np.unique(u)))
    spans = np.array([(t.max() - t.min()) if len(t) > 1 else np.nan for t in times_list])
    rate = counts / len(units_list) / np.nanmean(spans)
    return spikes, rate, np.array(active, dtype=float)


def _count_controls(splits, config: SummaryConfig) -> dict:
    """Ridge readouts of the input's spike counts, chosen on validation and tested once: total counts
    per channel, and the best number of equal time bins (1 up to 5 ms bins)."""
    from learning_rules.count_control import N_BINS_OPTIONS, fit_count_control

    sets = (splits.train, splits.val)
    options = [n for n in N_BINS_OPTIONS if float(config.duration / n) >= 0.005 - 1e-12]
    total = fit_count_control(sets[0].samples, sets[0].labels, sets[1].samples, sets[1].labels, splits.n_channels,
                              config.duration, n_bins_options=(1,))
    binned = fit_count_control(sets[0].samples, sets[0].labels, sets[1].samples, sets[1].labels, splits.n_channels,
                               config.duration, n_bins_options=options)
    test = splits.test
    return {
        "control_total_counts_accuracy": results.scalar(total.model.score(test.samples, test.labels), "1",
                                                        "test accuracy, ridge readout of total spike counts per channel"),
        "control_binned_counts_accuracy": results.scalar(
            binned.model.score(test.samples, test.labels), "1",
            "test accuracy, ridge readout of time-binned spike counts (bins and penalty chosen on validation)"),
        "control_binned_counts_bins": results.scalar(int(binned.n_bins), "1", "time bins chosen on validation"),
        "control_binned_counts_val_accuracy": (
            "count_bins", binned.val_accuracy.max(axis=1),
            {"units": "1", "long_name": "validation accuracy of the binned-count readout (best penalty)"}),
    }


def _bptt_control(config: SummaryConfig) -> dict:
    """The BPTT baseline with its untuned defaults at 1 ms steps, trained for at most
    ``bptt_seconds``, the epoch chosen on validation, tested once: what a network that sees timing gets."""
    from studies import bptt_shd
    from studies.run import discard_checkpoints

    out = Path(config.run.out) / "summary_bptt"
    study = bptt_shd.BPTTStudyConfig(run=dataclasses.replace(config.run, out=out, resume=False),
                                     input=Preprocessing(duration=config.duration, dt=1 * ms), epochs=10_000,
                                     max_train_seconds=config.bptt_seconds)
    ds = bptt_shd.run(study)
    discard_checkpoints(ds, out)
    shutil.rmtree(out, ignore_errors=True)  # it held only this control's checkpoints and builds
    return {
        "control_bptt_accuracy": results.scalar(float(ds.test_accuracy), "1",
                                                "test accuracy, BPTT baseline at 1 ms steps (untuned defaults)"),
        "control_bptt_epochs": results.scalar(int(ds.sizes["epoch"]), "1", "epochs the BPTT baseline trained"),
        "control_bptt_train_seconds": results.scalar(float(ds.train_seconds), "s", "its training wall time"),
    }


def run(config: SummaryConfig) -> xr.Dataset:
    job = Run("summary", config)
    prep = Preprocessing(duration=config.duration, dt=1 * ms)
    splits = job.load_splits(prep)
    train = splits.train
    n_ch = splits.n_channels
    spikes, rate, active = _statistics([s.units for s in train.samples],
                                       [np.asarray(s.times / second) for s in train.samples], n_ch)
    # Raster: the first training sample of each class.
    raster = {"unit": [], "time": [], "cls": []}
    for c in range(splits.n_classes):
        hits = np.flatnonzero(train.labels == c)
        if hits.size:
            s = train.samples[hits[0]]
            raster["unit"].append(s.units)
            raster["time"].append(np.asarray(s.times / second))
            raster["cls"].append(np.full(len(s.units), c))
    # What spike counts alone tell: logistic readout on per-channel counts in a few time bins.
    readouts = {}
    for bins in (1, 4):
        x = [spike_counts(d.samples, n_ch, bins, prep.duration) for d in (splits.train, splits.val, splits.test)]
        fit = fit_logistic_readout(x[0], splits.train.labels, x[1], splits.val.labels, seed=config.run.seed)
        readouts[bins] = score_readout(fit, x[2], splits.test.labels)
    data = {
        "spikes_per_sample": ("sample", spikes, {"units": "1", "long_name": "spikes per training sample"}),
        "active_channels": ("sample", active, {"units": "1", "long_name": "channels with at least one spike"}),
        "channel_rate": ("channel", rate, {"units": "Hz", "long_name": "mean firing rate per channel while the sample lasts"}),
        "raster_unit": ("spike", np.concatenate(raster["unit"]), {"units": "1", "long_name": "channel"}),
        "raster_time": ("spike", np.concatenate(raster["time"]), {"units": "s", "long_name": "time"}),
        "raster_class": ("spike", np.concatenate(raster["cls"]), {"units": "1", "long_name": "class of the sample"}),
        "count_readout_accuracy": ("time_bins", [readouts[1], readouts[4]],
                                   {"units": "1", "long_name": "test accuracy of a logistic readout on spike counts"}),
    }
    if config.reference is not None:
        with h5py.File(config.reference, "r") as f:
            ref_units = [np.asarray(u, dtype=np.int64) for u in f["spikes/units"]]
            ref_times = [np.asarray(t, dtype=np.float64) for t in f["spikes/times"]]
        ref_spikes, ref_rate, ref_active = _statistics(ref_units, ref_times, n_ch)
        data.update({
            "reference_spikes_per_sample": ("reference_sample", ref_spikes,
                                            {"units": "1", "long_name": "spikes per sample, reference pipeline"}),
            "reference_active_channels": ("reference_sample", ref_active,
                                          {"units": "1", "long_name": "active channels, reference pipeline"}),
            "reference_channel_rate": ("channel", ref_rate,
                                       {"units": "Hz", "long_name": "mean firing rate per channel, reference pipeline"}),
        })
    if config.controls:
        data.update(_count_controls(splits, config))
    if config.bptt_seconds > 0:
        data.update(_bptt_control(config))
    data["wall_seconds"] = results.scalar(job.elapsed, "s", "wall time (conversion included)")
    coords = {"time_bins": [1, 4], "channel": np.arange(n_ch)}
    if config.controls:
        from learning_rules.count_control import N_BINS_OPTIONS

        coords["count_bins"] = [n for n in N_BINS_OPTIONS if float(config.duration / n) >= 0.005 - 1e-12]
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(summary="dataset", class_names=list(splits.train.class_names),
                    reference=str(config.reference) if config.reference else "")
    return job.finish(ds, device="none")


def main(argv=None) -> Path:
    config = config_from_args(SummaryConfig, build_parser(SummaryConfig, __doc__).parse_args(argv))
    ds = run(config)
    path = files.write_netcdf(ds, Path(config.run.out) / f"summary_{ds.attrs['dataset']}.nc")
    print(f"median spikes per sample {np.median(ds.spikes_per_sample):.0f}, "
          f"median active channels {np.median(ds.active_channels):.0f}"
          + (f" (reference: {np.median(ds.reference_spikes_per_sample):.0f}, "
             f"{np.median(ds.reference_active_channels):.0f})" if "reference_spikes_per_sample" in ds else ""))
    print(f"logistic readout on spike counts: {float(ds.count_readout_accuracy[0]):.3f} (1 bin), "
          f"{float(ds.count_readout_accuracy[1]):.3f} (4 bins); chance {1 / ds.attrs['n_classes']:.3f}")
    if "control_binned_counts_accuracy" in ds:
        print(f"count controls (test): total counts {float(ds.control_total_counts_accuracy):.3f}, best binned counts "
              f"{float(ds.control_binned_counts_accuracy):.3f} ({int(ds.control_binned_counts_bins)} bins)")
    if "control_bptt_accuracy" in ds:
        print(f"BPTT baseline at 1 ms ({int(ds.control_bptt_epochs)} epochs): {float(ds.control_bptt_accuracy):.3f}")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
