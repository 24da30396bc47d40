"""The NumPy layers, float64 by default, each with a hand-written backward.

`build` is the entry point for one layer on its own (the localiser's referee
calls it for one module of a torch or OneFlow model); `dualtrain_numpy.model`
builds the whole network from the same classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain_numpy.layers import conv, dense, norm, residual  # noqa: F401 - they register
from dualtrain_numpy.layers.base import LAYERS, NumpyLayer, local, make

__all__ = ["LAYERS", "NumpyLayer", "Standalone", "build", "local", "make"]


class Standalone:
    """One layer over arrays given by local name; `grads` are those of the last backward.

    `forward(x, training)` -> y; `backward(dy)` -> dx (None for token ids);
    buffers (running statistics) are updated in place: in the arrays given when
    they are float64 (int64 for num_batches_tracked), else in converted copies,
    `self.buffers`.
    """

    def __init__(self, layer: NumpyLayer, params: dict[str, np.ndarray]) -> None:
        self.layer, self.params, self.buffers = layer, params, layer.buffers
        self.grads: dict[str, np.ndarray] = layer.grads  # the arrays nested layers add into

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return self.layer.forward(x, training)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        for grad in self.grads.values():
            grad[...] = 0
        return self.layer.backward(dy)


def build(
    layer: Any,
    params: dict[str, np.ndarray],
    buffers: dict[str, np.ndarray] | None = None,
    masks: Any = None,
    name: str = "0",
) -> Standalone:
    """The float64 NumPy layer for spec `layer` with these parameters and buffers.

    Args:
        layer: a `dualtrain.model` layer (e.g. from `layer_from_config`).
        params: its parameters under torch's names inside the module ("weight", "bias";
            a Residual's "0.weight", ...).
        buffers: its buffers ("running_mean", "running_var", "num_batches_tracked").
        masks: for a Dropout in training, what gives its mask: an object with
            `next(name, shape)`, as `dualtrain.dropout.SharedMasks`.
        name: the module's name, as the masks know it.

    Example:
        >>> from dualtrain.model import Linear
        >>> lin = build(Linear(2, 1), {"weight": np.array([[1.0, 2.0]]), "bias": np.zeros(1)})
        >>> lin.forward(np.array([[3.0, 4.0]]), training=True)
        array([[11.]])
        >>> lin.backward(np.array([[1.0]])), lin.grads["weight"]
        (array([[1., 2.]]), array([[3., 4.]]))
    """
    buffers = dict(buffers or {})
    params = {n: np.asarray(a, np.float64) for n, a in params.items()}
    buffers = {
        n: np.asarray(a, np.int64 if n.endswith("num_batches_tracked") else np.float64)
        for n, a in buffers.items()
    }
    _check_names("parameter", layer.shapes(), params, layer)
    _check_names("buffer", layer.buffer_shapes(), buffers, layer)
    grads = {n: np.zeros_like(p) for n, p in params.items()}
    return Standalone(make(layer, params, grads, buffers, name, masks), params)


def _check_names(what: str, shapes: dict, arrays: dict, layer) -> None:
    for name, shape in shapes.items():
        if name not in arrays:
            raise ConfigError(f"{layer.type_name}: no {what} {name!r} given")
        if tuple(np.shape(arrays[name])) != tuple(shape):
            raise ConfigError(
                f"{layer.type_name}: {what} {name} has shape {np.shape(arrays[name])}, "
                f"expected {shape}"
            )
    extra = sorted(set(arrays) - set(shapes))
    if extra:
        raise ConfigError(f"{layer.type_name} has no {what} {extra[0]!r}")
