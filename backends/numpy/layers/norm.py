"""BatchNorm1d/2d and LayerNorm with their backward passes."""

from __future__ import annotations

import numpy as np

from dualtrain.model import BatchNorm1d, BatchNorm2d, LayerNorm
from dualtrain_numpy.layers.base import NumpyLayer, registers


class BatchNormLayer(NumpyLayer):
    """Batch statistics over every axis but the channel's in training (biased variance
    to normalise, unbiased for the running estimate, as torch does); running
    statistics in eval."""

    def forward(self, x, training):
        eps, w, b = self.spec.eps, self.params["weight"], self.params["bias"]
        self.axes = (0, *range(2, x.ndim))
        along = (1, -1) + (1,) * (x.ndim - 2)  # broadcast a per-channel vector
        self.along = along
        self.training = training
        if not training:  # a fixed affine map of x: its backward is dy * weight * inv_std
            mean = self.buffers["running_mean"].reshape(along)
            self.inv_std = 1 / np.sqrt(self.buffers["running_var"].reshape(along) + eps)
            self.xhat = (x - mean) * self.inv_std
            return self.xhat * w.reshape(along) + b.reshape(along)
        n = x.size // x.shape[1]
        mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
        self.inv_std = (1 / np.sqrt(var + eps)).reshape(along)
        self.xhat = (x - mean.reshape(along)) * self.inv_std
        self._update_running(mean, var * n / max(n - 1, 1))
        return self.xhat * w.reshape(along) + b.reshape(along)

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        m, buf = self.spec.momentum, self.buffers
        buf["running_mean"][...] = (1 - m) * buf["running_mean"] + m * mean
        buf["running_var"][...] = (1 - m) * buf["running_var"] + m * unbiased_var
        buf["num_batches_tracked"][...] = buf["num_batches_tracked"] + 1

    def _backward(self, dy):
        axes, along = self.axes, self.along
        self.grads["weight"] += (dy * self.xhat).sum(axis=axes)
        self.grads["bias"] += dy.sum(axis=axes)
        dxhat = dy * self.params["weight"].reshape(along)
        if not self.training:
            return dxhat * self.inv_std
        n = dy.size // dy.shape[1]
        centred = (
            n * dxhat
            - dxhat.sum(axis=axes, keepdims=True)
            - self.xhat * (dxhat * self.xhat).sum(axis=axes, keepdims=True)
        )
        return centred * self.inv_std / n


registers(BatchNorm1d)(BatchNormLayer)
registers(BatchNorm2d)(BatchNormLayer)


@registers(LayerNorm)
class LayerNormLayer(NumpyLayer):
    """(x - mean) / sqrt(var + eps) over the last dimensions, then weight and bias."""

    def forward(self, x, training):
        k = len(self.spec.normalized_shape)
        self.axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=self.axes, keepdims=True)
        var = x.var(axis=self.axes, keepdims=True)
        self.inv_std = 1 / np.sqrt(var + self.spec.eps)
        self.xhat = (x - mean) * self.inv_std
        out = self.xhat
        if "weight" in self.params:
            out = out * self.params["weight"]
        if "bias" in self.params:
            out = out + self.params["bias"]
        return out

    def _backward(self, dy):
        lead = tuple(range(dy.ndim - len(self.axes)))
        if "bias" in self.params:
            self.grads["bias"] += dy.sum(axis=lead)
        if "weight" in self.params:
            self.grads["weight"] += (dy * self.xhat).sum(axis=lead)
            dy = dy * self.params["weight"]
        n = self.spec.size
        centred = (
            n * dy
            - dy.sum(axis=self.axes, keepdims=True)
            - self.xhat * (dy * self.xhat).sum(axis=self.axes, keepdims=True)
        )
        return centred * self.inv_std / n
