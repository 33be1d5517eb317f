"""The comparison report: methods, set-up, tables, figures and conclusions, from results files alone.

    python -m analysis.report results/compare_synthetic.nc [results/bench_*.nc ...] --out report/

Writes ``report/report.md`` and its PNG figures. Every number and every conclusion is computed
from the files given; nothing is written in advance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from analysis.figures import draw
from analysis.stats import binomial_interval, holm, mean_ci, paired_over_samples, paired_over_seeds

#: Each rule's update, as the code implements it (see the docstrings in learning_rules/), and where it
#: departs from its paper, with the reason.
METHODS = {
    "stdp": ("Unsupervised STDP of Diehl & Cook (2015): conductance-based excitatory neurons with adaptive "
             "thresholds, each driving an inhibitory neuron that silences the others (hard winner-take-all), then "
             "the paper's label assignment and a logistic readout of time-binned spike counts",
             "at each postsynaptic spike $\\Delta w = \\eta (x_\\mathrm{pre} - x_\\mathrm{tar})(w_\\max - w)^{\\mu}$ "
             "(eq. 4; the paper's values, this project's defaults: $\\eta = 0.01$, $x_\\mathrm{tar} = 0.4$, $\\mu = 0.2$, "
             "$w_\\max = 1$); $\\theta \\mathrel{+}= 0.05$ mV per spike, $\\tau_\\theta = 10^7$ ms; incoming weights "
             "normalised to 78/784 per input before every training sample. A tuned comparison draws some of these "
             "(its search space and best values are under Tuning).",
             "audio spike trains replayed as recorded instead of Poisson rates, the paper's rate increase for a silent "
             "layer (fewer than 5 spikes) kept as a larger input gain on a second presentation, after the sample's "
             "chunk rather than at once; by default state reset at each sample instead of a 150 ms rest and no "
             "synaptic delays (the released code has 0-10 ms), both restored by options (`rest`, `max_delay`); "
             "normalisation target per input; initial weights normalised once, so the frozen control is the network "
             "learning starts from (see `learning_rules/stdp.py`)."),
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
              "Adam after every sample; the loss is the cross-entropy at every step averaged over the sample "
              "('per_step'), of the readout's mean over time ('mean': one learning signal per sample, "
              "$\\Delta w_{ji} \\propto -L_j \\sum_t \\bar e_{ji}(t)$), or of each class's maximum over time ('max': "
              "the sample runs twice, the first presentation finding each class's peak step $t^*_k$, the second learning "
              "from $L_j(t) = \\sum_k W^\\mathrm{out}_{kj}(\\hat\\pi_k - \\pi^*_k)[t = t^*_k]$, so not online: the sample is kept "
              "and run again). The loss is a tuned choice; to it is added "
              "$\\lambda \\frac{1}{N}\\sum_j (r_j - r_0)^2$ on the hidden rates: the same three losses and rate term as "
              "the BPTT baseline's (tested: without recurrence the gradients agree with autograd's to 1e-6).",
              "the project's current-based LIF (reset to $v_\\mathrm{reset}$, no adaptation); the pseudo-derivative "
              "is the BPTT baseline's fast sigmoid, by default without the paper's damping $\\gamma_\\mathrm{pd} = 0.3$ "
              "(option `damping`; a constant factor on every hidden gradient, which Adam's per-weight normalisation "
              "removes); cross-entropy at every time step rather than in a final window (a digit's label holds for the "
              "whole sample, and the update then sees all of it); self-connections kept by default (option "
              "`self_connections`, in both rules; the BPTT baseline's recurrent matrix is full and both train the same "
              "network); Adam after every sample, batch size 1 (online learning is e-prop's claim)."),
    "bptt": ("Backpropagation through time with surrogate gradients (Neftci et al. 2019), the baseline",
             "$\\Delta w \\propto -\\partial L / \\partial w$ by autograd through all time steps; "
             "$\\partial s/\\partial v = (\\beta|u|+1)^{-2}$; Adam on mini-batches; the loss is the cross-entropy of "
             "the readout's maximum or mean over time or at every step (e-prop offers the same three; a tuned "
             "choice), plus "
             "e-prop's rate term.",
             "exact integration of the project's LIF instead of forward Euler; initial weights normal with standard "
             "deviation weight_scale / sqrt(fan-in) for input and readout alike (half for recurrent), one tuning "
             "parameter rather than the SpyTorch tutorials' scale tied to their neuron's decay per step."),
    "counts": ("Control: logistic readout of the input's own time-binned spike counts (no network)",
               "no network; the readout minimises the regularised logistic loss; the number of equal time bins is "
               "chosen on validation among 1 to 200 (ties to fewer), unless a search's trial or `--set` fixed it "
               "(the run's file records the choice and each option's validation accuracy).", ""),
}


#: What each comparison figure shows (by the plot's name in analysis.plots).
CAPTIONS = {
    "accuracy_by_rule": "Test accuracy of each rule and of its learning-off control: mean over seeds with its 95% "
                        "Student-t interval; dotted line: chance.",
    "accuracy_vs_synops": "Test accuracy against the operations of one inference (log scale): the network's synaptic "
                          "events plus its readout's multiply-accumulates, for every rule and the count control; "
                          "means over seeds with 95% intervals.",
    "accuracy_vs_energy": "Test accuracy against the estimated energy of one inference (log scale; synaptic events "
                          "and readout multiply-accumulates priced as in Set-up); means over seeds with 95% intervals.",
    "accuracy_vs_training_time": "Test accuracy against training wall time (log scale) on the machine under "
                                 "Hardware; means over seeds with 95% intervals.",
    "learning_curves": "Validation (solid) and training (dashed) accuracy per epoch, means over seeds. Each run is "
                       "tested at its epoch of best validation accuracy. Rules whose readout is fitted once after "
                       "training have one point and no training curve.",
    "confusions": "Test confusion matrices, summed over seeds, each row normalised to its true class.",
}

#: The works the methods, the statistics and the cost model rest on.
REFERENCES = (
    "Akiba, T. et al. (2019). Optuna: a next-generation hyperparameter optimization framework. KDD, 2623-2631.",
    "Bellec, G. et al. (2020). A solution to the learning dilemma for recurrent networks of spiking neurons. "
    "Nature Communications 11, 3625.",
    "Cramer, B. et al. (2020). The Heidelberg spiking data sets for the systematic evaluation of spiking neural "
    "networks. IEEE Transactions on Neural Networks and Learning Systems 33(7), 2744-2757.",
    "Diehl, P. U. & Cook, M. (2015). Unsupervised learning of digit recognition using spike-timing-dependent "
    "plasticity. Frontiers in Computational Neuroscience 9, 99.",
    "Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap. Chapman & Hall.",
    "Florescu, D. & Coca, D. (2019). Learning with precise spike times: a new decoding algorithm for liquid state "
    "machines. Neural Computation 31(9), 1825-1852.",
    "Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of "
    "Statistics 6(2), 65-70.",
    "Horowitz, M. (2014). Computing's energy problem (and what we can do about it). IEEE ISSCC, 10-14.",
    "Maass, W., Natschläger, T. & Markram, H. (2002). Real-time computing without stable states. Neural "
    "Computation 14(11), 2531-2560.",
    "Neftci, E. O., Mostafa, H. & Zenke, F. (2019). Surrogate gradient learning in spiking neural networks. "
    "IEEE Signal Processing Magazine 36(6), 51-63.",
    "Stimberg, M., Brette, R. & Goodman, D. F. M. (2019). Brian 2, an intuitive and efficient neural simulator. "
    "eLife 8, e47314.",
    "Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference. Journal of the "
    "American Statistical Association 22(158), 209-212.",
    "Zenke, F. & Vogels, T. P. (2021). The remarkable robustness of surrogate gradient learning for instilling "
    "complex function in spiking neural networks. Neural Computation 33(4), 899-925.",
)


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
    if ds.attrs.get("dataset_generator"):
        lines.append(f"- The set is generated; its generator's constants: `{ds.attrs['dataset_generator']}`.")
    speakers = ds.attrs.get("test_speakers") or ""
    lines.append(f"- Split: **{ds.attrs.get('split', 'official')}**" + (
        f" (test speakers, never heard in training: {speakers})" if speakers else
        " (the dataset's own train/test split)") + "; validation is carved out of the training samples and is all "
                 "that chose epochs, readout strength and tuned options; each run was tested once, on the same test "
                 "samples for every rule and seed.")
    lines.append(f"- Seeds: {n_seeds} ({', '.join(str(s) for s in ds.seed.values)}); intervals are 95% Student-t "
                 "intervals of the mean over seeds.")
    if int(ds.attrs.get("preprocessing_per_rule", 0)):
        lines.append(f"- Shared neuron (LIF constants, where a rule does not set its own): `{ds.attrs.get('lif')}`; "
                     f"preprocessing differs between rules (fixed per rule with `--set`): `{ds.attrs.get('preprocessing')}`.")
    else:
        lines.append(f"- Shared neuron (LIF constants): `{ds.attrs.get('lif')}`; shared preprocessing: "
                     f"`{ds.attrs.get('preprocessing')}`.")
    lines.append(f"- Brian2 device `{ds.attrs.get('device')}`; code `{ds.attrs.get('git_commit')}`.")
    lines.append(f"- Hardware: {hardware_line(ds)}")
    lines += tuning_lines(ds)
    lines.append(f"- Energy: {ds.attrs.get('energy_reference')}. A spiking inference costs one accumulate per "
                 "synaptic event; the same-size non-spiking network evaluates every connection at every step.")
    lines += ["", "## Methods", ""]
    ablations = json.loads(ds.attrs.get("ablations", "{}"))
    suffix = ds.attrs.get("ablation_suffix", "_off")
    for rule in rules:
        title, update, departures = METHODS.get(rule, (rule, "", ""))
        base = rule[: -len(suffix)] if rule.endswith(suffix) else None
        if base is not None and rule not in METHODS:  # a learning-off control: the rule's network, frozen
            switched = ", ".join(f"{k}={json.dumps(v)}" for k, v in ablations.get(base, {}).items())
            title = f"{base} with learning switched off (`{switched}`): the same network, initial weights and readout"
            update = (f"none in the network; the readout is trained as in {base}, with the same budget, so the "
                      f"difference from {base} is what {base}'s learning added.")
        line = f"- **{rule}** ({ds.locality.sel(rule=rule).item()}): {title}. Update: {update}"
        lines.append(line + (f" Departures from the paper: {departures}" if departures else ""))
    lines += ["", "## Results", "",
              "| rule | test accuracy | synaptic events / inference | readout MACs / inference | energy / inference (uJ) "
              "| same-size dense (uJ) | training time (s) | peak memory, Python + simulator (MiB) | parameters | locality |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for rule in rules:
        cells = [_fmt(*_summary(ds, n, rule)) if n in ds else "-"  # '-': a file from before it was gathered
                 for n in ("test_accuracy", "synaptic_operations_per_sample", "readout_macs_per_sample",
                           "energy_per_inference", "dense_energy_per_inference", "train_seconds")]
        memory = _memory(ds, rule)
        params = np.nanmean(ds.trainable_parameters.sel(rule=rule).values)
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {memory} | {params:.0f} | "
                     f"{ds.locality.sel(rule=rule).item()} |")
    lines += [""] + cost_lines(ds)
    for fig in figures:
        name = fig.stem.split("_", 1)[1] if "_" in fig.stem else fig.stem
        name = next((n for n in CAPTIONS if fig.stem.endswith("_" + n)), name)
        lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", "",
                  f"*Figure `{name}`: {CAPTIONS.get(name, name.replace('_', ' '))}*", ""]
    lines += significance_lines(ds)
    lines += ["## Conclusions (computed from the tables)", ""] + conclusions(ds)
    lines += ["", "## Recommendations for choosing a rule", ""] + recommendations(ds)
    lines += ["", "## Limitations", ""] + limitations(ds)
    lines += ["", "## References", ""] + [f"- {r}" for r in REFERENCES]
    return lines


def hardware_line(ds: xr.Dataset) -> str:
    """The machine behind the timings and its load, from the file's ``hardware`` attribute."""
    import json

    try:
        hw = json.loads(ds.attrs.get("hardware", "{}"))
    except ValueError:
        hw = {}
    if not hw:
        return "not recorded (the file predates the hardware attribute); timings cannot be put in context."
    load = hw.get("load_average_1_5_15_min")
    try:
        runs = json.loads(ds.attrs.get("run_load_1min", "{}"))
    except ValueError:
        runs = {}
    during = (f"; as each rule/seed run finished, the 1-minute load ranged from {min(runs.values()):.2f} to "
              f"{max(runs.values()):.2f} (per run in the file's `run_load_1min`)" if runs else "")
    return (f"{hw.get('processor')}, {hw.get('usable_cores')} usable cores, {hw.get('memory_gib')} GiB; load average "
            f"(1, 5, 15 min) {load} when the comparison finished{during} (host `{ds.attrs.get('host')}`). Wall times "
            "are from this one machine; compare them as ratios between rules, not as absolute figures.")


def cost_lines(ds: xr.Dataset) -> list[str]:
    """Training cost and the state each rule keeps in order to learn."""
    import json

    if "learning_state" not in ds:
        return []
    parts = json.loads(ds.attrs.get("learning_state_components", "{}"))
    lines = ["### Cost of learning", "",
             "State kept in order to learn is computed from each network's size (per-weight gradients and optimiser "
             "moments, alike in every gradient rule, not counted); for BPTT it is checked against the tensors autograd "
             "saves, for e-prop and STDP against the trace variables of the built network (tests/test_learning_state.py).",
             "",
             "Training synaptic events are estimated as training presentations (sample-epochs, times the presentations "
             "per sample of a rule that runs a sample more than once: STDP while its layer is nearly silent, e-prop's "
             "maximum-over-time loss twice) times synaptic events per inference: the forward presentations only (a "
             "backward pass, a weight update and a readout's fit are not counted).",
             "",
             "| rule | training sample-epochs | training synaptic events (est.) | training time (s) | "
             "run wall time, all seeds (min) | peak memory, Python + simulator (MiB) | state kept to learn (MiB) | of which |",
             "|---|---|---|---|---|---|---|---|"]
    for rule in [str(r) for r in ds.rule.values]:
        epochs = ds.train_sample_epochs.sel(rule=rule).values if "train_sample_epochs" in ds else np.array([np.nan])
        epochs = epochs[epochs >= 0] if np.issubdtype(epochs.dtype, np.integer) else epochs
        memory = _memory(ds, rule)
        detail = "; ".join(f"{k}: {v / 2 ** 20:.3g}" for k, v in parts.get(rule, {}).items())
        events = (f"{np.nanmean(ds.train_synaptic_events.sel(rule=rule).values):.3g}"
                  if "train_synaptic_events" in ds and np.isfinite(ds.train_synaptic_events.sel(rule=rule).values).any()
                  else "-")
        lines.append(f"| {rule} | {np.mean(epochs) if len(epochs) else float('nan'):.0f} | {events} | "
                     f"{_fmt(*_summary(ds, 'train_seconds', rule))} | {_total_minutes(ds, rule)} | {memory} | "
                     f"{_fmt(*_summary(ds, 'learning_state', rule))} | {detail} |")
    return lines + [""]


def _memory(ds: xr.Dataset, rule: str) -> str:
    """The largest peak over seeds of the Python process and of the simulator binary it ran beside it,
    as ``python + binary`` (a rule without a binary: the Python process alone); their peaks need not
    coincide, so the sum bounds the run's peak from above and its larger part from below."""
    python = np.nanmax(ds.peak_memory.sel(rule=rule).values)
    binary = ds.peak_memory_children.sel(rule=rule).values if "peak_memory_children" in ds else np.array([np.nan])
    if not np.isfinite(binary).any() or np.nanmax(binary) <= 0:
        return f"{python:.0f}"
    return f"{python:.0f} + {np.nanmax(binary):.0f}"


def _total_minutes(ds: xr.Dataset, rule: str) -> str:
    """The wall time of a rule's runs over all its seeds (data, building, training, testing), or '-'
    where a file from before it was recorded lacks it."""
    if "wall_seconds" not in ds:
        return "-"
    seconds = ds.wall_seconds.sel(rule=rule).values
    return "-" if np.isnan(seconds).all() else f"{np.nansum(seconds) / 60:.1f}"


def tuning_lines(ds: xr.Dataset) -> list[str]:
    """How each rule was tuned (or that it was not)."""
    import json

    if not int(ds.attrs.get("tuned", 0)):
        fixed = fixed_options(ds)
        if not fixed:
            return ["- **Not tuned**: every rule ran its default configuration (`--trials 0`), so the comparison "
                    "measures the defaults, not the rules."]
        lines = ["- **Not tuned in this run** (`--trials 0`): each rule ran its defaults with the options fixed on "
                 "the command line (`--set`) below. Where they were taken from an earlier search, that search's "
                 "budget and trials are not in this file; the comparison is as fair as those searches were."]
        return lines + [f"  - {rule}: `{', '.join(options)}`" for rule, options in fixed.items()]
    tuning = json.loads(ds.attrs.get("tuning", "{}"))
    first = next(iter(tuning.values()), {})
    seconds = first.get("max_trial_seconds", -1)
    lines = [f"- Tuning: {ds.attrs.get('tuning_trials')} trials per rule (Optuna, seeded TPE, median pruner), on "
             "the first seed's validation split only; per trial at most "
             f"{first.get('max_sample_epochs', -1)} training sample-epochs (-1: the rule's epochs)"
             + (f" and {seconds:g} s of training wall time, checked after each epoch (e-prop: after each chunk). The "
                "seeds' runs and their learning-off controls learn from as many training samples as the best trial "
                "did within that time (column *training sample-epochs* of *Cost of learning*), not from a clock, so "
                "load does not change what they learn from" if seconds is not None and seconds > 0 else "")
             + ". Best validation accuracy and options per rule:"]
    for rule, t in tuning.items():
        lines.append(f"  - {rule}: {t['best_val_accuracy']:.3f} after {t['n_trials']} trials ({t['n_pruned']} pruned, "
                     f"{t['n_failed']} failed, {t['wall_seconds']:.0f} s); `{t['best_params']}`; space `{t['search_space']}`")
    return lines


def fixed_options(ds: xr.Dataset) -> dict[str, list[str]]:
    """The options fixed per rule with ``--set RULE.NAME=VALUE``, from the comparison's configuration."""
    import json

    fixed: dict[str, list[str]] = {}
    for item in json.loads(ds.attrs.get("config", "{}")).get("set", []):
        rule, _, assignment = str(item).partition(".")
        fixed.setdefault(rule, []).append(assignment)
    return fixed


def _configured(ds: xr.Dataset) -> str:
    """How the untuned rules were configured, in a few words."""
    return ("defaults, with the options of the set-up fixed by hand" if fixed_options(ds)
            else "every rule's defaults")


def _correct(ds: xr.Dataset, rule: str):
    """(seeds, samples) of 0/1, or None when the runs did not record their predictions."""
    if "test_correct" not in ds:
        return None
    values = ds.test_correct.sel(rule=rule).values
    return None if values.size == 0 or (values < 0).any() else values.astype(float)


def pair_statistics(ds: xr.Dataset, pairs: list[tuple[str, str]], alpha: float = 0.05) -> list[dict]:
    """Seed-paired and sample-paired differences of each pair, Holm-corrected across the pairs."""
    rows = []
    for a, b in pairs:
        seeds = paired_over_seeds(ds.test_accuracy.sel(rule=a).values, ds.test_accuracy.sel(rule=b).values)
        ca, cb = _correct(ds, a), _correct(ds, b)
        samples = paired_over_samples(ca, cb) if ca is not None and cb is not None else None
        rows.append({"a": a, "b": b, "seeds": seeds, "samples": samples})
    adjusted = holm([r["seeds"].p_value for r in rows])
    for row, p in zip(rows, adjusted):
        row["holm"] = p
        row["distinguishable"] = bool(np.isfinite(p) and p < alpha and row["seeds"].excludes_zero()
                                      and (row["samples"] is None or row["samples"].excludes_zero()))
    return rows


def learning_gains(ds: xr.Dataset) -> dict[str, dict]:
    """Each rule against its learning-off control, Holm-corrected across all such pairs, with its verdict:
    'learning helps', 'learning hurts' or 'no gain shown'. One family, so the table and the advice agree."""
    suffix = ds.attrs.get("ablation_suffix", "_off")
    rules = [str(r) for r in ds.rule.values]
    rows = pair_statistics(ds, [(r, r + suffix) for r in rules if not r.endswith(suffix) and r + suffix in rules])
    for row in rows:
        row["verdict"] = ("no gain shown" if not row["distinguishable"] else
                          "learning helps" if row["seeds"].estimate > 0 else "learning hurts")
    return {row["a"]: row for row in rows}


def _interval(i) -> str:
    if i is None or np.isnan(i.estimate):
        return "n/a"
    if np.isnan(i.low):
        return f"{i.estimate:+.3f}"
    return f"{i.estimate:+.3f} [{i.low:+.3f}, {i.high:+.3f}]"


def _verdict(row) -> str:
    if not row["distinguishable"]:
        return "not distinguishable"
    return f"{row['a']} higher" if row["seeds"].estimate > 0 else f"{row['b']} higher"


def significance_lines(ds: xr.Dataset) -> list[str]:
    """Per-seed accuracies with binomial intervals, every pair of rules, and each learning gain."""
    suffix = ds.attrs.get("ablation_suffix", "_off")
    rules = [str(r) for r in ds.rule.values]
    main = [r for r in rules if not r.endswith(suffix)]
    n_test = ds.sizes.get("test_sample", 0)
    lines = ["### Per seed (test accuracy, 95% Wilson interval over the test samples)", "",
             "| rule | " + " | ".join(f"seed {s}" for s in ds.seed.values) + " |",
             "|---|" + "---|" * ds.sizes["seed"]]
    for rule in rules:
        cells = []
        for k in range(ds.sizes["seed"]):
            acc = float(ds.test_accuracy.sel(rule=rule).values[k])
            if np.isnan(acc):
                cells.append("n/a")
            elif n_test:
                i = binomial_interval(int(round(acc * n_test)), n_test)
                cells.append(f"{acc:.3f} [{i.low:.3f}, {i.high:.3f}]")
            else:
                cells.append(f"{acc:.3f}")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    pairs = [(a, b) for i, a in enumerate(main) for b in main[i + 1:]]
    lines += ["", "### Which rules can be told apart", "",
              f"Differences a - b in test accuracy: mean over {ds.sizes['seed']} seeds with the paired t interval, and "
              "the paired bootstrap over test samples (each sample's correctness averaged over seeds); p-values of "
              f"the seed-paired test Holm-corrected across the {len(pairs)} pairs. A pair is told apart only when the "
              "corrected p lies below 0.05 and both intervals exclude zero.", "",
              "| a | b | over seeds | over test samples | Holm p | verdict |", "|---|---|---|---|---|---|"]
    for row in pair_statistics(ds, pairs):
        lines.append(f"| {row['a']} | {row['b']} | {_interval(row['seeds'])} | {_interval(row['samples'])} | "
                     f"{row['holm']:.3g} | {_verdict(row)} |")
    gains = learning_gains(ds)
    if gains:
        lines += ["", "### Learning gain (rule minus the same network with learning switched off)", "",
                  "| rule | control | gain over seeds | gain over test samples | Holm p | verdict |",
                  "|---|---|---|---|---|---|"]
        for row in gains.values():
            lines.append(f"| {row['a']} | {row['b']} | {_interval(row['seeds'])} | {_interval(row['samples'])} | "
                         f"{row['holm']:.3g} | {row['verdict']} |")
    lines.append("")
    return lines


def conclusions(ds: xr.Dataset) -> list[str]:
    rules = [str(r) for r in ds.rule.values]
    acc = {r: _summary(ds, "test_accuracy", r) for r in rules}
    chance = 1 / ds.attrs.get("n_classes", 1)
    out = []
    best = max(rules, key=lambda r: -np.inf if np.isnan(acc[r][0]) else acc[r][0])
    suffix = ds.attrs.get("ablation_suffix", "_off")
    main = [r for r in rules if not r.endswith(suffix)]
    rows = pair_statistics(ds, [(a, b) for i, a in enumerate(main) for b in main[i + 1:]])
    beaten = [r["b"] if r["a"] == best else r["a"] for r in rows if best in (r["a"], r["b"]) and r["distinguishable"]]
    tied = [r["b"] if r["a"] == best else r["a"] for r in rows if best in (r["a"], r["b"]) and not r["distinguishable"]]
    out.append(f"- Highest mean test accuracy: **{best}** ({acc[best][0]:.3f}; chance {chance:.3f}); told apart "
               f"from {', '.join(beaten) or 'no other rule'}; not distinguishable from {', '.join(tied) or 'any other rule'}.")
    if not int(ds.attrs.get("tuned", 0)):
        out.append("- The rules were not tuned in this run: these figures rank the configurations that ran "
                   f"({_configured(ds)}), not rules.")
    for rule in rules:
        mean, low, high = acc[rule]
        if np.isnan(mean):
            continue
        if not np.isnan(low):
            verdict = "above chance" if low > chance else "not distinguishable from chance"
            out.append(f"- {rule}: {mean:.3f} [{low:.3f}, {high:.3f}], {verdict} at 95%.")
    if "bptt" in main:
        for row in rows:
            if "bptt" in (row["a"], row["b"]):
                other = row["b"] if row["a"] == "bptt" else row["a"]
                gap = 100 * (row["seeds"].estimate if row["a"] == "bptt" else -row["seeds"].estimate)
                tail = "" if row["distinguishable"] else " (not distinguishable at 95% after Holm correction)"
                out.append(f"- {other} is {abs(gap):.1f} points {'below' if gap > 0 else 'above'} the BPTT baseline{tail}.")
    if "counts" in main:
        control = acc["counts"][0]
        better = [r["a"] if r["b"] == "counts" else r["b"] for r in rows if "counts" in (r["a"], r["b"])
                  and r["distinguishable"] and ((r["a"] != "counts") == (r["seeds"].estimate > 0))]
        out.append(f"- Rules told apart above the no-network control ({control:.3f}): "
                   + (", ".join(better) if better else "none") + ".")
    energy = {r: _summary(ds, "energy_per_inference", r)[0] for r in rules}
    dense = {r: _summary(ds, "dense_energy_per_inference", r)[0] for r in rules}
    for rule in rules:
        if energy[rule] > 0 and dense[rule] > 0:
            out.append(f"- {rule}: an inference costs an estimated {energy[rule]:.3g} uJ as spikes against "
                       f"{dense[rule]:.3g} uJ for a same-size dense network ({dense[rule] / energy[rule]:.1f}x).")
    return out


def _leading_group(ds: xr.Dataset) -> tuple[str, list[str]]:
    """The rule of highest mean test accuracy and the rules the statistics cannot tell from it."""
    suffix = ds.attrs.get("ablation_suffix", "_off")
    main = [str(r) for r in ds.rule.values if not str(r).endswith(suffix)]
    acc = {r: _summary(ds, "test_accuracy", r)[0] for r in main}
    best = max(main, key=lambda r: -np.inf if np.isnan(acc[r]) else acc[r])
    rows = pair_statistics(ds, [(a, b) for i, a in enumerate(main) for b in main[i + 1:]])
    tied = [r["b"] if r["a"] == best else r["a"] for r in rows if best in (r["a"], r["b"]) and not r["distinguishable"]]
    return best, tied


def recommendations(ds: xr.Dataset) -> list[str]:
    """Advice on each criterion, computed from the tables, never stronger than their statistics."""
    suffix = ds.attrs.get("ablation_suffix", "_off")
    main = [str(r) for r in ds.rule.values if not str(r).endswith(suffix)]
    best, tied = _leading_group(ds)
    group = [best] + tied
    mean = {name: {r: _summary(ds, name, r)[0] for r in main}
            for name in ("test_accuracy", "train_seconds", "energy_per_inference", "learning_state") if name in ds}
    out = []
    if not int(ds.attrs.get("tuned", 0)):
        out.append(f"- **Caution**: no search in this run ({_configured(ds)}); what follows ranks those configurations. Run the "
                   "comparison with `--trials` before choosing.")
    if ds.sizes["seed"] < 5:
        out.append(f"- **Caution**: {ds.sizes['seed']} seed(s); differences between rules are hard to establish "
                   "with fewer than 5.")
    if tied:
        out.append(f"- **Accuracy**: {best} has the highest mean, but {', '.join(tied)} cannot be told apart from it "
                   "(table *Which rules can be told apart*, figure `accuracy_by_rule`); choose among them on the other "
                   "criteria.")
    else:
        out.append(f"- **Accuracy**: {best} is told apart from every other rule (table *Which rules can be told "
                   "apart*, figure `accuracy_by_rule`).")

    def cheapest(name, what, figure, unit):
        values = {r: mean[name][r] for r in group if name in mean and np.isfinite(mean[name][r]) and mean[name][r] > 0}
        if len(values) < 2:
            return
        low = min(values, key=values.get)
        others = ", ".join(f"{r} {values[r]:.3g} {unit}" for r in values if r != low)
        where = f"figure `{figure}`" if figure else "table *Cost of learning*"
        out.append(f"- **{what}**: among the rules not told apart from the most accurate, {low} costs least "
                   f"({values[low]:.3g} {unit}; {others}; {where}). These are means over seeds without a "
                   "significance test; treat ratios under 2x as indicative.")

    shared = str(ds.attrs.get("runs_at_once", "1"))
    if shared != "1":
        out.append(f"- Training times were measured with several runs at once ({shared}): each includes the others' "
                   "load, so the training-cost comparison below is rough.")
    cheapest("train_seconds", "Training cost", "accuracy_vs_training_time", "s")
    cheapest("energy_per_inference", "Inference energy", "accuracy_vs_energy", "uJ")
    cheapest("learning_state", "Memory to learn", None, "MiB")
    local = [r for r in main if ds.locality.sel(rule=r).item() in ("local", "three-factor")]
    if local:
        verdict = {r: row["verdict"] for r, row in learning_gains(ds).items()}
        shown = [r for r in local if verdict.get(r) == "learning helps"]
        hurt = [r for r in local if verdict.get(r) == "learning hurts"]
        unshown = [r for r in local if r not in shown and r not in hurt]
        text = (f"- **Locality** (on-chip learning): {', '.join(local)}: each synapse learns from information local "
                "to it (a three-factor rule adds one broadcast signal per neuron). ")
        text += (f"Learning measurably improved {', '.join(shown)} over the same network with learning switched off"
                 if shown else "For none of them did learning measurably beat the same network with learning off")
        if hurt:
            text += (f"; for {', '.join(hurt)} the network with learning switched off did measurably better, so "
                     "here the rule harmed what its readout gets")
        text += (f"; for {', '.join(unshown)} no gain was shown, so its accuracy here comes from its architecture and "
                 "readout, not its rule" if unshown else "")
        text += " (table *Learning gain*)."
        out.append(text)
    return out


def limitations(ds: xr.Dataset) -> list[str]:
    """What the numbers above cannot carry."""
    n_test = int(ds.sizes.get("test_sample", 0) or ds.attrs.get("n_test", 0) or 0)
    out = []
    if n_test:
        half = binomial_interval(n_test // 2, n_test)
        out.append(f"- {n_test} test samples: one run's accuracy near 0.5 is known to about "
                   f"±{(half.high - half.low) / 2:.3f} (95% Wilson interval); smaller differences between two runs "
                   "rest on the paired statistics, not on the table.")
    out.append(f"- {ds.sizes['seed']} seed(s): the seed-paired intervals use a Student-t distribution with "
               f"{max(ds.sizes['seed'] - 1, 0)} degrees of freedom; with few seeds they are wide, and a rule that is "
               "\"not distinguishable\" is not thereby equal.")
    if int(ds.attrs.get("tuned", 0)):
        out.append(f"- Tuning: {ds.attrs.get('tuning_trials')} trials per rule on one seed's validation split; a "
                   "larger budget may change the ranking, most for the rules with the most options.")
    else:
        out.append(f"- No tuning in this run: {_configured(ds)}.")
    out.append("- Energy counts synaptic events and readout multiply-accumulates only, at 45 nm float precision "
               "(Horowitz 2014); it leaves out neuron updates, memory traffic, the cost of learning and any "
               "hardware's own overheads, so it compares inference workloads, not chips.")
    if str(ds.attrs.get("runs_at_once", "1")) == "dask":
        out.append("- The runs trained on a Dask cluster: the hardware line describes the machine that combined them, "
                   "and each run's peak memory is that of its worker process, which may have run other runs before.")
    out.append("- Wall times and peak memory come from one shared machine (see Hardware) and from this project's "
               "implementations (Brian2 code generation for STDP, the liquid and e-prop; PyTorch for BPTT); a "
               "different simulator or a GPU changes them.")
    out.append(f"- Data: {ds.attrs.get('dataset')}, split `{ds.attrs.get('split', 'official')}`. On an official split "
               "that shares speakers between training and test, a fixed spectro-temporal template (the input-count "
               "control) is hard to beat; on a synthetic set, what the set's generator encodes decides what can be "
               "learned.")
    out.append("- Each rule departs from its paper where listed under Methods; the results are for these "
               "implementations.")
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
    lines += ["", "## Provenance", ""] + [f"- `{p}`" for p in paths]
    report = out / "report.md"
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(report)
    return report


def not_a_results_file(path: Path) -> str:
    """Why ``path`` is not a results file this report reads ('' when it is one)."""
    try:
        with xr.open_dataset(path) as ds:
            if "Conventions" not in ds.attrs or not ({"rule", "benchmark", "study"} & set(ds.attrs) or "rule" in ds.dims):
                return "not a results file of this project (no Conventions and rule or benchmark attributes)"
    except Exception as error:  # any reader failure: one line, not a traceback
        return f"cannot be read as netCDF ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unreadable'})"
    return ""


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results files (.nc)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its figures")
    args = parser.parse_args(argv)
    missing = [p for p in args.results if not p.exists()]
    if missing:  # one line and the usage error's status, not argparse's usage text as well
        print(f"error: no such results file: {', '.join(map(str, missing))}", file=sys.stderr)
        raise SystemExit(2)
    for path in args.results:
        problem = not_a_results_file(path)
        if problem:
            print(f"error: {path}: {problem}", file=sys.stderr)
            raise SystemExit(2)
    report = build_report(args.results, args.out)
    print(f"report: {report}")
    return report


if __name__ == "__main__":
    main()
