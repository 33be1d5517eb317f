"""The command line of every study: options generated from its config, one results file written,
one line of summary; bad input ends with one clear line and exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path

from studies.config import build_parser, config_from_args
from studies.run import write_results


def check_writable(folder: Path) -> None:
    """Fail at once, not after training, when results cannot be written to ``folder``."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"--out {folder}: cannot write results there ({error.strerror or error})") from error


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
    parser = build_parser(spec.config, description or sys.modules[spec.run.__module__].__doc__ or spec.name)
    config = config_from_args(spec.config, parser.parse_args(argv))
    check_writable(Path(config.run.out))
    ds = spec.run(config)
    path = write_results(ds, config.run.out)
    print(spec.summarize(ds))
    print(f"results: {path}")
    return path
