"""The NumPy reference where finite differences cannot look: shapes, refusals, the eval
path and the backend's bookkeeping (docs/mutation.md: what a mutation run found
unchecked). Shapes come from torch's own modules; values are derived by hand.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dualtrain.errors import ConfigError
from dualtrain.model import ModelSpec, init_weights, layer_from_config, mlp
from dualtrain.optim import OptimizerSpec
from dualtrain_numpy import NumpyBackend
from dualtrain_numpy.layers import build
from dualtrain_numpy.model import accuracy


@pytest.mark.parametrize(
    ("start", "end", "shape"),
    [(1, -1, (2, 3, 4, 5)), (2, -1, (2, 3, 4, 5)), (1, 2, (2, 3, 4, 5)), (2, 3, (2, 3, 4, 5, 6)),
     (-2, -1, (2, 3, 4, 5)), (1, 1, (2, 3, 4))],
)  # fmt: skip
def test_flatten_shape_is_torchs(start, end, shape):
    layer = build(layer_from_config({"type": "Flatten", "start_dim": start, "end_dim": end}), {})
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    out = layer.forward(x, training=True)
    theirs = torch.nn.Flatten(start, end)(torch.from_numpy(x)).numpy()
    assert out.shape == theirs.shape and np.array_equal(out, theirs)
    assert layer.backward(np.ones_like(out)).shape == shape


def embedding(n=5, padding_idx=None):
    config = {"type": "Embedding", "num_embeddings": n, "embedding_dim": 2}
    if padding_idx is not None:
        config["padding_idx"] = padding_idx
    weight = np.arange(2 * n, dtype=np.float64).reshape(n, 2)
    return build(layer_from_config(config), {"weight": weight})


@pytest.mark.parametrize(("ids", "shown"), [([0, 5], "0..5"), ([-1, 2], "-1..2")])
def test_embedding_refuses_ids_outside_the_table(ids, shown):
    with pytest.raises(ConfigError) as error:
        embedding().forward(np.array([ids]), training=True)
    assert str(error.value) == f"Embedding token ids must be in [0, 5), got {shown}"


def test_embedding_takes_the_last_row_and_refuses_float_ids():
    layer = embedding()
    assert np.array_equal(layer.forward(np.array([[4, 0]]), True), [[[8.0, 9.0], [0.0, 1.0]]])
    with pytest.raises(ConfigError, match=r"^Embedding takes integer token ids, got float64$"):
        layer.forward(np.array([[1.0]]), True)
    for dtype in (np.int32, np.uint8):  # every integer kind
        assert layer.forward(np.array([[1]], dtype), True).shape == (1, 1, 2)


def test_embedding_gradient_rows_by_id_for_any_batch_shape():
    """Each id's row gets the sum of the output gradients where it occurs (torch)."""
    layer = embedding()
    ids = np.array([[[1, 3], [1, 0]], [[3, 3], [2, 1]]])  # (2, 2, 2) ids: a 3-D batch
    layer.forward(ids, True)
    dy = np.arange(16, dtype=np.float64).reshape(2, 2, 2, 2)
    assert layer.backward(dy) is None
    expected = np.zeros((5, 2))
    for index in np.ndindex(ids.shape):
        expected[ids[index]] += dy[index]
    assert np.array_equal(layer.grads["weight"], expected)


class OnesAndZeros:
    """Masks as SharedMasks gives them: next(name, shape) -> 0/1 array, here fixed."""

    def next(self, name, shape):
        return (np.arange(np.prod(shape)).reshape(shape) % 2).astype(np.float64)


def dropout(p):
    return build(layer_from_config({"type": "Dropout", "p": p}), {}, masks=OnesAndZeros())


def test_dropout_backward_after_an_eval_forward_is_the_identity():
    layer = dropout(0.5)
    x = np.full((2, 3), 2.0)
    assert layer.forward(x, training=False) is x
    dy = np.full((2, 3), 3.0)
    assert np.array_equal(layer.backward(dy), dy)


def test_dropout_scales_the_kept_units():
    layer = dropout(0.75)
    mask = OnesAndZeros().next("0", (2, 3))
    out = layer.forward(np.full((2, 3), 2.0), training=True)
    assert np.array_equal(out, 2.0 * mask / 0.25)
    assert np.array_equal(layer.backward(np.ones((2, 3))), mask / 0.25)


def test_dropout_p_zero_trains_without_masks():
    layer = build(layer_from_config({"type": "Dropout", "p": 0.0}), {})
    x = np.ones((2, 2))
    assert layer.forward(x, training=True) is x
    with pytest.raises(ConfigError, match="training needs the run's shared masks"):
        build(layer_from_config({"type": "Dropout", "p": 0.5}), {}).forward(x, training=True)


def test_accuracy_by_hand():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 1, 1, 0])  # right, wrong, right, right
    assert accuracy("cross_entropy", logits, labels) == 0.75
    seq = logits.reshape(2, 2, 2)  # (batch, seq, classes) against (batch, seq)
    assert accuracy("cross_entropy", seq, labels.reshape(2, 2)) == 0.75
    assert accuracy("cross_entropy", logits, labels.astype(np.float64)) == 0.75
    assert accuracy("mse", logits, labels) is None


def test_backend_builds_in_the_dtype_asked():
    spec = mlp([3, 4, 2])
    net = NumpyBackend().build(spec, "float32", "cpu")
    assert {a.dtype for a in net.params.values()} == {np.dtype(np.float32)}


def test_evaluate_cross_entropy_by_hand_and_stays_in_training():
    spec = ModelSpec(mlp([2, 2]).layers, loss="cross_entropy")
    backend = NumpyBackend()
    net = backend.build(spec, "float64", "cpu")
    backend.load_state(net, {"0.weight": np.eye(2), "0.bias": np.zeros(2)})
    x, y = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0])
    loss, acc = backend.evaluate(net, x, y)
    # logits are x; -log softmax(x)[0] per row: log(1 + e^-2) and log(1 + e^1)
    assert loss == pytest.approx((np.log1p(np.exp(-2.0)) + np.log1p(np.exp(1.0))) / 2, rel=1e-15)
    assert acc == 0.5 and net.training is True


def test_optimizer_state_round_trip_copies_and_keeps_step_an_int():
    backend = NumpyBackend()
    spec = mlp([2, 2])
    net = backend.build(spec, "float64", "cpu")
    backend.load_state(net, init_weights(spec, 0))
    opt = backend.make_optimizer(net, OptimizerSpec("adam", lr=0.1))
    net.grads["0.weight"][...] = 1.0
    backend.optimizer_step(opt)
    saved = backend.optimizer_state(opt)
    assert set(saved) == {f"0.{p}/{k}" for p in ("weight", "bias")
                          for k in ("step", "exp_avg", "exp_avg_sq")}  # fmt: skip
    backend.load_optimizer_state(opt, saved)
    restored = opt.state["0.weight"]
    assert type(restored["step"]) is int and restored["step"] == 1
    saved["0.weight/exp_avg"][...] = 99.0  # the optimizer keeps its own copy
    assert not np.any(restored["exp_avg"] == 99.0)


def test_running_ignores_overflow_and_invalid_only():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with NumpyBackend().running():
            assert np.isinf(np.float64(1e308) * 10)
            assert np.isnan(np.float64(np.inf) - np.inf)
        with pytest.raises(RuntimeWarning):
            np.float64(1e308) * 10  # outside the run NumPy warns again


def test_start_at_moves_the_dropout_step():
    backend = NumpyBackend()
    net = backend.build(mlp([2, 2]), "float64", "cpu")
    backend.start_at(net, 7)
    assert net.next_step == 7
