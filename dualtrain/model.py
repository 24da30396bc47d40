"""The declarative model spec every backend builds, and its initial weights.

A model is a sequence of layers and a loss. Parameters and buffers have
stable names (`"0.weight"`, `"2.running_mean"`, `"3.1.weight"` inside a
residual block, as `torch.nn.Sequential` names them), so weights and
checkpoints move between backends by name. Initial weights come from the
core, from a seed, with PyTorch's default distributions, so every engine
starts from the same numbers.

The layers live in `dualtrain.layers` (one dataclass per torch module, named
and argued as torch's) and are re-exported here: `dualtrain.model.Conv2d(...)`.
Adding a layer: a dataclass there with its shapes, init and output shape, then
the layer in each backend's `model.py` (NumPy: `layers/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.layers import (
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
    LayerBase,
    LayerNorm,
    Linear,
    MaxPool2d,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
    chain_shapes,
    layer_from_config,
    layer_to_config,
    layer_types,
)
from dualtrain.usermodel import DropoutSite

__all__ = [
    "GELU", "LOSSES", "Activation", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d",
    "BatchNorm2d", "Conv2d", "Dropout", "Embedding", "Flatten", "Layer", "LayerNorm", "Linear",
    "MaxPool2d", "ModelSpec", "ReLU", "Residual", "Sigmoid", "Tanh", "init_weights",
    "layer_from_config", "layer_to_config", "layer_types", "mlp", "walk",
]  # fmt: skip

Layer = LayerBase
LOSSES = ("mse", "sse", "cross_entropy")


def walk(layers, prefix: str = ""):
    """(stable module name, layer) for every layer, nested ones after their block."""
    for index, layer in enumerate(layers):
        name = f"{prefix}{index}"
        yield name, layer
        yield from walk(layer.children(), f"{name}.")


@dataclass(frozen=True)
class ModelSpec:
    """Layers applied in order, then `loss` ("mse", "sse" = summed squares, "cross_entropy").

    `dropout_seed` is the run's seed, from which the core draws every dropout mask
    (the loop sets it, `for_run`).
    """

    layers: tuple[Layer, ...]
    loss: str = "mse"
    name: str = "model"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    dropout_seed: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"model loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.layers:
            raise ConfigError("a model needs at least one layer, got none")
        object.__setattr__(self, "layers", tuple(self.layers))
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LayerBase):
                raise ConfigError(f"layer {index} is not a dualtrain layer: {layer!r}")

    def for_run(self, seed: int) -> ModelSpec:
        """This spec with the run's seed for its dropout masks."""
        return self if seed == self.dropout_seed else replace(self, dropout_seed=seed)

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
            for name, shape in layer.buffer_shapes().items()
        }

    def dropout_sites(self) -> tuple[DropoutSite, ...]:
        """Every Dropout with p > 0 by its stable module name ("3", "2.1")."""
        return tuple(
            DropoutSite(name, layer.p)
            for name, layer in walk(self.layers)
            if isinstance(layer, Dropout) and layer.p > 0
        )

    def dropout_calls(self, batch_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
        """(module name, input shape) of every dropout call of one training forward on a
        batch of `batch_shape`, in call order (what a static graph takes masks for)."""
        calls: list[tuple[str, tuple[int, ...]]] = []
        _trace(self.layers, tuple(batch_shape[1:]), batch_shape[0], "", calls)
        return calls

    # What the loop asks any model description (a user's module answers too).
    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """PyTorch's default init from `seed` (see `init_weights`)."""
        return init_weights(self, seed)

    def refuses_batch_of_one(self) -> bool:
        """BatchNorm1d cannot train on a batch of one row (torch refuses it)."""
        return any(isinstance(layer, BatchNorm1d) for _, layer in walk(self.layers))

    def input_kind(self) -> str:
        """ "int" when the first layer takes token ids (Embedding), else "float"."""
        return self.layers[0].input_kind()

    def prepare(self, data: Dataset) -> Dataset:
        """`data` as the spec takes it: token ids as int64, other features as float64."""
        if self.input_kind() == "int":
            if data.x.dtype.kind in "iu" and data.x.dtype != np.int64:
                return Dataset(data.x.astype(np.int64), data.y)
            return data
        if data.x.dtype.kind == "f":
            return data
        return Dataset(data.x.astype(np.float64), data.y)

    def output_shape(self, sample_shape: tuple[int, ...], kind: str = "float") -> tuple:
        """One sample's output shape, or a one-line ConfigError at the first layer
        that cannot take its input (its index, what it expects, what it got)."""
        return chain_shapes(self.layers, tuple(sample_shape), kind)

    def check_data(self, data: Dataset) -> None:
        """Refuse data whose shape the model cannot take, in one line."""
        if data.x.ndim < 2:
            raise ConfigError(
                f"data x must have a sample axis and at least one more, got shape {data.x.shape}"
            )
        kind = "int" if data.x.dtype.kind in "iu" else "float"
        out = self.output_shape(data.x.shape[1:], kind)
        y = data.y
        if self.loss == "cross_entropy":
            if y.dtype.kind not in "iu" or len(out) not in (1, 2) or y.shape[1:] != out[:-1]:
                want = "(samples,)" if len(out) == 1 else f"(samples, {out[0]})"
                raise ConfigError(
                    f"cross-entropy on outputs of shape {_shape('batch', out)} needs integer "
                    f"class ids of shape {want}, got {y.dtype} {y.shape}"
                )
            if y.min() < 0 or y.max() >= out[-1]:
                raise ConfigError(
                    f"class ids must be in [0, {out[-1]}) for a model with {out[-1]} outputs, "
                    f"got {int(y.min())}..{int(y.max())}"
                )
        elif y.dtype.kind != "f" or tuple(y.shape[1:]) != tuple(out):
            raise ConfigError(
                f"{self.loss} needs float targets of shape {_shape('samples', out)}, got "
                f"{y.dtype} {y.shape}"
            )


def _shape(first: str, rest: tuple[int, ...]) -> str:
    """`(samples, 2)`: a batched shape as the messages write it."""
    return "(" + ", ".join([first, *map(str, rest)]) + ")"


def _trace(layers, shape, batch: int, prefix: str, calls: list) -> tuple:
    for index, layer in enumerate(layers):
        name = f"{prefix}{index}"
        if isinstance(layer, Dropout) and layer.p > 0:
            calls.append((name, (batch, *shape)))
        if layer.children():
            _trace(layer.children(), shape, batch, f"{name}.", calls)
        shape = tuple(layer.output_shape(shape))
    return shape


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

    Drawn layer by layer from one generator: Linear and Conv2d weight and bias
    uniform in +-1/sqrt(fan_in) (what kaiming_uniform_(a=sqrt(5)) works out to);
    Embedding N(0, 1) with its padding_idx row zero; the norms weight 1, bias 0,
    running_mean 0, running_var 1, num_batches_tracked 0.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(spec.layers):
        for name, value in layer.init(rng, dtype).items():
            out[f"{i}.{name}"] = value
    return out


def init_layer(layer: Layer, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
    """One layer's initial parameters and buffers by local name (see `init_weights`)."""
    return layer.init(rng, dtype)
