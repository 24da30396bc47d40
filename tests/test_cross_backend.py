"""Every backend and mode trains like the NumPy reference (float64), step by step.

One fixture runs a config on an engine; the reference is NumPy eager in float64.
lr trajectories must be the very same floats (every engine reads the core's
schedule); per-step losses and final parameters agree within the comparison's
tolerance (rtol 1e-4, atol 1e-6) over at least 100 steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytest

from dualtrain.comparison import ATOL, RTOL, _engine_config
from dualtrain.errors import CapabilityError
from dualtrain.loop import Run, RunConfig, ScheduleConfig, train_engine
from dualtrain.optim import GroupSpec
from dualtrain.problems import get_problem

ENGINES = [("torch", "eager"), ("torch", "graph"), ("oneflow", "eager"), ("oneflow", "graph")]


@dataclass(frozen=True)
class Case:
    problem: str
    optimizer: str
    lr: float
    epochs: int
    options: tuple = ()
    schedule: tuple = (None, (), "epoch", "val_loss")
    groups: tuple = ()
    notes: dict = field(default_factory=dict, compare=False, hash=False)

    def config(self, backend: str, mode: str) -> RunConfig:
        name, kwargs, interval, metric = self.schedule
        problem = get_problem(self.problem)
        return RunConfig(
            backend=backend,
            mode=mode,
            optimizer=self.optimizer,
            lr=self.lr,
            options=dict(self.options),
            groups=tuple(GroupSpec(prefixes, lr) for prefixes, lr in self.groups),
            schedule=ScheduleConfig(name, "torch", dict(kwargs), interval, metric),
            epochs=self.epochs,
            batch_size=problem.batch_size,
        )


def schedule(name: str, interval: str = "epoch", metric: str = "val_loss", **kwargs: Any):
    return (name, tuple(kwargs.items()), interval, metric)


# regression: 800 training rows in batches of 50 (16 steps an epoch);
# classification: 480 rows in batches of 60 (8 steps an epoch).
CASES = {
    "sgd-momentum-steplr": Case(
        "regression", "sgd", 0.05, 8, (("momentum", 0.9),), schedule("StepLR", step_size=3)
    ),
    "sgd-nesterov-onecycle": Case(
        "regression",
        "sgd",
        0.05,
        8,
        (("momentum", 0.9), ("nesterov", True), ("weight_decay", 1e-4)),
        schedule("OneCycleLR", "step", max_lr=0.02, total_steps=128),
    ),
    "adam-warm-restarts": Case(
        "regression",
        "adam",
        0.01,
        7,
        (),
        schedule("CosineAnnealingWarmRestarts", "step", T_0=20, T_mult=2, eta_min=1e-4),
    ),
    "rmsprop-plateau": Case(
        "regression",
        "rmsprop",
        0.002,
        8,
        (("momentum", 0.5), ("centered", True)),
        schedule("ReduceLROnPlateau", factor=0.5, patience=0, threshold=0.2),
    ),
    "rmsprop-centered-cosine": Case(
        "regression",
        "rmsprop",
        0.002,
        7,
        (("centered", True), ("weight_decay", 1e-4)),
        schedule("CosineAnnealingLR", "step", T_max=50, eta_min=1e-4),
    ),
    "adamw-onecycle-beta1-two-groups": Case(
        "classification",
        "adamw",
        0.01,
        13,
        (("weight_decay", 0.05),),
        schedule("OneCycleLR", "step", max_lr=[0.02, 0.005], total_steps=104),
        groups=((("0.",), 0.002),),
    ),
    "sgd-two-groups-steplr": Case(
        "classification",
        "sgd",
        0.1,
        13,
        (("momentum", 0.9), ("weight_decay", 5e-4)),
        schedule("StepLR", "step", step_size=40, gamma=0.5),
        groups=((("0.", "2."), 0.01),),
    ),
    "adam-amsgrad-plateau-train-loss": Case(
        "classification",
        "adam",
        0.01,
        13,
        (("amsgrad", True),),
        schedule("ReduceLROnPlateau", "epoch", "train_loss", factor=0.3, patience=0),
    ),
}


# Where OneFlow 0.9.0's own optimizers compute something else than torch's, measured
# (see docs/oneflow.md); these runs must keep failing the tolerance, or the
# difference has gone and the entry with it.
ONEFLOW_RMSPROP = (
    "OneFlow 0.9.0's RMSprop adds eps inside the square root, torch outside: "
    "losses 0.39% apart after 112 steps"
)
ONEFLOW_ADAM = (
    "OneFlow 0.9.0's Adam kernels read beta1 and beta2 as float32 (1 - 0.999 is 1.3e-5 "
    "off): 6.7e-6 apart after 6 steps, past rtol 1e-4 / atol 1e-6 within 104 steps here"
)
KNOWN_DIFFERENCES = {
    ("oneflow", "eager", "rmsprop-centered-cosine"): ONEFLOW_RMSPROP,
    ("oneflow", "graph", "rmsprop-centered-cosine"): ONEFLOW_RMSPROP,
    ("oneflow", "eager", "adamw-onecycle-beta1-two-groups"): ONEFLOW_ADAM,
    ("oneflow", "eager", "adam-amsgrad-plateau-train-loss"): ONEFLOW_ADAM,
}


@cache
def train(case_id: str, backend: str, mode: str) -> Run:
    """The case on one engine, as `dualtrain compare` runs it: a graph that trains
    in float32 only does so, an isolated graph runs in a watched child process."""
    case = CASES[case_id]
    problem = get_problem(case.problem)
    train_rows, val_rows = problem.data.split(problem.val_fraction, 0)
    config, _ = _engine_config(case.config("numpy", "eager"), backend, mode)
    return train_engine(config, problem.model, train_rows, val_rows)


def assert_engines_agree(reference: Run, run: Run, rtol: float = RTOL, atol: float = ATOL) -> None:
    """The one tolerance helper: identical lrs, close losses and final state."""
    ref_steps, steps = reference.trajectory.steps, run.trajectory.steps
    assert len(steps) == len(ref_steps) >= 100
    for a, b in zip(ref_steps, steps, strict=True):
        assert b["lr"] == a["lr"], f"step {a['step']}: lr {b['lr']} != {a['lr']}"
        assert b["momentum"] == a["momentum"], f"step {a['step']}: momentum differs"
    np.testing.assert_allclose(run.trajectory.losses, reference.trajectory.losses, rtol, atol)
    assert run.state.keys() == reference.state.keys()
    for name, value in reference.state.items():
        if name.endswith("num_batches_tracked"):
            # OneFlow's nn.Graph leaves the count at 0; BatchNorm reads it only when
            # its momentum is None, which the spec never sets.
            continue
        np.testing.assert_allclose(run.state[name], value, rtol, atol, err_msg=name)


@pytest.fixture(params=ENGINES, ids=["/".join(e) for e in ENGINES])
def engine(request) -> tuple[str, str]:
    return request.param


@pytest.mark.parametrize("case_id", list(CASES))
def test_engine_trains_like_the_numpy_reference(engine, case_id, request):
    known = KNOWN_DIFFERENCES.get((*engine, case_id))
    if known:
        request.applymarker(pytest.mark.xfail(reason=known, strict=True, raises=AssertionError))
    reference = train(case_id, "numpy", "eager")
    try:
        run = train(case_id, *engine)
    except CapabilityError as exc:  # a combination this engine cannot run: visible, with why
        pytest.skip(str(exc))
    assert not run.notes or all("crashed" in n for n in run.notes)
    assert_engines_agree(reference, run)
    # the runs learn something: the comparison is not between two flat lines
    assert reference.trajectory.losses[-1] < 0.7 * reference.trajectory.losses[0]


def test_the_schedule_really_moves_lr_and_momentum():
    cycled = train("sgd-nesterov-onecycle", "numpy", "eager").trajectory.steps
    assert len({s["lr"][0] for s in cycled}) > 100
    assert len({s["momentum"][0] for s in cycled}) > 100
    plateau = train("rmsprop-plateau", "numpy", "eager").trajectory.steps
    assert plateau[-1]["lr"][0] < plateau[0]["lr"][0]
    groups = train("sgd-two-groups-steplr", "numpy", "eager").trajectory.steps
    assert groups[0]["lr"] == [0.1, 0.01] and groups[-1]["lr"] == [0.025, 0.0025]


def test_engines_disagree_when_they_should():
    # The tolerance helper is not blind: another optimizer setting fails it.
    with pytest.raises(AssertionError):
        assert_engines_agree(
            train("sgd-momentum-steplr", "numpy", "eager"),
            train("sgd-nesterov-onecycle", "numpy", "eager"),
        )
