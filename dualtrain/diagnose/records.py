"""What a probed training step recorded, framework-free: one `Call` per module call.

A module is named by its `named_modules` name ("blocks.0.norm1"; the whole model
is ""), the same on torch and OneFlow. A module called more than once in one
forward gets one record per call, keyed "name", "name#1", "name#2", ... in call
order. Every array is a float64 copy (int64 for token ids), whatever the run's
dtype, so records of a float32 engine and a float64 reference compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Call:
    """One call of one module during a probed step."""

    key: str
    module: str
    #: The module's class name ("LayerNorm"), for the report and the referee.
    kind: str
    #: Positional tensor arguments as they arrived (before any forcing); None for
    #: an argument that is not a tensor.
    inputs: list[np.ndarray | None] = field(default_factory=list)
    #: Every tensor of the output, flattened in order (an LSTM's (out, (h, c))).
    outputs: list[np.ndarray] = field(default_factory=list)
    #: The gradient of the loss with respect to each input (None: no gradient).
    grad_inputs: list[np.ndarray | None] = field(default_factory=list)
    #: The gradient arriving at each output tensor from downstream.
    grad_outputs: list[np.ndarray | None] = field(default_factory=list)
    #: The module's plain attributes (numbers, strings, tuples of them: `eps`,
    #: `in_features`, `normalized_shape`), for the NumPy referee.
    attributes: dict = field(default_factory=dict)


@dataclass
class StepProbe:
    """Every module call of one step, in forward order, and the order of their backward."""

    calls: dict[str, Call] = field(default_factory=dict)
    #: Keys in the order their input gradient was computed (the backward's order).
    backward_order: list[str] = field(default_factory=list)

    def call(self, key: str) -> Call:
        """The record of `key`; a one-line error naming it when the step had none."""
        from dualtrain.errors import ConfigError

        if key not in self.calls:
            raise ConfigError(
                f"module call {key!r} ran on the engine under test but not on the reference "
                "(the two models call their modules differently)"
            )
        return self.calls[key]


def owner(parameter: str) -> str:
    """The module a parameter or buffer belongs to: "blocks.0.norm1.weight" ->
    "blocks.0.norm1"; a parameter of the model itself -> ""."""
    return parameter.rpartition(".")[0]


def plain_attributes(module: object) -> dict:
    """A module's public attributes that are numbers, strings, None or tuples of them."""
    plain = (bool, int, float, str, type(None))
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        if isinstance(value, plain) or (
            isinstance(value, (tuple, list)) and all(isinstance(v, plain) for v in value)
        ):
            out[name] = tuple(value) if isinstance(value, list) else value
    return out
