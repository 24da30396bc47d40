"""Built-in problems: small named presets of data, model and defaults.

Each is deterministic from its seed, so every backend trains on the same rows.
`images` and `sequence` bring no model (the declarative spec has no
convolution or embedding): they are data for a user's own module
(`dualtrain port`), and their `defaults` name the loss that fits them.
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
    """Data, a model (None: bring your own module) and the training defaults that suit them."""

    name: str
    data: Dataset
    model: ModelSpec | None
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


def images(seed: int = 0, n: int = 1200, size: int = 12, noise: float = 0.3) -> Problem:
    """Generated 1 x size x size images of one stroke each, 4 classes by its direction.

    Class 0 horizontal, 1 vertical, 2 diagonal, 3 anti-diagonal: a stroke of 5 to 8
    pixels of brightness 0.8 to 1.2 at a random place, in Gaussian noise. A stroke
    can sit anywhere, so no linear model of the pixels separates the classes; a small
    CNN does. x is float64 (N, 1, size, size), y int64 (N,), classes balanced.
    """
    rng = np.random.default_rng([seed, 5])
    y = rng.permutation(np.arange(n) % 4).astype(np.int64)
    x = rng.normal(0.0, noise, size=(n, 1, size, size))
    steps = np.array([[0, 1], [1, 0], [1, 1], [1, -1]])  # (row, column) step per class
    for i, label in enumerate(y):
        length = int(rng.integers(5, 9))
        d_row, d_col = steps[label]
        rows = _start(rng, size, length, d_row) + d_row * np.arange(length)
        cols = _start(rng, size, length, d_col) + d_col * np.arange(length)
        x[i, 0, rows, cols] += rng.uniform(0.8, 1.2)
    return Problem("images", Dataset(x, y), None, batch_size=32, defaults={"loss": "cross_entropy"})


def _start(rng: np.random.Generator, size: int, length: int, step: int) -> int:
    """A first index from which `length` steps of `step` stay inside 0..size-1."""
    if step > 0:
        return int(rng.integers(0, size - length + 1))
    if step < 0:
        return int(rng.integers(length - 1, size))
    return int(rng.integers(0, size))


def sequence(seed: int = 0, n: int = 1200, length: int = 12, vocab: int = 16) -> Problem:
    """Token ids with one key token among noise; the class is which key it is.

    Each row has `length` tokens: one key (1 to 4) at a random position, the rest
    drawn from 5 to vocab-1 (0 is left free, as a padding id). Class = key - 1, so
    a model has to find the key wherever it sits. x is int64 (N, length), y int64
    (N,), classes balanced.
    """
    if vocab < 6:
        raise ConfigError(f"sequence needs a vocab of at least 6 (keys 1-4, noise), got {vocab}")
    rng = np.random.default_rng([seed, 7])
    y = rng.permutation(np.arange(n) % 4).astype(np.int64)
    x = rng.integers(5, vocab, size=(n, length)).astype(np.int64)
    x[np.arange(n), rng.integers(0, length, size=n)] = y + 1
    return Problem(
        "sequence", Dataset(x, y), None, batch_size=32, defaults={"loss": "cross_entropy"}
    )


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "regression": regression,
    "linear": linear,
    "classification": classification,
    "images": images,
    "sequence": sequence,
}


def get_problem(name: str, seed: int = 0) -> Problem:
    """The built-in problem `name`, generated from `seed`."""
    if name not in PROBLEMS:
        raise ConfigError(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})")
    return PROBLEMS[name](seed)
