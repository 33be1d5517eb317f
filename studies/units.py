"""Quantities with units from the command line: '20ms', '20 ms', '20*ms', '-65 mV'."""

from __future__ import annotations

import argparse
import re

from brian2 import Quantity, Unit
from brian2.units import allunits
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
        unit = getattr(allunits, unit_name, None)
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
