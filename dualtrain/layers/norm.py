"""BatchNorm1d, BatchNorm2d and LayerNorm with torch's arguments and defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain.layers.base import (
    LayerBase,
    ShapeError,
    check_bool,
    check_int,
    refuse_unless,
    settle,
)


def _check_eps_momentum(owner: str, eps, momentum) -> tuple[float, float]:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ConfigError(f"{owner} eps must be a number > 0, got {eps!r}")
    if momentum is None:
        raise ConfigError(
            f"{owner} momentum=None (a cumulative average) is not implemented here; give a number"
        )
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not (0 <= momentum <= 1)
    ):
        raise ConfigError(f"{owner} momentum must be a number in [0, 1], got {momentum!r}")
    return float(eps), float(momentum)


@dataclass(frozen=True)
class _BatchNorm(LayerBase):
    """Batch statistics over every axis but the channel's in training (biased variance
    to normalise, unbiased for running_var, as torch); running statistics in eval."""

    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True
    track_running_stats: bool = True

    #: Sample shapes taken, as lengths: (C,) and (C, L) for 1d, (C, H, W) for 2d.
    ranks = (1,)

    def __post_init__(self) -> None:
        owner = self.type_name
        eps, momentum = _check_eps_momentum(owner, self.eps, self.momentum)
        settle(self, num_features=check_int(owner, "num_features", self.num_features), eps=eps,
               momentum=momentum)  # fmt: skip
        refuse_unless(owner, "affine", check_bool(owner, "affine", self.affine), True)
        refuse_unless(
            owner, "track_running_stats", check_bool(owner, "track_running_stats",
                                                     self.track_running_stats), True
        )  # fmt: skip

    def shapes(self):
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def buffer_shapes(self):
        n = self.num_features
        return {"running_mean": (n,), "running_var": (n,), "num_batches_tracked": ()}

    def init(self, rng, dtype):
        n = self.num_features
        return {
            "weight": np.ones(n, dtype),
            "bias": np.zeros(n, dtype),
            "running_mean": np.zeros(n, dtype),
            "running_var": np.ones(n, dtype),
            "num_batches_tracked": np.zeros((), np.int64),
        }

    def output_shape(self, shape):
        if len(shape) not in self.ranks or shape[0] != self.num_features:
            dims = " or ".join(
                "(" + ", ".join([str(self.num_features), *["*"] * (r - 1)]) + ")"
                for r in self.ranks
            )
            raise ShapeError(f"samples of shape {dims} (num_features channels first)")
        return shape


@dataclass(frozen=True)
class BatchNorm1d(_BatchNorm):
    ranks = (1, 2)


@dataclass(frozen=True)
class BatchNorm2d(_BatchNorm):
    ranks = (3,)


@dataclass(frozen=True)
class LayerNorm(LayerBase):
    """Normalises the last len(normalized_shape) dimensions (biased variance), then
    weight and bias of that shape (elementwise_affine; bias=False drops the bias)."""

    normalized_shape: tuple[int, ...]
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        shape = self.normalized_shape
        shape = (shape,) if not isinstance(shape, (list, tuple)) else tuple(shape)
        if not shape:
            raise ConfigError("LayerNorm normalized_shape must hold at least one size, got ()")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ConfigError(f"LayerNorm eps must be a number > 0, got {eps!r}")
        settle(
            self,
            normalized_shape=tuple(check_int("LayerNorm", "normalized_shape", s) for s in shape),
            eps=float(eps),
            elementwise_affine=check_bool("LayerNorm", "elementwise_affine",
                                          self.elementwise_affine),
            bias=check_bool("LayerNorm", "bias", self.bias),
        )  # fmt: skip

    def shapes(self):
        if not self.elementwise_affine:
            return {}
        out = {"weight": self.normalized_shape}
        if self.bias:
            out["bias"] = self.normalized_shape
        return out

    def init(self, rng, dtype):
        return {
            name: (np.ones if name == "weight" else np.zeros)(shape, dtype)
            for name, shape in self.shapes().items()
        }

    def output_shape(self, shape):
        n = len(self.normalized_shape)
        if tuple(shape[len(shape) - n :]) != self.normalized_shape or len(shape) < n:
            raise ShapeError(f"samples ending in {self.normalized_shape} (normalized_shape)")
        return shape

    @property
    def size(self) -> int:
        return math.prod(self.normalized_shape)
