"""Three-factor e-prop in Brian2: online learning with eligibility traces and a learning signal.

    python studies/eprop_shd.py --device cpp_standalone --epochs 5

Trains input, recurrent and readout weights with e-prop (one compiled binary for every chunk of
samples; Adam after each sample, or a gradient step every time step with ``--update online``),
checkpoints after every chunk, picks the epoch with the best validation accuracy and reports the
test accuracy there. The readout's decision is the class with the largest time-averaged output (the
largest maximum over time with ``--readout-reduction max``, which presents each training sample twice:
the update needs the peak steps of the whole sample, so it is not online).

Mini-batches (``--batch-size N``) are data-parallel: their chunks run at once in ``--workers``
forked processes, or on a Dask cluster (``--scheduler ADDRESS``, ``--local-cluster N``), whose
workers each build the network once; either way the weights equal one process's.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr
from brian2 import ms
from tqdm import tqdm

from datasets import Preprocessing
from learning_rules.eprop import EPropClassifier, EPropNetwork, EPropParams, learning_state_bytes
from models.engine.compiled import BuildCache
from models.engine.devices import DEVICES
from models.engine.inputs import balanced_chunk_size, chunk_capacity
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.executors import DaskExecutor
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Choice, Float, Int

RULE = "eprop"
#: The training clock (tests drive it).
_clock = time.perf_counter
#: A finished run resumed with a larger --epochs goes on from its final state.
EXTENDABLE = ("epochs",)


@dataclass(frozen=True)
class EPropStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=1 * ms))  # time step, duration, pooling
    device: str = dataclasses.field(default="cpp_standalone", metadata={"choices": DEVICES})  # Brian2 device
    epochs: int = 5  # passes over the training set
    max_train_seconds: float | None = None  # stop training at the first checkpoint (chunk or mini-batch) past this wall time, then score; none: no cap
    max_train_samples: int | None = None  # stop training once it learned from this many samples (over all epochs), then score; none: no cap
    chunk_size: int = 100  # most presentations per run of the binary (balanced to the set sizes): samples, or with readout_reduction='max' twice the training samples
    workers: int = 2  # processes for evaluation chunks, and the chunks a mini-batch (params.batch_size > 1) is split into (on a Dask cluster: its workers)
    scheduler: str | None = dataclasses.field(default=None, metadata={"identity": False})  # run a mini-batch's chunks, and evaluation's, on the Dask scheduler at this address
    local_cluster: int | None = dataclasses.field(default=None, metadata={"identity": False})  # run them on an in-process Dask LocalCluster of this many workers instead
    params: EPropParams = dataclasses.field(default_factory=EPropParams)  # network and learning constants


def _accuracy(result, labels) -> float:
    return float(np.mean(result["logits"].argmax(axis=1) == labels))


#: What the training loss is, per ``readout_reduction``.
LOSS_NAMES = {"per_step": "cross-entropy per step, averaged over the sample",
              "mean": "cross-entropy of the readout's mean over the sample",
              "max": "cross-entropy of the readout's maximum over the sample"}


def run(config: EPropStudyConfig, cache: BuildCache | None = None) -> xr.Dataset:
    """Train online, choose the epoch on validation, test once."""
    job = Run(RULE, config, extendable=EXTENDABLE)
    p, seed = config.params, config.run.seed
    splits = job.load_splits(config.input)
    y_train, y_val = splits.train.labels, splits.val.labels
    state = job.load_checkpoint()
    # the maximum-over-time loss runs each training sample twice in a row (see EPropNetwork.run_chunk),
    # so a run that learns holds half as many samples: chunk_size counts presentations, an even number
    twice = p.presentations
    if p.batch_size > 1:  # a mini-batch is split into one equal chunk per worker, run at once
        chunk_size = min(config.chunk_size, twice * -(-p.batch_size // max(config.workers, 1)))
    else:
        chunk_size = balanced_chunk_size([twice * len(splits.train), len(splits.val), job.n_test], config.chunk_size)
    chunk_size = max(chunk_size - chunk_size % twice, twice)
    if state is not None and "chunk_size" in state:  # a resumed run goes on in the chunks it began with (the
        chunk_size = int(state["chunk_size"])        # test subset's size, which a trial ignores, may differ)
    presented = [sample for sample in splits.train.samples for _ in range(twice)]
    capacity = chunk_capacity([presented, splits.val.samples, splits.test.samples], chunk_size, splits.n_channels)
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds", "train_samples")
    if config.max_train_samples is not None and config.max_train_samples < 1:
        raise ValueError(f"max_train_samples must be at least 1 (or none), got {config.max_train_samples}")
    with job.build_folder() as build_dir, contextlib.ExitStack() as stack:
        net = EPropNetwork(p, splits.n_channels, splits.n_classes, dt=config.input.dt,
                           sample_duration=config.input.duration, chunk_size=chunk_size, capacity=capacity,
                           device_name=config.device, build_dir=build_dir, seed=seed, cache=cache)
        remote = None  # a pool on a Dask cluster, whose workers build the network once each
        if config.scheduler or config.local_cluster:
            executor = DaskExecutor(config.scheduler, config.local_cluster)
            stack.callback(executor.close)
            remote = net.remote_pool(executor)
        history = {k: [] for k in keys}
        epoch, chunk, partial, best = 0, 0, {"loss": [], "correct": []}, None
        spent = 0.0  # seconds of the current epoch before its last checkpoint (a resumed epoch's wall time counts them)
        if state is not None:
            net.state_ = {k[6:]: (state[k] if state[k].ndim else float(state[k])) for k in state if k.startswith("state_")}
            epoch, chunk = int(state["epoch"]), int(state["chunk"])
            history = {k: list(state[f"history_{k}"]) for k in keys if f"history_{k}" in state}
            history.setdefault("train_samples", [len(splits.train)] * len(history["val_accuracy"]))  # earlier versions
            partial = {"loss": list(state["partial_loss"]), "correct": list(state["partial_correct"])}
            spent = float(state.get("partial_seconds", 0.0))  # absent in checkpoints of earlier versions
            if "best_epoch" in state:
                best = {k[5:]: (state[k] if state[k].ndim else float(state[k])) for k in state if k.startswith("best_")}
            job.note_resume(f"at epoch {epoch + 1}, chunk {chunk}")
            job.restored_epochs(history["val_accuracy"], history["train_samples"])

        def save(epoch_, chunk_, seconds_=0.0):
            arrays = dict(epoch=epoch_, chunk=chunk_, chunk_size=chunk_size, partial_seconds=seconds_, partial_loss=partial["loss"],
                          partial_correct=partial["correct"], **{f"history_{k}": v for k, v in history.items()},
                          **{f"state_{k}": v for k, v in net.state_.items()})
            if best is not None:
                arrays.update({f"best_{k}": v for k, v in best.items()})
            job.save_checkpoint(**arrays)

        def samples_left():  # of the sample budget (None: no budget)
            if config.max_train_samples is None:
                return None
            return config.max_train_samples - int(np.sum(history["train_samples"])) - len(partial["loss"])

        while (epoch < config.epochs and not job.over_time_budget(history["epoch_seconds"])
               and samples_left() != 0):
            # the budget is checked on the seconds each checkpoint saved, so that a resumed run stops
            # where the killed one did
            saved_seconds = spent
            t_epoch, spent = _clock() - spent, 0.0
            order = np.random.default_rng([seed, epoch]).permutation(len(splits.train))
            samples = [splits.train.samples[i] for i in order]
            labels = y_train[order]
            step = p.batch_size if p.batch_size > 1 else net.samples_per_run(learn=True)  # what runs between checkpoints
            chunks = [slice(i, i + step) for i in range(0, len(samples), step)]
            bar = tqdm(total=len(samples), initial=sum(c.stop - c.start for c in chunks[:chunk]), unit="sample",
                       desc=f"epoch {epoch + 1}/{config.epochs} e-prop")
            # one pool of workers for the epoch's mini-batches (none for batches of one)
            with (contextlib.nullcontext(remote) if remote is not None and p.batch_size > 1
                  else net.worker_pool(config.workers if p.batch_size > 1 else 1)) as pool:
                for index in range(chunk, len(chunks)):
                    # An online rule can stop anywhere: one epoch of e-prop can take many times a
                    # search's per-trial budget, so the budget ends the epoch at a checkpoint (checked
                    # before each chunk, so that a run resumed there stops there too).
                    if partial["loss"] and job.over_time_budget([*history["epoch_seconds"], saved_seconds]):
                        print(f"the wall-time budget ended epoch {epoch + 1} after {len(partial['loss'])} of "
                              f"{len(samples)} samples", file=sys.stderr)
                        break
                    part, left = chunks[index], samples_left()
                    if left is not None:  # the sample budget ends the epoch inside this chunk, or before it
                        if left <= 0:
                            break
                        part = slice(part.start, min(part.stop, part.start + left))
                    if p.batch_size > 1:
                        result = net.learn_batch(samples[part], workers=config.workers, pool=pool)
                    else:
                        result = net.run_chunk(samples[part], learn=True)
                    partial["loss"] += list(result["loss"])
                    partial["correct"] += list((result["logits"].argmax(axis=1) == labels[part]).astype(float))
                    saved_seconds = _clock() - t_epoch
                    save(epoch, index + 1, saved_seconds)
                    bar.update(len(result["loss"]))
            bar.close()
            val = net.present(splits.val.samples, learn=False, workers=config.workers, pool=remote)
            history["train_loss"].append(float(np.mean(partial["loss"])))
            history["train_accuracy"].append(float(np.mean(partial["correct"])))
            history["val_loss"].append(float(val["loss"].mean()))
            history["val_accuracy"].append(_accuracy(val, y_val))
            history["epoch_seconds"].append(_clock() - t_epoch)
            history["train_samples"].append(len(partial["loss"]))
            if best is None or history["val_accuracy"][-1] > max(history["val_accuracy"][:-1], default=-1):
                best = {**{k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in net.state_.items()},
                        "epoch": float(epoch + 1)}
            epoch, chunk, partial = epoch + 1, 0, {"loss": [], "correct": []}
            save(epoch, chunk)
            print(f"epoch {epoch}/{config.epochs}: training loss {history['train_loss'][-1]:.3f} ({LOSS_NAMES[p.readout_reduction]}), accuracy "
                  f"{history['train_accuracy'][-1]:.3f}; validation {history['val_accuracy'][-1]:.3f}", file=sys.stderr)
            job.end_epoch(epoch, history["val_accuracy"][-1], history["train_samples"][-1])

        if job.validation_only:
            return job.finish_validation(history["val_accuracy"], float(np.sum(history["epoch_seconds"])), config.device,
                                         history["train_accuracy"], history["train_samples"])
        net.state_ = {k: v for k, v in best.items() if k != "epoch"}
        test = net.present(splits.test.samples, learn=False, progress="test", workers=config.workers, pool=remote)
        build_seconds, reused = net.build_seconds, net.reused_binary
        binary_mib = net.compiled.peak_binary_memory

    predicted = test["logits"].argmax(axis=1)
    trained = ("w_",) if p.train_hidden else ("w_out",)
    n_params = sum(v.size for k, v in net.state_.items() if k.startswith(trained))
    train_time = float(np.sum(history["epoch_seconds"]))
    ds = xr.Dataset(
        {
            **results.accuracy_vars(history["val_accuracy"], history["train_accuracy"]),
            "train_loss": ("epoch", np.asarray(history["train_loss"]), {"units": "1", "long_name": f"training loss per sample ({LOSS_NAMES[p.readout_reduction]})"}),
            "val_loss": ("epoch", np.asarray(history["val_loss"]), {"units": "1", "long_name": f"validation loss per sample ({LOSS_NAMES[p.readout_reduction]})"}),
            "train_samples": results.train_samples_var(history["train_samples"]),
            "presentations_per_sample": ("epoch", np.full(len(history["val_accuracy"]), twice),
                                         {"units": "1", "long_name": "presentations per training sample (2: the "
                                          "maximum-over-time loss finds each class's peak step, then learns there)"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]), {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            **results.classifier_vars(splits, predicted, test["counts"], n_hidden=p.n_hidden,
                                               recurrent=p.recurrent, n_parameters=n_params,
                                               best_epoch=int(best["epoch"])),
            "train_seconds": results.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            **results.build_vars(build_seconds, reused, chunk_size),
            "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
            **results.memory_vars(binary_mib),
            **results.learning_state_vars(learning_state_bytes(
                p, splits.n_channels, splits.n_classes, max((len(s.units) for s in splits.train.samples), default=0))),
        },
        coords={"epoch": np.arange(1, len(history["val_accuracy"]) + 1)},
    )
    return job.finish(ds, device=config.device)


SPEC = RuleSpec(
    name=RULE, config=EPropStudyConfig, run=run, summarize=results.summarize_classifier, params=EPropParams, estimator=EPropClassifier,
    run_arg_constants=tuple(name.removeprefix("lif.") for name in EPropNetwork.RUN_ARG_CONSTANTS),
    locality="three-factor", compare_defaults={"epochs": 5}, extendable=EXTENDABLE,
    ablation={"train_hidden": False},
    search_space={
        "learning_rate": Float("0.002 mV", "0.2 mV", log=True),
        "rate_penalty": Float(1e-6, 1e-2, log=True),  # regulariser strength: mean over neurons of (rate - r_0)^2 in Hz^2, as BPTT's
        "weight_scale": Float(1.0, 10.0, log=True),  # initial weights
        "tau_mem": Float("8 ms", "80 ms", log=True),
        "tau_syn": Float("1 ms", "15 ms", log=True),
        "n_hidden": Int(32, 256, log=True),  # network size budget: at most 256 hidden neurons
        "readout_reduction": Choice("max", "mean", "per_step"),  # the loss, the same choices as BPTT's
    },
)


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    from studies import eprop_shd

    run_main(eprop_shd.main)
