"""A layer from a config dict: `{"type": <torch class name>, **<its constructor args>}`.

The same function reads every `[[layer]]` table of a `--model` file and the
localiser's description of a torch module, so an argument is spelled as torch
spells it everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dualtrain.errors import ConfigError
from dualtrain.layers.base import LayerBase
from dualtrain.layers.conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from dualtrain.layers.dense import GELU, Activation, Dropout, Embedding, Flatten, Linear
from dualtrain.layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from dualtrain.layers.residual import Residual

CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Linear, BatchNorm1d, BatchNorm2d, LayerNorm, Conv2d, MaxPool2d, AvgPool2d,
        AdaptiveAvgPool2d, Flatten, Dropout, Embedding, GELU, Residual,
    )
}  # fmt: skip
#: Activations torch writes as classes without arguments (ReLU's `inplace` changes nothing here).
ACTIVATIONS = {"Tanh": ("tanh", ()), "ReLU": ("relu", ("inplace",)), "Sigmoid": ("sigmoid", ())}


def layer_types() -> list[str]:
    """Every `type` a config may name."""
    return sorted([*CLASSES, *ACTIVATIONS])


def layer_from_config(config: dict[str, Any], where: str = "layer") -> LayerBase:
    """The declarative layer for `config`; a one-line ConfigError naming `where` if wrong.

    Args:
        config: {"type": torch class name, **constructor arguments under torch's names};
            a Residual's "layers" is a list of such dicts.
        where: how errors name this layer ("layer 2").

    Example:
        >>> layer_from_config({"type": "Linear", "in_features": 3, "out_features": 4})
        Linear(in_features=3, out_features=4, bias=True)
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: a layer is a table of its type and arguments, got {config!r}")
    args = dict(config)
    kind = args.pop("type", None)
    if kind is None:
        raise ConfigError(f"{where}: no 'type' (one of {', '.join(layer_types())})")
    if kind in ACTIVATIONS:
        name, allowed = ACTIVATIONS[kind]
        _refuse_unknown(where, kind, args, allowed)
        if args.get("inplace", False) not in (True, False):
            raise ConfigError(f"{where} ({kind}): inplace must be true or false")
        return Activation(name)
    if kind not in CLASSES:
        raise ConfigError(
            f"{where}: unknown layer type {kind!r} (known: {', '.join(layer_types())})"
        )
    cls = CLASSES[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown(where, kind, args, fields)
    missing = [
        n for n, f in fields.items()
        if n not in args and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]  # fmt: skip
    if missing:
        raise ConfigError(f"{where} ({kind}): missing argument {missing[0]!r}")
    if cls is Residual:
        inner = args.get("layers")
        if not isinstance(inner, list) or not inner:
            raise ConfigError(f"{where} (Residual): layers must be a non-empty list of layers")
        args["layers"] = tuple(
            layer_from_config(sub, f"{where}, its layer {j}") for j, sub in enumerate(inner)
        )
    try:
        return cls(**args)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} ({kind}): {exc}") from None


def layer_to_config(layer: LayerBase) -> dict[str, Any]:
    """The config dict `layer_from_config` reads back into an equal layer."""
    if isinstance(layer, Activation):
        return {"type": layer.type_name}
    out: dict[str, Any] = {"type": layer.type_name}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if isinstance(layer, Residual) and f.name == "layers":
            value = [layer_to_config(sub) for sub in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _refuse_unknown(where: str, kind: str, args: dict, allowed) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(
            f"{where} ({kind}): unknown argument {unknown[0]!r} (its arguments: {known})"
        )
