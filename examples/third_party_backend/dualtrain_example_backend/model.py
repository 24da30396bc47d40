"""The spec's Linear layers and activations, with hand-written backward passes,
and the mse and sse losses, as PyTorch defines them.

Parameters and gradients live in flat dicts under the core's stable names
("0.weight", "0.bias"), so weights move in and out by name with no mapping.
"""

from __future__ import annotations

import numpy as np
from dualtrain.errors import CapabilityError
from dualtrain.model import Activation, Linear, ModelSpec

LOSSES = ("mse", "sse")
SUPPORTED = "Linear, Tanh, ReLU, Sigmoid; losses mse, sse"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-x) overflows to inf far below zero, and 1 / inf = 0 is the exact limit
    # torch gives: only the RuntimeWarning is silenced.
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


#: Each activation as (forward, its derivative written in terms of its output).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "relu": (lambda x: np.maximum(x, 0), lambda y: (y > 0).astype(y.dtype)),
    "sigmoid": (_sigmoid, lambda y: y * (1 - y)),
}


def check_supported(spec: ModelSpec) -> None:
    """Refuse, in one line, the first layer or the loss this backend does not have."""
    for index, layer in enumerate(spec.layers):
        if isinstance(layer, Linear) or (
            isinstance(layer, Activation) and layer.kind in ACTIVATIONS
        ):
            continue
        what = type(layer).__name__
        if isinstance(layer, Activation):
            what = f"activation {layer.kind!r}"
        raise CapabilityError(
            f"backend 'example' has no {what} (layer {index}); it supports {SUPPORTED}"
        )
    if spec.loss not in LOSSES:
        raise CapabilityError(f"backend 'example' has no loss {spec.loss!r}; it supports mse, sse")


class Network:
    """The spec's parameters and their gradients, by stable name, in one dtype."""

    def __init__(self, spec: ModelSpec, dtype: np.dtype) -> None:
        check_supported(spec)
        self.spec, self.dtype = spec, dtype
        self.params = {n: np.zeros(s, dtype) for n, s in spec.param_shapes().items()}
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's input, then the model's output: what `backward` needs."""
        x = x.astype(self.dtype, copy=False)
        values = [x]
        for index, layer in enumerate(self.spec.layers):
            if isinstance(layer, Linear):
                x = x @ self.params[f"{index}.weight"].T
                if layer.bias:
                    x = x + self.params[f"{index}.bias"]
            else:
                x = ACTIVATIONS[layer.kind][0](x)
            values.append(x)
        return values

    def backward(self, values: list[np.ndarray], grad_out: np.ndarray) -> None:
        """Add the gradients of the loss to `grads`, from d loss / d output."""
        dy = grad_out
        for index in reversed(range(len(self.spec.layers))):
            layer, x, y = self.spec.layers[index], values[index], values[index + 1]
            if isinstance(layer, Linear):
                self.grads[f"{index}.weight"] += dy.T @ x
                if layer.bias:
                    self.grads[f"{index}.bias"] += dy.sum(axis=0)
                dy = dy @ self.params[f"{index}.weight"]
            else:
                dy = dy * ACTIVATIONS[layer.kind][1](y)


def loss_and_grad(kind: str, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss ("mse": mean of squares, "sse": their sum) and d loss / d out."""
    diff = out - y.astype(out.dtype, copy=False).reshape(out.shape)
    if kind == "sse":
        return float((diff * diff).sum()), 2 * diff
    return float((diff * diff).mean()), 2 * diff / diff.size
