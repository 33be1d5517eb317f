"""The comparison report: methods, set-up, tables, figures and conclusions, from results files alone.

    python -m analysis.report results/compare_synthetic.nc [results/bench_*.nc ...] --out report/

Writes ``report/report.md`` and its PNG figures. Every number and every conclusion is computed
from the files given; nothing is written in advance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from analysis.figures import draw
from analysis.stats import mean_ci

#: Each rule's update, as the code implements it (see the docstrings in learning_rules/), and where it
#: departs from its paper, with the reason.
METHODS = {
    "stdp": ("Unsupervised STDP of Diehl & Cook (2015): conductance-based excitatory neurons with adaptive "
             "thresholds, each driving an inhibitory neuron that silences the others (hard winner-take-all), then "
             "the paper's label assignment and a logistic readout of time-binned spike counts",
             "at each postsynaptic spike $\\Delta w = \\eta (x_\\mathrm{pre} - x_\\mathrm{tar})(w_\\max - w)^{\\mu}$ "
             "(eq. 4; $\\eta = 0.01$, $x_\\mathrm{tar} = 0.4$, $\\mu = 0.2$, $w_\\max = 1$); $\\theta \\mathrel{+}= 0.05$ mV "
             "per spike, $\\tau_\\theta = 10^7$ ms; incoming weights normalised to 78/784 per input before every "
             "training sample.",
             "audio spike trains replayed as recorded instead of Poisson rates, the paper's rate increase for a silent "
             "layer (fewer than 5 spikes) kept as a larger input gain on a second presentation, after the sample's "
             "chunk rather than at once; state reset at each sample instead of a 150 ms rest; normalisation target "
             "per input; no synaptic delays (the released code has 0-10 ms); initial weights normalised once, so the "
             "frozen control is the network learning starts from (see `learning_rules/stdp.py`)."),
    "lsm": ("Liquid state machine (Maass et al. 2002): fixed recurrent LIF reservoir, logistic readout of "
            "time-binned counts (and, in the LSM study, a least-squares readout of windowed spike counts and "
            "spike-train inner products whose terms are chosen by the forward orthogonal regression of "
            "Florescu & Coca 2019)",
            "no plasticity in the network; the readout minimises the regularised logistic loss, "
            "$C$ chosen on validation.",
            "current-based LIF with exponential synapses instead of dynamic synapses; no delays; state reset "
            "at every sample. The spike-time readout takes only the spike-train space and the ERR selection "
            "from Florescu & Coca: its targets (one-hot classes), terms (windowed counts and pairwise inner "
            "products), intercept and decision are ours."),
    "eprop": ("Three-factor e-prop (Bellec et al. 2020), online, symmetric feedback",
              "$\\Delta w_{ji} \\propto -\\sum_t L_j(t)\\,\\bar e_{ji}(t)$, "
              "$L_j = \\sum_k W^\\mathrm{out}_{kj}(\\pi_k - \\pi^*_k)$, $\\bar e_{ji} = \\kappa * (\\psi_j \\epsilon_{ji})$, "
              "Adam after every sample.",
              "the project's current-based LIF (reset to $v_\\mathrm{reset}$, no adaptation); the pseudo-derivative "
              "is the BPTT baseline's fast sigmoid without the paper's damping $\\gamma_\\mathrm{pd} = 0.3$ (a constant "
              "factor on every hidden gradient, which Adam's per-weight normalisation removes); cross-entropy at every "
              "time step rather than in a final window (a digit's label holds for the whole sample, and the update "
              "then sees all of it); self-connections kept (the BPTT baseline's recurrent matrix is full and both "
              "train the same network); Adam after every sample, batch size 1 (online learning is e-prop's claim)."),
    "bptt": ("Backpropagation through time with surrogate gradients (Neftci et al. 2019), the baseline",
             "$\\Delta w \\propto -\\partial L / \\partial w$ by autograd through all time steps; "
             "$\\partial s/\\partial v = (\\beta|u|+1)^{-2}$; Adam on mini-batches.",
             "exact integration of the project's LIF instead of forward Euler; initial weights normal with standard "
             "deviation weight_scale / sqrt(fan-in) for input and readout alike (half for recurrent), one tuning "
             "parameter rather than the SpyTorch tutorials' scale tied to their neuron's decay per step."),
    "counts": ("Control: logistic readout of the input's own time-binned spike counts (no network)",
               "no network; the readout minimises the regularised logistic loss.", ""),
}


def _fmt(mean, low, high, digits=3):
    if np.isnan(mean):
        return "n/a"
    if np.isnan(low):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def _summary(ds: xr.Dataset, name: str, rule: str):
    return mean_ci(ds[name].sel(rule=rule).values)


def compare_section(ds: xr.Dataset, figures: list[Path], out: Path) -> list[str]:
    rules = [str(r) for r in ds.rule.values]
    n_seeds = ds.sizes["seed"]
    lines = ["## Set-up", ""]
    lines.append(f"- Dataset: **{ds.attrs.get('dataset')}** (asked for: {ds.attrs.get('dataset_requested')}); "
                 f"{ds.attrs.get('n_train')} training, {ds.attrs.get('n_val')} validation, {ds.attrs.get('n_test')} "
                 f"test samples; {ds.attrs.get('n_channels')} input channels, {ds.attrs.get('n_classes')} classes.")
    lines.append(f"- Seeds: {n_seeds} ({', '.join(str(s) for s in ds.seed.values)}); intervals are 95% Student-t "
                 "intervals of the mean over seeds.")
    lines.append(f"- Shared neuron (LIF constants): `{ds.attrs.get('lif')}`; shared preprocessing: "
                 f"`{ds.attrs.get('preprocessing')}`.")
    lines.append(f"- Budgets: `{ds.attrs.get('budgets')}`; Brian2 device `{ds.attrs.get('device')}`; "
                 f"code `{ds.attrs.get('git_commit')}`.")
    lines.append(f"- Energy: {ds.attrs.get('energy_reference')}. A spiking inference costs one accumulate per "
                 "synaptic event; the same-size non-spiking network evaluates every connection at every step.")
    lines += ["", "## Methods", ""]
    for rule in rules:
        title, update, departures = METHODS.get(rule, (rule, "", ""))
        line = f"- **{rule}** ({ds.locality.sel(rule=rule).item()}): {title}. Update: {update}"
        lines.append(line + (f" Departures from the paper: {departures}" if departures else ""))
    lines += ["", "## Results", "",
              "| rule | test accuracy | synaptic events / inference | energy / inference (uJ) | same-size dense (uJ) "
              "| training time (s) | peak memory (MiB) | parameters | locality |",
              "|---|---|---|---|---|---|---|---|---|"]
    for rule in rules:
        cells = [_fmt(*_summary(ds, n, rule)) for n in ("test_accuracy", "synaptic_operations_per_sample",
                                                        "energy_per_inference", "dense_energy_per_inference",
                                                        "train_seconds")]
        memory = np.nanmax([ds.peak_memory.sel(rule=rule).values, ds.peak_memory_children.sel(rule=rule).values])
        params = np.nanmean(ds.trainable_parameters.sel(rule=rule).values)
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {memory:.0f} | {params:.0f} | "
                     f"{ds.locality.sel(rule=rule).item()} |")
    lines += [""]
    for fig in figures:
        lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
    lines += ["## Conclusions (computed from the table)", ""] + conclusions(ds)
    return lines


def conclusions(ds: xr.Dataset) -> list[str]:
    rules = [str(r) for r in ds.rule.values]
    acc = {r: _summary(ds, "test_accuracy", r) for r in rules}
    chance = 1 / ds.attrs.get("n_classes", 1)
    out = []
    best = max(rules, key=lambda r: -np.inf if np.isnan(acc[r][0]) else acc[r][0])
    out.append(f"- Highest mean test accuracy: **{best}** ({acc[best][0]:.3f}; chance {chance:.3f}).")
    for rule in rules:
        mean, low, high = acc[rule]
        if np.isnan(mean):
            continue
        if not np.isnan(low):
            verdict = "above chance" if low > chance else "not distinguishable from chance"
            out.append(f"- {rule}: {mean:.3f} [{low:.3f}, {high:.3f}], {verdict} at 95%.")
    if "bptt" in rules:
        for rule in rules:
            if rule != "bptt" and not np.isnan(acc[rule][0]) and not np.isnan(acc["bptt"][0]):
                gap = 100 * (acc["bptt"][0] - acc[rule][0])
                out.append(f"- {rule} is {abs(gap):.1f} points {'below' if gap > 0 else 'above'} the BPTT baseline.")
    if "counts" in rules:
        control = acc["counts"][0]
        better = [r for r in rules if r != "counts" and acc[r][0] > control]
        out.append(f"- Rules above the no-network control ({control:.3f}): "
                   + (", ".join(better) if better else "none") + ".")
    energy = {r: _summary(ds, "energy_per_inference", r)[0] for r in rules}
    dense = {r: _summary(ds, "dense_energy_per_inference", r)[0] for r in rules}
    for rule in rules:
        if energy[rule] > 0 and dense[rule] > 0:
            out.append(f"- {rule}: an inference costs an estimated {energy[rule]:.3g} uJ as spikes against "
                       f"{dense[rule]:.3g} uJ for a same-size dense network ({dense[rule] / energy[rule]:.1f}x).")
    return out


def bench_section(ds: xr.Dataset, figures: list[Path], out: Path, name: str) -> list[str]:
    lines = [f"## Benchmark: {ds.attrs.get('benchmark', name)}", ""]
    for var in ds.data_vars:
        values = np.atleast_1d(ds[var].values)
        if values.dtype.kind in "fiu":
            shown = ", ".join(f"{v:.4g}" for v in values[:8])
            lines.append(f"- {ds[var].attrs.get('long_name', var)} ({ds[var].attrs.get('units', '')}): {shown}")
    lines.append("")
    for fig in figures:
        lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
    return lines


def build_report(paths: list[Path], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Which ways of training spiking networks are worth their cost?", ""]
    for path in paths:
        figures = draw(path, out / "figures")
        with xr.open_dataset(path) as ds:
            if "rule" in ds.dims:
                lines += compare_section(ds, figures, out)
            elif "benchmark" in ds.attrs:
                lines += bench_section(ds, figures, out, path.stem)
            else:
                lines += [f"## {path.stem}", "", f"- test accuracy: {float(ds.test_accuracy):.3f}"
                          if "test_accuracy" in ds else "", ""]
                lines += [f"![{f.stem}]({f.relative_to(out).as_posix()})" for f in figures] + [""]
    lines += ["## Provenance", ""] + [f"- `{p}`" for p in paths]
    report = out / "report.md"
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(report)
    return report


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results files (.nc)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its figures")
    args = parser.parse_args(argv)
    missing = [p for p in args.results if not p.exists()]
    if missing:
        parser.error(f"no such results file: {', '.join(map(str, missing))}")
    report = build_report(args.results, args.out)
    print(f"report: {report}")
    return report


if __name__ == "__main__":
    main()
