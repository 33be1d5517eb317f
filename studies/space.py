"""Search spaces: the ranges a tuning search may draw each option of a rule from.

A rule declares its space once, in its study module, as ``{flat option name: range}`` in its
``RuleSpec.search_space``::

    search_space={
        "learning_rate": Float(3e-4, 1e-2, log=True),
        "tau_mem": Float("5 ms", "50 ms", log=True),  # values with units, in the unit written
        "n_hidden": Int(32, 256, log=True),  # the network size budget
        "readout_reduction": Choice("max", "mean"),
    }

:func:`check_space` checks a space against the rule's config before anything runs: unknown
names, wrong units, empty or reversed ranges and log ranges through zero are clear errors.
:func:`suggest` draws one value per option from an Optuna trial and returns the options as text
that the study config reads (``{"tau_mem": "23.1 ms"}``), so a drawn value passes the same
checks as a value typed on the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


_NUMBER_AND_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _split(value) -> tuple[float, str]:
    """``"5 ms"`` -> ``(5.0, "ms")``; a plain number has the unit ``""``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), ""
    match = _NUMBER_AND_UNIT.match(str(value))
    if not match:
        raise ValueError(f"cannot read {value!r} as a number with an optional unit (for example 5ms or 0.01)")
    return float(match.group(1)), match.group(2)


@dataclass(frozen=True)
class Float:
    """A real value in [low, high], uniform or (``log=True``) log-uniform; bounds may carry a unit."""

    low: float | str
    high: float | str
    log: bool = False

    def bounds(self) -> tuple[float, float, str]:
        (low, unit_low), (high, unit_high) = _split(self.low), _split(self.high)
        if unit_low != unit_high:
            raise ValueError(f"write both bounds in one unit ({self.low!r}, {self.high!r})")
        return low, high, unit_low

    def check(self) -> None:
        low, high, _ = self.bounds()
        if not low < high:
            raise ValueError(f"empty range [{self.low}, {self.high}]: low must be below high")
        if self.log and low <= 0:
            raise ValueError(f"a log range must lie above zero, got [{self.low}, {self.high}]")

    def edges(self) -> list[str]:
        low, high, unit = self.bounds()
        return [f"{low!r} {unit}".strip(), f"{high!r} {unit}".strip()]

    def suggest(self, trial, name: str) -> str:
        low, high, unit = self.bounds()
        value = trial.suggest_float(name, low, high, log=self.log)
        return f"{value!r} {unit}".strip()

    def describe(self) -> str:
        return f"{'log-uniform' if self.log else 'uniform'} in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Int:
    """A whole number in [low, high], uniform or (``log=True``) log-uniform."""

    low: int
    high: int
    log: bool = False

    def check(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)):
            raise ValueError(f"an Int range takes whole numbers, got [{self.low!r}, {self.high!r}]")
        if not self.low < self.high:
            raise ValueError(f"empty range [{self.low}, {self.high}]: low must be below high")
        if self.log and self.low < 1:
            raise ValueError(f"a log range must start at 1 or above, got [{self.low}, {self.high}]")

    def edges(self) -> list[str]:
        return [str(self.low), str(self.high)]

    def suggest(self, trial, name: str) -> str:
        return str(trial.suggest_int(name, self.low, self.high, log=self.log))

    def describe(self) -> str:
        return f"{'log-uniform' if self.log else 'uniform'} whole numbers in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Choice:
    """One of a few values (text, numbers or booleans)."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def check(self) -> None:
        if len(self.values) < 2:
            raise ValueError(f"a choice needs at least two values, got {list(self.values)}")
        if len(set(map(str, self.values))) != len(self.values):
            raise ValueError(f"a choice lists a value twice: {list(self.values)}")

    def edges(self) -> list[str]:
        return [str(v) for v in self.values]

    def suggest(self, trial, name: str) -> str:
        return str(trial.suggest_categorical(name, list(self.values)))

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.values))


RANGES = (Float, Int, Choice)
SMALL_INT_RANGE = 1000  # whole-number ranges up to this wide are checked value by value


def check_space(base, space: dict, rule: str = "") -> None:
    """Every name an option of the study config ``base`` (an instance), every range well formed,
    every edge (every value of a whole-number range of at most ``SMALL_INT_RANGE`` steps) a valid value
    of its option on top of ``base`` (units included): clear errors before anything runs."""
    from studies.config import apply, find_leaf

    where = f"search space of {rule}: " if rule else "search space: "
    if not space:
        raise ValueError(f"{where}empty; the rule declares no options to tune")
    config_cls = type(base)
    for name, dimension in space.items():
        if not isinstance(dimension, RANGES):
            raise ValueError(f"{where}{name}: expected Float, Int or Choice, got {dimension!r}")
        try:
            leaf = find_leaf(config_cls, name)
        except ValueError as error:
            raise ValueError(f"{where}{error}") from error
        if leaf.path[0] == "run":
            raise ValueError(f"{where}{name} is a run setting (data, seed, files), not an option to tune")
        try:
            dimension.check()
            values = dimension.edges()
            if isinstance(dimension, Int) and dimension.high - dimension.low <= SMALL_INT_RANGE:
                values = [str(v) for v in range(dimension.low, dimension.high + 1)]  # e.g. bins that must divide
            for value in values:
                apply(base, {name: value})
        except ValueError as error:
            raise ValueError(f"{where}{name}: {error}") from error


def suggest(trial, space: dict) -> dict[str, str]:
    """One drawn value per option, as text for :func:`studies.config.apply`."""
    return {name: dimension.suggest(trial, name) for name, dimension in space.items()}


def space_json(space: dict) -> dict:
    """The space as plain data, for results files."""
    return {name: {"kind": type(d).__name__, "values": d.edges(), **({"log": d.log} if hasattr(d, "log") else {})}
            for name, d in space.items()}


def units_of(space: dict) -> dict[str, str]:
    """The unit each option's drawn values are written in (``""`` for plain numbers)."""
    return {name: d.bounds()[2] if isinstance(d, Float) else "" for name, d in space.items()}


__all__ = ["Float", "Int", "Choice", "check_space", "suggest", "space_json", "units_of"]
