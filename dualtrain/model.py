"""The declarative model spec every backend builds, and its initial weights.

A model is a sequence of layers and a loss. Parameters and buffers have
stable names (`"0.weight"`, `"2.running_mean"`, as `torch.nn.Sequential`
names them), so weights and checkpoints move between backends by name.
Initial weights come from the core, from a seed, with PyTorch's default
distributions, so every engine starts from the same numbers.

Adding a layer is one small step: a dataclass here with `params`/`buffers`
and its PyTorch init in `init_layer`, then the layer in each backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import ConfigError


@dataclass(frozen=True)
class Linear:
    in_features: int
    out_features: int
    bias: bool = True

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            out["bias"] = (self.out_features,)
        return out


@dataclass(frozen=True)
class BatchNorm1d:
    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.num_features,), "bias": (self.num_features,)}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        n = self.num_features
        return {"running_mean": (n,), "running_var": (n,), "num_batches_tracked": ()}


@dataclass(frozen=True)
class Activation:
    kind: str  # "tanh", "relu" or "sigmoid"

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {}


def Tanh() -> Activation:  # noqa: N802 - named as the torch module it mirrors
    return Activation("tanh")


def ReLU() -> Activation:  # noqa: N802
    return Activation("relu")


def Sigmoid() -> Activation:  # noqa: N802
    return Activation("sigmoid")


Layer = Linear | BatchNorm1d | Activation
LOSSES = ("mse", "sse", "cross_entropy")


@dataclass(frozen=True)
class ModelSpec:
    """Layers applied in order, then `loss` ("mse", "sse" = summed squares, "cross_entropy")."""

    layers: tuple[Layer, ...]
    loss: str = "mse"
    name: str = "model"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"model loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.layers:
            raise ConfigError("a model needs at least one layer, got none")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Stable name -> shape of every trainable parameter, in layer order."""
        return {
            f"{i}.{name}": shape
            for i, layer in enumerate(self.layers)
            for name, shape in layer.shapes().items()
        }

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Stable name -> shape of every buffer (BatchNorm's running statistics)."""
        return {
            f"{i}.{name}": shape
            for i, layer in enumerate(self.layers)
            if isinstance(layer, BatchNorm1d)
            for name, shape in layer.buffer_shapes().items()
        }

    # What the loop asks any model description (a user's module answers too).
    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """PyTorch's default init from `seed` (see `init_weights`)."""
        return init_weights(self, seed)

    def refuses_batch_of_one(self) -> bool:
        """BatchNorm1d cannot train on a batch of one row (torch refuses it)."""
        return any(isinstance(layer, BatchNorm1d) for layer in self.layers)

    def prepare(self, data: Dataset) -> Dataset:
        """`data` as the spec takes it: integer features become float64."""
        if data.x.dtype.kind == "f":
            return data
        return Dataset(data.x.astype(np.float64), data.y)

    def check_data(self, data: Dataset) -> None:
        """Refuse data whose shape the model cannot take, in one line."""
        if data.x.ndim != 2:
            raise ConfigError(
                f"data x must be 2-D (samples, features) for a declarative model, got shape "
                f"{data.x.shape}"
            )
        shapes = list(self.param_shapes().values())
        first = next((layer for layer in self.layers if hasattr(layer, "in_features")), None)
        if first is not None and data.x.shape[1] != first.in_features:
            raise ConfigError(
                f"data has {data.x.shape[1]} features, the model's first Linear expects "
                f"{first.in_features}"
            )
        outputs = next((s[0] for s in reversed(shapes) if len(s) == 2), None)
        if self.loss == "cross_entropy":
            if data.y.dtype.kind != "i" or data.y.ndim != 1:
                raise ConfigError(
                    f"cross-entropy needs integer class ids of shape (samples,), got "
                    f"{data.y.dtype} {data.y.shape}"
                )
            if outputs is not None and (data.y.min() < 0 or data.y.max() >= outputs):
                raise ConfigError(
                    f"class ids must be in [0, {outputs}) for a model with {outputs} outputs, "
                    f"got {int(data.y.min())}..{int(data.y.max())}"
                )
        elif data.y.dtype.kind != "f" or (outputs is not None and data.y.shape[1] != outputs):
            raise ConfigError(
                f"{self.loss} needs float targets of shape (samples, {outputs}), got "
                f"{data.y.dtype} {data.y.shape}"
            )


def mlp(sizes: list[int], activation: str = "tanh", batchnorm: bool = False, loss="mse"):
    """A multilayer perceptron spec: Linear (+ BatchNorm1d) + activation between sizes.

    A Linear followed by BatchNorm1d has no bias: BatchNorm subtracts the batch
    mean, so such a bias gets a zero gradient up to rounding, and an adaptive
    optimizer (Adam) would amplify that rounding noise into a random walk that
    differs between engines while changing nothing the model computes.
    """
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        hidden = i < len(sizes) - 2
        layers.append(Linear(n_in, n_out, bias=not (hidden and batchnorm)))
        if hidden:
            if batchnorm:
                layers.append(BatchNorm1d(n_out))
            layers.append(Activation(activation))
    return ModelSpec(tuple(layers), loss=loss)


def init_weights(spec: ModelSpec, seed: int, dtype=np.float64) -> dict[str, np.ndarray]:
    """PyTorch's default init for every parameter and buffer, from `seed`.

    Linear: weight and bias uniform in +-1/sqrt(in_features) (what
    kaiming_uniform_(a=sqrt(5)) works out to); BatchNorm1d: weight 1, bias 0,
    running_mean 0, running_var 1, num_batches_tracked 0.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(spec.layers):
        for name, value in init_layer(layer, rng, dtype).items():
            out[f"{i}.{name}"] = value
    return out


def init_layer(layer: Layer, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    if isinstance(layer, Linear):
        bound = 1.0 / math.sqrt(layer.in_features)
        shapes = layer.shapes()
        return {k: rng.uniform(-bound, bound, size=s).astype(dtype) for k, s in shapes.items()}
    if isinstance(layer, BatchNorm1d):
        n = layer.num_features
        return {
            "weight": np.ones(n, dtype),
            "bias": np.zeros(n, dtype),
            "running_mean": np.zeros(n, dtype),
            "running_var": np.ones(n, dtype),
            "num_batches_tracked": np.zeros((), np.int64),
        }
    return {}
