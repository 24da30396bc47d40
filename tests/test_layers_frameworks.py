"""Each NumPy layer against torch's and OneFlow's own module on the same inputs, float64.

Forward output, input gradient, parameter gradients and (batch norms) the
running statistics after the forward, in train and eval mode, for every case
of `layer_cases`; the modules are what `dualtrain_torch.model` and
`dualtrain_oneflow.model` build for the spec, so this also proves the
backends' mapping of every argument. Dropout uses the core's masks on all three.
"""

from __future__ import annotations

import numpy as np
import pytest
from layer_cases import CASES, FixedMasks, inputs, parameters, split

from dualtrain.model import BatchNorm2d, Conv2d, Dropout, Embedding, LayerNorm, Linear, ModelSpec
from dualtrain_numpy.layers import build

# float64 on all three: the results differ only by the order of float64 sums
# (measured below 1e-14 relative for every case here). 1e-10 leaves four orders
# of margin for other machines' BLAS, and any wrong term or argument is >= 1e-3.
RTOL = 1e-10
# OneFlow 0.9.0 applies some constants as float32 inside its float64 kernels: a
# BatchNorm's momentum (0.2 -> 0.200000003, a relative 1.5e-8 on the running
# statistics; measured 1.8e-8 to 3.3e-8) and the tanh-GELU's constants (measured
# 4.8e-10 forward, 9.4e-10 through a residual block). float32's unit roundoff
# 6e-8 bounds them: 1e-7 for exactly these, RTOL for everything else.
ONEFLOW_FLOAT32_CONSTANTS = 1e-7
#: The seed FixedMasks draws with; the frameworks' shared masks use it too.
MASK_SEED = 7


def reference(name, arrays, x, dy, training):
    layer, _ = CASES[name]
    params, buffers = split(layer, {n: a.copy() for n, a in arrays.items()})
    masks = FixedMasks(layer.p) if isinstance(layer, Dropout) else None
    net = build(layer, params, buffers, masks=masks)
    y = net.forward(x, training)
    dx = net.backward(dy)
    return y, dx, dict(net.grads), buffers


def close(got, want, what: str, rtol: float = RTOL) -> None:
    want = np.asarray(want, np.float64)
    scale = max(float(np.abs(want).max()), 1e-300)
    error = float(np.abs(np.asarray(got, np.float64) - want).max()) / scale
    assert error < rtol, f"{what}: relative difference {error:.2e}"


def run_framework(framework, name, arrays, x, dy, training):
    """(y, dx, grads, buffers) from the framework's module for the case's spec."""
    layer, _ = CASES[name]
    spec = ModelSpec((layer,), dropout_seed=MASK_SEED)
    if framework == "torch":
        torch = pytest.importorskip("torch")
        from dualtrain_torch import model as models

        module = models.build(spec, torch.float64, torch.device("cpu"))
        tensor, grad_of = torch.from_numpy, lambda t: t.grad
    else:
        flow = pytest.importorskip("oneflow")
        from dualtrain_oneflow import model as models

        module = models.build(spec, flow.float64, "cpu")
        tensor, grad_of = flow.from_numpy, lambda t: t.grad
    module.load_state_dict({f"0.{n}": tensor(a.copy()) for n, a in arrays.items()})
    dropout = models.shared_dropout(module, spec)
    if dropout is not None:
        dropout.begin()
    module.train(training)
    xt = tensor(x.copy())
    if x.dtype.kind == "f":
        xt.requires_grad_(True)
    y = module(xt)
    y.backward(tensor(dy.copy()))
    grads = {n[2:]: grad_of(p).numpy() for n, p in module.named_parameters()}
    state = {n[2:]: t.numpy() for n, t in module.state_dict().items()}
    dx = None if x.dtype.kind != "f" else grad_of(xt).numpy()
    return y.detach().numpy(), dx, grads, state


EVAL_CASES = [n for n, (layer, _) in CASES.items() if layer.buffer_shapes()]
PARAMS = [(n, True) for n in CASES] + [(n, False) for n in EVAL_CASES]


@pytest.mark.parametrize("framework", ["torch", "oneflow"])
@pytest.mark.parametrize(
    ("name", "training"), PARAMS, ids=[f"{n}-{'train' if t else 'eval'}" for n, t in PARAMS]
)
def test_numpy_layer_matches_the_framework(framework, name, training):
    rng = np.random.default_rng(11)
    layer, _ = CASES[name]
    arrays = parameters(layer, rng)
    x = inputs(name, rng)
    dy = rng.normal(size=(len(x), *layer.output_shape(x.shape[1:])))
    y, dx, grads, buffers = reference(name, arrays, x, dy, training)
    fy, fdx, fgrads, fstate = run_framework(framework, name, arrays, x, dy, training)
    oneflow = framework == "oneflow"
    rtol = (
        ONEFLOW_FLOAT32_CONSTANTS if oneflow and "GELU(approximate='tanh')" in repr(layer) else RTOL
    )
    close(y, fy, "forward", rtol)
    if dx is None:
        assert fdx is None
    else:
        close(dx, fdx, "input gradient", rtol)
    assert set(grads) == set(fgrads)
    for pname in grads:
        close(grads[pname], fgrads[pname], f"{pname} gradient", rtol)
    for bname, value in buffers.items():
        if value.dtype.kind == "f":
            close(value, fstate[bname], bname, ONEFLOW_FLOAT32_CONSTANTS if oneflow else rtol)
        else:
            assert int(value) == int(fstate[bname]), bname


INIT_LAYERS = {
    "conv-groups": Conv2d(8, 12, (3, 2), groups=4),
    "linear": Linear(40, 30),
    "embedding": Embedding(50, 40, padding_idx=3),
    "layernorm": LayerNorm((3, 4)),
    "batchnorm2d": BatchNorm2d(6),
}


@pytest.mark.parametrize("name", INIT_LAYERS)
def test_initialisation_follows_torchs_defaults(name):
    """The core's init has torch's distributions: the same bounds (uniform), the same
    spread (normal), the same constants (norms) and the same zero padding row."""
    torch = pytest.importorskip("torch")
    from dualtrain_torch import model as models

    layer = INIT_LAYERS[name]
    ours = layer.init(np.random.default_rng(0), np.float64)
    torch.manual_seed(0)
    theirs = {n: t.detach().numpy() for n, t in models.layer(layer).double().state_dict().items()}
    assert set(ours) == set(theirs)
    for pname, value in theirs.items():
        mine = ours[pname]
        assert mine.shape == value.shape, pname
        if np.all(value == value.flat[0]):  # a constant: ones, zeros, the step count
            np.testing.assert_array_equal(mine, value, err_msg=pname)
        elif isinstance(layer, Embedding):
            # N(0, 1) but the padding row: 2000 draws put the spread within 10% of 1
            assert (mine[3] == 0).all() and (value[3] == 0).all()
            assert abs(np.delete(mine, 3, 0).std() - 1) < 0.1
            assert abs(np.delete(value, 3, 0).std() - 1) < 0.1
        else:
            # U(-b, b) with b = 1/sqrt(fan_in): both inside b, both reaching past 0.8 b
            # (seeded, so fixed draws; a bound 25% off either way fails one side)
            fan_in = value.size // value.shape[0] if value.ndim > 1 else None
            if fan_in is None:  # a bias: the weight's fan_in
                weight = theirs["weight"]
                fan_in = weight.size // weight.shape[0]
            bound = 1 / np.sqrt(fan_in)
            for drawn in (mine, value):
                assert np.abs(drawn).max() <= bound and np.abs(drawn).max() > 0.8 * bound, pname
