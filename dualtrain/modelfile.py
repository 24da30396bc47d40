"""A declarative model from a TOML or JSON file: `--model model.toml`.

    loss = "cross_entropy"          # mse, sse or cross_entropy

    [[layer]]                       # one table per layer, in order
    type = "Conv2d"                 # the torch class name
    in_channels = 1                 # its constructor arguments, torch's names
    out_channels = 8
    kernel_size = 3
    padding = 1

    [[layer]]
    type = "Residual"               # x + f(x), f its own [[layer.layers]]
    [[layer.layers]]
    type = "Conv2d"
    ...

JSON holds the same: {"loss": ..., "layer": [{"type": ...}, ...]}. Every
mistake is one line naming the file, the layer index and the argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualtrain.configfile import load_config
from dualtrain.errors import ConfigError
from dualtrain.layers import layer_from_config, layer_to_config
from dualtrain.model import LOSSES, ModelSpec

KEYS = ("loss", "layer", "name")


def load_model_file(path: str | Path) -> ModelSpec:
    """The `ModelSpec` written in `path` (.toml or .json).

    Example:
        >>> load_model_file("examples/models/mlp.toml").layers[0]
        Linear(in_features=5, out_features=32, bias=False)
    """
    label = f"model {str(path)!r}"
    data = load_config(path)
    return model_from_config(data, label, default_name=Path(path).stem)


def model_from_config(data: dict[str, Any], label: str = "model", default_name="model"):
    """A `ModelSpec` from a model file's top-level table (`label` names it in errors)."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"{label}: unknown key {unknown[0]!r} (a model file has {', '.join(KEYS)})"
        )
    if "loss" not in data:
        raise ConfigError(f"{label}: no loss (one of {', '.join(LOSSES)})")
    if data["loss"] not in LOSSES:
        raise ConfigError(f"{label}: loss must be one of {', '.join(LOSSES)}, got {data['loss']!r}")
    tables = data.get("layer")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{label}: no layers (write one [[layer]] table per layer)")
    layers = tuple(layer_from_config(t, f"{label}: layer {i}") for i, t in enumerate(tables))
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise ConfigError(f"{label}: name must be a string, got {name!r}")
    return ModelSpec(layers, loss=data["loss"], name=name)


def model_to_config(spec: ModelSpec) -> dict[str, Any]:
    """The table `model_from_config` reads back into an equal spec (for writing files)."""
    return {
        "name": spec.name,
        "loss": spec.loss,
        "layer": [layer_to_config(layer) for layer in spec.layers],
    }
