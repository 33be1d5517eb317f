"""The command line of every study: options generated from its config, one results file written,
one line of summary. Expected failures end with one clear line on standard error, not a traceback:
exit status 1 when the data cannot be used (a dataset file missing, truncated or corrupt, a bad
recording, an unreadable checkpoint), 2 when the command was called wrongly (bad options or units,
an unwritable ``--out``, a device this machine lacks). Anything else is a bug and shows its traceback."""

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


#: Exit statuses of the expected failures.
DATA_ERROR, USAGE_ERROR = 1, 2


def run_main(main_body, argv=None):
    """Run a command's ``main``; expected failures end with one line on standard error and exit
    status :data:`DATA_ERROR` (the data) or :data:`USAGE_ERROR` (the call), not a traceback."""
    from models.engine.devices import DeviceUnavailableError
    from models.files import DataError

    try:
        return main_body(argv)
    except DataError as error:  # before ValueError: a bad recording is both
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(DATA_ERROR) from error
    except (ValueError, DeviceUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from error


def study_main(spec, argv=None, description: str | None = None) -> Path:
    """Parse ``argv`` into ``spec.config``, run the study, write its results file, print a summary."""
    parser = build_parser(spec.config, description or sys.modules[spec.run.__module__].__doc__ or spec.name)
    config = config_from_args(spec.config, parser.parse_args(argv))
    check_writable(Path(config.run.out))
    ds = spec.run(config)
    path = write_results(ds, config.run.out, keep_state=bool(spec.extendable))
    print(spec.summarize(ds))
    print(f"results: {path}")
    return path
