"""Conv2d and the 2-D poolings, with torch's arguments, defaults and output sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dualtrain.errors import ConfigError
from dualtrain.layers.base import (
    LayerBase,
    ShapeError,
    check_bool,
    check_int,
    check_pair,
    refuse_unless,
    settle,
    uniform,
)


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """torch's output length: floor((size + 2p - d(k-1) - 1) / s) + 1 (ceil_mode off)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _spatial(layer, shape, channels: int | None) -> tuple[int, int]:
    """(Ho, Wo) for a (C, H, W) sample, or a ShapeError saying what fits."""
    if len(shape) != 3 or (channels is not None and shape[0] != channels):
        what = f"({channels}, H, W)" if channels is not None else "(C, H, W)"
        raise ShapeError(f"samples of shape {what}")
    dilation = getattr(layer, "dilation", (1, 1))
    sizes = tuple(
        out_size(shape[1 + a], layer.kernel_size[a], layer.stride[a], layer.padding[a],
                 dilation[a])
        for a in range(2)
    )  # fmt: skip
    if min(sizes) < 1:
        raise ShapeError(
            f"an image of at least the kernel's extent {layer.kernel_size} (dilation "
            f"{tuple(dilation)}) after padding {layer.padding}"
        )
    return sizes


def _padding(owner: str, value) -> tuple[int, int]:
    if value == "valid":
        return (0, 0)
    if isinstance(value, str):
        raise ConfigError(f"{owner} padding={value!r} is not implemented here (ints or 'valid')")
    return check_pair(owner, "padding", value, minimum=0)


@dataclass(frozen=True)
class Conv2d(LayerBase):
    """Cross-correlation of (C, H, W) samples, zero padding, any stride/dilation/groups."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = 1
    padding: tuple[int, int] = 0
    dilation: tuple[int, int] = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"

    def __post_init__(self) -> None:
        settle(
            self,
            in_channels=check_int("Conv2d", "in_channels", self.in_channels),
            out_channels=check_int("Conv2d", "out_channels", self.out_channels),
            kernel_size=check_pair("Conv2d", "kernel_size", self.kernel_size),
            stride=check_pair("Conv2d", "stride", self.stride),
            padding=_padding("Conv2d", self.padding),
            dilation=check_pair("Conv2d", "dilation", self.dilation),
            groups=check_int("Conv2d", "groups", self.groups),
            bias=check_bool("Conv2d", "bias", self.bias),
        )
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) % self.groups:
                raise ConfigError(
                    f"Conv2d {name}={getattr(self, name)} must be divisible by groups={self.groups}"
                )
        refuse_unless("Conv2d", "padding_mode", self.padding_mode, "zeros")

    def shapes(self):
        kh, kw = self.kernel_size
        out = {"weight": (self.out_channels, self.in_channels // self.groups, kh, kw)}
        if self.bias:
            out["bias"] = (self.out_channels,)
        return out

    def init(self, rng, dtype):
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        return {k: uniform(rng, bound, s, dtype) for k, s in self.shapes().items()}

    def output_shape(self, shape):
        return (self.out_channels, *_spatial(self, shape, self.in_channels))


def _pool_args(layer, owner: str) -> None:
    kernel = check_pair(owner, "kernel_size", layer.kernel_size)
    stride = kernel if layer.stride is None else check_pair(owner, "stride", layer.stride)
    padding = check_pair(owner, "padding", layer.padding, minimum=0)
    for a in range(2):
        if padding[a] > kernel[a] // 2:
            raise ConfigError(
                f"{owner} padding {padding} must be at most half the kernel_size {kernel}"
            )
    settle(layer, kernel_size=kernel, stride=stride, padding=padding)
    refuse_unless(owner, "ceil_mode", check_bool(owner, "ceil_mode", layer.ceil_mode), False)


@dataclass(frozen=True)
class MaxPool2d(LayerBase):
    """The largest value of each window (padding counts as -inf); stride defaults to kernel."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = 0
    dilation: int = 1
    return_indices: bool = False
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        _pool_args(self, "MaxPool2d")
        refuse_unless("MaxPool2d", "dilation", check_pair("MaxPool2d", "dilation",
                                                          self.dilation), (1, 1))  # fmt: skip
        settle(self, dilation=(1, 1))
        refuse_unless("MaxPool2d", "return_indices", self.return_indices, False)

    def output_shape(self, shape):
        return (shape[0], *_spatial(self, shape, None))


@dataclass(frozen=True)
class AvgPool2d(LayerBase):
    """The mean of each window; with count_include_pad (torch's default) padding counts
    in the divisor, without it only the window's real pixels do."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def __post_init__(self) -> None:
        _pool_args(self, "AvgPool2d")
        settle(self, count_include_pad=check_bool("AvgPool2d", "count_include_pad",
                                                  self.count_include_pad))  # fmt: skip
        refuse_unless("AvgPool2d", "divisor_override", self.divisor_override, None)

    def output_shape(self, shape):
        return (shape[0], *_spatial(self, shape, None))


@dataclass(frozen=True)
class AdaptiveAvgPool2d(LayerBase):
    """The mean over each channel's whole image: output_size 1 only."""

    output_size: int | tuple[int, int] = 1

    def __post_init__(self) -> None:
        size = self.output_size
        size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        refuse_unless("AdaptiveAvgPool2d", "output_size", size, (1, 1))
        settle(self, output_size=(1, 1))

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ShapeError("samples of shape (C, H, W)")
        return (shape[0], 1, 1)
