"""The NumPy reference's forward and backward passes, proved from first principles.

Every hand-written backward pass is checked against central finite differences
in float64; BatchNorm1d's running statistics, the losses' values and the
float32 path are checked against hand computations. Everything else in the
project is compared to this backend, so nothing here compares to a framework.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dualtrain.model import BatchNorm1d, Linear, ModelSpec, ReLU, Sigmoid, Tanh, init_weights, mlp
from dualtrain.optim import OptimizerSpec
from dualtrain_numpy import NumpyBackend
from dualtrain_numpy.model import Network, loss_and_grad

EPS = 1e-6  # finite-difference step
RTOL = 1e-6  # bound on the relative error of an analytic gradient


def build(spec: ModelSpec, dtype=np.float64, seed: int = 0) -> Network:
    net = Network(spec, np.dtype(dtype))
    NumpyBackend().load_state(net, init_weights(spec, seed, dtype))
    return net


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


def one_layer(layer_spec, rng: np.random.Generator) -> Network:
    net = build(ModelSpec((layer_spec,)))
    for array in net.params.values():  # move BatchNorm off its trivial init (1, 0)
        array[...] = rng.uniform(0.5, 1.5, array.shape) * rng.choice([-1, 1], array.shape)
    return net


LAYERS = {  # name: (layer, its parameters)
    "linear": (Linear(4, 3), {"weight", "bias"}),
    "linear-no-bias": (Linear(4, 3, bias=False), {"weight"}),
    "tanh": (Tanh(), set()),
    "relu": (ReLU(), set()),
    "sigmoid": (Sigmoid(), set()),
    "batchnorm": (BatchNorm1d(4), {"weight", "bias"}),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradients_match_finite_differences(name):
    rng = np.random.default_rng(1)
    layer_spec, param_names = LAYERS[name]
    layer = one_layer(layer_spec, rng).layers[0]
    assert set(layer.params) == param_names
    # Inputs at least 0.1 from zero keep ReLU's kink out of reach of the perturbation.
    x = rng.uniform(0.1, 2.0, (6, 4)) * rng.choice([-1, 1], (6, 4))
    weights = rng.normal(size=layer.forward(x, True).shape)

    def loss() -> float:  # a scalar whose gradient with respect to the output is `weights`
        return float((layer.forward(x, True) * weights).sum())

    loss()
    dx = layer.backward(weights, layer.grads)
    assert_grad_close(dx, numeric_grad(loss, x))
    for pname, param in layer.params.items():
        assert_grad_close(layer.grads[pname], numeric_grad(loss, param))


def test_relu_passes_the_gradient_only_where_the_input_is_positive():
    layer = one_layer(ReLU(), np.random.default_rng(0)).layers[0]
    out = layer.forward(np.array([[-2.0, -0.5, 0.5, 3.0]]), True)
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.5, 3.0]])
    dx = layer.backward(np.array([[1.0, 2.0, 3.0, 4.0]]), {})
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 3.0, 4.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow_warnings(dtype):
    layer = one_layer(Sigmoid(), np.random.default_rng(0)).layers[0]
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer.forward(x, True)
        dx = layer.backward(np.ones_like(x), {})
    np.testing.assert_array_equal(out, [[0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(dx, [[0.0, 0.25, 0.0]])
    assert out.dtype == dtype


LOSS_TARGETS = {
    "mse": lambda rng: rng.normal(size=(5, 3)),
    "sse": lambda rng: rng.normal(size=(5, 3)),
    "cross_entropy": lambda rng: np.array([0, 2, 1, 2, 0]),
}


@pytest.mark.parametrize("kind", LOSS_TARGETS)
def test_loss_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(2)
    out = rng.normal(size=(5, 3))
    y = LOSS_TARGETS[kind](rng)
    _, grad = loss_and_grad(kind, out, y)
    assert_grad_close(grad, numeric_grad(lambda: loss_and_grad(kind, out, y)[0], out))


def test_mse_and_sse_values_by_hand():
    out = np.array([[1.0], [2.0], [4.0]])
    y = np.array([0.0, 2.0, 1.0])  # 1-D targets are matched to the output's shape
    assert loss_and_grad("sse", out, y)[0] == 1.0 + 0.0 + 9.0
    assert loss_and_grad("mse", out, y)[0] == pytest.approx(10.0 / 3, rel=1e-15)
    np.testing.assert_allclose(loss_and_grad("mse", out, y)[1], [[2 / 3], [0.0], [2.0]])


def test_cross_entropy_value_by_hand():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1000.0, 0.0, -1000.0]])
    labels = np.array([2.0, 0.0, 1.0])  # float labels, as a CSV gives them
    # -log softmax(z)[label] = log(sum(exp(z))) - z[label]; the third row only
    # stays finite if the log-sum-exp is shifted by the row's maximum.
    row0 = math.log(math.e + math.e**2 + math.e**3) - 3.0
    row1 = math.log(3.0)
    row2 = 1000.0 + math.log1p(math.exp(-1000.0) + math.exp(-2000.0)) - 0.0
    loss, grad = loss_and_grad("cross_entropy", logits, labels)
    assert loss == pytest.approx((row0 + row1 + row2) / 3, rel=1e-14)
    softmax0 = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(grad[0], (softmax0 - [0, 0, 1]) / 3, rtol=1e-14)
    np.testing.assert_allclose(grad[1], ([1 / 3, 1 / 3, 1 / 3] - np.array([1, 0, 0])) / 3)
    np.testing.assert_allclose(grad[2], [1 / 3, -1 / 3, 0.0], atol=1e-300)


NETWORKS = {
    "tanh-batchnorm-mse": mlp([3, 5, 4, 2], "tanh", batchnorm=True, loss="mse"),
    "sigmoid-batchnorm-ce": mlp([3, 5, 4, 3], "sigmoid", batchnorm=True, loss="cross_entropy"),
    "tanh-sse": mlp([3, 6, 1], "tanh", loss="sse"),
}


def batch(spec: ModelSpec, rng: np.random.Generator, n: int = 8):
    x = rng.normal(size=(n, 3))
    n_out = spec.layers[-1].out_features
    classes = spec.loss == "cross_entropy"
    y = rng.integers(0, n_out, n) if classes else rng.normal(size=(n, n_out))
    return x, y


@pytest.mark.parametrize("name", NETWORKS)
def test_network_gradients_match_finite_differences_for_every_parameter(name):
    spec = NETWORKS[name]
    rng = np.random.default_rng(3)
    net = build(spec)
    for pname, param in net.params.items():  # BatchNorm off its trivial init
        if ".weight" in pname and param.ndim == 1:
            param[...] = rng.uniform(0.5, 1.5, param.shape)
        elif ".bias" in pname:
            param[...] = rng.normal(scale=0.3, size=param.shape)
    x, y = batch(spec, rng)
    NumpyBackend().forward_backward(net, x, y)

    def loss() -> float:
        return loss_and_grad(spec.loss, net.forward(x), y)[0]

    assert set(net.grads) == set(spec.param_shapes())
    for pname, param in net.params.items():
        assert_grad_close(net.grads[pname], numeric_grad(loss, param))


def test_gradients_accumulate_until_zero_grad():
    spec = NETWORKS["tanh-batchnorm-mse"]
    backend, net = NumpyBackend(), build(spec)
    optimizer = backend.make_optimizer(net, OptimizerSpec("sgd", lr=0.1))
    x, y = batch(spec, np.random.default_rng(4))
    backend.forward_backward(net, x, y)
    once = {n: g.copy() for n, g in net.grads.items()}
    backend.forward_backward(net, x, y)
    for pname, grad in net.grads.items():
        np.testing.assert_allclose(grad, 2 * once[pname], rtol=1e-12)
    backend.zero_grad(optimizer)
    assert all(not g.any() for g in net.grads.values())


def test_batchnorm_normalises_with_the_biased_batch_variance():
    net = build(ModelSpec((BatchNorm1d(1),)))
    out = net.forward(np.array([[1.0], [3.0]]))  # mean 2, biased variance 1
    np.testing.assert_allclose(out, [[-1 / math.sqrt(1 + 1e-5)], [1 / math.sqrt(1 + 1e-5)]])


@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_running_statistics_follow_the_momentum_formula(momentum):
    net = build(ModelSpec((BatchNorm1d(1, momentum=momentum),)))
    batches = [np.array([[1.0], [3.0]]), np.array([[0.0], [4.0], [8.0]]), np.array([[5.0], [5.0]])]
    # Per batch: mean, and the unbiased variance sum((x - mean)^2) / (n - 1).
    stats = [(2.0, 2.0), (4.0, 16.0), (5.0, 0.0)]
    mean, var = 0.0, 1.0  # running_mean and running_var start at 0 and 1
    for count, (x, (batch_mean, batch_var)) in enumerate(zip(batches, stats, strict=True), 1):
        net.forward(x)
        mean = (1 - momentum) * mean + momentum * batch_mean
        var = (1 - momentum) * var + momentum * batch_var
        np.testing.assert_allclose(net.buffers["0.running_mean"], [mean], rtol=1e-15)
        np.testing.assert_allclose(net.buffers["0.running_var"], [var], rtol=1e-15)
        assert net.buffers["0.num_batches_tracked"] == count
    if momentum == 0.1:  # the same three batches, worked out on paper
        np.testing.assert_allclose(net.buffers["0.running_mean"], [1.022], rtol=1e-14)
        np.testing.assert_allclose(net.buffers["0.running_var"], [2.331], rtol=1e-14)


def test_batchnorm_in_eval_mode_uses_and_keeps_the_running_statistics():
    spec = ModelSpec((BatchNorm1d(2),))
    backend, net = NumpyBackend(), build(spec)
    net.params["0.weight"][...] = [2.0, 0.5]
    net.params["0.bias"][...] = [0.1, -0.2]
    net.buffers["0.running_mean"][...] = [1.0, -3.0]
    net.buffers["0.running_var"][...] = [4.0, 0.25]
    before = {n: b.copy() for n, b in net.buffers.items()}
    x = np.array([[3.0, -2.0], [1.0, -3.5], [0.0, 0.0]])
    y = np.zeros((3, 2))
    loss, accuracy = backend.evaluate(net, x, y)
    expected = (x - [1.0, -3.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5) * [2.0, 0.5] + [0.1, -0.2]
    assert loss == pytest.approx((expected**2).mean(), rel=1e-14)
    assert accuracy is None
    for bname, buffer in net.buffers.items():
        np.testing.assert_array_equal(buffer, before[bname])
    assert net.training, "evaluate must leave the model in training mode"
    net.training = False
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-14)


@pytest.mark.parametrize("name", NETWORKS)
def test_float32_agrees_with_float64(name):
    spec = NETWORKS[name]
    backend = NumpyBackend()
    nets = {dtype: build(spec, dtype, seed=5) for dtype in (np.float32, np.float64)}
    x, y = batch(spec, np.random.default_rng(6), n=16)
    losses = {dtype: backend.forward_backward(net, x, y) for dtype, net in nets.items()}
    assert losses[np.float32] == pytest.approx(losses[np.float64], rel=1e-5)
    single, double = nets[np.float32], nets[np.float64]
    for store in ("params", "grads", "buffers"):
        for aname, array in getattr(single, store).items():
            reference = getattr(double, store)[aname]
            assert array.dtype == (np.int64 if aname.endswith("tracked") else np.float32)
            scale = max(np.abs(reference).max(), 1.0)
            np.testing.assert_allclose(array, reference, rtol=1e-4, atol=1e-5 * scale)
    single.training = double.training = False
    out = single.forward(x.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, double.forward(x), rtol=1e-4, atol=1e-5)
