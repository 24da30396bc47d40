"""Layers and losses with hand-written backward passes, as PyTorch defines them."""

from __future__ import annotations

import numpy as np

from dualtrain.model import Activation, BatchNorm1d, Linear, ModelSpec


class LinearLayer:
    def __init__(self, spec: Linear) -> None:
        self.spec = spec
        self.params: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self.x = x
        out = x @ self.params["weight"].T
        return out + self.params["bias"] if self.spec.bias else out

    def backward(self, dy: np.ndarray, grads: dict[str, np.ndarray]) -> np.ndarray:
        grads["weight"] += dy.T @ self.x
        if self.spec.bias:
            grads["bias"] += dy.sum(axis=0)
        return dy @ self.params["weight"]


class ActivationLayer:
    def __init__(self, spec: Activation) -> None:
        self.kind = spec.kind
        self.params: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if self.kind == "tanh":
            self.y = np.tanh(x)
        elif self.kind == "relu":
            self.y = np.maximum(x, 0)
        else:
            # exp(-x) overflows to inf for x below about -88 (float32) or -709
            # (float64); 1 / inf is the exact limit 0, as torch gives, so only the
            # RuntimeWarning (an error under pytest's filterwarnings) is silenced.
            with np.errstate(over="ignore"):
                self.y = 1 / (1 + np.exp(-x))
        return self.y

    def backward(self, dy: np.ndarray, grads: dict[str, np.ndarray]) -> np.ndarray:
        if self.kind == "tanh":
            return dy * (1 - self.y * self.y)
        if self.kind == "relu":
            return dy * (self.y > 0)
        return dy * self.y * (1 - self.y)


class BatchNormLayer:
    """Batch statistics in training (biased variance to normalise, unbiased for the
    running estimate, as torch does); running statistics in eval."""

    def __init__(self, spec: BatchNorm1d) -> None:
        self.spec = spec
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        eps, w, b = self.spec.eps, self.params["weight"], self.params["bias"]
        if not training:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            return (x - mean) / np.sqrt(var + eps) * w + b
        n = len(x)
        mean, var = x.mean(axis=0), x.var(axis=0)
        self.inv_std = 1 / np.sqrt(var + eps)
        self.xhat = (x - mean) * self.inv_std
        self._update_running(mean, var * n / max(n - 1, 1))
        return self.xhat * w + b

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        m, buf = self.spec.momentum, self.buffers
        buf["running_mean"][...] = (1 - m) * buf["running_mean"] + m * mean
        buf["running_var"][...] = (1 - m) * buf["running_var"] + m * unbiased_var
        buf["num_batches_tracked"][...] = buf["num_batches_tracked"] + 1

    def backward(self, dy: np.ndarray, grads: dict[str, np.ndarray]) -> np.ndarray:
        grads["weight"] += (dy * self.xhat).sum(axis=0)
        grads["bias"] += dy.sum(axis=0)
        dxhat = dy * self.params["weight"]
        n = len(dy)
        centred = n * dxhat - dxhat.sum(axis=0) - self.xhat * (dxhat * self.xhat).sum(axis=0)
        return centred * self.inv_std / n


LAYERS = {Linear: LinearLayer, Activation: ActivationLayer, BatchNorm1d: BatchNormLayer}


def loss_and_grad(kind: str, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss of `out` against `y` and its gradient with respect to `out`."""
    if kind == "cross_entropy":
        labels = y.astype(np.int64).reshape(-1)
        shifted = out - out.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(out))
        grad = np.exp(log_probs)
        grad[rows, labels] -= 1
        return float(-log_probs[rows, labels].mean()), grad / len(out)
    diff = out - y.reshape(out.shape)
    if kind == "sse":
        return float((diff * diff).sum()), 2 * diff
    return float((diff * diff).mean()), 2 * diff / diff.size


def accuracy(kind: str, out: np.ndarray, y: np.ndarray) -> float | None:
    if kind != "cross_entropy":
        return None
    return float((out.argmax(axis=1) == y.astype(np.int64).reshape(-1)).mean())


class Network:
    """The spec's layers with parameters, gradients and buffers under stable names."""

    def __init__(self, spec: ModelSpec, dtype: np.dtype) -> None:
        self.spec, self.dtype, self.training = spec, dtype, True
        self.layers = [LAYERS[type(layer)](layer) for layer in spec.layers]
        self.params = {n: np.zeros(s, dtype) for n, s in spec.param_shapes().items()}
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.buffers = {
            n: np.zeros(s, np.int64 if n.endswith("num_batches_tracked") else dtype)
            for n, s in spec.buffer_shapes().items()
        }
        for i, layer in enumerate(self.layers):
            layer.params = _local(self.params, i)
            layer.grads = _local(self.grads, i)
            layer.buffers = _local(self.buffers, i)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, self.training)
        return x

    def backward(self, dy: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy, layer.grads)


def _local(arrays: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """Layer `index`'s arrays under their local names ("weight"), shared, not copied."""
    prefix = f"{index}."
    return {n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)}
