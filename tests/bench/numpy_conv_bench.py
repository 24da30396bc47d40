"""Benchmark of the NumPy reference's convolutions: the digits CNN's training step
against torch eager on CPU, and the Conv2d layer against a plain hand-written
NumPy im2col.

    python tests/bench/numpy_conv_bench.py     (also run by tests/bench/run_all.py)

- cnn step: one SGD-momentum training step of the `digits` CNN preset (batch 32,
  float64, the reference's dtype) through each backend's eager step; the ratio
  NumPy / torch is the price of the referee (goal: within 3x).
- conv layer: forward + backward of Conv2d(8, 16, 3, padding=1) on (32, 8, 8, 8),
  dualtrain's strided-view layer against the textbook im2col (index arrays, a
  fancy-indexed gather and `np.add.at` scatter), written out here.

Medians over interleaved repeats; asserts nothing.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from figures import FIGURES, spread

from dualtrain.backend import get_backend
from dualtrain.loop import RunConfig
from dualtrain.model import Conv2d, init_weights
from dualtrain.problems import digits_cnn
from dualtrain_numpy.layers import build

BATCH, STEPS = 32, 60


def step_seconds(backend_name: str, x: np.ndarray, y: np.ndarray) -> float:
    """Median seconds of one eager training step after a warm-up."""
    spec = digits_cnn().for_run(0)
    backend = get_backend(backend_name)
    net = backend.build(spec, "float64", "cpu")
    backend.load_state(net, init_weights(spec, 0))
    optimizer = backend.make_optimizer(net, RunConfig(options={"momentum": 0.9}).optimizer_spec())
    step = backend.eager_step(net, optimizer)
    times = []
    with backend.running():
        for i in range(STEPS):
            start = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - start)
            if i == 0:
                backend.start_at(net, 1)
    return statistics.median(times[5:])


def im2col_indices(channels: int, height: int, width: int, k: int, pad: int):
    """The textbook index arrays: (channel, row, column) of every column entry."""
    out_h, out_w = height + 2 * pad - k + 1, width + 2 * pad - k + 1
    i0 = np.tile(np.repeat(np.arange(k), k), channels)
    i1 = np.repeat(np.arange(out_h), out_w)
    j0 = np.tile(np.arange(k), k * channels)
    j1 = np.tile(np.arange(out_w), out_h)
    rows = i0.reshape(-1, 1) + i1.reshape(1, -1)
    cols = j0.reshape(-1, 1) + j1.reshape(1, -1)
    chans = np.repeat(np.arange(channels), k * k).reshape(-1, 1)
    return chans, rows, cols, out_h, out_w


def hand_written_conv(x, weight, bias, dy, pad: int):
    """Forward and backward of a stride-1 convolution by gather/scatter im2col."""
    n, c, h, w = x.shape
    o, _, k, _ = weight.shape
    chans, rows, cols, out_h, out_w = im2col_indices(c, h, w, k, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    columns = xp[:, chans, rows, cols].transpose(1, 2, 0).reshape(c * k * k, -1)
    out = weight.reshape(o, -1) @ columns + bias.reshape(-1, 1)
    out = out.reshape(o, out_h, out_w, n).transpose(3, 0, 1, 2)
    dout = dy.transpose(1, 2, 3, 0).reshape(o, -1)
    dweight = (dout @ columns.T).reshape(weight.shape)
    dbias = dout.sum(axis=1)
    dcolumns = (weight.reshape(o, -1).T @ dout).reshape(c * k * k, -1, n).transpose(2, 0, 1)
    dxp = np.zeros_like(xp)
    np.add.at(dxp, (slice(None), chans, rows, cols), dcolumns)
    return out, dxp[:, :, pad:-pad, pad:-pad], dweight, dbias


def conv_seconds(repeats: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(0)
    layer = Conv2d(8, 16, 3, padding=1)
    params = layer.init(rng, np.float64)
    x = rng.normal(size=(BATCH, 8, 8, 8))
    dy = rng.normal(size=(BATCH, 16, 8, 8))
    ours_layer = build(layer, params)
    ours, theirs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            out = ours_layer.forward(x, True)
            dx = ours_layer.backward(dy)
        ours.append((time.perf_counter() - start) / 20)
        start = time.perf_counter()
        for _ in range(20):
            ref = hand_written_conv(x, params["weight"], params["bias"], dy, 1)
        theirs.append((time.perf_counter() - start) / 20)
    # The two compute the same numbers, or the comparison means nothing.
    np.testing.assert_allclose(out, ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, ref[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_layer.grads["weight"], ref[2], rtol=1e-12, atol=1e-12)
    return ours, theirs


def bench_numpy_cnn(repeats: int = 5) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(BATCH, 1, 8, 8))
    y = rng.integers(0, 10, size=BATCH).astype(np.int64)
    ours, torch_eager = [], []
    for _ in range(repeats):  # interleaved, so drift on the machine hits both alike
        ours.append(step_seconds("numpy", x, y))
        torch_eager.append(step_seconds("torch", x, y))
    figure = FIGURES.ratio("numpy_cnn_step_vs_torch_eager", ours, torch_eager, goal=3.0)
    print(
        f"numpy step, digits CNN, batch {BATCH}, float64: {statistics.median(ours) * 1e3:.2f} "
        f"ms, torch eager {statistics.median(torch_eager) * 1e3:.2f} ms, {spread(figure)} "
        "(goal <= 3)"
    )
    mine, plain = conv_seconds(repeats)
    figure = FIGURES.ratio("numpy_conv_layer_vs_hand_written_im2col", mine, plain)
    print(
        f"numpy Conv2d(8, 16, 3, padding=1) forward+backward on ({BATCH}, 8, 8, 8): "
        f"{statistics.median(mine) * 1e3:.2f} ms, hand-written im2col "
        f"{statistics.median(plain) * 1e3:.2f} ms, {spread(figure)}"
    )


if __name__ == "__main__":
    bench_numpy_cnn()
    FIGURES.save()
