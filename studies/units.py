"""Quantities with units from the command line: '20ms', '20 ms', '20*ms', '-65 mV'."""

from __future__ import annotations

import argparse
import re

from brian2 import Quantity, Unit
from brian2.units import allunits, stdunits
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions

_PATTERN = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*?\s*([A-Za-z]+)?\s*$")


def to_quantity(text: str, expected: Quantity | Unit | None = None) -> Quantity | float:
    """Parse ``text`` as a number with an optional Brian2 unit; check its dimensions against ``expected``."""
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"cannot read {text!r} as a number with a unit (for example 20ms or '-65 mV')")
    number, unit_name = float(match.group(1)), match.group(2)
    if unit_name is None:
        value = number
    else:
        # Brian2 has no unit named 's'; accept it for second, as people write it.
        unit = (allunits.second if unit_name == "s" else
                getattr(stdunits, unit_name, None) or getattr(allunits, unit_name, None))
        if not isinstance(unit, Unit):
            raise ValueError(f"unknown unit {unit_name!r} in {text!r}")
        value = number * unit
    if expected is not None and get_dimensions(value) is not get_dimensions(expected):
        wanted = "no unit" if get_dimensions(expected) is DIMENSIONLESS else f"units of {expected!r}"
        raise ValueError(f"{text!r} has the wrong units: expected {wanted}")
    return value


def parse_quantity(expected):
    """An argparse type that reads a quantity in the units of ``expected``."""

    def parse(text: str):
        try:
            return to_quantity(text, expected)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = "quantity"
    return parse


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
    import dataclasses

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
