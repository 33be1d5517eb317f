"""What the benchmark studies (``studies/bench_*.py``) share: their input and their options."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.units import to_quantity
from studies.quick_help import HelpCachingParser


def build_root(out: Path) -> Path:
    """Folder under which a benchmark makes its build folders."""
    root = Path(out) / "build"
    root.mkdir(parents=True, exist_ok=True)
    return root


def quantity_arg(expected):
    """An argparse type that reads a quantity in the units of ``expected``."""

    def parse(text: str):
        try:
            return to_quantity(text, expected)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = "quantity"
    return parse


def brian2_parser(description: str, *, n_neurons: int, n_samples: int, chunk_size: int) -> argparse.ArgumentParser:
    """The options of a benchmark that times a Brian2 network on SHD-like input."""
    from brian2 import ms, second

    from models.engine.devices import DEVICES

    parser = HelpCachingParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-neurons", type=int, default=n_neurons, help="neurons of the network")
    parser.add_argument("--n-samples", type=int, default=n_samples, help="samples timed")
    parser.add_argument("--dt", type=quantity_arg(second), default=0.1 * ms, help="simulation time step")
    parser.add_argument("--device", choices=DEVICES, default="cpp_standalone", help="Brian2 device")
    parser.add_argument("--chunk-size", type=int, default=chunk_size, help="samples per run of the binary")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    return parser


def shd_like_samples(n: int, dt, seed: int = 7) -> list:
    """``n`` built-in samples at SHD's density (700 channels, about 8,000 spikes per 1 s), on the ``dt`` grid."""
    from datasets.records import Preprocessing, preprocess
    from datasets.synthetic_bursts import SyntheticConfig, make_synthetic

    # 700 channels x 10.4 spikes per burst + 1 Hz noise: about 8,000 spikes per 1 s sample.
    train, _ = make_synthetic(SyntheticConfig(n_train=n, n_test=1, spikes_per_burst=10.4, seed=seed))
    return [preprocess(s, Preprocessing(dt=dt)) for s in train.samples]
