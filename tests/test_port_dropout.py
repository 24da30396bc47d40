"""The core's dropout masks, and each engine applying exactly them."""

from __future__ import annotations

import numpy as np
import pytest

from dualtrain.dropout import SharedMasks, mask
from dualtrain.usermodel import DropoutSite

SITE = DropoutSite("drop", 0.3)


def test_a_mask_is_a_function_of_seed_step_site_and_call():
    shape = (64, 32)
    base = mask(0, 5, SITE, 0, shape)
    assert np.array_equal(base, mask(0, 5, SITE, 0, shape))
    for other in (
        mask(1, 5, SITE, 0, shape),
        mask(0, 6, SITE, 0, shape),
        mask(0, 5, SITE, 1, shape),
        mask(0, 5, DropoutSite("other", 0.3), 0, shape),
    ):
        assert not np.array_equal(base, other)  # fmt: skip


def test_a_mask_keeps_one_minus_p_of_the_units():
    drawn = mask(0, 0, SITE, 0, (200, 500))
    assert set(np.unique(drawn)) == {0.0, 1.0}
    # 100000 Bernoulli(0.7) draws: standard deviation of the share 0.00145; 5 of them.
    assert abs(drawn.mean() - 0.7) < 5 * np.sqrt(0.7 * 0.3 / drawn.size)


def test_a_channel_mask_is_one_value_per_sample_and_channel():
    drawn = mask(0, 0, DropoutSite("d2", 0.5, "channel"), 0, (8, 6, 4, 4))
    assert drawn.shape == (8, 6, 4, 4)
    assert np.all(drawn == drawn[:, :, :1, :1])
    assert 0 < drawn[:, :, 0, 0].mean() < 1


def test_shared_masks_count_calls_within_a_step_and_restart_each_step():
    masks = SharedMasks(7, (SITE,))
    masks.begin(2)
    first, second = masks.next("drop", (4, 4)), masks.next("drop", (4, 4))
    assert np.array_equal(first, mask(7, 2, SITE, 0, (4, 4)))
    assert np.array_equal(second, mask(7, 2, SITE, 1, (4, 4)))
    masks.begin(2)
    assert np.array_equal(masks.next("drop", (4, 4)), first)
    assert [m.shape for m in masks.step_masks([("drop", (4, 4)), ("drop", (2, 3))])] == [
        (4, 4),
        (2, 3),
    ]


@pytest.mark.parametrize("backend", ["torch", "oneflow"])
def test_each_engine_applies_exactly_the_core_mask(backend, tmp_path):
    """One forward of a Dropout-only module: input * mask / (1 - p), by hand."""
    pytest.importorskip("torch")
    pytest.importorskip(backend)
    from dualtrain.backend import get_backend
    from dualtrain.data import Dataset
    from dualtrain.usermodel import ModuleSource, UserModule

    (tmp_path / "drop.py").write_text(
        "import torch\n\n\nclass Drop(torch.nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.scale = torch.nn.Parameter(torch.ones(5))\n"
        "        self.drop = torch.nn.Dropout(0.3)\n\n"
        "    def forward(self, x):\n        return self.drop(x * self.scale)\n"
    )
    x = np.arange(1.0, 41.0).reshape(8, 5)
    data = Dataset(x, x.copy())
    model = UserModule(ModuleSource.parse(f"{tmp_path}/drop.py:Drop"), "mse", (5,))
    model = get_backend("torch").describe_module(model, data, seed=4)
    engine = get_backend(backend)
    net = engine.build(model, "float64", "cpu")
    engine.load_state(net, model.initial_weights(4))
    engine.start_at(net, 9)
    net.dualtrain_dropout.begin()
    out = net(_tensor(backend, x)).detach().numpy()
    expected = x * mask(4, 9, DropoutSite("drop", 0.3), 0, x.shape) / (1 - 0.3)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def _tensor(backend: str, x: np.ndarray):
    if backend == "torch":
        import torch

        return torch.from_numpy(x)
    import oneflow

    return oneflow.tensor(x)
