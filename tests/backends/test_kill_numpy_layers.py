"""Every NumPy layer's forward, input gradient, parameter gradients and running statistics
against torch's own module in float64, on shapes where nothing is square or a power of two
(batch 3, odd channels, H != W, kernel, stride, padding and dilation all differing per axis);
and `build`'s conversions and refusals, the registry and the layer base class.

The finite-difference tests (tests/test_layers_numpy.py) prove each backward consistent
with its forward; they cannot see a forward that is wrong by a constant or a scale both
passes share (a wrong padding value or pooling divisor): torch's values can.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dualtrain.errors import ConfigError
from dualtrain.model import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    MaxPool2d,
    ModelSpec,
    ReLU,
    Residual,
    Sigmoid,
    Tanh,
)
from dualtrain_numpy import NumpyBackend
from dualtrain_numpy.layers import LAYERS, NumpyLayer, build, make
from dualtrain_numpy.layers.base import registers
from dualtrain_numpy.layers.dense import DropoutLayer
from dualtrain_numpy.layers.residual import ResidualLayer
from dualtrain_numpy.model import Network

# float64 against float64: both sum at most ~60 products per value, in different
# orders (im2col matmul against torch's kernels), which moves a result by ~1e-14 of
# the largest term; 1e-10 is far above that and far below any wrong term (>= 1e-3).
RTOL, ATOL = 1e-10, 1e-12

T = torch.nn
CASES = {  # name: (our spec, torch's module, input shape)
    "conv-groups-stride-pad-dilation": (
        Conv2d(3, 6, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3),
        lambda: T.Conv2d(3, 6, (2, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3),
        (3, 3, 7, 6),
    ),
    "conv-nobias-stride-w": (
        Conv2d(2, 5, (3, 2), stride=(1, 2), padding=(0, 1), bias=False),
        lambda: T.Conv2d(2, 5, (3, 2), stride=(1, 2), padding=(0, 1), bias=False),
        (3, 2, 6, 7),
    ),
    "maxpool-rect": (
        MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1)),
        lambda: T.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1)),
        (3, 5, 7, 6),
    ),
    "maxpool-default-stride": (MaxPool2d((2, 3)), lambda: T.MaxPool2d((2, 3)), (3, 5, 6, 7)),
    "maxpool-negative": (  # every value below 0: a padding of 0 would be the maximum
        MaxPool2d(3, stride=2, padding=1), lambda: T.MaxPool2d(3, stride=2, padding=1),
        (3, 2, 5, 6),
    ),
    "avgpool-rect-counted": (
        AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1)),
        lambda: T.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1)),
        (3, 5, 7, 6),
    ),
    "avgpool-rect-not-counted": (
        AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1), count_include_pad=False),
        lambda: T.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1), count_include_pad=False),
        (3, 5, 7, 6),
    ),
    "avgpool-default-stride": (AvgPool2d((3, 2)), lambda: T.AvgPool2d((3, 2)), (3, 5, 7, 6)),
    "adaptive-avgpool": (AdaptiveAvgPool2d(1), lambda: T.AdaptiveAvgPool2d(1), (3, 5, 4, 7)),
    "batchnorm2d": (BatchNorm2d(5, eps=0.1, momentum=0.3),
                    lambda: T.BatchNorm2d(5, eps=0.1, momentum=0.3), (3, 5, 2, 3)),
    "batchnorm1d-batch-of-two": (BatchNorm1d(5, eps=1e-3, momentum=0.2),
                                 lambda: T.BatchNorm1d(5, eps=1e-3, momentum=0.2), (2, 5)),
    "batchnorm1d-3d": (BatchNorm1d(5), lambda: T.BatchNorm1d(5), (3, 5, 4)),
    "layernorm-2d": (LayerNorm((4, 6), eps=0.1), lambda: T.LayerNorm((4, 6), eps=0.1), (3, 4, 6)),
    "layernorm-no-bias": (LayerNorm(6, bias=False), lambda: T.LayerNorm(6, bias=False),
                          (2, 3, 6)),
    "layernorm-no-affine": (LayerNorm(5, elementwise_affine=False),
                            lambda: T.LayerNorm(5, elementwise_affine=False), (3, 5)),
    "linear-nobias-3d": (Linear(5, 3, bias=False), lambda: T.Linear(5, 3, bias=False), (2, 3, 5)),
    "linear": (Linear(5, 3), lambda: T.Linear(5, 3), (3, 5)),
    "tanh": (Tanh(), lambda: T.Tanh(), (3, 5)),
    "relu": (ReLU(), lambda: T.ReLU(), (3, 5)),
    "sigmoid": (Sigmoid(), lambda: T.Sigmoid(), (3, 5)),
    "gelu": (GELU(), lambda: T.GELU(), (3, 5)),
    "gelu-tanh": (GELU("tanh"), lambda: T.GELU("tanh"), (3, 5)),
    "residual": (Residual((Linear(4, 4), Tanh(), Linear(4, 4))),
                 lambda: _TorchResidual(T.Linear(4, 4), T.Tanh(), T.Linear(4, 4)), (3, 2, 4)),
}  # fmt: skip


class _TorchResidual(torch.nn.Sequential):
    def forward(self, x):
        return x + super().forward(x)


def torch_module(name: str, rng: np.random.Generator):
    """torch's module in float64 with parameters and buffers off their trivial init."""
    module = CASES[name][1]().double()
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.from_numpy(rng.normal(size=tuple(param.shape))))
        for bname, buf in module.named_buffers():
            if bname.endswith("running_mean"):
                buf.copy_(torch.from_numpy(rng.normal(size=tuple(buf.shape))))
            elif bname.endswith("running_var"):
                buf.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, tuple(buf.shape))))
            elif bname.endswith("num_batches_tracked"):
                buf.fill_(4)
    return module


def batch(name: str, rng: np.random.Generator) -> np.ndarray:
    """Distinct values (no max-pool ties) around zero, zero itself among them for the
    activations (torch's ReLU gradient at 0 is 0), one far below for the sigmoid."""
    shape = CASES[name][2]
    size = int(np.prod(shape))
    x = (rng.permutation(size) - size // 2).reshape(shape) * 0.37 + rng.uniform(-0.01, 0.01, shape)
    x.flat[0], x.flat[-1] = 0.0, -800.0  # exp(800) overflows float64: sigmoid is 0 there
    return x - x.max() - 0.5 if name.endswith("negative") else x


def compare(name: str, training: bool) -> None:
    rng = np.random.default_rng(list(CASES).index(name))
    theirs = torch_module(name, rng).train(training)
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    buffer_names = set(dict(theirs.named_buffers()))
    params = {k: v for k, v in state.items() if k not in buffer_names}
    buffers = {k: v for k, v in state.items() if k in buffer_names}
    ours = build(CASES[name][0], params, buffers)
    x = batch(name, rng)
    xt = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning leaks from the sigmoid
        out = ours.forward(x, training)
    out_t = theirs(xt)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    dy = rng.normal(size=out.shape)
    (out_t * torch.from_numpy(dy)).sum().backward()  # a scalar's: out.backward(dy) imports
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    assert set(ours.grads) == set(params)
    for pname, param in theirs.named_parameters():
        np.testing.assert_allclose(ours.grads[pname], param.grad.numpy(), rtol=RTOL, atol=ATOL)
    for bname, buf in theirs.named_buffers():  # moved in training, left alone in eval
        np.testing.assert_allclose(ours.buffers[bname], buf.numpy(), rtol=RTOL, atol=ATOL)
        assert ours.buffers[bname].dtype == buf.numpy().dtype


@pytest.mark.parametrize("name", list(CASES))
def test_layer_in_training_is_torchs(name):
    compare(name, training=True)


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("batchnorm")])
def test_batchnorm_in_eval_is_torchs_and_keeps_its_statistics(name):
    compare(name, training=False)


def test_embedding_with_a_padding_row_is_torchs():
    rng = np.random.default_rng(2)
    theirs = torch.nn.Embedding(6, 3, padding_idx=4).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(rng.normal(size=(6, 3))))
    ours = build(Embedding(6, 3, padding_idx=4), {"weight": theirs.weight.detach().numpy().copy()})
    ids = np.array([[4, 1, 5], [1, 4, 0]])
    out = theirs(torch.from_numpy(ids))
    np.testing.assert_array_equal(ours.forward(ids, True), out.detach().numpy())
    dy = rng.normal(size=(2, 3, 3))
    (out * torch.from_numpy(dy)).sum().backward()
    assert ours.backward(dy) is None
    np.testing.assert_allclose(ours.grads["weight"], theirs.weight.grad.numpy(), rtol=RTOL)


def test_batchnorm_of_one_value_per_channel_takes_zero_variance_not_a_division_by_zero():
    """torch refuses training on one value per channel; the reference normalises it to
    the bias and moves running_var towards an unbiased variance of 0 (not 0/0):
    (1 - 0.5) * 2.0 + 0.5 * 0 = 1.0."""
    buffers = {"running_mean": np.zeros(2), "running_var": np.full(2, 2.0),
               "num_batches_tracked": np.zeros((), np.int64)}  # fmt: skip
    params = {"weight": np.ones(2), "bias": np.array([0.5, -1.0])}
    ours = build(BatchNorm1d(2, momentum=0.5), params, buffers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ours.forward(np.array([[3.0, -4.0]]), training=True)
    np.testing.assert_array_equal(out, [[0.5, -1.0]])
    np.testing.assert_array_equal(buffers["running_mean"], [1.5, -2.0])
    np.testing.assert_array_equal(buffers["running_var"], [1.0, 1.0])


# --- build: conversions and refusals ----------------------------------------------------


def test_build_computes_in_float64_from_float32_parameters():
    """The weight gradient of x = 0.1 under dy = 1 is 0.1 itself: float64's 0.1, which
    float32 cannot hold (it would be 0.10000000149...)."""
    weight = np.array([[1.0]], np.float32)
    lin = build(Linear(1, 1, bias=False), {"weight": weight})
    lin.forward(np.array([[0.1]]), training=True)
    lin.backward(np.array([[1.0]]))
    assert lin.grads["weight"].dtype == np.float64 and lin.grads["weight"][0, 0] == 0.1


def test_build_keeps_running_statistics_given_in_other_dtypes_in_float64_copies():
    """Given float32 statistics and an int32 counter, the layer updates float64 and
    int64 copies (its `buffers`) and leaves the arrays given as they were: mean 2 and
    unbiased variance 2 of [1, 3], halfway from (0.5, 1.5) with momentum 0.5."""
    given = {"running_mean": np.full(1, 0.5, np.float32),
             "running_var": np.full(1, 1.5, np.float32),
             "num_batches_tracked": np.array(2, np.int32)}  # fmt: skip
    bn = build(BatchNorm1d(1, momentum=0.5), {"weight": np.ones(1), "bias": np.zeros(1)}, given)
    bn.forward(np.array([[1.0], [3.0]]), training=True)
    assert {n: a.dtype for n, a in bn.buffers.items()} == {
        "running_mean": np.float64,
        "running_var": np.float64,
        "num_batches_tracked": np.int64,
    }
    np.testing.assert_array_equal(bn.buffers["running_mean"], [1.25])
    np.testing.assert_array_equal(bn.buffers["running_var"], [1.75])
    assert int(bn.buffers["num_batches_tracked"]) == 3
    assert given["running_mean"][0] == 0.5 and given["running_var"][0] == 1.5
    assert int(given["num_batches_tracked"]) == 2


@pytest.mark.parametrize(
    ("layer", "params", "buffers", "message"),
    [
        (Linear(2, 1), {"weight": np.zeros((1, 2))}, None, "Linear: no parameter 'bias' given"),
        (Linear(2, 1), {"weight": np.zeros((2, 1)), "bias": np.zeros(1)}, None,
         "Linear: parameter weight has shape (2, 1), expected (1, 2)"),
        (Linear(2, 1), {"weight": np.zeros((1, 2)), "bias": np.zeros(1), "scale": np.ones(1)},
         None, "Linear has no parameter 'scale'"),
        (Linear(2, 1), {"weight": np.zeros((1, 2)), "bias": np.zeros(1), "shift": np.ones(1),
                        "alpha": np.ones(1)}, None, "Linear has no parameter 'alpha'"),
        (BatchNorm1d(2), {"weight": np.ones(2), "bias": np.zeros(2)},
         {"running_mean": np.zeros(2), "num_batches_tracked": np.zeros((), np.int64)},
         "BatchNorm1d: no buffer 'running_var' given"),
        (BatchNorm1d(2), {"weight": np.ones(2), "bias": np.zeros(2)},
         {"running_mean": np.zeros(3), "running_var": np.ones(2),
          "num_batches_tracked": np.zeros((), np.int64)},
         "BatchNorm1d: buffer running_mean has shape (3,), expected (2,)"),
        (BatchNorm1d(2), {"weight": np.ones(2), "bias": np.zeros(2)},
         {"running_mean": np.zeros(2), "running_var": np.ones(2), "running_std": np.ones(2),
          "num_batches_tracked": np.zeros((), np.int64)},
         "BatchNorm1d has no buffer 'running_std'"),
        (Tanh(), {}, {"running_mean": np.zeros(2)}, "Tanh has no buffer 'running_mean'"),
    ],
)  # fmt: skip
def test_build_names_the_array_missing_misshapen_or_unknown(layer, params, buffers, message):
    with pytest.raises(ConfigError) as error:
        build(layer, params, buffers)
    assert str(error.value) == message


# --- the registry, the base class and the module names masks are asked by -------------


class Recording:
    """Masks that keep every name asked for (all ones: nothing dropped)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def next(self, name, shape):
        self.names.append(name)
        return np.ones(shape)


def test_a_layer_asks_its_masks_by_the_name_it_was_given_or_by_zero():
    x = np.ones((2, 3))
    masks = Recording()
    build(Dropout(0.5), {}, masks=masks).forward(x, True)  # build's default
    make(Dropout(0.5), {}, {}, {}, masks=masks).forward(x, True)  # make's default
    DropoutLayer(Dropout(0.5), {}, {}, {}, masks=masks).forward(x, True)  # the class's
    build(Dropout(0.5), {}, masks=masks, name="4").forward(x, True)
    inner = Residual((Linear(3, 3), Dropout(0.5)))
    params = {"0.weight": np.eye(3), "0.bias": np.zeros(3)}
    grads = {n: np.zeros_like(a) for n, a in params.items()}
    ResidualLayer(inner, params, grads, {}, masks=masks).forward(x, True)
    build(inner, params, masks=masks, name="2").forward(x, True)
    assert masks.names == ["0", "0", "0", "4", "0.1", "2.1"]


def test_a_dropout_mask_takes_the_dtype_of_what_it_drops():
    """The core's masks are float64; a float32 activation stays float32 (as torch's)."""
    masks = Recording()
    layer = make(Dropout(0.5), {}, {}, {}, masks=masks)
    out = layer.forward(np.ones((2, 3), np.float32), True)
    assert out.dtype == np.float32 and np.array_equal(out, np.full((2, 3), 2.0, np.float32))


class Doubled:
    """A spec class no NumPy layer computes until a test registers one."""


class DoubledLayer(NumpyLayer):
    def forward(self, x, training):
        return 2 * x

    def _backward(self, dy):
        return 2 * dy


def test_make_builds_the_class_registered_for_a_spec_and_names_an_unknown_one():
    with pytest.raises(ConfigError) as error:
        make(Doubled(), {}, {}, {})
    assert str(error.value) == "the numpy backend has no layer Doubled"
    try:
        assert registers(Doubled)(DoubledLayer) is DoubledLayer
        layer = make(Doubled(), {}, {}, {})
        assert type(layer) is DoubledLayer
        assert np.array_equal(layer.forward(np.array([1.5]), True), [3.0])
    finally:
        LAYERS.pop(Doubled, None)


def test_backward_into_other_gradients_leaves_the_layers_own_alone():
    """dy = [[1], [2]] through weight [[1, 2]] on x = [[3, 4], [1, 0]]: dW = 1*[3, 4] + 2*[1, 0]."""
    params = {"weight": np.array([[1.0, 2.0]]), "bias": np.array([0.5])}
    own = {n: np.zeros_like(a) for n, a in params.items()}
    layer = make(Linear(2, 1), params, own, {})
    layer.forward(np.array([[3.0, 4.0], [1.0, 0.0]]), True)
    other = {n: np.zeros_like(a) for n, a in params.items()}
    dx = layer.backward(np.array([[1.0], [2.0]]), other)
    np.testing.assert_array_equal(dx, [[1.0, 2.0], [2.0, 4.0]])
    np.testing.assert_array_equal(other["weight"], [[5.0, 4.0]])
    np.testing.assert_array_equal(other["bias"], [3.0])
    assert layer.grads is own and not own["weight"].any() and not own["bias"].any()
    layer.backward(np.array([[1.0], [2.0]]), own)  # its own, passed explicitly
    np.testing.assert_array_equal(own["weight"], [[5.0, 4.0]])
    layer.backward(np.array([[1.0], [2.0]]))  # and by default: they add up
    np.testing.assert_array_equal(own["weight"], [[10.0, 8.0]])
    assert not np.array_equal(other["weight"], own["weight"])


@pytest.mark.parametrize("name", list(CASES))
def test_a_float32_network_computes_each_layer_in_float32_as_torch(name):
    """Output and input gradient stay float32 (a float64 temporary would promote them),
    and match torch's float32 module: float32 keeps 24 bits, and these sums of at most
    ~60 terms lose a few of them, so 1e-5 of the output's scale is honest and still
    ~1000 times below any wrong term."""
    rng = np.random.default_rng(list(CASES).index(name))
    theirs = torch_module(name, rng).float().train()
    net = Network(ModelSpec((CASES[name][0],)), np.dtype(np.float32))
    NumpyBackend().load_state(
        net, {f"0.{k}": v.detach().numpy() for k, v in theirs.state_dict().items()}
    )
    x = batch(name, rng).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = net.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    scale = float(np.abs(out).max())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-5, atol=1e-5 * scale)
    dy = rng.normal(size=out.shape).astype(np.float32)
    (out_t * torch.from_numpy(dy)).sum().backward()
    dx = net.layers[0].backward(dy)
    assert dx.dtype == np.float32
    scale = float(np.abs(dx).max())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5 * scale)


def test_a_standalone_residual_block_keeps_its_layers_statistics_under_their_names():
    """A block's BatchNorm updates float64 copies of the float32 statistics given, kept
    under the block's local names ("1.running_mean"): mean 2, unbiased variance 2 of
    x [1, 3] (the Linear is the identity), halfway from (0, 1) with momentum 0.5."""
    block = Residual((Linear(1, 1), BatchNorm1d(1, momentum=0.5)))
    params = {"0.weight": np.ones((1, 1)), "0.bias": np.zeros(1), "1.weight": np.ones(1),
              "1.bias": np.zeros(1)}  # fmt: skip
    given = {"1.running_mean": np.zeros(1, np.float32), "1.running_var": np.ones(1, np.float32),
             "1.num_batches_tracked": np.array(0, np.int64)}  # fmt: skip
    ours = build(block, params, given)
    ours.forward(np.array([[1.0], [3.0]]), training=True)
    assert sorted(ours.buffers) == ["1.num_batches_tracked", "1.running_mean", "1.running_var"]
    np.testing.assert_array_equal(ours.buffers["1.running_mean"], [1.0])
    np.testing.assert_array_equal(ours.buffers["1.running_var"], [1.5])
    assert given["1.running_mean"][0] == 0.0 and int(ours.buffers["1.num_batches_tracked"]) == 1


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][0].shapes()])
def test_parameter_gradients_add_up_over_backward_passes_as_torchs(name):
    """Two forward/backward passes without zeroing: torch adds the second pass's
    gradients into .grad; a network's gradients add up the same way."""
    rng = np.random.default_rng(100 + list(CASES).index(name))
    theirs = torch_module(name, rng).train()
    net = Network(ModelSpec((CASES[name][0],)), np.dtype(np.float64))
    NumpyBackend().load_state(
        net, {f"0.{k}": v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    )
    for _ in range(2):
        x = batch(name, rng)
        out = net.forward(x)
        dy = rng.normal(size=out.shape)
        net.backward(dy)
        (theirs(torch.from_numpy(x)) * torch.from_numpy(dy)).sum().backward()
    for pname, param in theirs.named_parameters():
        np.testing.assert_allclose(
            net.grads[f"0.{pname}"], param.grad.numpy(), rtol=RTOL, atol=ATOL
        )
