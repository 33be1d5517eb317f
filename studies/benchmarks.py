"""What the benchmark studies (``studies/bench_*.py``) share: their input and their options."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.units import to_quantity


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


def shd_like_samples(n: int, dt, seed: int = 7) -> list:
    """``n`` built-in samples at SHD's density (700 channels, about 8,000 spikes per 1 s), on the ``dt`` grid."""
    from datasets.records import Preprocessing, preprocess
    from datasets.synthetic import SyntheticConfig, make_synthetic

    # 700 channels x 10.4 spikes per burst + 1 Hz noise: about 8,000 spikes per 1 s sample.
    train, _ = make_synthetic(SyntheticConfig(n_train=n, n_test=1, spikes_per_burst=10.4, seed=seed))
    return [preprocess(s, Preprocessing(dt=dt)) for s in train.samples]
