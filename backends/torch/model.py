"""The core's model spec as a `torch.nn.Sequential`, and its losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from dualtrain.errors import ConfigError
from dualtrain.model import Activation, BatchNorm1d, Linear, ModelSpec

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


def layer(spec) -> nn.Module:
    """One torch module for one layer of the spec."""
    if isinstance(spec, Linear):
        return nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
    if isinstance(spec, BatchNorm1d):
        return nn.BatchNorm1d(spec.num_features, eps=spec.eps, momentum=spec.momentum)
    if isinstance(spec, Activation):
        return ACTIVATIONS[spec.kind]()
    raise ConfigError(f"the torch backend has no layer {type(spec).__name__}")


def build(spec: ModelSpec, dtype: torch.dtype, device: torch.device) -> nn.Sequential:
    """`nn.Sequential` names its parameters "0.weight", ...: the core's stable names."""
    model = nn.Sequential(*map(layer, spec.layers)).to(device=device, dtype=dtype)
    return model.train()


def loss_fn(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The spec's loss: mean or summed squares, or cross-entropy on class ids."""
    if kind == "cross_entropy":
        # (batch, seq, classes) against (batch, seq): every position one sample.
        return functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return functional.mse_loss(out, y, reduction="sum" if kind == "sse" else "mean")


def accuracy(kind: str, out: torch.Tensor, y: torch.Tensor) -> float | None:
    if kind != "cross_entropy":
        return None
    return float((out.argmax(dim=-1) == y).double().mean())
