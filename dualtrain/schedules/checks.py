"""Argument checks shared by every schedule.

Each check returns the value (converted where that is lossless) or raises a
one-line ConfigError: `StepLR: step_size must be a positive int, got 0`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from dualtrain.errors import ConfigError, ConfigTypeError


def fail(owner: str, name: str, expected: str, value: Any) -> ConfigError:
    """Build the error for argument `name` of `owner` that got `value`."""
    return ConfigError(f"{owner}: {name} must be {expected}, got {value!r}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(owner: str, name: str, value: Any, minimum: int | None = None) -> int:
    """An int (not a bool), at least `minimum` when given."""
    if not is_int(value) or (minimum is not None and value < minimum):
        expected = {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(
            minimum, f"an int >= {minimum}"
        )
        raise fail(owner, name, expected, value)
    return value


def number(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number inside the given bounds."""
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise fail(owner, name, _describe_range(low, high, low_open, high_open), value)
    return float(value) if isinstance(value, float) else value


def _describe_range(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a number {'>' if low_open else '>='} {low}"
    if low is None:
        return f"a number {'<' if high_open else '<='} {high}"
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    return f"a number in {left}{low}, {high}{right}"


def choice(owner: str, name: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise fail(owner, name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def boolean(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(owner, name, "True or False", value)
    return value


def int_list(owner: str, name: str, value: Any, minimum: int = 0) -> list[int]:
    """A list or tuple of ints, each at least `minimum`."""
    if not isinstance(value, (list, tuple)) or not all(is_int(v) and v >= minimum for v in value):
        kind = "non-negative ints" if minimum == 0 else f"ints >= {minimum}"
        raise fail(owner, name, f"a list of {kind}", value)
    return list(value)


def function(owner: str, name: str, value: Any) -> Callable[[float], float]:
    """A callable, or an arithmetic expression string turned into one."""
    from dualtrain.schedules.expr import Expression, ExpressionError

    if isinstance(value, str):
        try:
            return Expression(value, where=f"{owner}: {name}")
        except ExpressionError as exc:
            raise ConfigError(str(exc)) from None
    if not callable(value):
        # torch's words and type (TypeError), so code written against torch catches it.
        raise ConfigTypeError(
            f"{owner}: {name} should be a function or an expression string like "
            f"'0.95 ** epoch', got {value!r}"
        )
    return value
