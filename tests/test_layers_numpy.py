"""Every NumPy layer's hand-written backward against central finite differences (float64).

Inputs and parameters both, for every case of `layer_cases` (several shapes and
argument combinations, the edge cases included), in training mode and, for the
batch norms, in eval mode; plus the behaviours a gradient cannot show
(running statistics, the padding row, dropout's scaling).
"""

from __future__ import annotations

import numpy as np
import pytest
from layer_cases import CASES, FixedMasks, inputs, parameters, split

from dualtrain.model import BatchNorm2d, Dropout, Embedding
from dualtrain_numpy.layers import build

EPS = 1e-6  # the finite-difference step
# A central difference of a smooth function with step 1e-6 in float64 is off by
# about eps_machine * |f| / h ~ 1e-10 relative plus h^2 * f''' ~ 1e-12: 1e-6 is
# four orders above that and far below any real error (a wrong term is >= 1e-2).
RTOL = 1e-6


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar `f()` with respect to `x`, perturbed in place."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + EPS
        up = f()
        x[index] = saved - EPS
        down = f()
        x[index] = saved
        grad[index] = (up - down) / (2 * EPS)
    return grad


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray) -> None:
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    assert scale > 1e-3, "a vanishing gradient would prove nothing"
    error = np.abs(analytic - numeric).max() / scale
    assert error < RTOL, f"relative error {error:.2e}"


def built(name: str, rng: np.random.Generator):
    layer, _ = CASES[name]
    params, buffers = split(layer, parameters(layer, rng))
    masks = FixedMasks(layer.p) if isinstance(layer, Dropout) else None
    return layer, build(layer, params, buffers, masks=masks)


#: Eval mode computes something else only where there are running statistics.
EVAL_CASES = [n for n, (layer, _) in CASES.items() if layer.buffer_shapes()]
PARAMS = [(n, True) for n in CASES] + [(n, False) for n in EVAL_CASES]


@pytest.mark.parametrize(
    ("name", "training"), PARAMS, ids=[f"{n}-{'train' if t else 'eval'}" for n, t in PARAMS]
)
def test_gradients_match_finite_differences(name, training):
    rng = np.random.default_rng(3)
    layer, net = built(name, rng)
    x = inputs(name, rng)
    weights = rng.normal(size=net.forward(x, training).shape)

    def loss() -> float:  # a scalar whose gradient with respect to the output is `weights`
        return float((net.forward(x, training) * weights).sum())

    loss()
    dx = net.backward(weights)
    if isinstance(layer, Embedding):
        assert dx is None  # token ids have no gradient
    else:
        assert dx.shape == x.shape
        assert_grad_close(dx, numeric_grad(loss, x))
    for pname, param in net.params.items():
        numeric = numeric_grad(loss, param)
        if isinstance(layer, Embedding) and layer.padding_idx is not None:
            numeric[layer.padding_idx] = 0  # torch's rule, not calculus: checked below
        assert_grad_close(net.grads[pname], numeric)


def test_the_padding_row_gets_no_gradient_though_it_is_used():
    layer = Embedding(5, 2, padding_idx=1)
    weight = np.arange(10.0).reshape(5, 2)
    net = build(layer, {"weight": weight})
    ids = np.array([[1, 3, 1], [0, 1, 3]])
    np.testing.assert_array_equal(net.forward(ids, True)[0, 0], [2.0, 3.0])  # row 1 as it is
    net.backward(np.ones((2, 3, 2)))
    np.testing.assert_array_equal(net.grads["weight"][:, 0], [1.0, 0.0, 0.0, 2.0, 0.0])


def test_batchnorm2d_running_statistics_as_torch_updates_them_by_hand():
    x = np.arange(2 * 2 * 1 * 2, dtype=np.float64).reshape(2, 2, 1, 2) ** 2
    buffers = {"running_mean": np.zeros(2), "running_var": np.ones(2),
               "num_batches_tracked": np.zeros((), np.int64)}  # fmt: skip
    net = build(BatchNorm2d(2, momentum=0.25), {"weight": np.ones(2), "bias": np.zeros(2)}, buffers)
    net.forward(x, True)
    channel0 = np.array([0.0, 1.0, 16.0, 25.0])  # x[:, 0] over batch and pixels
    np.testing.assert_allclose(buffers["running_mean"][0], 0.25 * channel0.mean())
    # unbiased (n - 1) variance into the running estimate, as torch does
    np.testing.assert_allclose(buffers["running_var"][0], 0.75 + 0.25 * channel0.var(ddof=1))
    assert int(buffers["num_batches_tracked"]) == 1


def test_dropout_scales_the_kept_units_and_is_the_identity_in_eval():
    masks = FixedMasks(0.5)
    net = build(Dropout(0.5), {}, masks=masks)
    x = np.ones((3, 8))
    out = net.forward(x, True)
    keep = masks.next("0", (3, 8))
    assert 0 < keep.sum() < keep.size  # some units dropped, some kept
    np.testing.assert_array_equal(out, 2.0 * keep)
    np.testing.assert_array_equal(net.forward(x, False), x)
