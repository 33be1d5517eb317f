"""The rules this project compares, each declared once.

A rule is one study module that defines ``SPEC = RuleSpec(...)`` and one line in
:data:`BUILTIN`. Scans, the comparison (and tuning) find everything they need in the spec: the
study config to build, the function that runs it, the constants a compiled binary takes through
``run_args``, the rule's locality, its budget in the comparison and its tuning search space. A
rule defined elsewhere (a fork, a test) joins with :func:`register`.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Callable

#: The study modules of the built-in rules, by rule name (each defines ``SPEC``).
BUILTIN = {
    "stdp": "studies.stdp_shd",
    "lsm": "studies.lsm_shd",
    "eprop": "studies.eprop_shd",
    "bptt": "studies.bptt_shd",
    "counts": "studies.counts_shd",
}

#: Where a rule's learning signal comes from.
LOCALITIES = ("local", "local (readout only)", "three-factor", "non-local", "no network")


@dataclass(frozen=True)
class RuleSpec:
    """Everything the shared machinery needs to know about one rule."""

    name: str  # the rule's name on command lines and in results files
    config: type  # the study config dataclass (fields 'run' and 'params' among them)
    run: Callable  # run(config, cache=None) -> xarray.Dataset, the study itself
    summarize: Callable  # summarize(ds) -> one line for the terminal
    params: type | None = None  # the rule's parameter dataclass (the config's 'params' field)
    estimator: type | None = None  # its scikit-learn estimator
    run_arg_constants: tuple[str, ...] = ()  # constants a compiled binary takes through run_args (flat names)
    locality: str = "local"  # one of LOCALITIES
    compare_defaults: dict = field(default_factory=dict)  # the rule's budget in the comparison ({flat name: value})
    scan_defaults: dict = field(default_factory=dict)  # options every scan point takes unless --set says otherwise
    search_space: dict = field(default_factory=dict)  # tuning search space ({flat name: range from studies.space})
    ablation: dict = field(default_factory=dict)  # options that switch learning off, same readout (the comparison's learning-off control); empty: none
    extendable: tuple[str, ...] = ()  # options a finished run can be resumed with a larger value of ('epochs'); its final state is kept beside its results
    chosen_on_validation: tuple[str, ...] = ()  # options the run itself chooses on validation when left unset: a comparison's shared value does not fix them (--set or a search's trial does)

    def __post_init__(self):
        if self.locality not in LOCALITIES:
            raise ValueError(f"{self.name}: locality must be one of {', '.join(LOCALITIES)}, got {self.locality!r}")
        if not dataclasses.is_dataclass(self.config) or "run" not in {f.name for f in dataclasses.fields(self.config)}:
            raise TypeError(f"{self.name}: the study config must be a dataclass with a 'run' field (RunConfig)")


_REGISTERED: dict[str, RuleSpec] = {}


def register(spec: RuleSpec) -> RuleSpec:
    """Add a rule (or replace one of the same name)."""
    _REGISTERED[spec.name] = spec
    return spec


def get(name: str) -> RuleSpec:
    """The spec of rule ``name``; an unknown name is a clear error."""
    if name not in _REGISTERED and name in BUILTIN:
        register(importlib.import_module(BUILTIN[name]).SPEC)
    if name not in _REGISTERED:
        raise ValueError(f"unknown rule {name!r}; choose one of {', '.join(names())}")
    return _REGISTERED[name]


def names() -> list[str]:
    return list(BUILTIN) + [name for name in _REGISTERED if name not in BUILTIN]
