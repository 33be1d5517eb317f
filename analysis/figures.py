"""Draw every figure that applies to each results file.

    python -m analysis.figures results/*.nc --out figures/

Figures are made from the results files alone (PNG, one per plot and file).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

from analysis.plots import applicable


def draw(path: str | Path, out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with xr.open_dataset(path) as ds:
        for name, plot in applicable(ds):
            fig, ax = plt.subplots(figsize=(6, 4))
            plot(ds, ax=ax)
            with warnings.catch_warnings():  # a colorbar shared by panels is not tight_layout-compatible
                warnings.simplefilter("ignore", UserWarning)
                fig.tight_layout()
            target = out / f"{Path(path).stem}_{name}.png"
            fig.savefig(target, dpi=120)
            plt.close(fig)
            written.append(target)
    return written


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="results files (.nc)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder for the PNG files")
    args = parser.parse_args(argv)
    written = [p for path in args.results for p in draw(path, args.out)]
    for p in written:
        print(p)
    return written


if __name__ == "__main__":
    main()
