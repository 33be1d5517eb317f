"""The command line of every study: options generated from its config, one results file written,
one line of summary; bad input ends with one clear line and exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path

from studies.config import build_parser, config_from_args


def run_main(main_body, argv=None):
    """Run a command's ``main``; expected failures (bad options, files, data, devices) end with one
    line on standard error and exit status 2, not a traceback."""
    from datasets import DatasetUnavailableError
    from models.engine.devices import DeviceUnavailableError

    try:
        return main_body(argv)
    except (ValueError, DatasetUnavailableError, DeviceUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def study_main(spec, argv=None, description: str | None = None) -> Path:
    """Parse ``argv`` into ``spec.config``, run the study, write its results file, print a summary."""
    parser = build_parser(spec.config, description or (sys.modules[spec.run.__module__].__doc__ or "").splitlines()[0])
    config = config_from_args(spec.config, parser.parse_args(argv))
    ds = spec.run(config)
    from models import files

    out = Path(config.run.out) / f"{spec.name}_{ds.attrs['dataset']}_seed{config.run.seed}.nc"
    path = files.write_netcdf(ds, out)
    print(spec.summarize(ds))
    print(f"results: {path}")
    return path
