"""Linear, the element-wise activations, Embedding, Dropout and Flatten."""

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
    uniform,
)


@dataclass(frozen=True)
class Linear(LayerBase):
    """y = x W^T + b on the last dimension (any leading dimensions, as torch)."""

    in_features: int
    out_features: int
    bias: bool = True

    def __post_init__(self) -> None:
        settle(
            self,
            in_features=check_int("Linear", "in_features", self.in_features),
            out_features=check_int("Linear", "out_features", self.out_features),
            bias=check_bool("Linear", "bias", self.bias),
        )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            out["bias"] = (self.out_features,)
        return out

    def init(self, rng, dtype) -> dict[str, np.ndarray]:
        # kaiming_uniform_(a=sqrt(5)) is U(+-1/sqrt(fan_in)); the bias the same bound.
        bound = 1.0 / math.sqrt(self.in_features)
        return {k: uniform(rng, bound, s, dtype) for k, s in self.shapes().items()}

    def output_shape(self, shape):
        if not shape or shape[-1] != self.in_features:
            raise ShapeError(f"a last dimension of {self.in_features} (in_features)")
        return (*shape[:-1], self.out_features)


ACTIVATION_TYPES = {"tanh": "Tanh", "relu": "ReLU", "sigmoid": "Sigmoid"}


@dataclass(frozen=True)
class Activation(LayerBase):
    kind: str  # "tanh", "relu" or "sigmoid"

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATION_TYPES:
            raise ConfigError(
                f"activation must be one of {', '.join(ACTIVATION_TYPES)}, got {self.kind!r}"
            )

    @property
    def type_name(self) -> str:
        return ACTIVATION_TYPES[self.kind]


def Tanh() -> Activation:  # noqa: N802 - named as the torch module it mirrors
    return Activation("tanh")


def ReLU() -> Activation:  # noqa: N802
    return Activation("relu")


def Sigmoid() -> Activation:  # noqa: N802
    return Activation("sigmoid")


GELU_APPROXIMATIONS = ("none", "tanh")


@dataclass(frozen=True)
class GELU(LayerBase):
    """x * Phi(x) ("none"), or torch's tanh approximation ("tanh")."""

    approximate: str = "none"

    def __post_init__(self) -> None:
        if self.approximate not in GELU_APPROXIMATIONS:
            raise ConfigError(
                f"GELU approximate must be 'none' or 'tanh', got {self.approximate!r}"
            )


@dataclass(frozen=True)
class Embedding(LayerBase):
    """Rows of a table by token id; the padding_idx row starts at zero and gets no gradient."""

    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None = None
    max_norm: float | None = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    sparse: bool = False

    def __post_init__(self) -> None:
        n = check_int("Embedding", "num_embeddings", self.num_embeddings)
        check_int("Embedding", "embedding_dim", self.embedding_dim)
        padding = self.padding_idx
        if padding is not None:
            if (
                isinstance(padding, bool)
                or not isinstance(padding, (int, np.integer))
                or not (-n <= padding < n)
            ):
                raise ConfigError(
                    f"Embedding padding_idx must be an int in [-{n}, {n}), got {padding!r}"
                )
            padding = int(padding) % n  # torch stores a negative index counted from the end
        settle(self, num_embeddings=n, padding_idx=padding)
        refuse_unless("Embedding", "max_norm", self.max_norm, None)
        refuse_unless("Embedding", "scale_grad_by_freq", self.scale_grad_by_freq, False)
        refuse_unless("Embedding", "sparse", self.sparse, False)

    def shapes(self):
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def init(self, rng, dtype):
        weight = rng.normal(0.0, 1.0, size=self.shapes()["weight"]).astype(dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        return {"weight": weight}

    def input_kind(self) -> str:
        return "int"

    def output_shape(self, shape):
        return (*shape, self.embedding_dim)


@dataclass(frozen=True)
class Dropout(LayerBase):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p).

    The mask is the core's (`dualtrain.dropout`), the same on every engine.
    """

    p: float = 0.5
    inplace: bool = False

    def __post_init__(self) -> None:
        p = self.p
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p < 1:
            raise ConfigError(f"Dropout p must be a number in [0, 1), got {p!r}")
        settle(self, p=float(p), inplace=check_bool("Dropout", "inplace", self.inplace))


@dataclass(frozen=True)
class Flatten(LayerBase):
    """Dimensions start_dim..end_dim of the batched tensor as one (torch's defaults 1, -1)."""

    start_dim: int = 1
    end_dim: int = -1

    def __post_init__(self) -> None:
        for name in ("start_dim", "end_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"Flatten {name} must be an int, got {value!r}")
        if self.start_dim == 0:
            raise ConfigError("Flatten start_dim=0 would merge the batch: not implemented here")

    def dims(self, ndim: int) -> tuple[int, int]:
        """(start, end) as non-negative axes of a batched tensor of `ndim` dimensions."""
        start = self.start_dim % ndim if -ndim <= self.start_dim < ndim else None
        end = self.end_dim % ndim if -ndim <= self.end_dim < ndim else None
        if start is None or end is None or start == 0 or start > end:
            raise ShapeError(
                f"dimensions {self.start_dim}..{self.end_dim} of a {ndim}-D batch to flatten"
            )
        return start, end

    def output_shape(self, shape):
        start, end = self.dims(len(shape) + 1)
        batched = (0, *shape)
        merged = math.prod(batched[start : end + 1])
        return (*batched[1:start], merged, *batched[end + 1 :])
