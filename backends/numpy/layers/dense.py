"""Linear, the activations, GELU, Embedding, Dropout and Flatten, with their backward."""

from __future__ import annotations

import math

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain.model import GELU, Activation, Dropout, Embedding, Flatten, Linear
from dualtrain_numpy.layers.base import NumpyLayer, registers


@registers(Linear)
class LinearLayer(NumpyLayer):
    def forward(self, x, training):
        self.x = x
        out = x @ self.params["weight"].T
        return out + self.params["bias"] if self.spec.bias else out

    def _backward(self, dy):
        rows = dy.reshape(-1, dy.shape[-1])
        self.grads["weight"] += rows.T @ self.x.reshape(-1, self.x.shape[-1])
        if self.spec.bias:
            self.grads["bias"] += rows.sum(axis=0)
        return dy @ self.params["weight"]


@registers(Activation)
class ActivationLayer(NumpyLayer):
    def forward(self, x, training):
        kind = self.spec.kind
        if kind == "tanh":
            self.y = np.tanh(x)
        elif kind == "relu":
            self.y = np.maximum(x, 0)
        else:
            # exp(-x) overflows to inf for x below about -88 (float32) or -709
            # (float64); 1 / inf is the exact limit 0, as torch gives, so only the
            # RuntimeWarning (an error under pytest's filterwarnings) is silenced.
            with np.errstate(over="ignore"):
                self.y = 1 / (1 + np.exp(-x))
        return self.y

    def _backward(self, dy):
        kind = self.spec.kind
        if kind == "tanh":
            return dy * (1 - self.y * self.y)
        if kind == "relu":
            return dy * (self.y > 0)
        return dy * self.y * (1 - self.y)


# NumPy has no erf; math.erf is the C library's, correctly rounded to an ulp or so,
# element by element (about 0.1 us each: fine for the sizes a reference runs).
_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715  # torch's constant in the tanh approximation


@registers(GELU)
class GeluLayer(NumpyLayer):
    """x * Phi(x), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(self, x, training):
        self.x = x
        if self.spec.approximate == "tanh":
            self.t = np.tanh(_SQRT_2_OVER_PI * (x + _TANH_CUBIC * x**3))
            return 0.5 * x * (1 + self.t)
        self.cdf = 0.5 * (1 + _erf(x / math.sqrt(2.0)).astype(x.dtype))
        return x * self.cdf

    def _backward(self, dy):
        x = self.x
        if self.spec.approximate == "tanh":
            t = self.t
            inner = _SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * x * x)
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return dy * (self.cdf + x * pdf)


@registers(Embedding)
class EmbeddingLayer(NumpyLayer):
    """Rows of the table; token ids get no gradient (backward returns None)."""

    def forward(self, x, training):
        if x.dtype.kind not in "iu":
            raise ConfigError(f"Embedding takes integer token ids, got {x.dtype}")
        n = self.spec.num_embeddings
        if x.size and (x.min() < 0 or x.max() >= n):
            raise ConfigError(
                f"Embedding token ids must be in [0, {n}), got {int(x.min())}..{int(x.max())}"
            )
        self.ids = x
        return self.params["weight"][x]

    def _backward(self, dy):
        ids = self.ids.reshape(-1)
        rows = dy.reshape(len(ids), -1)
        if self.spec.padding_idx is not None:
            # torch leaves the padding row out of the gradient, wherever it occurs.
            keep = ids != self.spec.padding_idx
            ids, rows = ids[keep], rows[keep]
        np.add.at(self.grads["weight"], ids, rows)
        return None


@registers(Dropout)
class DropoutLayer(NumpyLayer):
    """`x * mask / (1 - p)` with the core's mask for this call (as every engine applies it)."""

    def forward(self, x, training):
        self.mask = None
        if not training or self.spec.p == 0:
            return x
        if self.masks is None:
            raise ConfigError(f"Dropout {self.name}: training needs the run's shared masks")
        self.mask = self.masks.next(self.name, tuple(x.shape)).astype(x.dtype, copy=False)
        return x * self.mask / (1.0 - self.spec.p)

    def _backward(self, dy):
        return dy if self.mask is None else dy * self.mask / (1.0 - self.spec.p)


@registers(Flatten)
class FlattenLayer(NumpyLayer):
    def forward(self, x, training):
        self.shape = x.shape
        start, end = self.spec.dims(x.ndim)
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])

    def _backward(self, dy):
        return dy.reshape(self.shape)
