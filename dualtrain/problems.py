"""Built-in problems: small named presets of data, model and defaults.

Each is deterministic from its seed, so every backend trains on the same rows.
`digits` (scikit-learn's 8x8 handwritten digits) comes with a small CNN and
`tokens` with a token-wise transformer-like model (no attention: see
docs/layers.md); `images` and `sequence` bring no model: they are data for a
user's own module (`dualtrain port`), and their `defaults` name the loss that
fits them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.model import (
    GELU,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    ModelSpec,
    ReLU,
    Residual,
    mlp,
)


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


def digits_cnn(dropout: float = 0.25, channels: int = 8, image: int = 8) -> ModelSpec:
    """The digits preset: two 3x3 convolutions (BatchNorm after the first, whose conv
    then has no bias), max and average pooling, dropout, a linear read-out of 10.

    `channels` (the first convolution's; the second has twice as many) and `image`
    (the side of the square input, a multiple of 4) scale it, for the benchmarks.
    """
    return ModelSpec(
        (
            Conv2d(1, channels, 3, padding=1, bias=False),
            BatchNorm2d(channels),
            ReLU(),
            MaxPool2d(2),
            Conv2d(channels, 2 * channels, 3, padding=1),
            ReLU(),
            AvgPool2d(2),
            Flatten(),
            Dropout(dropout),
            Linear(2 * channels * (image // 4) ** 2, 10),
        ),
        loss="cross_entropy",
        name="digits-cnn" if (channels, image) == (8, 8) else f"cnn-{channels}-{image}",
    )


def digits(seed: int = 0) -> Problem:
    """scikit-learn's 1797 handwritten digits, 8x8 pixels scaled to [0, 1], 10 classes.

    x is float64 (N, 1, 8, 8), y int64 (N,). The data ships inside scikit-learn's
    wheel (no download); it is the `digits` extra. The 1438 training rows leave
    a short last batch of 30 at batch size 32, so the default drops it
    (`drop_last`): a static graph then keeps one batch shape.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError(
            "problem 'digits' needs scikit-learn: pip install 'dualtrain[digits]'"
        ) from None
    bunch = load_digits()
    x = (bunch.images / 16.0)[:, None].astype(np.float64)
    data = Dataset(x, bunch.target.astype(np.int64))
    return Problem(
        "digits", data, digits_cnn(), batch_size=32, defaults={"drop_last": True, "lr": 0.1}
    )


#: The tokens problem's sizes, which its preset model is built for.
TOKEN_VOCAB, TOKEN_CLASSES = 16, 5


def token_transformer(dim: int = 16, hidden: int = 32, dropout: float = 0.1) -> ModelSpec:
    """The tokens preset: a pre-norm transformer block's shape without attention.

    Embedding (padding id 0), two residual blocks x + Dropout(W2 GELU(W1 LN(x))) (the
    first with exact GELU, the second with the tanh approximation), a final
    LayerNorm and a per-token linear read-out: every token is classified from
    itself alone (attention is not among dualtrain's layers).
    """

    def block(approximate: str) -> Residual:
        return Residual(
            (LayerNorm(dim), Linear(dim, hidden), GELU(approximate), Linear(hidden, dim),
             Dropout(dropout))
        )  # fmt: skip

    return ModelSpec(
        (
            Embedding(TOKEN_VOCAB, dim, padding_idx=0),
            block("none"),
            block("tanh"),
            LayerNorm(dim),
            Linear(dim, TOKEN_CLASSES),
        ),
        loss="cross_entropy",
        name="token-transformer",
    )


def tokens(seed: int = 0, n: int = 640, length: int = 12) -> Problem:
    """Token classification: sequences of ids 1-15 padded with 0, a tag per position.

    Each sequence has 6 to `length` tokens, then padding 0. The tag of a token is
    its word class (1 to 4, a seeded partition of the vocabulary); padding is
    tagged 0. x int64 (N, length), y int64 (N, length): per-token cross-entropy
    on outputs of shape (batch, length, 5).
    """
    rng = np.random.default_rng([seed, 11])
    word_class = 1 + rng.permutation(np.arange(TOKEN_VOCAB - 1) % (TOKEN_CLASSES - 1))
    tags = np.concatenate([[0], word_class]).astype(np.int64)
    x = rng.integers(1, TOKEN_VOCAB, size=(n, length)).astype(np.int64)
    lengths = rng.integers(length // 2, length + 1, size=n)
    x[np.arange(length) >= lengths[:, None]] = 0
    return Problem("tokens", Dataset(x, tags[x]), token_transformer(), batch_size=32,
                   defaults={"lr": 0.1})  # fmt: skip


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "regression": regression,
    "linear": linear,
    "classification": classification,
    "images": images,
    "sequence": sequence,
    "digits": digits,
    "tokens": tokens,
}


def get_problem(name: str, seed: int = 0) -> Problem:
    """The built-in problem `name`, generated from `seed`."""
    if name not in PROBLEMS:
        raise ConfigError(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})")
    return PROBLEMS[name](seed)
