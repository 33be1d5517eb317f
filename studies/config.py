"""Study configurations: the run settings every study shares, and command lines generated from
the config dataclasses so that an option cannot exist without a field that is used.

A study config is a frozen dataclass. Its fields, and those of the dataclasses nested in it, are
its *leaves*, each with one flat name (``dataset``, ``dt``, ``n_neurons``, ``tau_mem``); the flat
names are what the command line, ``--config`` files, scans (``--param``) and the comparison
(``--set``) speak. A nested dataclass is flattened (its fields get options of their own), except
one marked ``assign`` in its field metadata (the neuron's constants): it takes one repeatable
``--NAME FIELD=VALUE`` option instead (``--lif tau_mem=20ms``). The help text of every option is
the one-line comment after its field in the source.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from brian2 import Quantity

from datasets import DATASETS
from models.units import config_json, parse_assignments, parse_value, to_quantity
from studies.quick_help import HelpCachingParser

# Field metadata: ``models.units.ASSIGN`` gives a nested dataclass one ``--NAME FIELD=VALUE`` option;
# ``{"choices": (...)}`` restricts the values; ``{"cli": False}`` keeps a field off the command line.


@dataclass(frozen=True)
class RunConfig:
    """What every run needs, whatever its rule: data, seed and where its files go."""

    dataset: str | None = dataclasses.field(default=None, metadata={"choices": DATASETS})  # dataset; when not given, SHD, falling back loudly to the built-in set when SHD is neither present nor downloadable
    data_dir: Path | None = None  # folder holding SHD/, SSC/, NTIDIGITS18/ (default $SNN_DATA_DIR or ./data); for fsdd the folder of wav recordings (default $FSDD_DIR)
    n_train: int | None = None  # training samples used, validation included (default: all)
    n_test: int | None = None  # test samples used (default: all)
    split: str | None = dataclasses.field(default=None, metadata={"choices": ("official", "speaker")})  # how test samples are separated: the dataset's official split, or whole speakers held out ('speaker'); default official, except the comparison on FSDD, which holds out speakers
    test_speakers: tuple[str, ...] = ()  # speakers held out for test with --split speaker (default: theo for FSDD)
    seed: int = 0  # seed of every random stream of the run
    out: Path = Path("results")  # folder for the results file, checkpoints and builds
    resume: bool = False  # continue from the checkpoints of an identical, interrupted run
    validation_only: bool = dataclasses.field(default=False, metadata={"cli": False})  # a tuning trial: train and score on validation only; the test split is neither simulated nor scored

    def __post_init__(self):
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")


@dataclass(frozen=True)
class Leaf:
    """One field of a (nested) config dataclass."""

    name: str  # flat name
    path: tuple[str, ...]  # field names from the top config down
    kind: object  # the type hint, None and containers removed
    default: object
    help: str
    choices: tuple | None
    assign_group: str | None  # the assign field it belongs to (e.g. 'lif'), else None
    optional: bool  # None is allowed
    many: bool  # a tuple of values (repeatable option)


def _base_type(hint):
    """(type, optional, many) of a type hint: ``int | None`` -> (int, True, False)."""
    optional = many = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else hint
        origin = typing.get_origin(hint)
    if origin is tuple:
        many, hint = True, typing.get_args(hint)[0]
    return hint, optional, many


@functools.lru_cache(maxsize=None)
def field_comments(cls) -> dict[str, str]:
    """``{field: comment}`` from the one-line comments after the fields in ``cls``'s source."""
    out = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        comments = {tok.start[0]: tok.string.lstrip("#").strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment = comments.get(node.end_lineno) or comments.get(node.lineno)
                if comment:
                    out[node.target.id] = comment
    return out


@functools.lru_cache(maxsize=None)
def leaves(cls) -> dict[str, Leaf]:
    """Every leaf of the config dataclass ``cls`` by flat name; two leaves of one name are an error."""
    out: dict[str, Leaf] = {}

    def walk(klass, default, path, group):
        hints = typing.get_type_hints(klass)
        comments = field_comments(klass)
        for field in dataclasses.fields(klass):
            if field.metadata.get("cli", True) is False:
                continue
            value = getattr(default, field.name)
            if dataclasses.is_dataclass(value):
                walk(type(value), value, path + (field.name,), group or (field.name if field.metadata.get("assign") else None))
                continue
            kind, optional, many = _base_type(hints[field.name])
            choices = field.metadata.get("choices")
            if choices is None and typing.get_origin(kind) is typing.Literal:
                choices = typing.get_args(kind)
            name = field.name
            if name in out:
                raise TypeError(f"{cls.__name__}: two fields are called {name!r} "
                                f"({'.'.join(out[name].path)} and {'.'.join(path + (name,))})")
            out[name] = Leaf(name, path + (name,), kind, value, field.metadata.get("help") or comments.get(name, ""),
                             tuple(choices) if choices is not None else None, group, optional, many)

    walk(cls, cls(), (), None)
    return out


def find_leaf(cls, name: str) -> Leaf:
    """The leaf called ``name`` (flat, or dotted as in ``params.lif.tau_mem`` or ``lif.tau_mem``)."""
    table = leaves(cls)
    if name in table:
        return table[name]
    for leaf in table.values():
        dotted = ".".join(leaf.path)
        if dotted == name or dotted.endswith("." + name):
            return leaf
    raise ValueError(f"unknown option {name!r}; known: {', '.join(sorted(table))}")


def parse_leaf(leaf: Leaf, value):
    """``value`` (text from a command line or JSON, or already typed) as the leaf's type."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "") and leaf.optional):
        if not leaf.optional:
            raise ValueError(f"{leaf.name} needs a value")
        return None
    if leaf.many:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(str(item) for item in items)
    if isinstance(leaf.default, Quantity):
        return _same_units(leaf, value) if isinstance(value, Quantity) else to_quantity(str(value), leaf.default)
    kind = leaf.kind
    if kind is Path:
        return Path(value)
    if typing.get_origin(kind) is typing.Literal:
        kind = type(typing.get_args(kind)[0])
    if kind is bool:
        return value if isinstance(value, bool) else parse_value(str(value), False)
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else parse_value(str(value), 0)
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected a plain number (no unit), got {value!r}") from None
    if kind is str:
        text = str(value)
        if leaf.choices is not None and text not in leaf.choices:
            raise ValueError(f"{leaf.name} must be one of {', '.join(map(str, leaf.choices))}, got {text!r}")
        return text
    raise ValueError(f"{leaf.name}: values of type {kind} cannot be set from text")


def _same_units(leaf: Leaf, value: Quantity) -> Quantity:
    from brian2.units.fundamentalunits import get_dimensions

    if get_dimensions(value) is not get_dimensions(leaf.default):
        raise ValueError(f"{leaf.name}: {value!r} has the wrong units: expected units of {leaf.default!r}")
    return value


def apply(config, changes: dict):
    """A copy of ``config`` with leaves changed: ``{flat or dotted name: value or text}``.

    Values are parsed against their field (units checked), and every dataclass on the way is
    rebuilt, so its own checks run; an error names the option.
    """
    cls = type(config)
    by_path: dict[tuple, object] = {}
    for name, value in changes.items():
        leaf = find_leaf(cls, name)
        try:
            by_path[leaf.path] = parse_leaf(leaf, value)
        except (ValueError, TypeError) as error:
            message = str(error)
            raise ValueError(message if message.startswith(leaf.name) else f"{leaf.name}: {message}") from error

    def rebuild(obj, prefix):
        updates = {}
        for field in dataclasses.fields(obj):
            path = prefix + (field.name,)
            if path in by_path:
                updates[field.name] = by_path[path]
            else:
                value = getattr(obj, field.name)
                if dataclasses.is_dataclass(value) and any(p[:len(path)] == path for p in by_path):
                    updates[field.name] = rebuild(value, path)
        if not updates:
            return obj
        try:
            return dataclasses.replace(obj, **updates)
        except (ValueError, TypeError) as error:
            raise ValueError(str(error)) from error

    return rebuild(config, ())


def config_from_json(cls, text: str, base=None):
    """A config of class ``cls`` from JSON text as :func:`models.units.config_json` writes it (or a
    subset of its leaves, flat or nested), on top of ``base`` (default: ``cls()``)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON configuration: {error}") from error
    if not isinstance(data, dict):
        raise ValueError("a JSON configuration must be an object of option names and values")
    flat = {}

    def walk(value, path):
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, path + (key,))
        else:
            flat[".".join(path)] = value

    walk(data, ())
    table = leaves(cls)
    known = {".".join(leaf.path): leaf.name for leaf in table.values()}
    changes = {}
    for dotted, value in flat.items():
        name = known.get(dotted) or (dotted if dotted in table else None)
        if name is None:
            raise ValueError(f"unknown option {dotted!r} in the configuration; known: {', '.join(sorted(table))}")
        changes[name] = value
    return apply(base if base is not None else cls(), changes)


# ---------------------------------------------------------------------------------------------
# Command lines
# ---------------------------------------------------------------------------------------------

def _default_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) if value else "none"
    return str(value)


def build_parser(cls, description: str) -> argparse.ArgumentParser:
    """The command line of config class ``cls``: one option per leaf (``--n-train``), one
    ``--NAME FIELD=VALUE`` option per assign group, and ``--config FILE``."""
    # the first paragraph of a docstring, whole sentences
    first = description.strip().split("\n\n")[0]
    parser = HelpCachingParser(description=" ".join(line.strip() for line in first.splitlines()))
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                        help="JSON configuration (such as a results file's 'config' attribute or a tuning "
                             "search's best configuration); options given here override it")
    groups: dict[str, list[Leaf]] = {}
    for leaf in leaves(cls).values():
        if leaf.assign_group is not None:
            groups.setdefault(leaf.assign_group, []).append(leaf)
            continue
        flag = "--" + leaf.name.replace("_", "-")
        text = leaf.help if "(default" in leaf.help else f"{leaf.help} (default: {_default_text(leaf.default)})".strip()
        if leaf.kind is bool and not leaf.many:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text,
                                dest=leaf.name)
        elif leaf.many:
            parser.add_argument(flag, action="extend", nargs="+", default=argparse.SUPPRESS,
                                help=text + " (several values, or the option repeated)", dest=leaf.name,
                                metavar=leaf.name.upper())
        else:
            parser.add_argument(flag, type=_argparse_type(leaf), default=argparse.SUPPRESS, help=text,
                                dest=leaf.name, metavar=None if leaf.choices else _metavar(leaf), choices=leaf.choices)
    for group, members in groups.items():
        names = ", ".join(f"{m.name} ({_default_text(m.default)})" for m in members)
        parser.add_argument(f"--{group}", action="append", default=argparse.SUPPRESS, metavar="NAME=VALUE",
                            dest=f"assign:{group}",
                            help=f"change one of these constants, with its unit (repeatable): {names}")
    return parser


def _metavar(leaf: Leaf) -> str:
    if isinstance(leaf.default, Quantity):
        return "QUANTITY"
    return {int: "N", float: "X", Path: "PATH"}.get(leaf.kind, "VALUE")


def _argparse_type(leaf: Leaf):
    def parse(text: str):
        try:
            return parse_leaf(leaf, text)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = leaf.name
    return parse


def config_from_args(cls, args: argparse.Namespace):
    """The config: defaults, then ``--config FILE``, then the options given explicitly."""
    config = cls()
    if getattr(args, "config", None) is not None:
        try:
            text = Path(args.config).read_text()
        except OSError as error:
            raise ValueError(f"cannot read the configuration file {args.config}: {error.strerror}") from error
        config = config_from_json(cls, text, config)
    changes = {}
    for key, value in vars(args).items():
        if key == "config":
            continue
        if key.startswith("assign:"):
            group = key.split(":", 1)[1]
            for name, text in parse_assignments(value).items():
                leaf = find_leaf(cls, f"{group}.{name}") if _in_group(cls, group, name) else None
                if leaf is None:
                    known = [l.name for l in leaves(cls).values() if l.assign_group == group]
                    raise ValueError(f"unknown {group} constant {name!r}; known: {', '.join(known)}")
                changes[leaf.name] = text
        else:
            changes[key] = value
    return apply(config, changes)


def _in_group(cls, group: str, name: str) -> bool:
    leaf = leaves(cls).get(name)
    return leaf is not None and leaf.assign_group == group


def describe(config) -> str:
    """The config as JSON text (what results files and checkpoints record)."""
    return config_json(config)
