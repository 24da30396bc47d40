"""Shapes through a sequence of layers, refused at the first layer that cannot take them."""

from __future__ import annotations

from dualtrain.errors import ConfigError
from dualtrain.layers.base import ShapeError


def chain_shapes(layers, shape: tuple[int, ...], kind: str = "float", inside: str = "layer"):
    """One sample's shape after `layers`, starting from `shape` of `kind` ("float"/"int").

    Raises a one-line ConfigError naming the layer index, what it expects and the
    shape it got (and from where) at the first layer that cannot take its input.
    """
    shape = tuple(shape)
    for index, layer in enumerate(layers):
        name = f"{inside} {index} ({layer.type_name})"
        source = (
            "the data" if index == 0 else f"{inside} {index - 1} ({layers[index - 1].type_name})"
        )
        wanted = layer.input_kind()
        if wanted != kind:
            what = "integer token ids" if wanted == "int" else "float features"
            raise ConfigError(f"{name} expects {what}, but {source} gives {kind} values")
        try:
            shape = tuple(layer.output_shape(shape))
        except ShapeError as exc:
            got = f"shape {shape}"
            if index == 0 and len(shape) == 1:
                got += f" ({shape[0]} features)"
            raise ConfigError(f"{name} expects {exc}, but {source} gives {got}") from None
        except ConfigError as exc:  # from inside a nested block: already names its layer
            raise ConfigError(f"{name}: {exc}") from None
        kind = "float"
    return shape
