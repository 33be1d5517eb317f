"""Three-factor e-prop in Brian2: online learning with eligibility traces and a learning signal.

    python studies/eprop_shd.py --device cpp_standalone --epochs 5

Trains input, recurrent and readout weights with e-prop (one compiled binary for every chunk of
samples; Adam after each sample, or a gradient step every time step with ``--update online``),
checkpoints after every chunk, picks the epoch with the best validation accuracy and reports the
test accuracy there. The readout's decision is the class with the largest time-averaged output.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from brian2 import Quantity, mV, second
from tqdm import tqdm

from datasets import Preprocessing
from learning_rules.eprop import EPropNetwork, EPropParams
from models.inputs import balanced_chunk_size, chunk_capacity
from studies import common
from studies.units import parse_quantity

RULE = "eprop"


@dataclass(frozen=True)
class EPropStudyConfig:
    dataset: str | None = None  # None: SHD, falling back loudly to the built-in set
    data_dir: Path | None = None  # dataset folder
    device: str = "cpp_standalone"  # Brian2 device
    n_train: int | None = None  # training samples incl. validation (None: all)
    n_test: int | None = None  # test samples (None: all)
    epochs: int = 5  # passes over the training set
    seed: int = 0  # one seed for every random stream
    out: Path = Path("results")  # folder for the results file
    resume: bool = False  # continue from the checkpoint of an identical run
    duration: Quantity = common.const(1 * second)  # samples cropped/padded to this length
    pool: int = 1  # neighbouring input channels summed into one
    chunk_size: int = 100  # most samples per run of the binary (balanced to the set sizes)
    workers: int = 2  # processes for evaluation chunks
    eprop: EPropParams = dataclasses.field(default_factory=EPropParams)  # network and learning constants


def _accuracy(result, labels) -> float:
    return float(np.mean(result["logits"].argmax(axis=1) == labels))


def run(config: EPropStudyConfig) -> xr.Dataset:
    started, t_start = common.now(), time.perf_counter()
    p = config.eprop
    prep = Preprocessing(duration=config.duration, dt=p.dt, pool=config.pool)
    splits = common.load_splits_for(config, prep)
    y_train, y_val = splits.train.labels, splits.val.labels
    config_text = common.config_json(dataclasses.replace(config, resume=False))
    ckpt_path = Path(config.out) / "checkpoints" / f"{RULE}_{splits.dataset}_seed{config.seed}.npz"
    state = common.load_checkpoint(ckpt_path) if config.resume else None
    if state is not None and str(state["config"]) != config_text:
        raise ValueError(f"{ckpt_path} belongs to a run with another configuration; drop --resume or use another --out")
    chunk_size = balanced_chunk_size([len(splits.train), len(splits.val), len(splits.test)], config.chunk_size)
    capacity = chunk_capacity([splits.train.samples, splits.val.samples, splits.test.samples], chunk_size,
                              splits.n_channels)
    build_dir = Path(tempfile.mkdtemp(prefix=f"{RULE}_", dir=common.build_root(config.out)))
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
    try:
        net = EPropNetwork(p, splits.n_channels, splits.n_classes, sample_duration=config.duration,
                           chunk_size=chunk_size, capacity=capacity, device_name=config.device,
                           build_dir=build_dir, seed=config.seed)
        history = {k: [] for k in keys}
        epoch, chunk, partial, best = 0, 0, {"loss": [], "correct": []}, None
        if state is not None:
            net.state_ = {k[6:]: (state[k] if state[k].ndim else float(state[k])) for k in state if k.startswith("state_")}
            epoch, chunk = int(state["epoch"]), int(state["chunk"])
            history = {k: list(state[f"history_{k}"]) for k in keys}
            partial = {"loss": list(state["partial_loss"]), "correct": list(state["partial_correct"])}
            if "best_epoch" in state:
                best = {k[5:]: (state[k] if state[k].ndim else float(state[k])) for k in state if k.startswith("best_")}
            print(f"resuming {RULE} at epoch {epoch + 1}, chunk {chunk}", file=sys.stderr)

        def save(epoch_, chunk_):
            arrays = dict(config=config_text, epoch=epoch_, chunk=chunk_, partial_loss=partial["loss"],
                          partial_correct=partial["correct"], **{f"history_{k}": v for k, v in history.items()},
                          **{f"state_{k}": v for k, v in net.state_.items()})
            if best is not None:
                arrays.update({f"best_{k}": v for k, v in best.items()})
            common.save_checkpoint(ckpt_path, **arrays)

        while epoch < config.epochs:
            t_epoch = time.perf_counter()
            order = np.random.default_rng([config.seed, epoch]).permutation(len(splits.train))
            samples = [splits.train.samples[i] for i in order]
            labels = y_train[order]
            chunks = [slice(i, i + chunk_size) for i in range(0, len(samples), chunk_size)]
            bar = tqdm(total=len(samples), initial=sum(c.stop - c.start for c in chunks[:chunk]), unit="sample",
                       desc=f"epoch {epoch + 1}/{config.epochs} e-prop")
            for index in range(chunk, len(chunks)):
                result = net.run_chunk(samples[chunks[index]], learn=True)
                partial["loss"] += list(result["loss"])
                partial["correct"] += list((result["logits"].argmax(axis=1) == labels[chunks[index]]).astype(float))
                save(epoch, index + 1)
                bar.update(len(result["loss"]))
            bar.close()
            val = net.present(splits.val.samples, learn=False, workers=config.workers)
            history["train_loss"].append(float(np.mean(partial["loss"])))
            history["train_accuracy"].append(float(np.mean(partial["correct"])))
            history["val_loss"].append(float(val["loss"].mean()))
            history["val_accuracy"].append(_accuracy(val, y_val))
            history["epoch_seconds"].append(time.perf_counter() - t_epoch)
            if best is None or history["val_accuracy"][-1] > max(history["val_accuracy"][:-1], default=-1):
                best = {**{k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in net.state_.items()},
                        "epoch": float(epoch + 1)}
            epoch, chunk, partial = epoch + 1, 0, {"loss": [], "correct": []}
            save(epoch, chunk)
            print(f"epoch {epoch}/{config.epochs}: train loss {history['train_loss'][-1]:.1f}, accuracy "
                  f"{history['train_accuracy'][-1]:.3f}; validation {history['val_accuracy'][-1]:.3f}", file=sys.stderr)

        net.state_ = {k: v for k, v in best.items() if k != "epoch"}
        test = net.present(splits.test.samples, learn=False, progress="test", workers=config.workers)
        build_seconds, reused = net.build_seconds, net.reused_binary
        binary_mib = net.compiled.peak_binary_memory
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)

    predicted = test["logits"].argmax(axis=1)
    n_params = sum(v.size for k, v in net.state_.items() if k.startswith("w_"))
    train_time = float(np.sum(history["epoch_seconds"]))
    ds = xr.Dataset(
        {
            **common.accuracy_vars(history["val_accuracy"], history["train_accuracy"]),
            "train_loss": ("epoch", np.asarray(history["train_loss"]), {"units": "1", "long_name": "training loss per sample (cross-entropy summed over time)"}),
            "val_loss": ("epoch", np.asarray(history["val_loss"]), {"units": "1", "long_name": "validation loss per sample"}),
            "epoch_seconds": ("epoch", np.asarray(history["epoch_seconds"]), {"units": "s", "long_name": "wall time of the epoch (training and validation)"}),
            **common.recurrent_classifier_vars(splits, predicted, test["counts"], n_hidden=p.n_hidden,
                                               recurrent=p.recurrent, n_parameters=n_params,
                                               best_epoch=int(best["epoch"])),
            "train_seconds": common.scalar(train_time, "s", "training wall time (all epochs, with validation)"),
            **common.build_vars(build_seconds, reused, chunk_size),
            "wall_seconds": common.scalar(time.perf_counter() - t_start, "s", "wall time of this invocation"),
            **common.memory_vars(binary_mib),
        },
        coords={"epoch": np.arange(1, len(history["val_accuracy"]) + 1)},
    )
    return common.finish_results(ds, rule=RULE, config=config, splits=splits, device=config.device,
                                 seed=config.seed, started=started)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, default_epochs=5)
    d = EPropParams()
    parser.add_argument("--n-hidden", type=int, default=d.n_hidden, help="recurrent LIF neurons")
    parser.add_argument("--no-recurrence", action="store_true", help="feed-forward hidden layer")
    parser.add_argument("--dt", type=parse_quantity(second), default=d.dt, help="time step")
    parser.add_argument("--duration", type=parse_quantity(second), default=1 * second, help="sample length")
    parser.add_argument("--pool", type=int, default=1, help="neighbouring input channels summed into one")
    parser.add_argument("--feedback", choices=("symmetric", "random"), default=d.feedback,
                        help="learning signal through the readout weights or fixed random weights")
    parser.add_argument("--update", choices=("sample", "online"), default=d.update,
                        help="Adam after each sample, or a gradient step every time step")
    parser.add_argument("--learning-rate", type=parse_quantity(mV), default=d.learning_rate,
                        help="step size in weight units (e.g. 0.02mV)")
    parser.add_argument("--rate-penalty", type=float, default=d.rate_penalty, help="firing-rate regulariser strength (1/Hz^2)")
    parser.add_argument("--weight-scale", type=float, default=d.weight_scale, help="initial weight scale")
    parser.add_argument("--chunk-size", type=int, default=100, help="most samples per run of the binary (balanced to the set sizes)")
    parser.add_argument("--workers", type=int, default=2, help="processes for evaluation")
    return parser


def config_from_args(args) -> EPropStudyConfig:
    eprop = EPropParams(n_hidden=args.n_hidden, recurrent=not args.no_recurrence, dt=args.dt,
                        lif=common.lif_from_args(args), feedback=args.feedback, update=args.update,
                        learning_rate=args.learning_rate, rate_penalty=args.rate_penalty, weight_scale=args.weight_scale)
    return EPropStudyConfig(dataset=args.dataset, data_dir=args.data_dir, device=args.device, n_train=args.n_train,
                            n_test=args.n_test, epochs=args.epochs, seed=args.seed, out=args.out, resume=args.resume,
                            duration=args.duration, pool=args.pool, chunk_size=args.chunk_size,
                            workers=args.workers, eprop=eprop)


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
