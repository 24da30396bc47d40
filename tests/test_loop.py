"""The training loop on the NumPy backend: schedules, data order, records, problems."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import dualtrain
from dualtrain import lr_scheduler
from dualtrain.data import batch_indices
from dualtrain.errors import ConfigError
from dualtrain.loop import RunConfig, ScheduleConfig, fit
from dualtrain.optim import GroupSpec
from dualtrain.problems import get_problem
from dualtrain.trajectory import Trajectory


class Groups:
    """An optimizer stand-in: what a PyTorch-API scheduler drives."""

    def __init__(self, lrs, momentum=0.9):
        self.defaults = {"lr": lrs[0], "momentum": momentum}
        self.param_groups = [{"lr": lr, "momentum": momentum} for lr in lrs]


def train_problem(name="regression", **settings):
    problem = get_problem(name)
    schedule = settings.pop("schedule", ScheduleConfig())
    train, val = problem.data.split(problem.val_fraction, 0)
    config = RunConfig(
        batch_size=settings.pop("batch_size", problem.batch_size), schedule=schedule, **settings
    )
    return fit(config, problem.model, train, val, weights=problem.weights)


def classic_lrs(make, lrs, n_epochs, per_epoch, interval):
    """lr per group and per training step from the stateful scheduler, stepped the
    classic way: after every epoch, or after every step."""
    opt = Groups(lrs)
    sched = make(opt)
    out = []
    for _ in range(n_epochs):
        for _ in range(per_epoch):
            out.append([g["lr"] for g in opt.param_groups])
            if interval == "step":
                sched.step()
        if interval == "epoch":
            sched.step()
    return out


# --- the lr the loop sets is the schedule engine's ----------------------------------------

TWO_GROUPS = (GroupSpec(("0.",), 0.01),)  # the first Linear at a lower lr


@pytest.mark.parametrize(
    ("name", "kwargs", "interval"),
    [
        ("StepLR", {"step_size": 3, "gamma": 0.5}, "epoch"),
        ("StepLR", {"step_size": 7, "gamma": 0.5}, "step"),
        ("CosineAnnealingWarmRestarts", {"T_0": 5, "T_mult": 2, "eta_min": 0.001}, "step"),
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": 96}, "step"),
        ("ExponentialLR", {"gamma": 0.8}, "epoch"),
    ],
)
def test_loop_lrs_equal_the_stateful_scheduler(name, kwargs, interval):
    epochs, per_epoch = 6, 16  # regression: 800 training rows, batches of 50
    run = train_problem(
        epochs=epochs,
        lr=0.05,
        groups=TWO_GROUPS,
        options={"momentum": 0.9},
        schedule=ScheduleConfig(name, "torch", kwargs, interval),
    )
    cls = getattr(lr_scheduler, name)
    want = classic_lrs(lambda o: cls(o, **kwargs), [0.05, 0.01], epochs, per_epoch, interval)
    got = [s["lr"] for s in run.trajectory.steps]
    assert got == want  # the very same floats
    assert {s["epoch"] for s in run.trajectory.steps} == set(range(epochs))
    assert [s["step"] for s in run.trajectory.steps] == list(range(epochs * per_epoch))


def test_one_cycle_momentum_is_recorded_and_reaches_the_optimizer():
    kwargs = {"max_lr": 0.1, "total_steps": 32, "base_momentum": 0.8, "max_momentum": 0.9}
    run = train_problem(
        epochs=2,
        options={"momentum": 0.9},
        schedule=ScheduleConfig("OneCycleLR", "torch", kwargs, "step"),
    )
    opt = Groups([0.05])
    sched = lr_scheduler.OneCycleLR(opt, **kwargs)
    for record in run.trajectory.steps:
        assert record["momentum"] == [opt.param_groups[0]["momentum"]]
        sched.step()
    assert run.trajectory.steps[0]["momentum"] == [0.9]
    # the momentum dips towards base_momentum while the lr peaks (at step 0.3 * 32 - 1)
    assert min(s["momentum"][0] for s in run.trajectory.steps) == pytest.approx(0.8, abs=1e-3)


def test_cyclic_base_lr_starts_a_sequence_as_torch_does():
    # CyclicLR sets the group's lr to its base_lr when built, so the ExponentialLR
    # after it in SequentialLR counts from 0.01, not from the optimizer's 0.05.
    members = [
        {"name": "CyclicLR", "kwargs": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}},
        {"name": "ExponentialLR", "kwargs": {"gamma": 0.5}},
    ]
    kwargs = {"schedulers": members, "milestones": [4]}
    run = train_problem(
        epochs=1,
        options={"momentum": 0.9},
        schedule=ScheduleConfig("SequentialLR", "torch", kwargs, "step"),
    )
    lrs = [s["lr"][0] for s in run.trajectory.steps[:7]]
    assert lrs == pytest.approx([0.01, 0.055, 0.1, 0.055, 0.01, 0.005, 0.0025], rel=1e-12)


@pytest.mark.parametrize("metric", ["val_loss", "train_loss"])
def test_plateau_is_fed_the_named_metric(metric):
    kwargs = {"factor": 0.5, "patience": 0, "threshold": 0.5}
    run = train_problem(
        epochs=6,
        lr=0.05,
        schedule=ScheduleConfig("ReduceLROnPlateau", "torch", kwargs, "epoch", metric),
    )
    opt = Groups([0.05])
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    for epoch in run.trajectory.epochs:
        lrs = {s["lr"][0] for s in run.trajectory.steps if s["epoch"] == epoch["epoch"]}
        assert lrs == {opt.param_groups[0]["lr"]}
        sched.step(epoch[metric])
    # with threshold 0.5 (rel) an epoch rarely improves enough: the lr did drop
    assert run.trajectory.steps[-1]["lr"][0] < 0.05


def test_a_one_row_batch_is_refused_with_batchnorm():
    model = dualtrain.mlp([2, 4, 1], batchnorm=True)
    x, y = np.zeros((11, 2)), np.zeros((11, 1))
    with pytest.raises(ConfigError, match="last batch of 1 row"):
        dualtrain.fit(model, x, y, batch_size=5, epochs=1)
    run = dualtrain.fit(model, x, y, batch_size=5, epochs=1, drop_last=True)
    assert len(run.trajectory.steps) == 2


def test_plateau_on_val_loss_needs_a_validation_split():
    problem = get_problem("linear")  # no validation rows
    config = RunConfig(schedule=ScheduleConfig("ReduceLROnPlateau"), batch_size=4, epochs=1)
    with pytest.raises(ConfigError, match="no validation split"):
        fit(config, problem.model, problem.data, None, weights=problem.weights)


# --- data order ------------------------------------------------------------------------


def test_batches_are_a_seeded_permutation_per_epoch():
    a = batch_indices(10, 4, epoch=3, seed=5)
    b = batch_indices(10, 4, epoch=3, seed=5)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(10))
    assert [len(x) for x in a] == [4, 4, 2]
    assert (
        np.concatenate(batch_indices(10, 4, epoch=4, seed=5)).tolist() != np.concatenate(a).tolist()
    )
    assert [len(x) for x in batch_indices(10, 4, 0, 0, drop_last=True)] == [4, 4]
    assert np.concatenate(batch_indices(10, 4, 0, 0, shuffle=False)).tolist() == list(range(10))


def test_the_same_run_twice_is_bit_identical():
    a = train_problem(epochs=2, options={"momentum": 0.9})
    b = train_problem(epochs=2, options={"momentum": 0.9})
    assert a.trajectory.losses == b.trajectory.losses
    assert all(np.array_equal(a.state[n], b.state[n]) for n in a.state)


# --- the built-in problems train -------------------------------------------------------


def test_linear_problem_converges_to_least_squares():
    problem = get_problem("linear")
    x, y = problem.data.x, problem.data.y
    w_star, *_ = np.linalg.lstsq(x, y, rcond=None)
    best = float(((x @ w_star - y) ** 2).sum())
    config = RunConfig(lr=0.005, epochs=5000, batch_size=4, shuffle=False)
    run = fit(config, problem.model, problem.data, None, weights=problem.weights)
    assert run.trajectory.losses[0] == 324.0  # w0 = [2, 1]: residuals 4, 2, -15, 7
    # one full-batch step by hand: w1 = w0 - lr * 2 X^T (X w0 - y)
    w1 = np.array([2.0, 1.0]) - 0.005 * 2 * x.T @ (x @ np.array([2.0, 1.0]) - y[:, 0])
    assert run.trajectory.losses[1] == pytest.approx(float(((x @ w1 - y[:, 0]) ** 2).sum()))
    assert best == pytest.approx(193.2)
    assert run.trajectory.losses[-1] == pytest.approx(best, rel=1e-6)
    assert np.allclose(run.state["0.weight"].reshape(-1), [-8.4, 10.0], atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_problem_reaches_its_stated_loss(seed):
    # The README's recipe: SGD 0.05 with momentum 0.9, StepLR(5, 0.5), 20 epochs.
    schedule = ScheduleConfig("StepLR", "torch", {"step_size": 5, "gamma": 0.5})
    run = train_problem(epochs=20, lr=0.05, options={"momentum": 0.9}, seed=seed, schedule=schedule)
    first, last = run.trajectory.epochs[0], run.trajectory.epochs[-1]
    assert first["val_loss"] > 1.5
    assert last["val_loss"] < 0.6  # the targets' variance is about 20


def test_classification_problem_reaches_its_stated_accuracy():
    run = train_problem("classification", epochs=30, optimizer="adam", lr=0.01)
    last = run.trajectory.epochs[-1]
    assert run.trajectory.epochs[0]["val_loss"] > 0.5
    assert last["val_loss"] < 0.1
    assert last["val_accuracy"] >= 0.95


# --- trajectories ----------------------------------------------------------------------


def test_trajectory_round_trips_through_json_and_csv(tmp_path):
    run = train_problem(
        epochs=2,
        groups=TWO_GROUPS,
        options={"momentum": 0.9},
        schedule=ScheduleConfig("OneCycleLR", "torch", {"max_lr": 0.1, "total_steps": 40}, "step"),
    )
    json_path, csv_path = run.trajectory.save(tmp_path / "out")
    back = Trajectory.load(json_path)
    assert back.steps == run.trajectory.steps and back.epochs == run.trajectory.epochs
    assert back.engine == "numpy/eager" and back.n_groups == 2
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "step,epoch,lr_0,lr_1,momentum_0,momentum_1,loss,time"
    assert len(rows) == 1 + 32
    first = rows[1].split(",")
    record = run.trajectory.steps[0]
    assert float(first[2]) == record["lr"][0] and float(first[6]) == record["loss"]
    assert json.loads(json_path.read_text())["meta"]["config"]["schedule"]["name"] == "OneCycleLR"


def test_loading_a_broken_trajectory_is_one_line(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text('{"engine": 1}')
    with pytest.raises(ConfigError, match="not a dualtrain trajectory") as info:
        Trajectory.load(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        Trajectory.load(tmp_path / "missing.json")


# --- the Python API ------------------------------------------------------------------


def test_fit_on_user_arrays_and_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    model = dualtrain.mlp([3, 1])
    weights = {"0.weight": np.zeros((1, 3)), "0.bias": np.zeros(1)}
    run = dualtrain.fit(model, x, y, weights=weights, lr=0.1, epochs=30, batch_size=16, seed=1)
    assert run.trajectory.losses[0] == pytest.approx(float(np.mean(y[:16] ** 2)), rel=0.8)
    assert run.trajectory.losses[-1] < 1e-3
    assert np.allclose(run.state["0.weight"], [[1.0, -2.0, 0.5]], atol=0.02)


def test_fit_starts_from_the_given_weights_exactly():
    x = np.array([[1.0], [2.0]])
    y = np.array([[3.0], [5.0]])
    weights = {"0.weight": [[2.0]], "0.bias": [1.0]}  # already the exact fit: zero loss
    run = dualtrain.fit(dualtrain.mlp([1, 1]), x, y, weights=weights, lr=0.1, epochs=2)
    assert run.trajectory.losses == [0.0, 0.0]


def test_compare_from_python_judges_engines():
    problem = get_problem("linear")
    result = dualtrain.compare(
        problem.model,
        problem.data.x,
        problem.data.y,
        weights=problem.weights,
        lr=0.001,
        epochs=3,
        batch_size=4,
        modes=["eager", "graph"],
    )
    assert result.passed
    assert [(r.engine, r.skipped is None) for r in result.results] == [
        ("numpy/eager", True),
        ("numpy/graph", False),
    ]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"optimizer": "lamb"}, ["lamb", "sgd"]),
        ({"epochs": -1}, ["epochs", "-1"]),
        ({"batch_size": 0}, ["batch_size", "0"]),
        ({"mode": "jit"}, ["mode", "jit"]),
        ({"dtype": "float16"}, ["dtype", "float16"]),
        ({"momentum": -0.5}, ["momentum", "-0.5"]),
        ({"epoch": 3}, ["epoch"]),
        ({"scheduler": "StepLR"}, ["StepLR", "step_size"]),
        ({"interval": "batch"}, ["interval", "batch"]),
        ({"scheduler": "ReduceLROnPlateau", "interval": "step"}, ["train_loss"]),
        ({"backend": "jax"}, ["jax", "numpy"]),
        ({"groups": [{"prefixes": ["9."], "lr": 0.1}]}, ["9."]),
    ],
)
def test_bad_options_are_one_line(kwargs, words):
    x, y = np.zeros((8, 2)), np.zeros((8, 1))
    with pytest.raises(ConfigError) as info:
        dualtrain.fit(dualtrain.mlp([2, 1]), x, y, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("model", "x", "y", "words"),
    [
        (dualtrain.mlp([3, 1]), np.zeros((4, 2)), np.zeros((4, 1)), ["2 features", "3"]),
        (dualtrain.mlp([2, 2]), np.zeros((4, 2)), np.zeros((4, 1)), ["(samples, 2)"]),
        (
            dualtrain.mlp([2, 3], loss="cross_entropy"),
            np.zeros((4, 2)),
            np.array([0, 1, 2, 3]),
            ["[0, 3)", "0..3"],
        ),
        (dualtrain.mlp([2, 3], loss="cross_entropy"), np.zeros((4, 2)), np.zeros(4), ["integer"]),
        (dualtrain.mlp([2, 1]), np.zeros((4, 2)), np.zeros((3, 1)), ["4 and 3"]),
        (dualtrain.mlp([2, 1]), np.full((4, 2), math.nan), np.zeros((4, 1)), ["NaN"]),
    ],
)
def test_data_the_model_cannot_take_is_refused(model, x, y, words):
    with pytest.raises(ConfigError) as info:
        dualtrain.fit(model, x, y, epochs=1)
    for word in words:
        assert word in str(info.value)
