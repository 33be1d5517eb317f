"""Hyperparameter search for one rule, with the same budget for every rule: Optuna on validation data.

    python studies/tune.py --rule bptt --trials 20 --dataset fsdd --max-sample-epochs 20000
    python studies/tune.py --rule eprop --trials 20 --workers 2 --resume
    python studies/tune.py --rule lsm --trials 20 --local-cluster 2
    python studies/tune.py --rule stdp --trials 20 --scheduler tcp://HOST:8786 --storage postgresql://...

Each rule declares its search space once, in its study module (``SPEC.search_space``, ranges from
:mod:`studies.space`, values with units). A seeded TPE sampler draws every trial's options; a trial is
one run of the rule's study with them, and its score is its best validation accuracy over the epochs
it trained. The test split never enters the search: a trial runs its study with ``validation_only``,
so the test split is neither simulated nor scored (nor is a readout that only the final run reports,
such as the liquid's spike-time readout). Rules trained over epochs report validation accuracy after
every epoch to one pruner, the same for every rule (Optuna's median rule: a trial
below the median of earlier trials at the same epoch stops there; ``--no-prune`` turns it off).

Budget: ``--trials`` is the same for every rule of a fair comparison, and every trial is capped at
``--max-sample-epochs`` training samples x epochs (the rule's epochs are cut to fit) and
``--max-trial-seconds`` of training wall time (checked after each epoch, and by e-prop, which learns
online and whose one epoch can outlast the cap many times, also before each chunk of samples); a trial
that reaches a cap is scored where it stopped (the samples it learned from are in the results file). Rules fitted in one pass (the liquid's readout, the count control)
use one sample-epoch per training sample. Both caps are in the results file.

Storage: the trials live in an Optuna database, an SQLite file ``OUT/tune_<rule>/study.db`` unless
``--storage URL`` names another (a database server that every machine of a cluster reaches). A killed
search continues with ``--resume`` and ends as an uninterrupted one would: the sampler is reseeded
from the trial's position in the search, and a trial cut short by the kill runs again with the same
options, from the checkpoints it had written (its study's own ``--resume``: a trial of an hour that was
killed near its end does not start over). ``--resume --trials N`` with a larger N extends a finished search. Trials run one per core,
on local processes (``--workers N``) or on a Dask cluster (``--scheduler ADDRESS``, ``--local-cluster
N``); with more than one at a time, each trial's options depend on which others had finished.

Output: ``OUT/tune_<rule>.nc`` (every trial's options, validation accuracy per epoch, state, duration,
sample-epochs; the parameter importances), ``OUT/tune_<rule>/best.json``, the best configuration,
which every study of the rule takes (``python studies/bptt_shd.py --config OUT/tune_bptt/best.json``;
options given on the command line override it), and figures with ``python -m analysis.figures``.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import dataclasses
import json
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from datasets import default_generator
from models import files
from models.units import config_json, parse_assignments
from studies import registry
from studies.cli import check_writable, run_main
from studies.config import RunConfig, apply, build_parser, config_from_args, find_leaf, leaves
from studies.executors import make_executor, one_core
from studies.results import label_coordinates, now, provenance
from studies.run import CONVENTIONS, check_same_config, epoch_listener
from studies.space import check_space, space_json, suggest, units_of


@dataclass(frozen=True)
class TuneConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, the seed of every trial and of the sampler, files
    rule: str = "bptt"  # the rule to tune (see studies/registry.py)
    trials: int = 20  # trials of the search: give every rule of a comparison the same number
    set: tuple[str, ...] = ()  # an option fixed for every trial, NAME=VALUE (taken out of the search space)
    max_sample_epochs: int | None = None  # budget per trial in training samples x epochs: every rule trained over epochs gets the epochs it affords, fewer only where --set fixes them (none: the rule's own epochs)
    max_trial_seconds: float | None = None  # cap per trial on training wall time, checked after each epoch (by e-prop also before each chunk) (none: no cap)
    startup_trials: int = 5  # trials drawn at random before the sampler models the results, and before the pruner acts
    prune: bool = True  # stop a trial whose validation accuracy after an epoch lies below the median of earlier trials
    storage: str | None = None  # Optuna storage URL shared by every worker (default: sqlite file OUT/tune_<rule>/study.db)
    workers: int = 1  # local worker processes, one trial each
    scheduler: str | None = None  # address of a Dask scheduler (e.g. tcp://host:8786)
    local_cluster: int | None = None  # run on an in-process Dask LocalCluster of this many workers

    def __post_init__(self):
        for name in ("trials", "startup_trials", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "startup_trials" else 1):
                raise ValueError(f"{name} must be a whole number >= {0 if name == 'startup_trials' else 1}, got {value!r}")
        if self.max_sample_epochs is not None and self.max_sample_epochs < 1:
            raise ValueError(f"max_sample_epochs must be at least 1, got {self.max_sample_epochs}")
        if self.max_trial_seconds is not None and not self.max_trial_seconds > 0:
            raise ValueError(f"max_trial_seconds must be above 0, got {self.max_trial_seconds}")


#: Settings that change where or how fast a search runs, not what it finds (a resume may change them).
_NOT_IDENTITY = ("trials", "workers", "scheduler", "local_cluster", "storage")


def identity(config: TuneConfig, base=None, space: dict | None = None) -> str:
    """The configuration a stored search must match to be resumed (with the caller's base study
    config, when a comparison gives one, the constants of a generated set, and the search ``space``
    the trials are drawn from, when given: a rule whose space changed starts a new search)."""
    run = dataclasses.replace(config.run, out=Path("."), resume=False)
    text = config_json(dataclasses.replace(config, run=run, **{k: TuneConfig.__dataclass_fields__[k].default
                                                                for k in _NOT_IDENTITY}))
    # A generated set's version is part of the search. The default dataset (none named) falls back to
    # the built-in set when SHD is missing, so its constants are part of a default search too (name
    # --dataset shd to leave them out).
    generator = default_generator(config.run.dataset or "synthetic")
    if base is None and not generator and space is None:
        return text
    parts = {"search": json.loads(text)}
    if space is not None:
        parts["space"] = space_json(space)
    if base is not None:
        base = dataclasses.replace(base, run=dataclasses.replace(base.run, out=Path("."), resume=False))
        parts["base"] = json.loads(config_json(base))
    if generator:
        parts["dataset_generator"] = json.loads(generator)
    return json.dumps(parts, sort_keys=True)


#: Fields of a search's :func:`identity` its trials never depend on: the test subset's size (a search
#: never sees the test split), in each form the identity takes.
UNSEEN = ("run.n_test", "search.run.n_test", "base.run.n_test")


def make_pruner(config: TuneConfig):
    import optuna

    if not config.prune:
        return optuna.pruners.NopPruner()
    # steps are epochs from 1: prune from the second epoch on, one epoch says little about where a run is going
    return optuna.pruners.MedianPruner(n_startup_trials=config.startup_trials, n_warmup_steps=2)


def _describe_pruner(config: TuneConfig) -> str:
    if not config.prune:
        return "none"
    return f"MedianPruner(n_startup_trials={config.startup_trials}, n_warmup_steps=2)"


# ---------------------------------------------------------------------------------------------
# The search's plan: base configuration, space, caps
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    spec: object  # the rule's RuleSpec
    base: object  # the study config every trial starts from
    space: dict  # option -> range, the options fixed by --set taken out
    n_fit: int  # training samples (validation left out)
    epochs: int | None  # epochs per trial after the cap (None: a rule fitted in one pass)


def plan(config: TuneConfig, base=None) -> Plan:
    """Check everything before anything runs: rule, options, space, caps. ``base``: the study config
    every trial starts from (default: the rule's, with its comparison budget); the run settings of
    ``config`` and ``--set`` go on top."""
    from studies.run import Run

    spec = registry.get(config.rule)
    if not spec.search_space:
        raise ValueError(f"rule {spec.name} declares no search space (RuleSpec.search_space)")
    table = leaves(spec.config)
    fixed = parse_assignments(list(config.set))
    for name in fixed:
        if find_leaf(spec.config, name).path[0] == "run":
            raise ValueError(f"--set {name}: a run setting; give it as its own option (--{name.replace('_', '-')})")
    run_fields = {k: getattr(config.run, k) for k in ("dataset", "data_dir", "n_train", "n_test", "split",
                                                     "test_speakers", "seed")}
    one_process = {"workers": 1} if "workers" in table else {}  # one core per trial
    base = apply(spec.config() if base is None else base,
                 {**one_process, **(spec.compare_defaults if base is None else {}), **fixed})
    base = dataclasses.replace(base, run=dataclasses.replace(base.run, **{k: v for k, v in run_fields.items()
                                                                           if v not in (None, ())}))
    space = {find_leaf(spec.config, name).name: dim for name, dim in spec.search_space.items()}
    taken = [name for name in space if name in {find_leaf(spec.config, n).name for n in fixed}]
    for name in taken:
        print(f"{name} is fixed by --set; the search leaves it out", file=sys.stderr)
        del space[name]
    if not space:
        raise ValueError("--set fixes every option of the search space: nothing left to tune")
    check_space(base, space, spec.name)
    preprocessing = getattr(base, "input", None)
    splits = Run(spec.name, base).load_splits(preprocessing) if preprocessing is not None else None
    n_fit = len(splits.train) if splits is not None else int(config.run.n_train or 0)
    epochs = None
    if "epochs" in table:
        epochs = base.epochs
        if config.max_sample_epochs is not None:
            affordable = config.max_sample_epochs // max(n_fit, 1)
            if affordable < 1:
                raise ValueError(f"--max-sample-epochs {config.max_sample_epochs} is less than one epoch of "
                                 f"{n_fit} training samples")
            # the same budget for every rule: as many epochs as the cap affords, whatever the rule's
            # own default; fewer only where --set fixed them
            fixed_epochs = any(find_leaf(spec.config, name).name == "epochs" for name in fixed)
            epochs = min(epochs, affordable) if fixed_epochs else affordable
        base = apply(base, {"epochs": epochs})
    if config.max_trial_seconds is not None:
        if "max_train_seconds" in table:
            base = apply(base, {"max_train_seconds": config.max_trial_seconds})
        else:
            print(f"note: rule {spec.name} trains in one pass; --max-trial-seconds is recorded, not enforced",
                  file=sys.stderr)
    return Plan(spec, base, space, n_fit, epochs)


# ---------------------------------------------------------------------------------------------
# One trial, in a worker process
# ---------------------------------------------------------------------------------------------

def run_trial(spec, config, storage: str, study_name: str, trial_id: int, tune: TuneConfig) -> dict:
    """Run one trial's study, reporting validation accuracy per epoch to the pruner (never raises).
    A rerun's study, resumed from the interrupted trial's checkpoints, reports the epochs it took from
    them again (:meth:`studies.run.Run.restored_epochs`), so the rerun reports what the trial would have."""
    import optuna

    start = time.perf_counter()
    history: list[float] = []
    trained: list[int | None] = []  # training samples per reported epoch (None: the whole training set)
    out = {"state": "fail", "value": float("nan"), "error": "", "train_seconds": float("nan")}
    try:
        one_core()
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(tune))
        trial = optuna.trial.Trial(study, trial_id)

        def report(epoch: int, val_accuracy: float, samples: int | None = None) -> None:
            history.append(val_accuracy)
            trained.append(samples)
            trial.report(val_accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {val_accuracy:.3f} after epoch {epoch}")

        with epoch_listener(report):
            ds = spec.run(config)
        values = ds["val_accuracy"].values
        history = [float(v) for v in np.atleast_1d(values)]
        out.update(state="complete", value=float(np.nanmax(values)),
                   train_seconds=float(ds["train_seconds"]) if "train_seconds" in ds else float("nan"))
    except optuna.TrialPruned as pruned:
        out.update(state="pruned", value=float(np.nanmax(history)), error=str(pruned))
    except Exception as error:  # a failing trial is recorded, the search goes on
        out.update(error=f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}")
    # The trial has ended: its checkpoints and builds go. A trial stopped on the way (its process
    # interrupted or killed) never gets here, and its rerun continues from its checkpoints.
    shutil.rmtree(config.run.out, ignore_errors=True)
    out.update(history=history, epochs_done=len(history), seconds=time.perf_counter() - start,
               trained=trained[:len(history)])
    return out


# ---------------------------------------------------------------------------------------------
# The search, in the parent
# ---------------------------------------------------------------------------------------------

def storage_url(config: TuneConfig) -> str:
    if config.storage:
        return config.storage
    folder = Path(config.run.out) / f"tune_{config.rule}"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / 'study.db'}"


def open_study(config: TuneConfig, storage: str, base=None, *, space: dict):
    """Create the search's study, or (``--resume``) load it and check that it is the same search
    (the same configuration and ``space``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"tune_{config.rule}"
    try:
        exists = name in optuna.study.get_all_study_names(storage)
    except Exception as error:
        raise ValueError(f"cannot open the search storage {storage}: {error}") from error
    if exists and not config.run.resume:
        raise ValueError(f"a search of {config.rule} is already stored in {storage}; add --resume to continue it, "
                         f"or choose another --out")
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                pruner=make_pruner(config))
    if exists:
        check_same_config(study.user_attrs.get("config", ""), identity(config, base, space),
                          f"the search stored in {storage}", ignored=UNSEEN)
        requeue_interrupted(study)
    else:
        study.set_user_attr("config", identity(config, base, space))
        study.set_user_attr("started", now())
    return study


def requeue_interrupted(study) -> None:
    """Trials left running by a killed search fail as 'interrupted' and run again with the same options,
    in the same work folder: the rerun's study resumes from the checkpoints the interrupted one wrote."""
    import optuna
    from optuna.trial import TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        trial.set_user_attr("interrupted", True)
        study.tell(frozen.number, state=TrialState.FAIL)
        study.enqueue_trial(frozen.params, user_attrs={"rerun_of": frozen.number, "work": work_folder(frozen)})
        print(f"trial {frozen.number} was interrupted; it runs again with the same options, from its checkpoints",
              file=sys.stderr)


def work_folder(trial) -> str:
    """The folder (under ``tune_<rule>/work/``) in which ``trial`` runs its study: its own, or for a
    rerun the interrupted trial's (a chain of reruns shares the first one's)."""
    return str(trial.user_attrs.get("work", f"trial_{trial.number}"))


def _continues(work: Path) -> int:
    """The number of the trial whose checkpoints a run in ``work`` continues (-1: none to continue)."""
    checkpoints = work / "checkpoints"
    if not (checkpoints.is_dir() and any(p.is_file() for p in checkpoints.rglob("*"))):
        return -1
    return int(work.name.removeprefix("trial_"))


def _counted(study) -> list:
    """Trials that belong to the search (those cut short by a kill left out)."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted")]


def ask(study, config: TuneConfig):
    """The next trial, drawn by a sampler seeded from the run seed and the trial's position in the
    search, so that a resumed search draws what an uninterrupted one would."""
    import optuna
    from optuna.trial import TrialState

    position = sum(1 for t in _counted(study) if t.state != TrialState.WAITING)
    seed = int(np.random.SeedSequence([config.run.seed, position]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.startup_trials)
    return study.ask()


def tell(study, trial, result: dict, n_fit: int) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("epochs_done", int(result["epochs_done"]))
    trained = list(result.get("trained", []))  # epochs a budget stopped on the way learned from fewer samples
    trained += [None] * (int(result["epochs_done"]) - len(trained))
    trial.set_user_attr("sample_epochs", sum(int(n_fit) if n is None else int(n) for n in trained))
    trial.set_user_attr("seconds", float(result["seconds"]))
    trial.set_user_attr("train_seconds", float(result["train_seconds"]))
    trial.set_user_attr("history", [float(v) for v in result["history"]])
    trial.set_user_attr("error", result["error"])
    if result["state"] == "complete":
        study.tell(trial, result["value"])
    elif result["state"] == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def search(config: TuneConfig, base=None) -> tuple[xr.Dataset, object]:
    """Run (or continue) the search from the study config ``base`` (default: the rule's); returns its
    results dataset and the best trial's study config (None when no trial completed), and writes
    the best configuration's file."""
    from optuna.trial import TrialState

    started = now()
    p = plan(config, base)
    storage = storage_url(config)
    study = open_study(config, storage, base, space=p.space)
    folder = Path(config.run.out) / f"tune_{p.spec.name}"
    executor = make_executor(config.workers, config.scheduler, config.local_cluster)
    wall_start = time.perf_counter()
    finished = lambda: sum(1 for t in _counted(study) if t.state.is_finished())  # noqa: E731
    pending: dict = {}
    ended = False
    try:
        from tqdm import tqdm

        bar = tqdm(total=config.trials, initial=min(finished(), config.trials), desc=f"tune {p.spec.name}",
                   unit="trial")
        while True:
            while len(pending) < config.workers and finished() + len(pending) < config.trials:
                trial = ask(study, config)
                options = suggest(trial, p.space)
                work = folder / "work" / work_folder(trial)
                continues = _continues(work)
                trial.set_user_attr("continues", continues)
                if continues >= 0:
                    bar.write(f"trial {trial.number} continues from trial {continues}'s checkpoints", file=sys.stderr)
                trial_config = apply(p.base, {**options, "out": str(work), "resume": continues >= 0})
                trial_config = dataclasses.replace(trial_config, run=dataclasses.replace(trial_config.run,
                                                                                        validation_only=True))
                future = executor.submit(run_trial, p.spec, trial_config, storage, study.study_name,
                                         trial._trial_id, config)
                pending[future] = trial
            if not pending:
                break
            done, _ = executor.wait_first(list(pending))
            for future in done:
                trial = pending.pop(future)
                result = future.result()
                tell(study, trial, result, p.n_fit)
                if result["state"] == "fail":
                    bar.write(f"trial {trial.number} failed: {result['error'].splitlines()[0]}", file=sys.stderr)
                bar.update(1)
        bar.close()
        ended = True
    finally:
        executor.close()
        if ended:  # otherwise the unfinished trials' checkpoints stay for their reruns
            shutil.rmtree(folder / "work", ignore_errors=True)
    wall = float(study.user_attrs.get("wall_seconds", 0.0)) + time.perf_counter() - wall_start
    study.set_user_attr("wall_seconds", wall)
    ds = trials_dataset(study, config, p, storage, started, base)
    best = None
    if any(t.state == TrialState.COMPLETE for t in _counted(study)):
        _, best = best_config(study, p)
        write_best(study, p, folder / "best.json")
        ds.attrs["best_config_file"] = str(folder / "best.json")
    return ds, best


def best_config(study, p: Plan):
    """The study config of the best trial (the search's fixed options, the caps and its drawn options),
    with its wall-time cap turned into the training samples the trial learned from within it (see
    :func:`sample_budget`)."""
    best = max((t for t in _counted(study) if t.value is not None and t.state.name == "COMPLETE"),
               key=lambda t: (t.value, -t.number))
    options = {name: _option_text(p.space, name, value) for name, value in best.params.items()}
    return best, sample_budget(apply(p.base, options), best.user_attrs.get("sample_epochs"), p.n_fit)


def sample_budget(config, sample_epochs: int | None, n_fit: int):
    """``config`` with its wall-time cap (``max_train_seconds``) replaced by the ``sample_epochs``
    training samples a trial learned from within it: as many whole epochs, and for an online rule
    stopped inside an epoch, ``max_train_samples``. A configuration rerun from a search (a comparison's
    seeds and their learning-off controls, a user's run from ``best.json``) then learns from the same
    samples as the trial did, however loaded the machine, and a rule and its control from the same
    number. Unchanged without a wall-time cap, when the trial's samples were not recorded, or when
    the trial stopped inside an epoch and the rule cannot (no ``max_train_samples``): its reruns then
    stop on the clock, as the trial did, and a note says so."""
    if getattr(config, "max_train_seconds", None) is None or not sample_epochs or n_fit < 1:
        return config
    sample_epochs = int(sample_epochs)
    changes = {"max_train_seconds": None, "epochs": -(-sample_epochs // n_fit)}
    if sample_epochs % n_fit:
        if "max_train_samples" not in leaves(type(config)):
            print(f"note: the best trial learned from {sample_epochs} samples, not whole epochs of {n_fit}, and "
                  f"{type(config).__name__} cannot stop inside an epoch: its reruns keep the wall-time cap",
                  file=sys.stderr)
            return config
        changes["max_train_samples"] = sample_epochs
    return apply(config, changes)


def _option_text(space: dict, name: str, value) -> str:
    unit = units_of(space).get(name, "")
    return f"{value!r} {unit}".strip() if unit else str(value)


def write_best(study, p: Plan, path: Path) -> Path:
    """The best configuration as JSON that every study of the rule takes with ``--config`` (data, seed
    and files left to the command line)."""
    _, config = best_config(study, p)
    data = json.loads(config_json(config))
    data.pop("run", None)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return files.write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def trials_dataset(study, config: TuneConfig, p: Plan, storage: str, started: str, base=None) -> xr.Dataset:
    """Every trial of the search along a ``trial`` dimension, the importances along ``parameter``."""
    from optuna.trial import TrialState

    trials = [t for t in _counted(study) if t.state.is_finished()]
    names = list(p.space)
    units = units_of(p.space)
    n_epochs = max([len(t.user_attrs.get("history", [])) for t in trials] + [1])
    per_epoch = np.full((len(trials), n_epochs), np.nan)
    for i, t in enumerate(trials):
        history = t.user_attrs.get("history", [])
        per_epoch[i, :len(history)] = history
    def column(key, default=np.nan):
        return np.array([t.user_attrs.get(key, default) for t in trials], dtype=float)

    variables = {
        "val_accuracy": ("trial", np.array([t.value if t.value is not None else
                                            (np.nanmax(t.user_attrs.get("history")) if t.user_attrs.get("history") else np.nan)
                                            for t in trials], dtype=float),
                         {"units": "1", "long_name": "best validation accuracy of the trial (the objective; pruned: at the epoch reached)"}),
        "val_accuracy_per_epoch": (("trial", "epoch"), per_epoch,
                                   {"units": "1", "long_name": "validation accuracy after each epoch"}),
        "state": ("trial", np.array([t.state.name.lower() for t in trials], dtype=str),
                  {"long_name": "how the trial ended (complete, pruned or fail)"}),
        "trial_seconds": ("trial", column("seconds"), {"units": "s", "long_name": "wall time of the trial, start-up included"}),
        "train_seconds": ("trial", column("train_seconds"), {"units": "s", "long_name": "training wall time of the trial"}),
        "epochs_done": ("trial", column("epochs_done", 0).astype(int), {"units": "1", "long_name": "epochs the trial trained"}),
        "continues": ("trial", column("continues", -1).astype(int),
                      {"units": "1", "long_name": "trial whose checkpoints this rerun continued (-1: none)"}),
        "sample_epochs": ("trial", column("sample_epochs", 0).astype(int),
                          {"units": "1", "long_name": "training samples x epochs the trial learned from"}),
        "error": ("trial", np.array([t.user_attrs.get("error", "") if t.state == TrialState.FAIL else "" for t in trials],
                                    dtype=str), {"long_name": "error of a failed trial (empty otherwise)"}),
    }
    for name in names:
        values = [t.params.get(name) for t in trials]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None):
            data = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            data = np.array(["" if v is None else str(v) for v in values], dtype=str)
        variables[f"param_{name}"] = ("trial", data, {"units": units[name] or "1", "long_name": f"{name} drawn for the trial"})
    importance = _importances(study, names, config.run.seed)
    variables["importance"] = ("parameter", np.array([importance.get(n, np.nan) for n in names], dtype=float),
                               {"units": "1", "long_name": "parameter importance (fANOVA, share of the objective's variance)"})
    ds = xr.Dataset(variables, coords={"trial": np.array([t.number for t in trials], dtype=int),
                                       "epoch": np.arange(1, n_epochs + 1), "parameter": names})
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    ds.attrs.update(
        Conventions=CONVENTIONS, kind="tuning search", rule=p.spec.name, dataset=_dataset_name(p), seed=int(config.run.seed),
        n_trials=len(trials), n_complete=len(complete), n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_interrupted=sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("interrupted")),
        sampler=f"TPESampler(n_startup_trials={config.startup_trials}), seeded per trial from seed {config.run.seed} "
                "and the trial's position",
        pruner=_describe_pruner(config), objective="best validation accuracy over the epochs trained",
        search_space=json.dumps(space_json(p.space), sort_keys=True), fixed_options=json.dumps(list(config.set)),
        max_sample_epochs=-1 if config.max_sample_epochs is None else int(config.max_sample_epochs),
        max_trial_seconds=float("nan") if config.max_trial_seconds is None else float(config.max_trial_seconds),
        epochs_per_trial=-1 if p.epochs is None else int(p.epochs), n_fit_samples=int(p.n_fit),
        best_trial=-1 if best is None else int(best.number),
        best_val_accuracy=float("nan") if best is None else float(best.value),
        best_params=json.dumps({} if best is None else {k: _option_text(p.space, k, v) for k, v in best.params.items()},
                               sort_keys=True),
        wall_seconds=float(study.user_attrs.get("wall_seconds", np.nan)),
        storage=_safe_storage(storage), study_name=study.study_name, config=identity(config, base, p.space),
        **provenance(str(study.user_attrs.get("started", started))),
    )
    ds["trial"].attrs.update(long_name="trial number in the search", units="1")
    ds["parameter"].attrs.update(long_name="tuned option")
    return label_coordinates(ds)


def _dataset_name(p: Plan) -> str:
    return str(p.base.run.dataset or "default")


def _safe_storage(url: str) -> str:
    """The storage URL without a password."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _importances(study, names: list[str], seed: int) -> dict[str, float]:
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in _counted(study) if t.state == TrialState.COMPLETE]
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return {}
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), params=names,
            target=None)
    except (RuntimeError, ValueError):  # too few distinct values of some option
        return {}


def main(argv=None) -> Path:
    config = config_from_args(TuneConfig, build_parser(TuneConfig, __doc__).parse_args(argv))
    check_writable(Path(config.run.out))
    ds, _ = search(config)
    path = files.write_netcdf(ds, Path(config.run.out) / f"tune_{config.rule}.nc")
    print(f"{ds.attrs['n_complete']} complete, {ds.attrs['n_pruned']} pruned, {ds.attrs['n_failed']} failed "
          f"trial(s); best validation accuracy {ds.attrs['best_val_accuracy']:.3f} (trial {ds.attrs['best_trial']})")
    if "best_config_file" in ds.attrs:
        print(f"best configuration: {ds.attrs['best_config_file']}")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so that workers find run_trial by name.
    from studies import tune

    run_main(tune.main)
