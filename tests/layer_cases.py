"""Layers with inputs, shared by the finite-difference and the framework tests.

Each case is a layer and the shape of one batch of its input; the edge cases
the reference issue lists are here by name (padding larger than half the
kernel, groups equal to the channels, a stride larger than the kernel, a
padding_idx row).
"""

from __future__ import annotations

import numpy as np

from dualtrain.dropout import mask
from dualtrain.model import (
    GELU,
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
    Residual,
    Tanh,
)
from dualtrain.usermodel import DropoutSite

CASES = {  # name: (layer, batch input shape)
    "conv": (Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)),
    "conv-stride2-nobias": (Conv2d(2, 3, 3, stride=2, bias=False), (2, 2, 7, 6)),
    "conv-dilation2": (Conv2d(2, 2, 3, dilation=2, padding=1), (2, 2, 7, 7)),
    "conv-groups-equal-channels": (Conv2d(4, 4, 3, padding=1, groups=4), (2, 4, 5, 5)),
    "conv-groups2": (Conv2d(4, 6, (2, 3), groups=2, padding=(1, 0)), (2, 4, 5, 6)),
    "conv-padding-over-half-kernel": (Conv2d(2, 3, 3, padding=2), (2, 2, 4, 4)),
    "conv-stride-over-kernel": (Conv2d(2, 3, 2, stride=3), (2, 2, 8, 7)),
    "maxpool": (MaxPool2d(2), (2, 3, 6, 6)),
    "maxpool-3-stride2-pad1": (MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 7)),
    "maxpool-stride-over-kernel": (MaxPool2d(2, stride=3), (2, 2, 8, 8)),
    "avgpool": (AvgPool2d(2), (2, 3, 6, 6)),
    "avgpool-pad-counted": (AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 7)),
    "avgpool-pad-not-counted": (AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                                (2, 2, 7, 7)),
    "adaptive-avgpool": (AdaptiveAvgPool2d(1), (2, 3, 4, 5)),
    "flatten": (Flatten(), (2, 3, 2, 2)),
    "flatten-2-3": (Flatten(2, 3), (2, 3, 2, 2)),
    "batchnorm2d": (BatchNorm2d(3, momentum=0.2), (4, 3, 3, 3)),
    "batchnorm1d-3d": (BatchNorm1d(3), (4, 3, 5)),
    "layernorm": (LayerNorm(6), (3, 4, 6)),
    "layernorm-2d-shape": (LayerNorm((4, 6), eps=1e-3), (3, 4, 6)),
    "layernorm-no-affine": (LayerNorm(5, elementwise_affine=False), (4, 5)),
    "embedding": (Embedding(7, 3), (4, 5)),
    "embedding-padding-idx": (Embedding(7, 3, padding_idx=2), (4, 5)),
    "gelu": (GELU(), (4, 6)),
    "gelu-tanh": (GELU("tanh"), (3, 4, 5)),
    "dropout": (Dropout(0.3), (4, 6)),
    "linear-3d": (Linear(5, 4), (3, 2, 5)),
    "residual": (Residual((LayerNorm(4), Linear(4, 4), GELU("tanh"), Linear(4, 4))), (3, 2, 4)),
    "residual-conv": (Residual((Conv2d(2, 2, 3, padding=1, bias=False), BatchNorm2d(2), Tanh())),
                      (3, 2, 4, 4)),
}  # fmt: skip


def inputs(name: str, rng: np.random.Generator) -> np.ndarray:
    """A batch for case `name`: token ids for an Embedding (the padding row among
    them), else distinct values (no max-pool ties), at least 0.05 apart."""
    layer, shape = CASES[name]
    if isinstance(layer, Embedding):
        ids = rng.integers(0, layer.num_embeddings, size=shape)
        ids.flat[::3] = layer.padding_idx if layer.padding_idx is not None else 0
        return ids.astype(np.int64)
    size = int(np.prod(shape))
    return (rng.permutation(size) - size / 2).reshape(shape) * (4.0 / size) + rng.uniform(
        -0.01, 0.01, shape
    )


def parameters(layer, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters and buffers: PyTorch's init, with the norms moved off (1, 0) and
    BatchNorm's running statistics off (0, 1), so eval mode proves something."""
    out = layer.init(rng, np.float64)
    for name, value in out.items():
        if value.dtype.kind != "f":
            continue
        if name.endswith(("running_var",)):
            out[name] = rng.uniform(0.5, 2.0, value.shape)
        elif name.endswith(("running_mean",)) or np.all(value == value.flat[0]):
            out[name] = value + rng.uniform(-0.5, 0.5, value.shape)
    return out


class FixedMasks:
    """The same core mask for every call (a finite difference calls forward many times)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def next(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        return mask(7, 0, DropoutSite(name, self.p), 0, shape)


def split(layer, arrays: dict[str, np.ndarray]):
    """(parameters, buffers) of `arrays` by the layer's own lists."""
    params = {n: a for n, a in arrays.items() if n in layer.shapes()}
    buffers = {n: a for n, a in arrays.items() if n in layer.buffer_shapes()}
    return params, buffers
