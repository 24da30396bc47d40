"""Built-in problems: small named presets of data, model and defaults.

Each is deterministic from its seed, so every backend trains on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.model import Linear, ModelSpec, mlp


@dataclass(frozen=True)
class Problem:
    """Data, a model and the training defaults that suit them."""

    name: str
    data: Dataset
    model: ModelSpec
    batch_size: int
    val_fraction: float = 0.2
    #: Initial weights that are part of the problem (the `linear` fit's w0).
    weights: dict[str, np.ndarray] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)


def regression(seed: int = 0, n: int = 1000) -> Problem:
    """Five features; targets from weights [2, -1, 3, 1, 2], degree-2 terms and noise."""
    rng = np.random.default_rng([seed, 1])
    x = rng.normal(size=(n, 5))
    linear = x @ np.array([2.0, -1.0, 3.0, 1.0, 2.0])
    quadratic = 0.5 * x[:, 0] * x[:, 1] - 0.3 * x[:, 2] ** 2 + 0.2 * x[:, 3] * x[:, 4]
    y = linear + quadratic + 0.1 * rng.normal(size=n)
    model = mlp([5, 32, 1], activation="tanh", batchnorm=True, loss="mse")
    return Problem("regression", Dataset(x, y.reshape(-1, 1)), model, batch_size=50)


def linear(seed: int = 0) -> Problem:
    """The four-sample least-squares fit from w0 = [2, 1], summed squared loss."""
    x = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 5.0]])
    y = np.array([[8.0], [13.0], [26.0], [9.0]])
    model = ModelSpec((Linear(2, 1, bias=False),), loss="sse", name="linear")
    weights = {"0.weight": np.array([[2.0, 1.0]])}
    return Problem(
        "linear",
        Dataset(x, y),
        model,
        batch_size=4,
        val_fraction=0.0,
        weights=weights,
        defaults={"lr": 0.001, "shuffle": False},
    )


def classification(seed: int = 0, n_per_class: int = 200) -> Problem:
    """Three interleaved 2-D spirals, a ReLU MLP and cross-entropy."""
    rng = np.random.default_rng([seed, 3])
    xs, ys = [], []
    for label in range(3):
        radius = np.linspace(0.05, 1.0, n_per_class)
        angle = label * 2 * np.pi / 3 + radius * 3.0 + rng.normal(0, 0.15, n_per_class)
        xs.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        ys.append(np.full(n_per_class, label))
    model = mlp([2, 32, 32, 3], activation="relu", loss="cross_entropy")
    data = Dataset(np.concatenate(xs), np.concatenate(ys).astype(np.int64))
    return Problem("classification", data, model, batch_size=60)


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "regression": regression,
    "linear": linear,
    "classification": classification,
}


def get_problem(name: str, seed: int = 0) -> Problem:
    """The built-in problem `name`, generated from `seed`."""
    if name not in PROBLEMS:
        raise ConfigError(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})")
    return PROBLEMS[name](seed)
