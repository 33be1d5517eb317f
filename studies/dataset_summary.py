"""Statistics of a spiking dataset, to compare with SHD's: spikes per sample, per-channel rates,
one raster per class, and how much a readout of spike counts alone can tell.

    python studies/dataset_summary.py --dataset fsdd --data-dir ../shared/data/fsdd/recordings \
        --reference ../shared/data/fsdd-lauscher-ref/fsdd_lauscher_ref.h5

Writes ``OUT/summary_<dataset>.nc``; ``python -m analysis.figures OUT/summary_<dataset>.nc`` draws it.
With ``--reference`` (a file in SHD's layout, such as the FSDD recordings passed through SHD's own
cochlea pipeline) the same statistics are computed for it too.
"""

from __future__ import annotations

import dataclasses
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
    data["wall_seconds"] = results.scalar(job.elapsed, "s", "wall time (conversion included)")
    ds = xr.Dataset(data, coords={"time_bins": [1, 4], "channel": np.arange(n_ch)})
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
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
