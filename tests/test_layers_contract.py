"""The contract the localiser's referee calls: a layer from a config, one NumPy layer.

Values here are derived by hand (a Linear's product, BatchNorm's batch mean),
so they would catch a wrong wiring of names or a backward that does not reset.
"""

from __future__ import annotations

import numpy as np
import pytest

from dualtrain.errors import ConfigError
from dualtrain.model import Activation, BatchNorm1d, Linear, layer_from_config
from dualtrain_numpy.layers import build


def test_linear_from_config_forward_backward_and_grads_by_hand():
    layer = layer_from_config({"type": "Linear", "in_features": 2, "out_features": 1})
    assert layer == Linear(2, 1, bias=True)
    lin = build(layer, {"weight": np.array([[1.0, 2.0]]), "bias": np.array([0.5])})
    out = lin.forward(np.array([[3.0, 4.0], [1.0, 0.0]]), training=True)
    np.testing.assert_array_equal(out, [[11.5], [1.5]])
    dx = lin.backward(np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(dx, [[1.0, 2.0], [2.0, 4.0]])
    np.testing.assert_array_equal(lin.grads["weight"], [[5.0, 4.0]])  # 1*[3,4] + 2*[1,0]
    np.testing.assert_array_equal(lin.grads["bias"], [3.0])
    lin.backward(np.array([[1.0], [2.0]]))  # grads are the last backward's, not a sum
    np.testing.assert_array_equal(lin.grads["bias"], [3.0])


def test_batchnorm1d_updates_the_buffers_given_in_place():
    layer = layer_from_config({"type": "BatchNorm1d", "num_features": 1, "momentum": 0.5})
    assert layer == BatchNorm1d(1, momentum=0.5)
    buffers = {
        "running_mean": np.zeros(1),
        "running_var": np.ones(1),
        "num_batches_tracked": np.zeros((), np.int64),
    }
    bn = build(layer, {"weight": np.ones(1), "bias": np.zeros(1)}, buffers)
    bn.forward(np.array([[1.0], [3.0]]), training=True)
    # mean 2, unbiased variance 2: halfway from (0, 1) with momentum 0.5.
    np.testing.assert_allclose(buffers["running_mean"], [1.0])
    np.testing.assert_allclose(buffers["running_var"], [1.5])
    assert int(buffers["num_batches_tracked"]) == 1


@pytest.mark.parametrize(
    ("kind", "name"), [("tanh", "Tanh"), ("relu", "ReLU"), ("sigmoid", "Sigmoid")]
)
def test_activations_by_their_torch_names(kind, name):
    layer = layer_from_config({"type": name})
    assert layer == Activation(kind)
    assert layer.type_name == name


def test_an_unknown_type_names_where_and_the_type():
    with pytest.raises(ConfigError, match=r"^layer 2: unknown layer type 'MultiheadAttention'"):
        layer_from_config({"type": "MultiheadAttention", "embed_dim": 4}, "layer 2")


def test_build_refuses_a_missing_or_misshapen_parameter():
    with pytest.raises(ConfigError, match="no parameter 'bias'"):
        build(Linear(2, 1), {"weight": np.zeros((1, 2))})
    with pytest.raises(ConfigError, match=r"weight has shape \(2, 1\), expected \(1, 2\)"):
        build(Linear(2, 1), {"weight": np.zeros((2, 1)), "bias": np.zeros(1)})
