"""The baseline: a recurrent LIF network trained with BPTT and surrogate gradients.

    python studies/bptt_shd.py --epochs 20

Trains with Adam for ``--epochs`` epochs, checkpointing each epoch, chooses the epoch with the best
validation accuracy and reports the test accuracy there. Writes one results file and prints its path.
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import copy
import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from brian2 import ms

from datasets import Preprocessing
from learning_rules.bptt import BPTTClassifier, BPTTParams
from studies import results
from studies.cli import run_main, study_main
from studies.config import RunConfig
from studies.registry import RuleSpec
from studies.run import Run
from studies.space import Choice, Float, Int

RULE = "bptt"
#: A finished run resumed with a larger --epochs goes on from its final state.
EXTENDABLE = ("epochs",)


@dataclass(frozen=True)
class BPTTStudyConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)  # data, seed, files
    input: Preprocessing = dataclasses.field(default_factory=lambda: Preprocessing(dt=10 * ms))  # time step (inputs binned to it), duration, pooling
    torch_device: str = dataclasses.field(default="cpu", metadata={"choices": ("cpu", "cuda")})  # PyTorch device
    epochs: int = 10  # training epochs
    max_train_seconds: float | None = None  # stop after the epoch that passes this training wall time (it is scored); none: no cap
    params: BPTTParams = dataclasses.field(default_factory=BPTTParams)  # network and training constants


def run(config: BPTTStudyConfig, cache=None) -> xr.Dataset:
    """Train with BPTT, choose the epoch on validation, test once (``cache`` is unused: no Brian2)."""
    if config.torch_device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--torch-device cuda was asked for, but PyTorch sees no CUDA device here")
    job = Run(RULE, config, extendable=EXTENDABLE)
    p = config.params
    splits = job.load_splits(config.input)
    y_train, y_val = splits.train.labels, splits.val.labels
    classes = np.arange(splits.n_classes)
    clf = BPTTClassifier(p, n_inputs=splits.n_channels, dt=config.input.dt, duration=config.input.duration,
                         epochs=config.epochs, seed=config.run.seed, torch_device=config.torch_device, verbose=True)
    state = job.load_checkpoint("state.pt")
    history = {"train_loss": [], "train_accuracy": [], "val_accuracy": [], "epoch_seconds": []}
    best = None
    if state is not None:
        clf.load_state(state["classifier"], classes)
        history, best = state["history"], state["best"]
        job.note_resume(f"after epoch {clf.epochs_done_}")
        job.restored_epochs(history["val_accuracy"])
    else:
        clf.initialize(classes)

    while clf.epochs_done_ < config.epochs and not job.over_time_budget(history["epoch_seconds"]):
        t_epoch = time.perf_counter()
        clf.partial_fit(splits.train.samples, y_train)
        loss, train_acc = clf.loss_, clf.train_accuracy_
        val_acc = clf.score(splits.val.samples, y_val)
        for key, value in zip(history, (loss, train_acc, val_acc, time.perf_counter() - t_epoch)):
            history[key].append(float(value))
        if best is None or val_acc > max(history["val_accuracy"][:-1], default=-1.0):
            best = {"model": copy.deepcopy(clf.model_.state_dict()), "epoch": clf.epochs_done_}
        job.save_torch_checkpoint({"classifier": clf.state(), "history": history, "best": best})
        print(f"epoch {clf.epochs_done_}/{config.epochs}: training loss {loss:.3f} (cross-entropy per sample), train {train_acc:.3f}, "
              f"validation {val_acc:.3f}", file=sys.stderr)
        job.end_epoch(clf.epochs_done_, val_acc)

    train_time = float(np.sum(history["epoch_seconds"]))
    if job.validation_only:
        return job.finish_validation(history["val_accuracy"], train_time, config.torch_device, history["train_accuracy"])
    clf.model_.load_state_dict(best["model"])
    predicted, counts = clf.evaluate(splits.test.samples)
    ds = xr.Dataset(
        {
            **results.accuracy_vars(history["val_accuracy"], history["train_accuracy"]),
            "train_loss": ("epoch", np.asarray(history["train_loss"]), {"units": "1", "long_name": "training loss"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]),
                              {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            **results.classifier_vars(splits, predicted, counts, n_hidden=p.n_hidden, recurrent=p.recurrent,
                                               n_parameters=clf.n_parameters, best_epoch=int(best["epoch"])),
            "train_seconds": results.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            "wall_seconds": results.scalar(job.elapsed, "s", "wall time of this invocation"),
            **results.memory_vars(),
            **results.learning_state_vars(clf.model_.backward_state_bytes(
                min(p.batch_size, len(splits.train)), clf.n_steps, train_hidden=p.train_hidden)),
        },
        coords={"epoch": np.arange(1, len(history["val_accuracy"]) + 1)},
    )
    return job.finish(ds, device=config.torch_device)


SPEC = RuleSpec(
    name=RULE, config=BPTTStudyConfig, run=run, summarize=results.summarize_classifier, params=BPTTParams, estimator=BPTTClassifier,
    locality="non-local", compare_defaults={"epochs": 20}, extendable=EXTENDABLE,
    ablation={"train_hidden": False},
    search_space={
        "learning_rate": Float(3e-4, 1e-2, log=True),
        "rate_penalty": Float(1e-6, 1e-2, log=True),  # regulariser strength (mean over neurons of (rate - r_0)^2 in Hz^2)
        "weight_scale": Float(1.0, 10.0, log=True),  # initial weights
        "tau_mem": Float("8 ms", "80 ms", log=True),
        "tau_syn": Float("1 ms", "15 ms", log=True),
        "n_hidden": Int(32, 256, log=True),  # network size budget: at most 256 hidden neurons
        "readout_reduction": Choice("max", "mean", "per_step"),  # the loss, the same choices as e-prop's
    },
)


def main(argv=None):
    return study_main(SPEC, argv)


if __name__ == "__main__":
    from studies import bptt_shd

    run_main(bptt_shd.main)
