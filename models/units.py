"""The ground floor: quantities with units, their checks, and configuration as text.

Every package builds on this module and it imports none of them. It holds

- :func:`const` and :func:`check_quantity`, for frozen dataclasses of Brian2 quantities;
- :func:`to_quantity` and :func:`parse_value`, values with units read from text
  (``'20ms'``, ``'20 ms'``, ``'20*ms'``, ``'-65 mV'``, ``'1/ms'``, ``'5 μs'``, ``'0.5 kHz'``);
- :func:`with_overrides` and :func:`parse_assignments`, dataclass copies with fields set from text;
- :func:`jsonable`, :func:`config_json` and :func:`config_diff`, configurations as JSON text and
  the fields in which two of them differ.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
from brian2 import Quantity, Unit
from brian2.units import allunits, stdunits
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions, get_unit

_NUMBER = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
#: Units by the short names Brian2 prints them with ('uV', 'us', 'm', 's').
_DISPLAY_NAMES = {unit.dispname: unit for unit in allunits.all_units}
_FACTOR = re.compile(r"\s*([*/]?)\s*([A-Za-zμµ]+)(?:\s*(?:\*\*|\^)\s*([-+]?\d+))?")


#: Field metadata of a nested dataclass that command lines set with one repeatable
#: ``--NAME FIELD=VALUE`` option (the neuron's constants: ``--lif tau_mem=20ms``).
ASSIGN = {"assign": True}


def const(value):
    """Dataclass default for a Brian2 quantity (quantities are arrays, so they need a factory)."""
    return dataclasses.field(default_factory=lambda: value)


def check_quantity(name: str, value, unit: Quantity, *, positive: bool = False) -> None:
    """Raise a clear error unless ``value`` is a Brian2 quantity with the dimensions of ``unit``."""
    if not isinstance(value, Quantity) and get_dimensions(unit) is not DIMENSIONLESS:
        raise TypeError(
            f"{name} must be a Brian2 quantity in units of {unit!r} (for example 20*ms), "
            f"got the unitless value {value!r}"
        )
    if get_dimensions(value) is not get_dimensions(unit):
        raise TypeError(f"{name} must have the units of {unit!r}, got {value!r}")
    if not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not np.all(np.asarray(value) > 0):
        raise ValueError(f"{name} must be positive, got {value!r}")


def _unit(base: str, text: str):
    """The Brian2 unit called ``base`` (``s`` for second, ``μ``/``µ`` for the micro prefix)."""
    base = re.sub(r"^[μµ]", "u", base)
    unit = getattr(stdunits, base, None) or getattr(allunits, base, None) or _DISPLAY_NAMES.get(base)
    if not isinstance(unit, Unit):
        raise ValueError(f"unknown unit {base!r} in {text!r}")
    return unit


def to_quantity(text: str, expected: Quantity | Unit | None = None) -> Quantity | float:
    """Parse ``text`` as a number times units (``20ms``, ``-65 mV``, ``1/ms``, ``2 * metre ** 2 / second``);
    check its dimensions against ``expected``. Nothing in ``text`` is executed."""
    text = str(text)
    match = _NUMBER.match(text)
    value, position = (float(match.group(1)), match.end()) if match else (1.0, 0)  # 'second ** -1'
    if not text.strip():
        raise ValueError("an empty value is not a number")
    while position < len(text.rstrip()):
        factor = _FACTOR.match(text, position)
        if not factor or factor.end() == position:
            raise ValueError(f"cannot read {text!r} as a number with a unit (for example 20ms, '-65 mV' or 1/ms)")
        operator, name, power = factor.groups()
        unit = _unit(name, text) ** int(power or 1)
        value = value / unit if operator == "/" else value * unit
        position = factor.end()
    if expected is not None and get_dimensions(value) is not get_dimensions(expected):
        wanted = "no unit" if get_dimensions(expected) is DIMENSIONLESS else f"units of {expected!r}"
        raise ValueError(f"{text!r} has the wrong units: expected {wanted}")
    return value


_PREFIXES = ("", "m", "u", "n", "p", "k", "M", "G")


def _units_near(value: Quantity) -> list:
    """Named units with the dimensions of ``value``, its best unit first, then by closeness of scale."""
    best = value.get_best_unit()
    base = get_unit(get_dimensions(value))
    units = [best]
    for prefix in _PREFIXES:
        try:
            unit = _unit(prefix + str(base), "")
        except ValueError:  # no named unit with these dimensions, or no such prefix of it
            continue
        if get_dimensions(unit) is get_dimensions(value) and unit not in units:
            units.append(unit)
    return sorted(units, key=lambda u: (u is not best, abs(np.log10(float(u) / float(best)))))


def quantity_text(value: Quantity) -> str:
    """Text that :func:`to_quantity` reads back to ``value`` exactly: Brian2's short form (``20. ms``)
    where it does; else, for a single value, the shortest exact number in a named unit, nearest the
    best unit on a tie (``0.05 mV``, ``166.31288895345338 ms``); else the long form in base units
    (``1.e-08 * metre ** -2 * ...``)."""

    def exact(text):
        try:
            return np.array_equal(np.asarray(to_quantity(text, value)), np.asarray(value))
        except ValueError:
            return False

    for text in (str(value), repr(value)):
        if exact(text):
            return text
    if isinstance(value, Quantity) and np.ndim(value) == 0 and np.isfinite(float(value)) and float(value) != 0:
        found = []
        for unit in _units_near(value):
            near = float(value / unit)  # the quotient can be one or two steps from the float that reads back
            numbers = [near]
            for direction in (np.inf, -np.inf):
                step = near
                for _ in range(2):
                    step = float(np.nextafter(step, direction))
                    numbers.append(step)
            exact_numbers = [repr(n) for n in numbers if exact(f"{n!r} {unit}")]
            if exact_numbers:
                found.append((1e-3 <= abs(near) < 1e4, f"{min(exact_numbers, key=len)} {unit}"))
        readable = [text for in_range, text in found if in_range] or [text for _, text in found]
        if readable:  # the shortest number, in a unit that keeps it between 0.001 and 10,000 where one does
            return min(readable, key=lambda text: len(text.split()[0]))  # the first on a tie: nearest the best unit
    base = ("metre", "kilogram", "second", "amp", "kelvin", "mole", "candela")
    powers = get_dimensions(value)._dims
    return " * ".join([repr(float(value))] + [f"{b} ** {int(p)}" for b, p in zip(base, powers) if p])


def parse_value(text: str, current):
    """Read ``text`` as a value of the same kind as ``current`` (quantity with its units, int, float, bool)."""
    if isinstance(current, Quantity):
        return to_quantity(text, current)
    if isinstance(current, bool):
        if str(text).lower() in ("1", "true", "yes", "on"):
            return True
        if str(text).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if isinstance(current, int):
        value = float(text)
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {text!r}")
        return int(value)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str):
        return str(text)
    raise ValueError(f"values of type {type(current).__name__} cannot be set from the command line")


def with_overrides(obj, assignments: dict[str, str], what: str = "constant"):
    """A copy of the dataclass ``obj`` with fields changed from text; clear errors for unknown names."""
    names = [f.name for f in dataclasses.fields(obj)]
    changes = {}
    for name, text in assignments.items():
        if name not in names:
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(names)}")
        try:
            changes[name] = parse_value(text, getattr(obj, name))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from error
    return dataclasses.replace(obj, **changes)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """['tau_mem=20ms', 'v_threshold=12mV'] -> {'tau_mem': '20ms', 'v_threshold': '12mV'}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _left_out(field, value) -> bool:
    """A field kept off the command line (``{"cli": False}``) is written only where it differs from its
    default: adding such a field changes no configuration already stored (results, checkpoints, searches).
    A field that says where a run computes, not what (``{"identity": False}``: a Dask scheduler's
    address), is never written: a run resumes anywhere."""
    if field.metadata.get("identity", True) is False:
        return True
    return (field.metadata.get("cli", True) is False and field.default is not dataclasses.MISSING
            and value == field.default)


def jsonable(value):
    """Config values as JSON: quantities as text with units ('20. ms'), paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not _left_out(f, getattr(value, f.name))}
    if isinstance(value, Quantity):
        return quantity_text(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def config_json(config) -> str:
    """The configuration as canonical JSON text (sorted keys)."""
    return json.dumps(jsonable(config), sort_keys=True)


def flatten_json(value, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(flatten_json(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _same_quantity(a, b) -> bool:
    """Whether two config values are one quantity written two ways (``0.1663 * second ** 1`` and
    ``166.3 ms``: configs stored before :func:`quantity_text` chose the best unit)."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    try:
        qa, qb = to_quantity(a), to_quantity(b)
    except ValueError:
        return False
    # plain numbers in text ('5', '5.0') are not quantities: their text never changed, compare it as text
    return (get_dimensions(qa) is get_dimensions(qb) and get_dimensions(qa) is not DIMENSIONLESS
            and float(qa) == float(qb))


def config_diff(stored: str, current: str, grown_ok: tuple[str, ...] = (), ignored: tuple[str, ...] = ()) -> list[str]:
    """The dotted names of the fields in which two config JSON texts differ, each as
    ``name: stored -> current``; fields named (last part) in ``grown_ok`` whose number grew are
    left out (a run may go on to more epochs, not back to fewer), and so are the fields named (in
    full) in ``ignored``, on which the comparison's caller does not depend. A field absent on one side and
    ``None`` on the other is the same: an option added since, switched off, is what a run made before
    it existed did (every optional field of a configuration is off at ``None``)."""
    old, new = flatten_json(json.loads(stored)), flatten_json(json.loads(current))
    out = []
    for name in sorted((set(old) | set(new)) - set(ignored)):
        a, b = old.get(name, "(absent)"), new.get(name, "(absent)")
        if a == b or _same_quantity(a, b) or (a, b) in (("(absent)", None), (None, "(absent)")):
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if name.split(".")[-1] in grown_ok and numbers and b > a:
            continue
        out.append(f"{name}: {a} -> {b}")
    return out
