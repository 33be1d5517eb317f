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


def plot_response(ds: xr.Dataset, ax=None, sample: int = 0):
    """A network's response to one test sample: spike counts of every neuron in each time bin."""
    ax = _axes(ax)
    # The first dimension is test_sample (all samples) or shown_test_sample (the first few).
    counts = ds.test_counts.isel({ds.test_counts.dims[0]: sample}).values  # (time_bin, neuron)
    image = ax.imshow(counts.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="spikes in the bin")
    label_text = f", class {int(ds.test_label.values[sample])}" if "test_label" in ds else ""
    ax.set_xlabel(f"time bin (of {counts.shape[0]} per sample)")
    ax.set_ylabel("neuron")
    ax.set_title(f"{_title(ds)}: response to test sample {sample}{label_text}", fontsize="small")
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


def _rule_summary(ds: xr.Dataset, name: str):
    from analysis.stats import mean_ci

    rows = [mean_ci(ds[name].sel(rule=r).values) for r in ds.rule.values]
    mean = np.array([r[0] for r in rows])
    low = np.array([r[1] for r in rows])
    high = np.array([r[2] for r in rows])
    err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
    return mean, err


def plot_accuracy_by_rule(ds: xr.Dataset, ax=None):
    """Test accuracy of each rule: mean over seeds with its 95% interval."""
    ax = _axes(ax)
    mean, err = _rule_summary(ds, "test_accuracy")
    ax.bar(ds.rule.values, mean, yerr=err, capsize=4, color=[f"C{i}" for i in range(len(mean))])
    ax.axhline(1 / ds.attrs.get("n_classes", 1), color="grey", ls=":", lw=0.8, label="chance")
    ax.set_ylabel(f"{label(ds.test_accuracy)} (mean, 95% interval)")
    ax.set_xlabel("rule")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title(f"{ds.attrs.get('dataset', '')}, {ds.sizes['seed']} seed(s)")
    return ax


def plot_accuracy_vs_cost(ds: xr.Dataset, ax=None, cost: str = "synaptic_operations_per_sample"):
    """Accuracy against the cost of one inference (synaptic events or energy), log scale."""
    ax = _axes(ax)
    acc, acc_err = _rule_summary(ds, "test_accuracy")
    x, x_err = _rule_summary(ds, cost)
    for i, rule in enumerate(ds.rule.values):
        if np.isfinite(x[i]) and x[i] > 0:
            ax.errorbar(x[i], acc[i], yerr=acc_err[:, i:i + 1], xerr=x_err[:, i:i + 1], fmt="o", color=f"C{i}",
                        label=str(rule), capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel(label(ds[cost]))
    ax.set_ylabel(f"{label(ds.test_accuracy)} (95% interval)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    return ax


def plot_accuracy_vs_operations(ds: xr.Dataset, ax=None):
    """Accuracy against every operation of one inference, readouts included (a file from before they
    were gathered: the synaptic events alone)."""
    cost = "operations_per_inference" if "operations_per_inference" in ds else "synaptic_operations_per_sample"
    return plot_accuracy_vs_cost(ds, ax, cost)


def _seed_mean(values: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0) where any seed has a value, NaN elsewhere."""
    counted = np.sum(np.isfinite(values), axis=0)
    return np.where(counted > 0, np.nansum(values, axis=0) / np.maximum(counted, 1), np.nan)


def plot_learning_curves(ds: xr.Dataset, ax=None):
    """Validation (solid) and training (dashed) accuracy per epoch of each rule, means over seeds."""
    ax = _axes(ax)
    for i, rule in enumerate(ds.rule.values):
        for name, style in (("val_accuracy", "-"), ("train_accuracy", "--")):
            if name not in ds:
                continue
            curve = _seed_mean(ds[name].sel(rule=rule).values)
            keep = np.isfinite(curve)
            if keep.any():
                ax.plot(ds.epoch.values[keep], curve[keep], style, marker="o" if name == "val_accuracy" else None,
                        color=f"C{i}", label=f"{rule} ({'validation' if name == 'val_accuracy' else 'training'})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def class_names(ds: xr.Dataset) -> list[str]:
    """The class names the file records (its ``class_names`` attribute), else the class indices."""
    import json

    n = ds.sizes.get("true_class", 0)
    try:
        names = [str(c) for c in json.loads(ds.attrs.get("class_names", "[]"))]
    except ValueError:
        names = []
    return names if len(names) == n else [str(k) for k in range(n)]


def plot_confusions(ds: xr.Dataset, ax=None):
    """Test confusion matrix of each rule of a comparison (summed over seeds, rows normalised to the
    true class), one panel per rule, classes by name."""
    ax = _axes(ax)
    fig = ax.figure
    rules = [str(r) for r in ds.rule.values if ds.confusion.sel(rule=r).values.sum() > 0]
    cols = min(3, max(len(rules), 1))
    rows = -(-max(len(rules), 1) // cols)
    names = class_names(ds)
    fig.set_size_inches(4.2 * cols, 4.0 * rows)
    ax.remove()
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for panel, rule in zip(axes, rules):
        matrix = ds.confusion.sel(rule=rule).values.astype(float)
        totals = matrix.sum(axis=1, keepdims=True)
        image = panel.imshow(matrix / np.where(totals > 0, totals, 1), cmap="viridis", vmin=0, vmax=1)
        panel.set_title(rule, fontsize="small")
        ticks = np.arange(len(names))
        panel.set_xticks(ticks, names, rotation=90, fontsize=6)
        panel.set_yticks(ticks, names, fontsize=6)
        panel.set_xlabel("predicted class", fontsize="small")
        panel.set_ylabel("true class", fontsize="small")
    for panel in axes[len(rules):]:
        panel.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[:len(rules)]), label="fraction of the true class", shrink=0.8)
    return axes[0]


def plot_accuracy_vs_energy(ds: xr.Dataset, ax=None):
    """Test accuracy against the estimated energy of one inference (means over seeds, 95% intervals)."""
    return plot_accuracy_vs_cost(ds, ax, cost="energy_per_inference")


def plot_accuracy_vs_training_cost(ds: xr.Dataset, ax=None):
    """Test accuracy against the training wall time of each rule (means over seeds, 95% intervals)."""
    return plot_accuracy_vs_cost(ds, ax, cost="train_seconds")


def plot_memory_vs_length(ds: xr.Dataset, ax=None):
    """Peak memory of e-prop and BPTT against sequence length (bench_eprop results)."""
    ax = _axes(ax)
    for name in ("eprop_peak_memory", "bptt_peak_memory"):
        ax.plot(ds.sequence_steps, ds[name], marker="o", label=ds[name].attrs.get("long_name", name))
    ax.set_xlabel("sequence length (time steps of 1 ms)")
    ax.set_ylabel("memory (MiB)")
    ax.legend(fontsize="small")
    return ax


def plot_scan_heatmap(ds: xr.Dataset, ax=None, variable: str = "test_accuracy"):
    """A scan's result over its first two parameters (mean over seeds and any further ones)."""
    ax = _axes(ax)
    params = [d for d in ds[variable].dims if d != "seed"]
    values = ds[variable].mean(dim=[d for d in ds[variable].dims if d not in params[:2]])
    if len(params) == 1:
        ax.plot(ds[params[0]].values, values.values, marker="o")
        ax.set_xlabel(params[0])
        ax.set_ylabel(label(ds[variable]))
        return ax
    image = ax.imshow(values.transpose(params[1], params[0]).values, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(ds.sizes[params[0]]), [str(v) for v in ds[params[0]].values])
    ax.set_yticks(range(ds.sizes[params[1]]), [str(v) for v in ds[params[1]].values])
    ax.set_xlabel(params[0])
    ax.set_ylabel(params[1])
    ax.figure.colorbar(image, ax=ax, label=label(ds[variable]))
    return ax


def _weight_blocks(ds: xr.Dataset):
    """``[(title, initial (input, neuron), learned (input, neuron))]`` from one STDP run or the evidence file."""
    if "stdp_weights" in ds:
        w = ds.stdp_weights
        return [(str(d), w.sel(dataset=d, network="frozen").values, w.sel(dataset=d, network="trained").values)
                for d in w.dataset.values]
    return [(str(ds.attrs.get("dataset", "")), ds.initial_weights.values, ds.weights.values)]


def plot_stdp_weights(ds: xr.Dataset, ax=None):
    """Every neuron's input weights before learning and after, side by side (one column per neuron)."""
    ax = _axes(ax)
    blocks, names, edges = [], [], [0]
    for title, initial, learned in _weight_blocks(ds):
        for tag, w in (("initial", initial), ("learned", learned)):
            blocks += [w, np.full((w.shape[0], 1), np.nan)]
            names.append(f"{title}\n{tag}")
            edges.append(edges[-1] + w.shape[1] + 1)
    image = np.concatenate(blocks[:-1], axis=1)
    shown = ax.imshow(image, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                      vmin=0, vmax=np.nanpercentile(image, 99.5))
    ax.figure.colorbar(shown, ax=ax, label="input weight (conductance / leak)")
    ax.set_xticks([(lo + hi - 1) / 2 for lo, hi in zip(edges[:-1], edges[1:])], names, fontsize="x-small")
    ax.set_xlabel("neurons: before and after STDP")
    ax.set_ylabel("input channel")
    ax.set_title("STDP input weights, every neuron", fontsize="small")
    return ax


def plot_stdp_evidence(ds: xr.Dataset, ax=None):
    """Test accuracy of the trained and the frozen network, seed by seed (lines pair them), per dataset
    and readout, with chance and the mean paired gain and its interval."""
    ax = _axes(ax)
    acc = ds.test_accuracy
    x = 0
    ticks, names = [], []
    for dataset in acc.dataset.values:
        for readout in acc.readout.values:
            values = acc.sel(dataset=dataset, readout=readout)
            frozen, trained = values.sel(network="frozen").values, values.sel(network="trained").values
            for f, t in zip(frozen, trained):
                ax.plot([x, x + 1], [f, t], "-o", color="tab:blue", ms=3, lw=0.8)
            ax.hlines(float(ds.chance.sel(dataset=dataset)), x - 0.3, x + 1.3, color="grey", ls=":", lw=1)
            gain = ds.sel(dataset=dataset, readout=readout)
            ax.text(x + 0.5, np.nanmax([frozen, trained]) + 0.03,
                    f"{float(gain.accuracy_gain_mean):+.3f}\n[{float(gain.accuracy_gain_low):+.3f}, "
                    f"{float(gain.accuracy_gain_high):+.3f}]", ha="center", fontsize="xx-small")
            ticks += [x, x + 1]
            names += [f"{dataset}\n{readout}\nfrozen", "trained"]
            x += 3
    ax.set_xticks(ticks, names, fontsize="xx-small")
    ax.set_xlabel("dataset, readout, network (lines join the two networks of one seed)", fontsize="small")
    ax.set_ylabel(label(acc))
    ax.set_ylim(0, 1)
    ax.set_title("STDP: trained against its frozen initial network (dotted: chance)", fontsize="small")
    return ax


def plot_active_neurons(ds: xr.Dataset, ax=None):
    """How hard the winner-take-all is: neurons active per test sample, trained and frozen."""
    ax = _axes(ax)
    names = [n for n in ("active_neurons", "active_neurons_frozen") if n in ds]
    top = int(max(ds[n].max() for n in names))
    bins = np.arange(top + 2) - 0.5
    for name, tag in zip(names, ("trained", "frozen initial weights")):
        ax.hist(ds[name].values, bins=bins, histtype="step", label=f"{tag} (mean {float(ds[name].mean()):.1f})")
    ax.set_xlabel(label(ds.active_neurons))
    ax.set_ylabel("test samples")
    ax.set_title(_title(ds), fontsize="small")
    ax.legend(fontsize="small")
    return ax


def plot_optimization_history(ds: xr.Dataset, ax=None):
    """A tuning search: each trial's objective (colour: how it ended) and the best so far."""
    ax = _axes(ax)
    value, state = ds.val_accuracy.values, ds.state.values.astype(str)
    styles = {"complete": ("C0", "o"), "pruned": ("C1", "v"), "fail": ("C3", "x")}
    for name, (colour, marker) in styles.items():
        chosen = state == name
        if chosen.any():
            ax.scatter(ds.trial.values[chosen], np.nan_to_num(value[chosen], nan=0.0), color=colour, marker=marker,
                       label=f"{name} ({int(chosen.sum())})", zorder=3)
    complete = np.where(state == "complete", value, -np.inf)
    best = np.maximum.accumulate(complete)
    ax.step(ds.trial.values[np.isfinite(best)], best[np.isfinite(best)], where="post", color="k", lw=1,
            label="best so far")
    ax.set_xlabel(label(ds.trial))
    ax.set_ylabel(label(ds.val_accuracy).split(" (")[0])
    ax.set_ylim(0, 1)
    ax.set_title(f"search of {ds.attrs.get('rule', '')} on {ds.attrs.get('dataset', '')}: "
                 f"{ds.attrs.get('n_trials', ds.sizes['trial'])} trials")
    ax.legend(fontsize="small")
    return ax


def plot_param_importances(ds: xr.Dataset, ax=None):
    """A tuning search: how much of the objective's variance each tuned option explains (fANOVA)."""
    ax = _axes(ax)
    order = np.argsort(np.nan_to_num(ds.importance.values, nan=-1.0))
    names = [str(v) for v in ds.parameter.values[order]]
    ax.barh(names, np.nan_to_num(ds.importance.values[order], nan=0.0), color="C0")
    ax.set_xlabel(label(ds.importance))
    ax.set_xlim(0, 1)
    ax.set_title(f"what mattered in the search of {ds.attrs.get('rule', '')}"
                 + ("" if np.isfinite(ds.importance.values).any() else " (too few complete trials to tell)"))
    return ax


#: Which plots apply to a results file: (name, function, variables it needs).
PLOTS = (
    ("optimization_history", plot_optimization_history, ("trial", "val_accuracy", "state")),
    ("param_importances", plot_param_importances, ("importance", "parameter")),
    ("accuracy_by_rule", plot_accuracy_by_rule, ("rule", "seed", "test_accuracy")),
    ("accuracy_vs_synops", plot_accuracy_vs_operations, ("rule", "synaptic_operations_per_sample")),
    ("accuracy_vs_energy", plot_accuracy_vs_energy, ("rule", "energy_per_inference")),
    ("accuracy_vs_training_time", plot_accuracy_vs_training_cost, ("rule", "train_seconds")),
    ("learning_curves", plot_learning_curves, ("rule", "val_accuracy")),
    ("confusions", plot_confusions, ("rule", "confusion")),
    ("memory_vs_length", plot_memory_vs_length, ("sequence_steps", "eprop_peak_memory")),
    ("scan", plot_scan_heatmap, ("scan_parameters",)),
    ("learning_curve", plot_learning_curve, ("val_accuracy", "epoch")),
    ("confusion", plot_confusion, ("confusion",)),
    ("raster", plot_raster, ("raster_time", "raster_unit", "raster_class")),
    ("response", plot_response, ("test_counts",)),
    ("channel_rates", plot_channel_rates, ("channel_rate",)),
    ("spikes_per_sample", plot_spike_histogram, ("spikes_per_sample", "active_channels")),
    ("stdp_weights", plot_stdp_weights, ("weights", "initial_weights")),
    ("stdp_weights", plot_stdp_weights, ("stdp_weights",)),
    ("stdp_evidence", plot_stdp_evidence, ("test_accuracy", "network", "readout", "chance")),
    ("active_neurons", plot_active_neurons, ("active_neurons",)),
)


def applicable(ds: xr.Dataset):
    """The plots whose variables this file has (as arrays, not scalars)."""
    def has(name):
        if name == "scan_parameters":
            return bool(ds.attrs.get("scan_parameters"))
        return name in ds.variables and (ds[name].ndim >= 1 or name in ds.dims)

    found = [(name, fn) for name, fn, needs in PLOTS if all(has(n) for n in needs)]
    if "rule" in ds.dims:  # a comparison: its per-rule plots replace the single-run ones
        found = [(n, f) for n, f in found if n not in ("learning_curve", "confusion")]
    if "trial" in ds.dims:  # a tuning search: its own plots only
        found = [(n, f) for n, f in found if n in ("optimization_history", "param_importances")]
    return found
