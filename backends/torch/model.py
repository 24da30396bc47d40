"""The core's model spec as a `torch.nn.Sequential`, and its losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from dualtrain.errors import ConfigError
from dualtrain.model import (
    GELU,
    Activation,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ModelSpec,
    Residual,
)

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class ResidualBlock(nn.Sequential):
    """x + layers(x); a Sequential, so its parameters are "2.0.weight" as the core names them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The children by iteration, not super().forward: nn.Graph calls this with a
        # proxy of the module as self, which super() refuses.
        out = x
        for module in self:
            out = module(out)
        return x + out


def _pool(spec):
    return {"kernel_size": spec.kernel_size, "stride": spec.stride, "padding": spec.padding}


# One constructor a spec class, the spec's fields under torch's own names.
BUILDERS = {
    Linear: lambda s: nn.Linear(s.in_features, s.out_features, bias=s.bias),
    BatchNorm1d: lambda s: nn.BatchNorm1d(s.num_features, eps=s.eps, momentum=s.momentum),
    BatchNorm2d: lambda s: nn.BatchNorm2d(s.num_features, eps=s.eps, momentum=s.momentum),
    Activation: lambda s: ACTIVATIONS[s.kind](),
    GELU: lambda s: nn.GELU(approximate=s.approximate),
    LayerNorm: lambda s: nn.LayerNorm(
        s.normalized_shape, eps=s.eps, elementwise_affine=s.elementwise_affine, bias=s.bias
    ),
    Embedding: lambda s: nn.Embedding(s.num_embeddings, s.embedding_dim, padding_idx=s.padding_idx),
    Dropout: lambda s: nn.Dropout(s.p),
    Flatten: lambda s: nn.Flatten(s.start_dim, s.end_dim),
    Conv2d: lambda s: nn.Conv2d(
        s.in_channels,
        s.out_channels,
        s.kernel_size,
        stride=s.stride,
        padding=s.padding,
        dilation=s.dilation,
        groups=s.groups,
        bias=s.bias,
    ),  # fmt: skip
    MaxPool2d: lambda s: nn.MaxPool2d(**_pool(s)),
    AvgPool2d: lambda s: nn.AvgPool2d(**_pool(s), count_include_pad=s.count_include_pad),
    AdaptiveAvgPool2d: lambda s: nn.AdaptiveAvgPool2d(1),
    Residual: lambda s: ResidualBlock(*map(layer, s.layers)),
}


def layer(spec) -> nn.Module:
    """One torch module for one layer of the spec."""
    builder = BUILDERS.get(type(spec))
    if builder is None:
        raise ConfigError(f"the torch backend has no layer {type(spec).__name__}")
    return builder(spec)


def build(spec: ModelSpec, dtype: torch.dtype, device: torch.device) -> nn.Sequential:
    """`nn.Sequential` names its parameters "0.weight", ...: the core's stable names."""
    model = nn.Sequential(*map(layer, spec.layers)).to(device=device, dtype=dtype)
    return model.train()


def shared_dropout(model: nn.Module, spec: ModelSpec):
    """Hooks that make the model's Dropout modules apply the core's masks (None without any)."""
    sites = spec.dropout_sites()
    if not sites:
        return None
    from dualtrain_torch.usermodule import TorchDropout

    return TorchDropout(model, sites, spec.dropout_seed)


def loss_fn(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The spec's loss: mean or summed squares, or cross-entropy on class ids."""
    return loss_function(kind)(out, y)


def loss_function(kind: str):
    """The spec's loss as a function of (output, target), chosen once for a step
    that calls it every time."""
    if kind == "cross_entropy":
        return _cross_entropy
    if kind == "sse":
        return _summed_squares
    return functional.mse_loss


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # (batch, seq, classes) against (batch, seq): every position one sample.
    return functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def _summed_squares(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return functional.mse_loss(out, y, reduction="sum")


def accuracy(kind: str, out: torch.Tensor, y: torch.Tensor) -> float | None:
    if kind != "cross_entropy":
        return None
    return float((out.argmax(dim=-1) == y).double().mean())
