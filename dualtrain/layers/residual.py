"""A residual block, x + f(x), its layers named "0", "1", ... under the block's index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain.layers.base import LayerBase, ShapeError


@dataclass(frozen=True)
class Residual(LayerBase):
    """x + layers(x): the layers must give back the shape they take.

    torch and OneFlow build it as an `nn.Sequential` whose forward adds its input,
    so its parameters are named "2.0.weight" (block 2, its layer 0) everywhere.
    """

    layers: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise ConfigError(f"Residual layers must be a non-empty list, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LayerBase):
                raise ConfigError(f"Residual layer {index} is not a layer: {layer!r}")

    def children(self) -> tuple:
        return self.layers

    def shapes(self):
        return _nested(self.layers, "shapes")

    def buffer_shapes(self):
        return _nested(self.layers, "buffer_shapes")

    def init(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        return {
            f"{i}.{name}": value
            for i, layer in enumerate(self.layers)
            for name, value in layer.init(rng, dtype).items()
        }

    def input_kind(self) -> str:
        return self.layers[0].input_kind()

    def output_shape(self, shape):
        from dualtrain.layers.chain import chain_shapes

        out = chain_shapes(self.layers, shape, inside="residual layer")
        if out != shape:
            raise ShapeError(
                f"its layers to give back their input's shape {shape} (x + f(x)), they give {out}"
            )
        return out


def _nested(layers, method: str) -> dict[str, tuple[int, ...]]:
    return {
        f"{i}.{name}": shape
        for i, layer in enumerate(layers)
        for name, shape in getattr(layer, method)().items()
    }
