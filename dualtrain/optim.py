"""The core's optimizer spec: which optimizer, its hyperparameters, its param groups.

Backends build their framework's own optimizer from it (torch.optim.SGD,
oneflow.optim.Adam, the NumPy reference), so hyperparameters mean the same
everywhere. Group 0 holds every parameter no other group claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dualtrain.errors import ConfigError

# Hyperparameters each optimizer accepts, with PyTorch's defaults.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
    "rmsprop": {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    },
}


@dataclass(frozen=True)
class GroupSpec:
    """Parameters whose stable name starts with one of `prefixes`, with their own lr."""

    prefixes: tuple[str, ...]
    lr: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    lr: float
    options: dict[str, Any] = field(default_factory=dict)
    groups: tuple[GroupSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            known = ", ".join(OPTIMIZERS)
            raise ConfigError(f"unknown optimizer {self.name!r} (known: {known})")
        _check_lr("lr", self.lr)
        _check_options(self.name, self.options)
        for group in self.groups:
            _check_lr("group lr", group.lr)
            _check_options(self.name, group.options)
        if self.options.get("nesterov") and (
            self.options.get("momentum", 0) <= 0 or self.options.get("dampening", 0) != 0
        ):
            raise ConfigError("sgd: nesterov needs momentum > 0 and dampening = 0")

    @property
    def hyperparams(self) -> dict[str, Any]:
        """Every hyperparameter, defaults filled in."""
        return {**OPTIMIZERS[self.name], **self.options, "lr": self.lr}

    def assign(self, names: list[str]) -> list[dict[str, Any]]:
        """Param groups as dicts: {"params": [names], "lr": ..., other hyperparameters}.

        The default group (every name no explicit group claims) comes first.
        """
        claimed: dict[str, int] = {}
        for index, group in enumerate(self.groups):
            for name in names:
                if name.startswith(group.prefixes) and name not in claimed:
                    claimed[name] = index
        for index, group in enumerate(self.groups):
            if index not in claimed.values():
                raise ConfigError(
                    f"param group {index + 1} with prefixes {list(group.prefixes)} matches "
                    f"no parameter (names: {', '.join(names)})"
                )
        base = self.hyperparams
        rest = [n for n in names if n not in claimed]
        out = [{**base, "params": rest}] if rest else []
        for index, group in enumerate(self.groups):
            params = [n for n in names if claimed.get(n) == index]
            out.append({**base, **group.options, "lr": group.lr, "params": params})
        return out


def _check_lr(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{what} must be a non-negative number, got {value!r}")


def _check_options(name: str, options: dict[str, Any]) -> None:
    allowed = OPTIMIZERS[name]
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(f"{name}: unknown option {key!r} (expected: {', '.join(allowed)})")
        default = allowed[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, tuple):
            ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise ConfigError(f"{name}: {key} must be like {default!r}, got {value!r}")
