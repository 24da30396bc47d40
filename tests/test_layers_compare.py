"""Five engines train the CNN and the transformer-like presets with dropout on, alike.

NumPy eager (the float64 reference), torch eager and torch.compile, OneFlow
eager and OneFlow's nn.Graph (float32, judged with the comparison's float32
floor and its own float32 drift, as the port check judges) over 100
SGD-momentum steps each, with the core's dropout masks: the same lrs, per-step
losses and final weights within the comparison's tolerance.
Sizes are tiny (a compiled graph per model is the cost: 13-27 s cold each).
"""

from __future__ import annotations

import numpy as np
import pytest

from dualtrain.comparison import compare_engines, engines
from dualtrain.loop import RunConfig, train_engine
from dualtrain.model import Dropout, ModelSpec
from dualtrain.problems import digits_cnn, get_problem, token_transformer

pytest.importorskip("torch")
pytest.importorskip("oneflow")

#: 200 rows: 160 train in batches of 16, 10 steps an epoch, 10 epochs = 100 steps.
ROWS, BATCH, EPOCHS = 200, 16, 10


def config(**overrides) -> RunConfig:
    base = dict(lr=0.05, options={"momentum": 0.9}, epochs=EPOCHS, batch_size=BATCH, seed=0)
    return RunConfig(**{**base, **overrides})


def small(problem: str):
    if problem == "digits":
        pytest.importorskip("sklearn")
    data = get_problem(problem).data
    return data.subset(np.arange(ROWS)).split(0.2, 0)


@pytest.mark.parametrize(
    ("problem", "model"), [("digits", digits_cnn()), ("tokens", token_transformer())],
    ids=["cnn", "transformer"],
)  # fmt: skip
def test_five_engines_agree_with_dropout_on(problem, model):
    assert model.dropout_sites(), "the preset trains with dropout"
    train, val = small(problem)
    planned = engines(["numpy", "torch", "oneflow"], ["eager", "graph"])
    # own_floor, as the port check judges: OneFlow's graph trains float32 only, and its
    # float32 BatchNorm statistics are less exact than NumPy's float32 (PORTING.md), so
    # its final weights are also allowed twice its own eager float32-vs-float64 drift.
    result = compare_engines(config(), model, train, val, planned,
                             model.initial_weights(0), own_floor=True)  # fmt: skip
    ran = {r.engine: r for r in result.results if r.run is not None}
    assert sorted(ran) == ["numpy/eager", "oneflow/eager", "oneflow/graph", "torch/eager",
                           "torch/graph"]  # fmt: skip
    for engine, r in ran.items():
        assert len(r.run.trajectory.steps) == 100, engine
        if engine != "numpy/eager":
            assert r.lr_max_diff == 0.0, engine  # the core's lrs, bit for bit
            assert r.passed, (engine, r.loss_max_rel_diff, r.param_max_rel_diff, r.notes)
    assert result.passed


def test_the_shared_masks_really_drop_units():
    """Without dropout the same run gives other losses: the masks act on every engine."""
    train, val = small("tokens")
    spec = token_transformer()
    plain = ModelSpec(
        tuple(_no_dropout(layer) for layer in spec.layers), loss=spec.loss
    )  # fmt: skip
    cfg = config(epochs=1)
    with_masks = train_engine(cfg, spec, train, val)
    without = train_engine(cfg, plain, train, val)
    first = [s["loss"] for s in with_masks.trajectory.steps]
    second = [s["loss"] for s in without.trajectory.steps]
    assert first[0] != second[0]


def _no_dropout(layer):
    from dataclasses import replace

    if layer.children():
        return replace(layer, layers=tuple(_no_dropout(sub) for sub in layer.children()))
    return Dropout(0.0) if isinstance(layer, Dropout) else layer


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_resumed_run_draws_the_masks_of_its_own_steps(backend, tmp_path):
    """Masks are keyed by the step: a run resumed mid-way equals the straight one."""
    from dualtrain import checkpoint as checkpoints
    from dualtrain.loop import Saving

    train, val = small("tokens")
    cfg = config(backend=backend, epochs=2)
    full = train_engine(cfg, token_transformer(), train, val, saving=Saving(str(tmp_path), every=5))
    saved = checkpoints.load(tmp_path / "step-00000015")
    resumed = train_engine(cfg, token_transformer(), train, val, resume=saved)
    assert [s["loss"] for s in resumed.trajectory.steps] == [
        s["loss"] for s in full.trajectory.steps
    ]
