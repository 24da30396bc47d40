"""Conv2d (im2col over a strided view) and the 2-D poolings, with their backward.

No Python loop runs over pixels: the forward reads every window at once from
`sliding_window_view`; the backward adds each kernel position's share into the
padded input in one slice assignment (kh * kw of them).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dualtrain.model import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from dualtrain_numpy.layers.base import NumpyLayer, registers


def windows(xp: np.ndarray, kernel, stride, dilation) -> np.ndarray:
    """(N, C, Ho, Wo, kh, kw): every window of the padded `xp`, a view, no copy."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    view = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def pad(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if not (ph or pw):
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def scatter(shares, padded_shape, padding, out_hw, stride, dilation, dtype) -> np.ndarray:
    """The input gradient from each kernel position's share (..., kh, kw) of shape
    (N, C, Ho, Wo, kh, kw): summed into the padded input, then the padding cut off."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    dxp = np.zeros(padded_shape, dtype)
    for i in range(shares.shape[-2]):
        for j in range(shares.shape[-1]):
            rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
            dxp[:, :, rows, cols] += shares[..., i, j]
    ph, pw = padding
    return dxp[:, :, ph : dxp.shape[2] - ph, pw : dxp.shape[3] - pw]


@registers(Conv2d)
class Conv2dLayer(NumpyLayer):
    """out[n, o] = sum over its group's channels and the kernel of window * weight, + bias:
    one matrix product per group on the im2col columns."""

    def forward(self, x, training):
        s = self.spec
        xp = pad(x, s.padding)
        win = windows(xp, s.kernel_size, s.stride, s.dilation)
        n, c, ho, wo, kh, kw = win.shape
        g = s.groups
        cols = win.reshape(n, g, c // g, ho, wo, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
        self.cols = cols.reshape(g, n * ho * wo, -1)  # (G, N*Ho*Wo, Cg*kh*kw), a copy
        self.padded_shape, self.out_hw = xp.shape, (ho, wo)
        weight = self.params["weight"].reshape(g, s.out_channels // g, -1)
        out = self.cols @ weight.transpose(0, 2, 1)  # (G, N*Ho*Wo, Og)
        out = out.reshape(g, n, ho, wo, -1).transpose(1, 0, 4, 2, 3).reshape(n, -1, ho, wo)
        return out + self.params["bias"].reshape(1, -1, 1, 1) if s.bias else out

    def _backward(self, dy):
        s, g = self.spec, self.spec.groups
        n, o, ho, wo = dy.shape
        rows = dy.reshape(n, g, o // g, ho, wo).transpose(1, 0, 3, 4, 2).reshape(g, n * ho * wo, -1)
        weight = self.params["weight"]
        self.grads["weight"] += (rows.transpose(0, 2, 1) @ self.cols).reshape(weight.shape)
        if s.bias:
            self.grads["bias"] += dy.sum(axis=(0, 2, 3))
        dcols = rows @ weight.reshape(g, o // g, -1)  # (G, N*Ho*Wo, Cg*kh*kw)
        kh, kw = s.kernel_size
        dcols = dcols.reshape(g, n, ho, wo, -1, kh, kw).transpose(1, 0, 4, 2, 3, 5, 6)
        shares = dcols.reshape(n, -1, ho, wo, kh, kw)
        return scatter(shares, self.padded_shape, s.padding, self.out_hw, s.stride, s.dilation,
                       dy.dtype)  # fmt: skip


@registers(MaxPool2d)
class MaxPool2dLayer(NumpyLayer):
    """The largest value of each window (the first in row order on ties, as torch's CPU
    kernel picks it); its gradient goes to that one input."""

    def forward(self, x, training):
        s = self.spec
        xp = pad(x, s.padding, -np.inf)
        win = windows(xp, s.kernel_size, s.stride, s.dilation)
        flat = win.reshape(*win.shape[:4], -1)
        self.arg = flat.argmax(axis=-1)
        self.padded_shape, self.out_hw = xp.shape, win.shape[2:4]
        return np.take_along_axis(flat, self.arg[..., None], axis=-1)[..., 0]

    def _backward(self, dy):
        s = self.spec
        kh, kw = s.kernel_size
        hits = self.arg[..., None] == np.arange(kh * kw)
        shares = (dy[..., None] * hits).reshape(*dy.shape, kh, kw)
        return scatter(shares, self.padded_shape, s.padding, self.out_hw, s.stride, s.dilation,
                       dy.dtype)  # fmt: skip


@registers(AvgPool2d)
class AvgPool2dLayer(NumpyLayer):
    """Window sums over the divisor: kh * kw with count_include_pad (torch's default),
    else the window's pixels inside the image."""

    def forward(self, x, training):
        s = self.spec
        xp = pad(x, s.padding)
        win = windows(xp, s.kernel_size, s.stride, (1, 1))
        if s.count_include_pad:
            self.divisor = float(s.kernel_size[0] * s.kernel_size[1])
        else:
            ones = pad(np.ones((1, 1, *x.shape[2:]), x.dtype), s.padding)
            self.divisor = windows(ones, s.kernel_size, s.stride, (1, 1)).sum(axis=(-2, -1))
        self.padded_shape, self.out_hw = xp.shape, win.shape[2:4]
        return win.sum(axis=(-2, -1)) / self.divisor

    def _backward(self, dy):
        s = self.spec
        share = dy / self.divisor
        shares = np.broadcast_to(share[..., None, None], (*share.shape, *s.kernel_size))
        return scatter(shares, self.padded_shape, s.padding, self.out_hw, s.stride, (1, 1),
                       dy.dtype)  # fmt: skip


@registers(AdaptiveAvgPool2d)
class AdaptiveAvgPool2dLayer(NumpyLayer):
    def forward(self, x, training):
        self.shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def _backward(self, dy):
        h, w = self.shape[2:]
        return np.broadcast_to(dy / (h * w), self.shape).copy()
