"""What every declarative layer answers, and the argument checks they share.

A layer is a frozen dataclass named as the torch module it mirrors, its fields
that module's constructor arguments under torch's names. It says its
parameters and buffers (local names, "weight", "running_mean"), draws
PyTorch's default initialisation from a generator, and maps one sample's
input shape to its output shape (refusing a shape it cannot take).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dualtrain.errors import ConfigError


class ShapeError(ConfigError):
    """A layer cannot take a sample of some shape; the message says what it expects."""


class LayerBase:
    """Defaults for a layer without parameters, buffers or shape change."""

    @property
    def type_name(self) -> str:
        """The torch class name (the `type` of a `[[layer]]` table)."""
        return type(self).__name__

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Local name -> shape of every trainable parameter."""
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Local name -> shape of every buffer."""
        return {}

    def init(self, rng: np.random.Generator, dtype: Any) -> dict[str, np.ndarray]:
        """PyTorch's default initial parameters and buffers, drawn from `rng`."""
        return {}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """One sample's output shape for one sample's input `shape` (ShapeError if not)."""
        return shape

    def input_kind(self) -> str:
        """ "float" (features) or "int" (token ids) for what this layer takes."""
        return "float"

    def children(self) -> tuple[Any, ...]:
        """Nested layers (a Residual's), named "0", "1", ... under this one."""
        return ()


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, else a one-line ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{owner} {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_pair(owner: str, name: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (torch's `_pair`), each >= `minimum`, as a pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(f"{owner} {name} must be an int or 2 ints, got {value!r}")
        return (
            check_int(owner, name, value[0], minimum),
            check_int(owner, name, value[1], minimum),
        )
    single = check_int(owner, name, value, minimum)
    return (single, single)


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{owner} {name} must be true or false, got {value!r}")
    return bool(value)


def check_float(
    owner: str, name: str, value: Any, low: float, high: float | None = None, high_open: bool = True
) -> float:
    """`value` as a float with low < value (< or <=) high, else one line naming it."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok and value > low and (high is None or (value < high if high_open else value <= high)):
        return float(value)
    bound = "" if high is None else (f" and < {high}" if high_open else f" and <= {high}")
    raise ConfigError(f"{owner} {name} must be a number > {low}{bound}, got {value!r}")


def refuse_unless(owner: str, name: str, value: Any, supported: Any) -> None:
    """A torch argument this project does not implement beyond one value, refused in one line."""
    if value != supported:
        raise ConfigError(f"{owner} {name}={value!r} is not implemented here (only {supported!r})")


def settle(layer: Any, **values: Any) -> None:
    """Store checked (normalised) field values on a frozen dataclass."""
    for name, value in values.items():
        object.__setattr__(layer, name, value)


def uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype) -> np.ndarray:
    """U(-bound, bound), as torch's kaiming_uniform_(a=sqrt(5)) and bias init work out."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
