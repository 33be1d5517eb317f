"""The comparison protocol: every rule tuned with the same budget, trained with several seeds on the
same data, tested once on the same test samples, beside its learning-off control.

    python studies/compare_shd.py --dataset fsdd --trials 20 --seeds 5 --max-sample-epochs 22500
    python studies/compare_shd.py --rules eprop bptt --trials 0 --seeds 3 --set eprop.epochs=3
    python -m analysis.report results/compare_<dataset>.nc

For every rule of the registry (:mod:`studies.registry`; by default STDP with its readouts, the
liquid state machine, e-prop, the BPTT baseline and the input-count control):

1. **Tuning** (``--trials N``, the same N and caps for every rule): the search of
   :mod:`studies.tune` on the first seed's training and validation samples, from the rule's
   configuration in this comparison. ``--trials 0`` skips it: each rule runs its defaults, and the
   results file says the rules were not tuned.
2. **Seeds** (``--seeds K``): the best configuration trained with seeds ``seed .. seed+K-1``. For one
   seed every rule sees the same training and validation samples; the test samples are the same for
   every seed and rule (the whole test split, or the same ``--n-test`` subset), scored once.
3. **Learning-off controls** (``--ablations``, on by default): each rule with learning switched off
   and the same readout (the rule's ``ablation`` options: e-prop and BPTT train only their readout;
   the liquid and the count control are their own controls), trained and tested with the same seeds.

The shared options (``--dt``, ``--duration``, ``--pool``, ``--n-bins``, ``--device``, ``--workers``,
``--lif``) go to every rule that has them; each rule's budget is its registry default
(``compare_defaults``), changed with ``--set RULE.NAME=VALUE`` (an option fixed so is not tuned).
Every rule/seed pair runs in a fresh process (``--pair-workers N`` of them at once; with
``--scheduler`` or ``--local-cluster``, as Dask tasks, one core each) and writes its own results
file under ``OUT/runs/`` as it finishes; ``--resume`` continues the searches, keeps a stored pair only when it was made with the
same configuration (else it stops and names the fields that differ) and lets an interrupted pair
resume from its own checkpoints. The combined file ``OUT/compare_<dataset>.nc`` has dimensions
``rule`` x ``seed`` (x ``epoch``, x ``test_sample``: which test samples each run got right, for the
paired statistics of :mod:`analysis.stats` in the report).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import contextlib
import dataclasses
import json
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity, ms, second

from datasets import default_generator
from models import files
from models.files import DataError
from models.engine.devices import DEVICES
from models.lif import LIFParams
from models.units import ASSIGN, config_json, const, parse_assignments
from studies import registry
from studies.cli import DATA_ERROR, USAGE_ERROR, run_main
from studies.config import RunConfig, apply, build_parser, config_from_args, leaves
from studies.results import integers_with_gaps, now, stamp
from studies.run import check_same_config, check_same_generator, discard_checkpoints

#: Per-operation energies, Horowitz (2014), 45 nm, 32-bit float: accumulate (a spike adding a weight)
#: and multiply-accumulate (a dense unit).
ENERGY_AC_PJ, ENERGY_MAC_PJ = 0.9, 4.6
#: The per-run scalars gathered into rule x seed arrays, with their units and names.
SCALARS = {
    "test_accuracy": ("1", "test accuracy at the epoch chosen on validation"),
    "train_seconds": ("s", "training wall time"),
    "wall_seconds": ("s", "wall time of the whole run: data, building, training, validation, test"),
    "peak_memory": ("MiB", "peak memory of the Python process"),
    "peak_memory_children": ("MiB", "peak memory of the simulator binary"),
    "trainable_parameters": ("1", "trainable parameters"),
    "input_spikes_per_sample": ("1", "input spikes per inference"),
    "spikes_per_sample": ("1", "network spikes per inference"),
    "synaptic_operations_per_sample": ("1", "synaptic events per inference"),
    "readout_macs_per_sample": ("1", "multiply-accumulates of a dense readout per inference (0: the readout is spiking)"),
    "best_epoch": ("1", "epoch chosen on validation"),
    "learning_state": ("MiB", "state kept in order to learn (computed from the network's size)"),
}


@dataclass(frozen=True)
class CompareConfig:
    run: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(n_train=1000))  # data, first seed, files (every test sample: --n-test none)
    rules: tuple[str, ...] = ("stdp", "lsm", "eprop", "bptt", "counts")  # rules to compare (repeat the option for several)
    seeds: int = 5  # seeds per rule (seed, seed+1, ...): each its own training/validation samples and initial weights
    trials: int = 20  # tuning trials per rule before the seeds, the same for every rule (0: the rules' defaults, untuned)
    max_sample_epochs: int | None = None  # tuning: cap per trial on training samples x epochs (none: the rule's epochs)
    max_trial_seconds: float | None = None  # tuning: cap per trial on training wall time (none: no cap)
    startup_trials: int = 5  # tuning: random trials before the sampler models the results and the pruner acts
    ablations: bool = True  # also train each rule's learning-off control (same readout, learning switched off)
    scheduler: str | None = None  # tuning trials and rule/seed runs on the Dask scheduler at this address
    local_cluster: int | None = None  # tuning trials and rule/seed runs on an in-process Dask LocalCluster of this many workers
    pair_workers: int = 1  # rule/seed runs trained at once, each in its own process (1: one after another; on Dask: as many as it has workers)
    dt: Quantity = const(1 * ms)  # time step of every rule
    duration: Quantity = const(1 * second)  # sample length of every rule
    pool: int = 1  # neighbouring input channels summed into one, for every rule
    n_bins: int = 10  # time bins of the networks' count features (STDP, LSM; the control chooses its own on validation)
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device of the Brian2 rules
    workers: int = 2  # processes for Brian2 evaluation
    set: tuple[str, ...] = ()  # one rule's option, RULE.NAME=VALUE (e.g. eprop.epochs=3), over its budget
    lif: LIFParams = dataclasses.field(default_factory=LIFParams, metadata=ASSIGN)  # the shared neuron


SHARED = ("dt", "duration", "pool", "n_bins", "device", "workers")


def rule_configs(config: CompareConfig, seed: int) -> dict[str, object]:
    """Each rule's study config for ``seed``: its defaults, its budget, the shared options, ``--set``."""
    per_rule: dict[str, dict] = {rule: {} for rule in config.rules}
    for rule, assignments in _rule_assignments(config.set).items():
        if rule not in per_rule:
            raise ValueError(f"--set names the rule {rule!r}, which is not among --rules ({', '.join(config.rules)})")
        per_rule[rule].update(assignments)
    out = {}
    for rule in config.rules:
        spec = registry.get(rule)
        names = leaves(spec.config)
        shared = {name: getattr(config, name) for name in SHARED if name in names and name not in spec.chosen_on_validation}
        shared.update({f.name: getattr(config.lif, f.name) for f in dataclasses.fields(config.lif) if f.name in names})
        run = dataclasses.replace(config.run, seed=seed, out=Path(config.run.out) / "runs", split=default_split(config))
        study = dataclasses.replace(spec.config(), run=run)
        out[rule] = apply(study, {**spec.compare_defaults, **shared, **per_rule[rule]})
    return out


def default_split(config: CompareConfig) -> str:
    """The split of the comparison: as asked, else speakers held out on FSDD (a speaker never heard
    in training is what a user meets; SHD's own test set holds new speakers too), else official."""
    if config.run.split is not None:
        return config.run.split
    return "speaker" if config.run.dataset == "fsdd" else "official"


def _rule_assignments(items) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in parse_assignments(list(items)).items():
        rule, dot, option = name.partition(".")
        if not dot:
            raise ValueError(f"--set takes RULE.NAME=VALUE, got {name}={value}")
        out.setdefault(rule, {})[option] = value
    return out


def pair_threads(pair_workers: int) -> int | None:
    """Threads each of ``pair_workers`` runs at once may use (PyTorch, BLAS, the compiler): the usable
    cores shared out, at least one; ``None`` (the libraries' own choice) for one run at a time. Two
    runs each taking every core slow each other down: two BPTT runs with PyTorch's default threads on
    2 cores trained at 15 samples/s, against about 280 for one run alone."""
    if pair_workers <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // pair_workers)


def limit_threads(threads: int) -> None:
    """Hold this process to ``threads`` threads: PyTorch, BLAS and OpenMP, and ``make`` of a Brian2 build."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    from brian2 import prefs
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    prefs.devices.cpp_standalone.extra_make_args_unix = [f"-j{threads}"]
    threadpool_limits(limits=threads)


def _run_and_write(spec, config, path, environ=None, cwd=None, threads=None):
    if environ is not None:  # a forked pair sees the comparison's environment and folder as they are now
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
    if threads is not None:
        limit_threads(threads)

    def body(_):
        ds = spec.run(config)
        files.write_netcdf(ds, path)
        discard_checkpoints(ds, config.run.out)

    run_main(body)  # an expected failure: one line and its exit status, which run_pair passes on


def _label(path: Path) -> str:
    """The rule's name in the results (``bptt_off`` for BPTT's learning-off control), from its file."""
    return path.stem.rsplit("_seed", 1)[0]


def stored_pair(spec, config, path: Path, resume: bool) -> xr.Dataset | None:
    """The stored result of this rule and seed when resuming (its configuration checked), else None."""
    current = config_json(dataclasses.replace(config, run=dataclasses.replace(config.run, resume=False)))
    if not resume and path.exists():
        raise ValueError(f"{path} holds a result of an earlier comparison; add --resume to continue that comparison "
                         "(its configuration is checked), or choose another --out")
    if resume and path.exists():
        ds = xr.load_dataset(path)
        check_same_config(ds.attrs.get("config", "{}"), current, str(path))
        dataset = ds.attrs.get("dataset", "")
        check_same_generator(ds.attrs.get("dataset_generator", ""), default_generator(dataset), str(path), dataset)
        ds.attrs.setdefault("dataset_generator", "")  # a recorded dataset's pair stored before it was recorded
        print(f"{_label(path)}, seed {config.run.seed}: done before ({path})", file=sys.stderr)
        return ds
    return None


def _pair_context():
    """Where a pair's process comes from: forked from a server process that imported this module's
    dependencies once (PyTorch, Brian2, scikit-learn: 10-30 s on a small machine, which a spawned
    process pays for every pair), else spawned where fork is unavailable. Either way a pair's
    process holds no Brian2 object, device or random state of another pair: the server only imports."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["studies.compare_shd", *registry.BUILTIN.values()])  # read when it starts
    return context


def run_pair(spec, config, path: Path, resume: bool, threads: int | None = None) -> xr.Dataset:
    """One rule and seed in its own process (see :func:`_pair_context`: no Brian2 state carries over;
    its peak memory is this pair's plus the libraries every pair's process starts with); a stored
    result of the same configuration is kept when resuming."""
    stored = stored_pair(spec, config, path, resume)
    if stored is not None:
        return stored
    print(f"{_label(path)}, seed {config.run.seed} ...", file=sys.stderr)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, resume=resume))
    proc = _pair_context().Process(target=_run_and_write,
                                   args=(spec, config, path, dict(os.environ), os.getcwd(), threads))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        message = f"{_label(path)}, seed {config.run.seed} failed (exit status {proc.exitcode}); see the messages above"
        raise {DATA_ERROR: DataError, USAGE_ERROR: ValueError}.get(proc.exitcode, RuntimeError)(message)
    ds = xr.load_dataset(path)
    print(f"{_label(path)}, seed {config.run.seed}: test accuracy {float(ds.test_accuracy):.3f}", file=sys.stderr)
    return ds


def pair_on_worker(spec, config, path: Path) -> str:
    """A Dask task: one rule and seed trained and written in the worker's own process (one core).
    Its ``peak_memory`` is that worker process's, which may have run other pairs before."""
    from studies.executors import one_core

    one_core()
    ds = spec.run(config)
    files.write_netcdf(ds, path)
    discard_checkpoints(ds, config.run.out)
    return str(path)


def run_pairs(jobs: dict, config: CompareConfig) -> dict:
    """Every (label, seed) job ``(spec, study config, path)``: stored ones kept, the rest trained,
    ``pair_workers`` at once (each a fresh process) or on the Dask cluster."""
    resume = config.run.resume
    dask = bool(config.scheduler or config.local_cluster)
    if dask:  # one core per task: a Dask worker is a daemon and cannot start evaluation processes
        jobs = {key: (spec, apply(study, {"workers": 1}) if "workers" in leaves(type(study)) else study, path)
                for key, (spec, study, path) in jobs.items()}
    runs = {key: stored_pair(spec, study, path, resume) for key, (spec, study, path) in jobs.items()}
    todo = [key for key, ds in runs.items() if ds is None]
    if dask:
        from studies.executors import DaskExecutor

        executor = DaskExecutor(config.scheduler, config.local_cluster)
        try:
            futures = {}
            for key in todo:
                spec, study, path = jobs[key]
                study = dataclasses.replace(study, run=dataclasses.replace(study.run, resume=resume))
                print(f"{_label(path)}, seed {study.run.seed} ... (Dask)", file=sys.stderr)
                futures[executor.submit(pair_on_worker, spec, study, path)] = key
            for future in executor.as_completed(list(futures)):
                key = futures[future]
                runs[key] = xr.load_dataset(future.result())
                print(f"{key[0]}, seed {key[1]}: test accuracy {float(runs[key].test_accuracy):.3f}", file=sys.stderr)
        finally:
            executor.close()
    elif config.pair_workers > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        # threads only wait: each pair is its own process, given its share of the cores
        threads = pair_threads(config.pair_workers)
        with ThreadPoolExecutor(config.pair_workers) as pool:
            done = pool.map(lambda key: run_pair(*jobs[key], resume, threads), todo)
            runs.update(zip(todo, done))
    else:
        for key in todo:
            runs[key] = run_pair(*jobs[key], resume)
    return runs


def _training_presentations(ds: xr.Dataset, sample_epochs: int) -> float:
    """How many times a run presented training samples: its sample-epochs, times the presentations
    per sample (``presentations_per_sample(epoch)``) where a rule runs a sample more than once (STDP
    again while its layer is nearly silent; e-prop's maximum-over-time loss twice). NaN when unknown."""
    if sample_epochs < 0:
        return np.nan
    if "presentations_per_sample" not in ds:
        return float(sample_epochs)
    # NaN: an epoch that presented nothing to learn from (STDP frozen), its readout's single pass
    per_sample = np.nan_to_num(np.asarray(ds.presentations_per_sample.values, dtype=float), nan=1.0)
    if "train_samples" in ds:  # epochs a budget cut short learned from fewer samples
        return float(np.sum(ds.train_samples.values * per_sample))
    return float(sample_epochs * np.mean(per_sample))


def _dense_macs(ds: xr.Dataset) -> float:
    """MACs per inference of a non-spiking network of the same size on the run's own time grid: every
    weight of the network (a liquid's fixed reservoir too: ``network_weights`` where a run records
    it, else its trainable parameters) evaluated at every time step."""
    prep = json.loads(ds.attrs["preprocessing"])
    n_steps = int(round(float(_quantity(prep["duration"]) / _quantity(prep["dt"]))))
    weights = float(ds.network_weights) if "network_weights" in ds else float(ds.trainable_parameters)
    return weights * n_steps


def _quantity(text: str) -> Quantity:
    from models.units import to_quantity

    return to_quantity(text, 1 * second)


def _scalar(ds: xr.Dataset, name: str) -> float:
    if name in ds:
        return float(ds[name])
    return 0.0 if name == "readout_macs_per_sample" else float("nan")


def combine(runs: dict[tuple[str, int], xr.Dataset], rules: list[str], seeds: list[int],
            localities: dict[str, str]) -> xr.Dataset:
    n_epochs = max(int(ds.sizes.get("epoch", 1)) for ds in runs.values())
    labels = {int(ds.sizes.get("test_sample", 0)) for ds in runs.values() if "test_label" in ds}
    if len(labels) > 1:
        raise ValueError(f"the runs were tested on different numbers of samples ({sorted(labels)})")
    n_test = labels.pop() if labels else 0
    data = {}
    for name, (units, long_name) in SCALARS.items():
        values = np.full((len(rules), len(seeds)), np.nan)
        for (rule, seed), ds in runs.items():
            values[rules.index(rule), seeds.index(seed)] = _scalar(ds, name)
        data[name] = (("rule", "seed"), values, {"units": units, "long_name": long_name})
    curves = np.full((len(rules), len(seeds), n_epochs), np.nan)
    train_curves = np.full((len(rules), len(seeds), n_epochs), np.nan)
    n_classes = max(int(ds.sizes.get("true_class", 0)) for ds in runs.values())
    confusion = np.full((len(rules), n_classes, n_classes), -1, dtype=np.int64)
    correct = np.full((len(rules), len(seeds), n_test), -1, dtype=np.int8)
    sample_epochs = np.full((len(rules), len(seeds)), -1, dtype=np.int64)
    presented = np.full((len(rules), len(seeds)), np.nan)  # training presentations (a sample may run more than once)
    test_labels = None
    for (rule, seed), ds in runs.items():
        r, k = rules.index(rule), seeds.index(seed)
        curve = np.asarray(ds.val_accuracy.values, dtype=float)
        curves[r, k, :len(curve)] = curve
        if "train_accuracy" in ds:
            train_curves[r, k, :len(curve)] = np.asarray(ds.train_accuracy.values, dtype=float)
        if "confusion" in ds and ds.confusion.shape == (n_classes, n_classes):
            confusion[r] = np.maximum(confusion[r], 0) + ds.confusion.values.astype(np.int64)
        if "train_samples" in ds:  # a wall-time budget can stop an epoch on the way
            sample_epochs[r, k] = int(ds.train_samples.sum())
        else:
            sample_epochs[r, k] = int(ds.attrs.get("n_train", 0)) * int(ds.sizes.get("epoch", 1))
        presented[r, k] = _training_presentations(ds, sample_epochs[r, k])
        if "test_prediction" in ds:
            correct[r, k] = ds.test_prediction.values == ds.test_label.values
            if test_labels is not None and not np.array_equal(test_labels, ds.test_label.values):
                raise ValueError(f"{rule}, seed {seed} was tested on other samples than the rules before it")
            test_labels = ds.test_label.values
    data["val_accuracy"] = (("rule", "seed", "epoch"), curves, {"units": "1", "long_name": "validation accuracy"})
    data["train_accuracy"] = (("rule", "seed", "epoch"), train_curves,
                              {"units": "1", "long_name": "training accuracy (NaN: the rule's readout is fitted once, after training)"})
    data["confusion"] = (("rule", "true_class", "predicted_class"), confusion,
                         {"units": "1", "long_name": "test confusion matrix, summed over seeds (-1: not recorded)"})
    data["test_correct"] = (("rule", "seed", "test_sample"), correct,
                            {"units": "1", "long_name": "1 where the run classified the test sample correctly (-1: not recorded)"})
    if test_labels is not None:
        data["test_label"] = ("test_sample", np.asarray(test_labels, dtype=int), {"units": "1", "long_name": "test sample class"})
    data["train_sample_epochs"] = (("rule", "seed"), sample_epochs,
                                   {"units": "1", "long_name": "training samples x epochs (validation samples not counted)"})
    synops = data["synaptic_operations_per_sample"][1]
    macs = data["readout_macs_per_sample"][1]
    dense = np.full_like(synops, np.nan)
    for (rule, seed), ds in runs.items():
        if localities[rule] == "no network":  # the count control has no network to compare with
            continue
        # a learning-off control is its rule's network with learning switched off: the same size
        own = runs.get((rule[:-len(OFF)], seed), ds) if rule.endswith(OFF) else ds
        dense[rules.index(rule), seeds.index(seed)] = _dense_macs(own)
    data["train_synaptic_events"] = (("rule", "seed"), presented * synops,
                                     {"units": "1", "long_name": "synaptic events of training, estimated: training "
                                                                 "presentations (sample-epochs, times each sample's "
                                                                 "presentations) x synaptic events per inference (forward "
                                                                 "presentations only; no backward pass or weight update)"})
    data["operations_per_inference"] = (("rule", "seed"), synops + np.nan_to_num(macs),
                                        {"units": "1", "long_name": "operations per inference: synaptic events and "
                                                                    "readout multiply-accumulates"})
    data["energy_per_inference"] = (("rule", "seed"), (synops * ENERGY_AC_PJ + macs * ENERGY_MAC_PJ) * 1e-6,
                                    {"units": "uJ", "long_name": f"estimated energy per inference ({ENERGY_AC_PJ} pJ per "
                                                                 f"synaptic event, {ENERGY_MAC_PJ} pJ per readout MAC)"})
    data["dense_energy_per_inference"] = (("rule", "seed"), dense * ENERGY_MAC_PJ * 1e-6,
                                          {"units": "uJ", "long_name": f"same-size non-spiking network ({ENERGY_MAC_PJ} pJ per MAC: every weight of the "
                                                                       "network, fixed ones too, at every step of the rule's time grid)"})
    data["locality"] = ("rule", [localities[r] for r in rules],
                        {"long_name": "where the learning rule's information comes from"})
    ds = xr.Dataset(data, coords={"rule": rules, "seed": seeds, "epoch": np.arange(1, n_epochs + 1),
                                  "test_sample": np.arange(n_test), "true_class": np.arange(n_classes),
                                  "predicted_class": np.arange(n_classes)})
    integers_with_gaps(ds, "trainable_parameters", "best_epoch", "readout_macs_per_sample")  # a rule may not report them
    ds.attrs["learning_state_components"] = json.dumps(
        {rule: json.loads(runs[(rule, seeds[0])].learning_state.attrs.get("components", "{}"))
         for rule in rules if (rule, seeds[0]) in runs and "learning_state" in runs[(rule, seeds[0])]})
    loads = {}  # the 1-minute load average as each run finished: the load its wall time was measured under
    for (rule, seed), run in runs.items():
        with contextlib.suppress(ValueError, TypeError, IndexError):
            loads[f"{rule}_seed{seed}"] = float(json.loads(run.attrs.get("hardware", "{}"))["load_average_1_5_15_min"][0])
    ds.attrs["run_load_1min"] = json.dumps(loads)
    ds.attrs["energy_reference"] = ("Horowitz (2014), 45 nm, 32-bit float: 0.9 pJ per add (a synaptic event adds a "
                                    "weight), 4.6 pJ per multiply-accumulate (a dense readout weight)")
    return ds


def check_stored_comparison(config: CompareConfig) -> None:
    """Refuse to go on where ``OUT`` holds the combined file of another comparison, which this one
    would overwrite: without ``--resume``, any; with it, one whose configuration differs in more than
    a grown ``--seeds`` (more seeds extend a comparison; fewer, other rules or other options would
    replace its file with another's). The error names the differing fields."""
    current = config_json(config)
    for path in sorted(Path(config.run.out).glob("compare_*.nc")):
        if not config.run.resume:
            raise ValueError(f"{path} holds the results of an earlier comparison; add --resume to continue it "
                             "(its configuration is checked), or choose another --out")
        try:
            with xr.open_dataset(path) as stored:
                text = stored.attrs.get("config", "{}")
        except (OSError, ValueError) as error:
            raise DataError(f"{path} is not a readable comparison file ({error}); move it away or choose "
                            "another --out") from None
        check_same_config(text, current, str(path), extendable=("seeds",), ignored=("run.resume",))


#: Suffix of a learning-off control's name in the results (``bptt_off``).
OFF = "_off"


def tune_rules(config: CompareConfig, per_seed: dict, seeds: list[int]) -> dict:
    """The tuning search of every rule (same trials and caps), on the first seed's data; returns
    ``{rule: (results dataset, best study config)}``."""
    from studies import tune

    per_rule = _rule_assignments(config.set)
    out = {}
    for rule in config.rules:
        settings = dataclasses.replace(config.run, seed=seeds[0], split=default_split(config),
                                       out=Path(config.run.out) / "tuning")
        search = tune.TuneConfig(
            run=settings, rule=rule, trials=config.trials,
            set=tuple(f"{k}={v}" for k, v in per_rule.get(rule, {}).items()),
            max_sample_epochs=config.max_sample_epochs, max_trial_seconds=config.max_trial_seconds,
            startup_trials=config.startup_trials, workers=config.workers, scheduler=config.scheduler,
            local_cluster=config.local_cluster)
        print(f"tuning {rule}: {config.trials} trials", file=sys.stderr)
        ds, best = tune.search(search, base=per_seed[seeds[0]][rule])
        files.write_netcdf(ds, Path(config.run.out) / "tuning" / f"tune_{rule}.nc")
        if best is None:
            raise RuntimeError(f"no tuning trial of {rule} completed; see {Path(config.run.out) / 'tuning'}")
        out[rule] = (ds, best)
    return out


def compare(config: CompareConfig) -> xr.Dataset:
    started = now()
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {config.seeds}")
    if config.trials < 0:
        raise ValueError(f"--trials must be 0 (no tuning) or more, got {config.trials}")
    if config.pair_workers < 1:
        raise ValueError(f"--pair-workers must be at least 1, got {config.pair_workers}")
    for rule in config.rules:
        registry.get(rule)  # unknown rules fail before anything runs
    seeds = [config.run.seed + k for k in range(config.seeds)]
    per_seed = {seed: rule_configs(config, seed) for seed in seeds}  # every option checked up front
    check_stored_comparison(config)
    tuned = tune_rules(config, per_seed, seeds) if config.trials > 0 else {}
    jobs = {}  # (label, seed) -> (spec, config, path)
    localities = {}
    for seed in seeds:
        for rule in config.rules:
            spec = registry.get(rule)
            study = per_seed[seed][rule]
            if rule in tuned:  # the best configuration, with this seed's run settings
                study = dataclasses.replace(tuned[rule][1], run=study.run)
            jobs[(rule, seed)] = (spec, study, Path(config.run.out) / "runs" / f"{rule}_seed{seed}.nc")
            localities[rule] = spec.locality
            if config.ablations and spec.ablation:
                off = apply(study, dict(spec.ablation))
                off = dataclasses.replace(off, run=dataclasses.replace(off.run, out=Path(config.run.out) / "runs" / f"{rule}{OFF}"))
                jobs[(rule + OFF, seed)] = (spec, off, Path(config.run.out) / "runs" / f"{rule}{OFF}_seed{seed}.nc")
                localities[rule + OFF] = "local (readout only)"
    labels = list(dict.fromkeys(label for label, _ in jobs))
    runs = run_pairs(jobs, config)
    combined = combine(runs, labels, seeds, localities)
    first = next(iter(runs.values()))
    # each rule's time step and pooling: the shared ones unless a rule's own were fixed with --set
    preprocessing = {label: runs[(label, seeds[0])].attrs["preprocessing"] for label in labels if (label, seeds[0]) in runs}
    per_rule = len(set(preprocessing.values())) > 1
    combined.attrs.update({k: first.attrs[k] for k in ("dataset", "dataset_requested", "n_train", "n_val", "n_test",
                                                       "n_channels", "n_classes", "class_names", "split",
                                                       "test_speakers", "dataset_generator")})
    combined.attrs.update(
        study="compare", device=config.device, lif=config_json(config.lif), preprocessing_per_rule=int(per_rule),
        preprocessing=json.dumps({k: json.loads(v) for k, v in preprocessing.items()}) if per_rule
        else first.attrs["preprocessing"],
        config=config_json(config), tuned=int(config.trials > 0),
        runs_at_once="dask" if (config.scheduler or config.local_cluster) else int(config.pair_workers),
        tuning_trials=int(config.trials), ablation_suffix=OFF,
        ablations=json.dumps({rule: registry.get(rule).ablation for rule in config.rules if registry.get(rule).ablation}),
        tuning=json.dumps({rule: {k: (ds.attrs[k].item() if hasattr(ds.attrs[k], "item") else ds.attrs[k])
                                  for k in ("n_trials", "n_complete", "n_pruned", "n_failed", "best_val_accuracy",
                                            "best_params", "max_sample_epochs", "max_trial_seconds",
                                            "epochs_per_trial", "wall_seconds", "search_space")}
                           for rule, (ds, _) in tuned.items()}),
        runs=config_json({f"{r}_seed{s}": ds.attrs["config"] for (r, s), ds in runs.items()}))
    return stamp(combined, started)


def main(argv=None) -> Path:
    args = build_parser(CompareConfig, __doc__).parse_args(argv)
    config = config_from_args(CompareConfig, args)
    combined = compare(config)
    path = files.write_netcdf(combined, Path(config.run.out) / f"compare_{combined.attrs['dataset']}.nc")
    for rule in combined.rule.values:
        acc = combined.test_accuracy.sel(rule=rule).values
        print(f"{rule:10s} test accuracy {np.nanmean(acc):.3f} over {np.sum(~np.isnan(acc))} seed(s)")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    from studies import compare_shd

    run_main(compare_shd.main)
