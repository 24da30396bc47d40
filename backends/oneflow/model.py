"""The core's model spec as a `oneflow.nn.Sequential`, and its losses."""

from __future__ import annotations

import oneflow as flow
from oneflow import nn

from dualtrain.errors import ConfigError
from dualtrain.model import Activation, BatchNorm1d, Linear, ModelSpec

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def layer(spec) -> nn.Module:
    """One OneFlow module for one layer of the spec."""
    if isinstance(spec, Linear):
        return nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
    if isinstance(spec, BatchNorm1d):
        return nn.BatchNorm1d(spec.num_features, eps=spec.eps, momentum=spec.momentum)
    if isinstance(spec, Activation):
        return ACTIVATIONS[spec.kind]()
    raise ConfigError(f"the oneflow backend has no layer {type(spec).__name__}")


def build(spec: ModelSpec, dtype: flow.dtype, device: str) -> nn.Sequential:
    """`nn.Sequential` names its parameters "0.weight", ...: the core's stable names."""
    model = nn.Sequential(*map(layer, spec.layers)).to(device=device, dtype=dtype)
    return model.train()


class Loss(nn.Module):
    """The spec's loss as a module, so an nn.Graph can hold it."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, out: flow.Tensor, y: flow.Tensor) -> flow.Tensor:
        if self.kind == "cross_entropy":
            # (batch, seq, classes) against (batch, seq): every position one sample.
            return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        squares = (out - y) ** 2
        return squares.sum() if self.kind == "sse" else squares.mean()


def accuracy(kind: str, out: flow.Tensor, y: flow.Tensor) -> float | None:
    if kind != "cross_entropy":
        return None
    return float((out.argmax(dim=-1) == y).to(flow.float64).mean().numpy())
