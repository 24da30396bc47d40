"""The schedule engine: every PyTorch and OneFlow lr scheduler as pure functions.

`build_schedule` turns a config (name, flavour, keyword arguments) into one
`Schedule` per param group; `trajectory` runs one for a number of steps.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from dualtrain.errors import ConfigError
from dualtrain.schedules import composite, cyclic, formulas, modern  # noqa: F401  (registers)
from dualtrain.schedules.base import (
    FLAVORS,
    Schedule,
    has_distinct_flavors,
    schedule_class,
    schedule_names,
    split_per_group,
)
from dualtrain.schedules.plateau import PlateauState, ReduceLROnPlateau

__all__ = [
    "FLAVORS",
    "PlateauState",
    "ReduceLROnPlateau",
    "Schedule",
    "build_schedule",
    "has_distinct_flavors",
    "schedule_class",
    "schedule_names",
]

# Arguments whose value is itself a schedule config ({"name", "kwargs"}).
_NESTED = {"schedulers", "scheduler"}


def check_kwargs(owner: str, cls: Any, kwargs: Mapping[str, Any], skip=()) -> None:
    """Refuse unknown and missing arguments in one line, before construction."""
    params = {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and name not in skip
    }
    for key in kwargs:
        if key not in params:
            known = ", ".join(params) or "none"
            raise ConfigError(f"{owner}: unknown argument {key!r} (expected: {known})")
    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in kwargs:
            raise ConfigError(f"{owner}: missing required argument {name!r}")


def build_schedule(
    name: str,
    flavor: str = "torch",
    kwargs: Mapping[str, Any] | None = None,
    n_groups: int = 1,
) -> list[Schedule] | ReduceLROnPlateau:
    """One schedule per param group from a config.

    Args:
        name: a scheduler name as torch or OneFlow spells it, e.g. "StepLR".
        flavor: "torch" or "oneflow", for names whose behaviour differs.
        kwargs: the scheduler's arguments; a list value for a per-group argument
            gives one value per group; `schedulers`/`scheduler` hold nested
            configs `{"name": ..., "kwargs": {...}}`.
        n_groups: number of param groups.

    Returns:
        A list of `n_groups` schedules, or a ReduceLROnPlateau (one for all groups).

    Example:
        >>> [s] = build_schedule("StepLR", kwargs={"step_size": 2})
        >>> [s.lr(t, 1.0) for t in range(4)]
        [1.0, 1.0, 0.1, 0.1]
    """
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{name}: kwargs must be a mapping of argument names, got {kwargs!r}")
    kwargs = dict(kwargs)
    if not isinstance(name, str):
        raise ConfigError(f"schedule name must be a string, got {name!r}")
    if name == ReduceLROnPlateau.name:
        check_kwargs(name, ReduceLROnPlateau, kwargs, skip=("n_groups",))
        return ReduceLROnPlateau(**kwargs, n_groups=n_groups)
    cls = schedule_class(name, flavor)
    check_kwargs(name, cls, kwargs)
    per_group = split_per_group(name, kwargs, cls.per_group, n_groups)
    for key in _NESTED & kwargs.keys():
        nested = _build_nested(name, key, kwargs[key], flavor, n_groups)
        for group, members in zip(per_group, nested, strict=True):
            group[key] = members
    return [cls(**group_kwargs) for group_kwargs in per_group]


def _build_nested(owner: str, key: str, value: Any, flavor: str, n_groups: int) -> list:
    """Per group: the member schedules (a list for `schedulers`, one for `scheduler`)."""
    if value is None and key == "scheduler":
        return [None] * n_groups
    specs = value if key == "schedulers" else [value]
    if not isinstance(specs, Sequence) or isinstance(specs, str):
        raise ConfigError(f"{owner}: {key} must be a list of {{name, kwargs}}, got {value!r}")
    built = []
    for index, spec in enumerate(specs):
        where = f"{key}[{index}]" if key == "schedulers" else key
        try:
            built.append(_build_member(spec, flavor, n_groups))
        except ConfigError as error:
            raise ConfigError(f"{owner}: {where}: {error}") from None
    per_group = [list(members) for members in zip(*built, strict=True)] if built else []
    if key == "scheduler":
        return [members[0] for members in per_group]
    return per_group or [[] for _ in range(n_groups)]


def _build_member(spec: Any, flavor: str, n_groups: int) -> list[Schedule]:
    """One member config {name, kwargs[, flavor]}; errors are prefixed by the caller."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"expected {{name, kwargs}}, got {spec!r}")
    unknown = set(spec) - {"name", "kwargs", "flavor"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {spec!r}")
    member = build_schedule(spec["name"], spec.get("flavor", flavor), spec.get("kwargs"), n_groups)
    if isinstance(member, ReduceLROnPlateau):
        raise ConfigError("ReduceLROnPlateau cannot be a member: it needs a metric each step")
    return member
