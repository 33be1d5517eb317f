"""``--help`` in a tenth of a second: the help of a command kept from its last real build.

A study's command line is generated from its config dataclass, and the defaults of that dataclass
are Brian2 quantities, so building it imports Brian2 (and, for BPTT, PyTorch): 8-14 s on 2 cores.
No lazy import can avoid that while the defaults themselves are quantities. So the first ``--help``
of a script builds the real parser (:class:`HelpCachingParser`) and keeps a plain description of
it (every option with its help, default, choices and metavar, as text) in a cache, together with
the sha256 of every source file of the project that was loaded when it was built. A later
``--help`` of that script (:func:`answer_from_cache`, called before the script's heavy imports)
checks those files and, when none changed, rebuilds the same help from the description with
argparse alone. When any changed, it takes the slow path once more and refreshes the cache, so
the help shown is never stale. The help is laid out when shown, for the terminal of the moment.

The cache lives in ``$XDG_CACHE_HOME/snn-rules-study/help/`` (default ``~/.cache``), one JSON file
per script; nothing in it is executed. This module imports only the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

#: The project's packages: a loaded module of these (or the script itself) is a source of the help.
PACKAGES = ("models", "datasets", "learning_rules", "studies", "analysis")
ROOT = Path(__file__).resolve().parent.parent
_FORMAT = 1
_SUPPRESS = "==SUPPRESS=="


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "snn-rules-study" / "help"


def cache_file(script: str | os.PathLike) -> Path:
    """Where the help of ``script`` is kept (its name, and a hash of its full path: two checkouts
    of the project keep apart)."""
    path = Path(script).resolve()
    return cache_dir() / f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:12]}.json"


def _sha256(path: str | os.PathLike) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _environment() -> str:
    return f"{sys.version} {sys.prefix}"


def asks_for_help(argv: list[str]) -> bool:
    args = argv[:argv.index("--")] if "--" in argv else argv
    return any(a in ("-h", "--help") for a in args)


# ---------------------------------------------------------------------------------------------
# A parser as plain data, and back
# ---------------------------------------------------------------------------------------------

def _text(value):
    if value is argparse.SUPPRESS:
        return _SUPPRESS
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def describe(parser: argparse.ArgumentParser) -> dict | None:
    """What ``parser.format_help()`` needs, as JSON-able data (``None`` for a parser this cannot
    describe: mutually exclusive groups or subcommands)."""
    if parser._mutually_exclusive_groups or parser._subparsers is not None:
        return None
    if parser.formatter_class.__module__ != "argparse":
        return None
    index = {id(action): k for k, action in enumerate(parser._actions)}
    actions = []
    for action in parser._actions:
        metavar = list(action.metavar) if isinstance(action.metavar, tuple) else action.metavar
        actions.append(dict(
            option_strings=list(action.option_strings), dest=action.dest, nargs=action.nargs,
            const=_text(action.const), default=_text(action.default),
            choices=None if action.choices is None else [str(c) for c in action.choices],
            required=action.required, help=action.help, metavar=metavar,
            usage=action.format_usage() if action.option_strings else None,
        ))
    groups = [dict(title=group.title, description=group.description,
                   actions=[index[id(a)] for a in group._group_actions]) for group in parser._action_groups]
    return dict(usage=parser.usage, description=parser.description, epilog=parser.epilog,
                formatter=parser.formatter_class.__name__, prefix_chars=parser.prefix_chars,
                actions=actions, groups=groups)


class _Described(argparse.Action):
    """An option known only by its description: it can be shown, not parsed."""

    def __init__(self, option_strings, dest, usage=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self._usage = usage

    def format_usage(self) -> str:
        return self._usage or self.option_strings[0]

    def __call__(self, parser, namespace, values, option_string=None):
        raise RuntimeError("a parser rebuilt from its description only shows help")


def rebuild(description: dict) -> argparse.ArgumentParser:
    """A parser whose help equals that of the parser :func:`describe` was given."""
    parser = argparse.ArgumentParser(usage=description["usage"], description=description["description"],
                                     epilog=description["epilog"], add_help=False,
                                     prefix_chars=description["prefix_chars"],
                                     formatter_class=getattr(argparse, description["formatter"]))
    defaults = {group.title: group for group in parser._action_groups}
    group_of = {}
    for spec in description["groups"]:
        group = defaults.pop(spec["title"], None)
        if group is None:
            group = parser.add_argument_group(spec["title"], spec["description"])
        for k in spec["actions"]:
            group_of[k] = group
    for k, spec in enumerate(description["actions"]):
        spec = dict(spec)
        for key in ("const", "default"):
            if spec[key] == _SUPPRESS:
                spec[key] = argparse.SUPPRESS
        if isinstance(spec["metavar"], list):
            spec["metavar"] = tuple(spec["metavar"])
        action = _Described(**spec)
        group_of.get(k, parser._optionals if action.option_strings else parser._positionals)._add_action(action)
    return parser


# ---------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------

def _sources(script: Path) -> dict[str, str]:
    """sha256 of the script and of every loaded module of the project."""
    paths = {script}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in PACKAGES and getattr(module, "__file__", None):
            paths.add(Path(module.__file__).resolve())
    return {str(p): _sha256(p) for p in sorted(paths) if p.is_file()}


def save(parser: argparse.ArgumentParser, script: str | os.PathLike) -> Path | None:
    """Keep the help of ``parser`` as that of ``script`` (nothing when it cannot be described or
    the cache cannot be written)."""
    description = describe(parser)
    if description is None:
        return None
    script = Path(script).resolve()
    entry = dict(format=_FORMAT, environment=_environment(), sources=_sources(script), parser=description)
    target = cache_file(script)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(entry, handle)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
    except OSError:
        return None
    return target


def cached_parser(script: str | os.PathLike) -> argparse.ArgumentParser | None:
    """The parser rebuilt from the cache of ``script``; ``None`` when there is none or any of its
    sources changed since."""
    try:
        entry = json.loads(cache_file(script).read_text())
        if entry.get("format") != _FORMAT or entry.get("environment") != _environment():
            return None
        if not entry["sources"] or any(_sha256(path) != digest for path, digest in entry["sources"].items()):
            return None
        return rebuild(entry["parser"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def answer_from_cache(script: str | os.PathLike, argv: list[str] | None = None) -> None:
    """Print the help of ``script`` and exit when ``argv`` asks for it and the cache holds it;
    otherwise return and let the script build its parser."""
    argv = sys.argv[1:] if argv is None else argv
    if not asks_for_help(argv):
        return
    parser = cached_parser(script)
    if parser is not None:
        parser.print_help()
        raise SystemExit(0)


def _running_script() -> Path | None:
    """The script this process runs, when it is one of the project's."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if path is None:
        return None
    path = Path(path).resolve()
    try:
        path.relative_to(ROOT)
    except ValueError:
        return None
    return path if path.suffix == ".py" and path.parts[len(ROOT.parts)] in PACKAGES else None


class HelpCachingParser(argparse.ArgumentParser):
    """An argument parser that keeps its help for :func:`answer_from_cache` when it prints it for
    one of the project's scripts."""

    def print_help(self, file=None):
        script = _running_script()
        if script is not None:
            save(self, script)
        super().print_help(file)
