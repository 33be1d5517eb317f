"""Plots of results files. Each takes an xarray Dataset (and optionally an Axes) and returns the
Axes; labels come from the variables' ``long_name`` and ``units`` attributes. Nothing here imports
a simulator."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def label(var: xr.DataArray) -> str:
    name = var.attrs.get("long_name", var.name)
    units = var.attrs.get("units", "")
    return f"{name} ({units})" if units and units != "1" else str(name)


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


def _title(ds: xr.Dataset) -> str:
    return f"{ds.attrs.get('rule', '')} on {ds.attrs.get('dataset', '')}".strip()


def plot_learning_curve(ds: xr.Dataset, ax=None):
    """Validation (and training) accuracy per epoch; the chosen epoch marked."""
    ax = _axes(ax)
    for name, style in (("train_accuracy", "--"), ("val_accuracy", "-")):
        if name in ds:
            ax.plot(ds.epoch, ds[name], style, marker="o", label=ds[name].attrs.get("long_name", name))
    if "best_epoch" in ds:
        ax.axvline(int(ds.best_epoch), color="grey", lw=0.8, ls=":", label="chosen on validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(_title(ds))
    ax.legend(fontsize="small")
    return ax


def plot_confusion(ds: xr.Dataset, ax=None):
    """Test confusion matrix, rows normalised to fractions of each true class."""
    ax = _axes(ax)
    matrix = ds.confusion.values.astype(float)
    rows = matrix.sum(axis=1, keepdims=True)
    image = ax.imshow(matrix / np.where(rows > 0, rows, 1), cmap="viridis", vmin=0, vmax=1)
    ax.figure.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{_title(ds)}: {label(ds.confusion)}", fontsize="small")
    return ax


def plot_raster(ds: xr.Dataset, ax=None):
    """Spikes of one example sample per class, side by side in time."""
    ax = _axes(ax)
    classes = np.unique(ds.raster_class.values)
    offset = 0.0
    span = float(np.nanmax(ds.raster_time.values)) if ds.sizes.get("spike", 0) else 1.0
    for c in classes:
        hit = ds.raster_class.values == c
        ax.scatter(ds.raster_time.values[hit] + offset, ds.raster_unit.values[hit], s=0.3, color=f"C{int(c) % 10}")
        offset += span * 1.05
    ax.set_xlabel(f"{label(ds.raster_time)}, one sample per class")
    ax.set_ylabel(label(ds.raster_unit))
    ax.set_title(f"{ds.attrs.get('dataset', '')}: example raster")
    return ax


def plot_channel_rates(ds: xr.Dataset, ax=None):
    ax = _axes(ax)
    ax.plot(ds.channel, ds.channel_rate, lw=0.8, label=ds.attrs.get("dataset", "this set"))
    if "reference_channel_rate" in ds:
        ax.plot(ds.channel, ds.reference_channel_rate, lw=0.8, label="reference pipeline")
        ax.legend(fontsize="small")
    ax.set_xlabel("channel")
    ax.set_ylabel(label(ds.channel_rate))
    return ax


def plot_spike_histogram(ds: xr.Dataset, ax=None):
    ax = _axes(ax)
    bins = 30
    ax.hist(ds.spikes_per_sample, bins=bins, alpha=0.7, label=ds.attrs.get("dataset", "this set"))
    if "reference_spikes_per_sample" in ds:
        ax.hist(ds.reference_spikes_per_sample, bins=bins, alpha=0.7, label="reference pipeline")
        ax.legend(fontsize="small")
    ax.set_xlabel(label(ds.spikes_per_sample))
    ax.set_ylabel("samples")
    return ax


#: Which plots apply to a results file: (name, function, variables it needs).
PLOTS = (
    ("learning_curve", plot_learning_curve, ("val_accuracy",)),
    ("confusion", plot_confusion, ("confusion",)),
    ("raster", plot_raster, ("raster_time", "raster_unit", "raster_class")),
    ("channel_rates", plot_channel_rates, ("channel_rate",)),
    ("spikes_per_sample", plot_spike_histogram, ("spikes_per_sample",)),
)


def applicable(ds: xr.Dataset):
    """The plots whose variables this file has (as arrays, not scalars)."""
    return [(name, fn) for name, fn, needs in PLOTS if all(n in ds and ds[n].ndim >= 1 for n in needs)]
