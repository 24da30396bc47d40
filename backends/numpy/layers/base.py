"""The shape every NumPy layer has, and the registry from spec class to NumPy class.

A NumPy layer holds its parameters, gradients and buffers as dicts of arrays
under torch's local names ("weight", "running_mean"); they are views of the
network's arrays, shared, not copied. `forward(x, training)` keeps on `self`
what `backward(dy)` needs; `backward` adds the parameter gradients into
`self.grads` (they accumulate, as torch's do) and returns dx; each class
writes `_backward`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dualtrain.errors import ConfigError

#: spec class -> NumPy layer class; each module below registers its own.
LAYERS: dict[type, type] = {}


def registers(spec_class: type):
    """Class decorator: this NumPy class computes `spec_class`."""

    def register(cls: type) -> type:
        LAYERS[spec_class] = cls
        return cls

    return register


class NumpyLayer:
    def __init__(
        self,
        spec: Any,
        params: dict[str, np.ndarray],
        grads: dict[str, np.ndarray],
        buffers: dict[str, np.ndarray],
        name: str = "0",
        masks: Any = None,
    ) -> None:
        self.spec, self.params, self.grads, self.buffers = spec, params, grads, buffers
        self.name, self.masks = name, masks

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, grads: dict | None = None) -> np.ndarray | None:
        """dx (None for token ids); parameter gradients added into `grads`
        (default `self.grads`)."""
        if grads is None or grads is self.grads:
            return self._backward(dy)
        own, self.grads = self.grads, grads
        try:
            return self._backward(dy)
        finally:
            self.grads = own

    def _backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


def make(spec, params, grads, buffers, name: str = "0", masks=None) -> NumpyLayer:
    """The NumPy layer for one spec layer over the given (local) arrays."""
    cls = LAYERS.get(type(spec))
    if cls is None:
        raise ConfigError(f"the numpy backend has no layer {type(spec).__name__}")
    return cls(spec, params, grads, buffers, name, masks)


def local(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix` ("3.") by their names below it, shared, not copied."""
    return {n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)}
