"""The declarative layers, one dataclass per torch module they mirror.

`dualtrain.model` re-exports them with the model spec; see `docs/layers.md`.
"""

from dualtrain.layers.base import LayerBase, ShapeError
from dualtrain.layers.chain import chain_shapes
from dualtrain.layers.config import layer_from_config, layer_to_config, layer_types
from dualtrain.layers.conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from dualtrain.layers.dense import (
    GELU,
    Activation,
    Dropout,
    Embedding,
    Flatten,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
)
from dualtrain.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from dualtrain.layers.residual import Residual

__all__ = [
    "GELU", "Activation", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "Conv2d", "Dropout", "Embedding", "Flatten", "LayerBase", "LayerNorm", "Linear",
    "MaxPool2d", "ReLU", "Residual", "ShapeError", "Sigmoid", "Tanh", "chain_shapes",
    "layer_from_config", "layer_to_config", "layer_types",
]  # fmt: skip
