"""Linear layers, three activations, mse/sse and SGD, in NumPy, behind dualtrain's
Backend interface. Parameters live under dualtrain's stable names ("0.weight")."""

from __future__ import annotations

import numpy as np

from dualtrain.backend import Backend
from dualtrain.errors import CapabilityError
from dualtrain.model import Activation, Linear, ModelSpec
from dualtrain.optim import OptimizerSpec

ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1 - y * y),
    "relu": (lambda x: np.maximum(x, 0), lambda y: (y > 0).astype(y.dtype)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda y: y * (1 - y)),
}


class Net:
    """The layers, parameters and gradients; `cache` keeps what backward needs."""

    def __init__(self, spec: ModelSpec, dtype: np.dtype) -> None:
        for layer in spec.layers:
            if not isinstance(layer, (Linear, Activation)):
                raise CapabilityError(f"example backend: no layer {type(layer).__name__}")
        if spec.loss not in ("mse", "sse"):
            raise CapabilityError(f"example backend: no loss {spec.loss!r} (only mse, sse)")
        self.spec, self.dtype = spec, dtype
        self.params = {n: np.zeros(s, dtype) for n, s in spec.param_shapes().items()}
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.cache = []
        for i, layer in enumerate(self.spec.layers):
            self.cache.append(x)
            if isinstance(layer, Linear):
                x = x @ self.params[f"{i}.weight"].T
                if layer.bias:
                    x = x + self.params[f"{i}.bias"]
            else:
                x = ACTIVATIONS[layer.kind][0](x)
        return x

    def backward(self, out: np.ndarray, dy: np.ndarray) -> None:
        for i in reversed(range(len(self.spec.layers))):
            layer, x = self.spec.layers[i], self.cache[i]
            if isinstance(layer, Linear):
                self.grads[f"{i}.weight"] += dy.T @ x
                if layer.bias:
                    self.grads[f"{i}.bias"] += dy.sum(axis=0)
                dy = dy @ self.params[f"{i}.weight"]
            else:
                dy = dy * ACTIVATIONS[layer.kind][1](out)
            out = x


def loss_and_grad(kind: str, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    diff = out - y
    if kind == "sse":
        return float((diff * diff).sum()), 2 * diff
    return float((diff * diff).mean()), 2 * diff / diff.size


class SGD:
    """torch's SGD: momentum buffer = the first gradient, then m * buf + g."""

    def __init__(self, net: Net, spec: OptimizerSpec) -> None:
        unsupported = {k for k, v in spec.options.items() if v and k in ("dampening", "nesterov")}
        if spec.name != "sgd" or unsupported:
            raise CapabilityError(
                f"example backend: only plain SGD, got {spec.name} {spec.options}"
            )
        self.net, self.buffers = net, {}
        self.param_groups = spec.assign(list(net.params))

    def step(self) -> None:
        for group in self.param_groups:
            for name in group["params"]:
                p, g = self.net.params[name], self.net.grads[name]
                if group["weight_decay"]:
                    g = g + group["weight_decay"] * p
                if group["momentum"]:
                    buf = self.buffers.get(name)
                    buf = g.copy() if buf is None else group["momentum"] * buf + g
                    self.buffers[name] = g = buf
                p -= group["lr"] * g


class ExampleBackend(Backend):
    name = "example"

    def build(self, spec: ModelSpec, dtype: str, device: str) -> Net:
        return Net(spec, np.dtype(dtype))

    def load_state(self, model: Net, arrays: dict[str, np.ndarray]) -> None:
        for name, target in model.params.items():
            target[...] = arrays[name]

    def read_state(self, model: Net) -> dict[str, np.ndarray]:
        return {n: p.copy() for n, p in model.params.items()}

    def make_optimizer(self, model: Net, spec: OptimizerSpec) -> SGD:
        return SGD(model, spec)

    def set_hyperparams(self, optimizer: SGD, lrs, momenta) -> None:
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def forward_backward(self, model: Net, x, y) -> float:
        out = model.forward(x.astype(model.dtype))
        loss, grad = loss_and_grad(model.spec.loss, out, y.astype(model.dtype))
        model.backward(out, grad)
        return loss

    def optimizer_step(self, optimizer: SGD) -> None:
        optimizer.step()

    def zero_grad(self, optimizer: SGD) -> None:
        for grad in optimizer.net.grads.values():
            grad.fill(0)

    def evaluate(self, model: Net, x, y) -> tuple[float, float | None]:
        loss, _ = loss_and_grad(model.spec.loss, model.forward(x.astype(model.dtype)), y)
        return loss, None
