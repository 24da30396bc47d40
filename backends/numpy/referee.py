"""The float64 NumPy computation of one torch or OneFlow module: a referee between them.

A module is described by its type and its own attributes (as the probe recorded
them: `in_features`, `eps`, `normalized_shape`, ...), turned into the layer
config `dualtrain.model.layer_from_config` reads, and built as the NumPy layer
with the module's parameters and buffers (`dualtrain_numpy.layers.build`). A
type the NumPy backend does not implement is "not refereed", with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain.model import layer_from_config
from dualtrain_numpy.layers import build

_NORM = ("num_features", "eps", "momentum", "affine", "track_running_stats")
#: For each module type, the constructor arguments read from the module's attributes
#: (torch's names; OneFlow's are the same): a new NumPy layer needs one line here.
#: "bias" is whether the module has a bias parameter.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"),
    "BatchNorm1d": _NORM,
    "BatchNorm2d": _NORM,
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", "bias"),
    "Conv2d": (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
    ),  # fmt: skip
    "Embedding": ("num_embeddings", "embedding_dim", "padding_idx"),
    "GELU": ("approximate",),
    "MaxPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "AdaptiveAvgPool2d": ("output_size",),
    "Flatten": ("start_dim", "end_dim"),
    "Tanh": (),
    "ReLU": (),
    "Sigmoid": (),
}


def config_of(kind: str, attributes: dict[str, Any], params: dict[str, np.ndarray]) -> dict:
    """The layer config of a module of type `kind`; ConfigError for a type with no mapping."""
    if kind not in ATTRIBUTES:
        raise ConfigError(f"unknown layer type {kind!r} for the NumPy referee")
    config: dict[str, Any] = {"type": kind}
    for name in ATTRIBUTES[kind]:
        if name == "bias":
            config[name] = "bias" in params
        elif name in attributes:
            value = attributes[name]
            config[name] = list(value) if isinstance(value, tuple) else value
    return config


def referee(
    kind: str,
    attributes: dict[str, Any],
    state: dict[str, np.ndarray],
    inputs: list[np.ndarray | None],
    grad_outputs: list[np.ndarray | None],
    training: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """(outputs, input gradients) of the module in float64 NumPy, on its first input.

    `state` holds the module's own parameters and buffers under their names inside
    it ("weight", "running_mean"); buffers are copied, never changed.
    """
    params = {n: v for n, v in state.items() if not _is_buffer(n)}
    buffers = {n: np.array(v, copy=True) for n, v in state.items() if _is_buffer(n)}
    layer = layer_from_config(config_of(kind, attributes, params), where=f"module {kind}")
    numpy_layer = build(layer, params, buffers)
    x = inputs[0]
    y = numpy_layer.forward(x if x.dtype.kind in "iu" else np.asarray(x, np.float64), training)
    dx = None
    if grad_outputs and grad_outputs[0] is not None:
        dx = numpy_layer.backward(np.asarray(grad_outputs[0], np.float64))
    return [y], [dx]


def _is_buffer(name: str) -> bool:
    return name in ("running_mean", "running_var", "num_batches_tracked")
