"""The NumPy backend's own steps against torch: the training flag, the dtypes a batch
arrives in, the dropout masks of a whole network step by step, the losses' branches
and the referee it offers (docs/mutation.md: what a full mutation run found unchecked).

Values come from torch's modules and autograd in float64 (the same weights, the core's
dropout mask applied by hand), or are derived by hand in a comment. Float64 against
float64: the two sum the same few products in different orders, which moves a result by
a few ulps (~1e-15 relative); 1e-12 is well above that and far below any wrong term.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dualtrain.dropout import mask
from dualtrain.model import BatchNorm1d, Dropout, Embedding, Linear, ModelSpec, Residual
from dualtrain.optim import OptimizerSpec
from dualtrain.usermodel import DropoutSite
from dualtrain_numpy import NumpyBackend
from dualtrain_numpy.model import accuracy, loss_and_grad

RTOL = 1e-12  # float64 against float64 (module docstring)


def close(ours, theirs) -> None:
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-14)


def torch_linear(weight: np.ndarray, bias: np.ndarray | None, dtype=torch.float64):
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(weight))
        if bias is not None:
            lin.bias.copy_(torch.from_numpy(bias))
    return lin


# --- the referee the backend offers -------------------------------------------------


def test_the_backend_referees_one_linear_module_by_hand():
    """out = x W^T + b = 1*3 + 2*4 + 0.5; dx = dy W; from a float32 input, in float64."""
    outs, grads = NumpyBackend().referee(
        "Linear",
        {"in_features": 2, "out_features": 1},
        {"weight": np.array([[1.0, 2.0]]), "bias": np.array([0.5])},
        [np.array([[3.0, 4.0]], np.float32)],
        [np.array([[2.0]])],
    )
    assert len(outs) == 1 and len(grads) == 1
    assert outs[0].dtype == np.float64 and np.array_equal(outs[0], [[11.5]])
    assert np.array_equal(grads[0], [[2.0, 4.0]])


# --- the training flag --------------------------------------------------------------


def bn_net(backend: NumpyBackend, dtype: str = "float64"):
    spec = ModelSpec((Linear(2, 3), BatchNorm1d(3, momentum=0.25)), loss="mse")
    net = backend.build(spec, dtype, "cpu")
    weight = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]])
    bias = np.array([0.1, -0.2, 0.3])
    state = {"0.weight": weight, "0.bias": bias, "1.weight": np.array([1.0, 2.0, 0.5]),
             "1.bias": np.array([0.0, -1.0, 1.0]), "1.running_mean": np.array([0.5, 0.0, -0.5]),
             "1.running_var": np.array([2.0, 1.0, 0.5]),
             "1.num_batches_tracked": np.array(3, np.int64)}  # fmt: skip
    backend.load_state(net, state)
    return net, state


def torch_bn_net(state: dict, dtype=torch.float64):
    lin = torch_linear(state["0.weight"], state["0.bias"], dtype)
    bn = torch.nn.BatchNorm1d(3, momentum=0.25, dtype=dtype)
    bn.load_state_dict({k[2:]: torch.from_numpy(np.asarray(v)) for k, v in state.items()
                        if k.startswith("1.")})  # fmt: skip
    return torch.nn.Sequential(lin, bn)


X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.25, -2.0], [3.0, 1.0]])
Y = np.array([[0.5, 1.0, -1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 0.5], [-0.5, 0.0, 2.0]])


def test_forward_backward_trains_with_batch_statistics_after_an_eval_left_it_off():
    """A training step normalises with the batch's statistics and moves the running
    ones, whatever the flag was before it (here left off, as a caller's eval would)."""
    backend = NumpyBackend()
    net, state = bn_net(backend)
    net.training = False
    loss = backend.forward_backward(net, X, Y)
    theirs = torch_bn_net(state).train()
    t_loss = torch.nn.functional.mse_loss(theirs(torch.from_numpy(X)), torch.from_numpy(Y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=RTOL)
    close(net.grads["0.weight"], theirs[0].weight.grad)
    close(net.grads["1.weight"], theirs[1].weight.grad)
    close(net.buffers["1.running_mean"], theirs[1].running_mean)
    close(net.buffers["1.running_var"], theirs[1].running_var)
    assert int(net.buffers["1.num_batches_tracked"]) == 4


def test_a_float32_network_keeps_torchs_buffer_dtypes_and_counts_batches():
    backend = NumpyBackend()
    net, state = bn_net(backend, "float32")
    theirs = torch_bn_net(state, torch.float32).train()
    saved = backend.read_state(net)
    for name, value in theirs[1].state_dict().items():
        assert saved[f"1.{name}"].dtype == np.dtype(str(value.dtype).removeprefix("torch."))
    backend.forward_backward(net, X, Y)
    backend.forward_backward(net, X, Y)
    theirs(torch.from_numpy(X).float())
    theirs(torch.from_numpy(X).float())
    # float32 against float32: a handful of roundings each, ~1e-7 relative; 1e-5 is
    # well above that, far below a wrong update (momentum 0.25 moves them ~10%).
    for name in ("running_mean", "running_var"):
        got = backend.read_state(net)[f"1.{name}"]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, getattr(theirs[1], name).numpy(), rtol=1e-5)
    assert int(backend.read_state(net)["1.num_batches_tracked"]) == 5


# --- the dtypes a batch arrives in ----------------------------------------------------


def test_a_float32_model_sees_its_batch_in_float32_as_torch_does():
    """Weight 3, x = 0.1, target 0.3, all float64 given to a float32 model: float32(0.1)
    times 3 rounds to float32(0.3) exactly, so torch's float32 loss is 0; in float64,
    0.1 * 3 - 0.3 is 5.6e-17 and float32(0.3) - 0.3 is 1.2e-8: not 0."""
    backend = NumpyBackend()
    net = backend.build(ModelSpec((Linear(1, 1),), loss="mse"), "float32", "cpu")
    backend.load_state(net, {"0.weight": np.array([[3.0]]), "0.bias": np.array([0.0])})
    x, y = np.array([[0.1]]), np.array([[0.3]])
    lin = torch_linear(np.array([[3.0]]), np.array([0.0]), torch.float32)
    t_loss = torch.nn.functional.mse_loss(lin(torch.tensor(x, dtype=torch.float32)),
                                          torch.tensor(y, dtype=torch.float32))  # fmt: skip
    assert t_loss.item() == 0.0
    assert backend.forward_backward(net, x, y) == 0.0
    assert backend.evaluate(net, x, y) == (0.0, None)
    assert backend.forward_backward(net, x.astype(np.float32), y.astype(np.float32)) == 0.0


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_token_ids_reach_the_embedding_as_integers(dtype):
    """Rows 2 and 0 of the table [[0, 1], [2, 3], [4, 5]] summed against target 0:
    sse = 4^2 + 5^2 + 0^2 + 1^2 = 42."""
    backend = NumpyBackend()
    net = backend.build(ModelSpec((Embedding(3, 2),), loss="sse"), "float32", "cpu")
    backend.load_state(net, {"0.weight": np.arange(6.0).reshape(3, 2)})
    ids = np.array([[2, 0]], dtype)
    assert backend.forward_backward(net, ids, np.zeros((1, 2, 2))) == 42.0
    assert backend.evaluate(net, ids, np.zeros((1, 2, 2)))[0] == 42.0


# --- dropout masks, step by step ------------------------------------------------------


SEED, P = 11, 0.5
W0 = np.linspace(-1.0, 1.0, 16).reshape(4, 4)
W1 = np.linspace(0.5, -0.5, 16).reshape(4, 4) + np.eye(4)
W2 = np.array([[1.0, -2.0, 0.5, 1.5]])


def dropout_net(backend: NumpyBackend):
    """Linear, Dropout at "1", Residual(Dropout at "2.0", Linear), Linear, under SEED."""
    spec = ModelSpec((Linear(4, 4), Dropout(P), Residual((Dropout(P), Linear(4, 4))),
                      Linear(4, 1)), loss="sse", dropout_seed=SEED)  # fmt: skip
    net = backend.build(spec, "float64", "cpu")
    backend.load_state(net, {"0.weight": W0, "0.bias": np.full(4, 0.1), "2.1.weight": W1,
                             "2.1.bias": np.full(4, -0.2), "3.weight": W2,
                             "3.bias": np.array([0.3])})  # fmt: skip
    return net


def torch_dropout_step(step: int, x: np.ndarray, y: np.ndarray):
    """torch's loss and first-weight gradient with the core's masks of `step` applied
    as `h * mask / (1 - p)`, as every engine applies them."""
    lin0 = torch_linear(W0, np.full(4, 0.1))
    lin1 = torch_linear(W1, np.full(4, -0.2))
    lin2 = torch_linear(W2, np.array([0.3]))
    shape = (x.shape[0], 4)
    m1 = torch.from_numpy(mask(SEED, step, DropoutSite("1", P), 0, shape))
    m2 = torch.from_numpy(mask(SEED, step, DropoutSite("2.0", P), 0, shape))
    h = lin0(torch.from_numpy(x)) * m1 / (1 - P)
    h = h + lin1(h * m2 / (1 - P))
    loss = ((lin2(h) - torch.from_numpy(y)) ** 2).sum()
    loss.backward()
    return loss.item(), lin0.weight.grad.numpy()


X4 = np.array([[1.0, -0.5, 2.0, 0.25], [0.5, 1.5, -1.0, 2.0], [-2.0, 0.75, 0.5, -1.0]])
Y4 = np.array([[1.0], [-2.0], [0.5]])


def test_each_training_step_of_a_network_drops_the_core_masks_of_that_step():
    backend = NumpyBackend()
    net = dropout_net(backend)
    masks = [mask(SEED, s, DropoutSite("1", P), 0, (3, 4)) for s in range(3)]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    for step in range(3):  # steps 0, 1, 2 from a fresh network
        net.grads["0.weight"][...] = 0
        loss = backend.forward_backward(net, X4, Y4)
        t_loss, t_grad = torch_dropout_step(step, X4, Y4)
        assert loss == pytest.approx(t_loss, rel=RTOL)
        close(net.grads["0.weight"], t_grad)
    backend.start_at(net, 7)  # a resumed run: step 7's masks
    net.grads["0.weight"][...] = 0
    assert backend.forward_backward(net, X4, Y4) == pytest.approx(
        torch_dropout_step(7, X4, Y4)[0], rel=RTOL
    )


def test_evaluate_drops_nothing():
    backend = NumpyBackend()
    net = dropout_net(backend)
    lin0, lin1, lin2 = (torch_linear(W0, np.full(4, 0.1)), torch_linear(W1, np.full(4, -0.2)),
                        torch_linear(W2, np.array([0.3])))  # fmt: skip
    h = lin0(torch.from_numpy(X4))
    expected = ((lin2(h + lin1(h)) - torch.from_numpy(Y4)) ** 2).sum().item()
    assert backend.evaluate(net, X4, Y4) == (pytest.approx(expected, rel=RTOL), None)


# --- the losses ---------------------------------------------------------------------


OUT = np.array([[0.5, -1.0], [2.0, 0.25], [-0.5, 1.5]])
TARGET = np.array([[1.0, 0.0], [1.5, 0.5], [0.0, -1.0]])


@pytest.mark.parametrize(("kind", "reduction"), [("sse", "sum"), ("mse", "mean")])
def test_regression_losses_and_gradients_are_torchs(kind, reduction):
    out = torch.tensor(OUT, requires_grad=True)
    theirs = torch.nn.functional.mse_loss(out, torch.from_numpy(TARGET), reduction=reduction)
    theirs.backward()
    loss, grad = loss_and_grad(kind, OUT, TARGET)
    assert loss == pytest.approx(theirs.item(), rel=RTOL)
    close(grad, out.grad)
    # a flat target of the same size is read in the output's shape
    loss_flat, grad_flat = loss_and_grad(kind, OUT, TARGET.reshape(-1))
    assert loss_flat == loss and np.array_equal(grad_flat, grad)


def test_cross_entropy_over_a_sequence_is_torchs_on_the_flattened_positions():
    """(batch 2, seq 3, classes 4): seq differs from classes, so a wrong axis shows."""
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 3, 4))
    labels = np.array([[0, 3, 1], [2, 2, 0]])
    out = torch.tensor(logits, requires_grad=True)
    flat_labels = torch.from_numpy(labels).reshape(-1)
    theirs = torch.nn.functional.cross_entropy(out.reshape(-1, 4), flat_labels)
    theirs.backward()
    loss, grad = loss_and_grad("cross_entropy", logits, labels)
    assert loss == pytest.approx(theirs.item(), rel=RTOL)
    assert grad.shape == (2, 3, 4)
    close(grad, out.grad)


def test_accuracy_over_a_sequence_counts_every_position():
    logits = np.zeros((2, 3, 4))
    best = np.array([[1, 3, 0], [2, 2, 1]])  # the argmax at each position
    for index in np.ndindex(best.shape):
        logits[index][best[index]] = 1.0
    labels = np.array([[1, 3, 2], [2, 0, 1]])  # right 4 of 6: (0,0), (0,1), (1,0), (1,2)
    assert accuracy("cross_entropy", logits, labels) == 4 / 6


def test_an_eager_step_clears_the_gradients_trains_and_updates_as_sgd_with_momentum():
    """Two steps of the dropout network from gradients left over and the flag left off:
    each step's masks, its own gradient only (torch's autograd), then torch's SGD update
    written out (torch.optim.SGD's first step costs seconds of imports): the buffer
    starts as the gradient, then buf = 0.5 buf + grad; p -= 0.1 buf."""
    backend = NumpyBackend()
    net = dropout_net(backend)
    opt = backend.make_optimizer(net, OptimizerSpec("sgd", lr=0.1, options={"momentum": 0.5}))
    for grad in net.grads.values():
        grad[...] = 7.0  # left over from elsewhere: the step must start from zero
    net.training = False
    step = backend.eager_step(net, opt)
    lins = [torch_linear(W0, np.full(4, 0.1)), torch_linear(W1, np.full(4, -0.2)),
            torch_linear(W2, np.array([0.3]))]  # fmt: skip
    params = [p for lin in lins for p in lin.parameters()]
    buffers: list = [None] * len(params)
    for number in range(2):
        loss = step(X4, Y4)
        m1, m2 = (torch.from_numpy(mask(SEED, number, DropoutSite(site, P), 0, (3, 4)))
                  for site in ("1", "2.0"))  # fmt: skip
        h = lins[0](torch.from_numpy(X4)) * m1 / (1 - P)
        h = h + lins[1](h * m2 / (1 - P))
        t_loss = ((lins[2](h) - torch.from_numpy(Y4)) ** 2).sum()
        grads = torch.autograd.grad(t_loss, params)
        with torch.no_grad():
            for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
                buffers[i] = grad.clone() if buffers[i] is None else 0.5 * buffers[i] + grad
                param -= 0.1 * buffers[i]
        assert loss == pytest.approx(t_loss.item(), rel=RTOL)
        for k, (prefix, lin) in enumerate(zip(("0.", "2.1.", "3."), lins, strict=True)):
            close(net.params[prefix + "weight"], lin.weight)
            close(net.params[prefix + "bias"], lin.bias)
            close(net.grads[prefix + "weight"], grads[2 * k])


def test_running_still_warns_of_a_division_by_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with NumpyBackend().running():
            assert np.isinf(np.float64(1e308) * 10)  # overflow: quiet
            with pytest.raises(RuntimeWarning, match="divide by zero"):
                np.float64(1.0) / np.float64(0.0)


def test_running_silences_numpys_warnings_only():
    """A warning of another kind that happens to say "overflow encountered" still shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with NumpyBackend().running():
            with pytest.raises(UserWarning, match="overflow encountered"):
                warnings.warn("overflow encountered in the user's check", UserWarning, stacklevel=1)
