"""The baseline: a recurrent LIF network trained with BPTT and surrogate gradients.

    python studies/bptt_shd.py --epochs 20

Trains with Adam for ``--epochs`` epochs, checkpointing each epoch, chooses the epoch with the best
validation accuracy and reports the test accuracy there. Writes one results file and prints its path.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from brian2 import Quantity, second

from datasets import Preprocessing
from learning_rules.bptt import BPTTClassifier, BPTTParams
from studies import common
from studies.units import parse_quantity

RULE = "bptt"


@dataclass(frozen=True)
class BPTTStudyConfig:
    dataset: str | None = None  # None: SHD, falling back loudly to the built-in set
    data_dir: Path | None = None  # dataset folder
    device: str = "cpu"  # PyTorch device
    n_train: int | None = None  # training samples incl. validation (None: all)
    n_test: int | None = None  # test samples (None: all)
    epochs: int = 10  # training epochs
    seed: int = 0  # one seed for every random stream
    out: Path = Path("results")  # folder for the results file
    resume: bool = False  # continue from the checkpoint of an identical run
    duration: Quantity = common.const(1 * second)  # samples cropped/padded to this length
    pool: int = 1  # neighbouring input channels summed into one
    bptt: BPTTParams = dataclasses.field(default_factory=BPTTParams)  # network and training constants


def run(config: BPTTStudyConfig) -> xr.Dataset:
    started, t_start = common.now(), time.perf_counter()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA device here")
    p = config.bptt
    prep = Preprocessing(duration=config.duration, dt=p.dt, pool=config.pool)
    splits = common.load_splits_for(config, prep)
    y_train, y_val = splits.train.labels, splits.val.labels
    clf = BPTTClassifier(p, n_steps=prep.n_steps, epochs=config.epochs, seed=config.seed, device=config.device)
    config_text = common.config_json(dataclasses.replace(config, resume=False))
    ckpt_path = Path(config.out) / "checkpoints" / f"{RULE}_{splits.dataset}_seed{config.seed}.pt"
    state = common.load_torch_checkpoint(ckpt_path) if config.resume else None
    history = {"train_loss": [], "train_accuracy": [], "val_accuracy": [], "epoch_seconds": []}
    best = None
    if state is not None:
        if state["config"] != config_text:
            raise ValueError(f"{ckpt_path} belongs to a run with another configuration; drop --resume or use another --out")
        clf.load_state(state["classifier"], splits.n_channels, splits.n_classes)
        history, best = state["history"], state["best"]
        print(f"resuming {RULE} after epoch {clf.epochs_done_}", file=sys.stderr)
    else:
        clf._init(splits.n_channels, splits.n_classes)

    while clf.epochs_done_ < config.epochs:
        t_epoch = time.perf_counter()
        loss, train_acc = clf.train_epoch(splits.train.samples, y_train)
        val_acc = clf.score(splits.val.samples, y_val)
        for key, value in zip(history, (loss, train_acc, val_acc, time.perf_counter() - t_epoch)):
            history[key].append(float(value))
        if best is None or val_acc > max(history["val_accuracy"][:-1], default=-1.0):
            best = {"model": copy.deepcopy(clf.model_.state_dict()), "epoch": clf.epochs_done_}
        common.save_torch_checkpoint(ckpt_path, {"config": config_text, "classifier": clf.state(),
                                                 "history": history, "best": best})
        print(f"epoch {clf.epochs_done_}/{config.epochs}: loss {loss:.3f}, train {train_acc:.3f}, "
              f"validation {val_acc:.3f}", file=sys.stderr)

    clf.model_.load_state_dict(best["model"])
    predicted, counts = clf.evaluate(splits.test.samples)
    train_time = float(np.sum(history["epoch_seconds"]))
    ds = xr.Dataset(
        {
            **common.accuracy_vars(history["val_accuracy"], history["train_accuracy"]),
            "train_loss": ("epoch", np.asarray(history["train_loss"]), {"units": "1", "long_name": "training loss"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]),
                              {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            **common.recurrent_classifier_vars(splits, predicted, counts, n_hidden=p.n_hidden, recurrent=p.recurrent,
                                               n_parameters=clf.n_parameters, best_epoch=int(best["epoch"])),
            "train_seconds": common.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            "wall_seconds": common.scalar(time.perf_counter() - t_start, "s", "wall time of this invocation"),
            **common.memory_vars(),
        },
        coords={"epoch": np.arange(1, len(history["val_accuracy"]) + 1)},
    )
    return common.finish_results(ds, rule=RULE, config=config, splits=splits, device=config.device,
                                 seed=config.seed, started=started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, devices=("cpu", "cuda"), default_device="cpu", default_epochs=10)
    d = BPTTParams()
    parser.add_argument("--n-hidden", type=int, default=d.n_hidden, help="recurrent LIF neurons")
    parser.add_argument("--no-recurrence", action="store_true", help="feed-forward hidden layer")
    parser.add_argument("--dt", type=parse_quantity(second), default=d.dt, help="time step (inputs binned to it)")
    parser.add_argument("--duration", type=parse_quantity(second), default=1 * second, help="sample length")
    parser.add_argument("--pool", type=int, default=1, help="neighbouring input channels summed into one")
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam step size")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="samples per gradient step")
    parser.add_argument("--readout", choices=("max", "mean"), default=d.readout_reduction,
                        help="reduction of the readout potentials over time before the cross-entropy")
    parser.add_argument("--rate-penalty", type=float, default=d.rate_penalty,
                        help="strength of the firing-rate regulariser (0: off)")
    parser.add_argument("--target-rate", type=parse_quantity(1 / second), default=d.target_rate,
                        help="target hidden firing rate of the regulariser (e.g. 10Hz)")
    parser.add_argument("--surrogate-slope", type=float, default=d.surrogate_slope, help="fast-sigmoid slope beta")
    parser.add_argument("--weight-scale", type=float, default=d.weight_scale, help="initial weight scale")
    return parser


def config_from_args(args) -> BPTTStudyConfig:
    bptt = BPTTParams(n_hidden=args.n_hidden, recurrent=not args.no_recurrence, dt=args.dt, lif=common.lif_from_args(args),
                      learning_rate=args.learning_rate, batch_size=args.batch_size, readout_reduction=args.readout,
                      rate_penalty=args.rate_penalty, target_rate=args.target_rate,
                      surrogate_slope=args.surrogate_slope, weight_scale=args.weight_scale)
    return BPTTStudyConfig(dataset=args.dataset, data_dir=args.data_dir, device=args.device, n_train=args.n_train,
                           n_test=args.n_test, epochs=args.epochs, seed=args.seed, out=args.out, resume=args.resume,
                           duration=args.duration, pool=args.pool, bptt=bptt)


def main(argv=None) -> Path:
    config = config_from_args(build_parser().parse_args(argv))
    ds = run(config)
    path = common.write_atomic_netcdf(ds, common.results_path(config.out, RULE, ds.attrs["dataset"], config.seed))
    print(f"test accuracy: {float(ds.test_accuracy):.3f} at epoch {int(ds.best_epoch)} "
          f"(chance {1 / ds.attrs['n_classes']:.3f}; dataset {ds.attrs['dataset']})")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    common.run_main(main)
