"""What is particular to the OneFlow backend: the lr nn.Graph applies, crash
isolation, and a port from torch that trains the same.

nn.Graph runs happen in child processes (`dualtrain.isolation`): OneFlow 0.9.0's
graph runtime crashes now and then on CPU, and a crash must not take pytest down.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

import dualtrain
from dualtrain.backend import register_backend, unregister_backend
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.isolation import EngineCrashed, run_in_child
from dualtrain.loop import RunConfig, ScheduleConfig, Scheduler, train_engine, with_overrides
from dualtrain.problems import get_problem
from dualtrain_numpy import NumpyBackend

# --- the lr inside the graph -------------------------------------------------------------


def graph_applied_lrs(
    tables: list[list[float]], native=None, base_lrs=None, heartbeat=None
) -> np.ndarray:
    """lr[step][group] as the graph applies it, read from the update.

    One float32 weight per group, plain SGD, gradient exactly 1 and the weight
    reset to 0 before each call: after the step the weight is -float32(lr).
    `native` builds one of OneFlow's own schedulers instead of the tables, over
    an optimizer whose groups start at `base_lrs`.
    """
    import oneflow as flow

    from dualtrain_oneflow.graph import LrTables, TrainGraph

    class Probe(flow.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n
            for g in range(n):
                setattr(self, f"w{g}", flow.nn.Parameter(flow.zeros(1)))

        def forward(self, x):
            total = flow.sum(x) * 0
            for g in range(self.n):
                total = total + flow.sum(getattr(self, f"w{g}"))
            return total

    class Identity(flow.nn.Module):
        def forward(self, out, y):
            return out

    probe = Probe(len(tables))
    weights = [getattr(probe, f"w{g}") for g in range(len(tables))]
    starts = base_lrs or [table[0] for table in tables]
    groups = [{"params": [w], "lr": lr} for w, lr in zip(weights, starts, strict=True)]
    optimizer = flow.optim.SGD(groups)
    scheduler = native(optimizer) if native else LrTables(optimizer, tables)
    graph = TrainGraph(probe, Identity(), optimizer, scheduler)
    applied = []
    x = flow.zeros(1)
    for _ in range(len(tables[0])):
        with flow.no_grad():
            for w in weights:
                w.fill_(0.0)
        graph(x, x)
        applied.append([-float(w.numpy()[0]) for w in weights])
        if heartbeat:
            heartbeat()
    return np.array(applied)


def in_child(function, *args):
    """function(*args, heartbeat) in a watched child process."""
    result, _ = run_in_child(functools.partial(function, *args), "probe")
    return result


def core_tables(name, kwargs, base_lrs, steps, flavor="torch") -> list[list[float]]:
    """Every group's lr per step, as the loop plans them for a graph."""
    scheduler = Scheduler(ScheduleConfig(name, flavor, kwargs, "step"), base_lrs)
    plan = scheduler.plan((1, steps), per_step=True)
    return [plan.table(g) for g in range(len(base_lrs))]


SCHEDULES = {
    "StepLR": ("StepLR", {"step_size": 3, "gamma": 0.5}, "torch"),
    "LambdaLR": ("LambdaLR", {"lr_lambda": "0.9 ** epoch"}, "torch"),
    "WarmRestarts": ("CosineAnnealingWarmRestarts", {"T_0": 4, "T_mult": 2}, "torch"),
    "OneCycle-no-momentum": (
        "OneCycleLR",
        {"max_lr": [0.3, 0.1], "total_steps": 30, "cycle_momentum": False},
        "torch",
    ),
    "WarmupStableDecay": (
        "WarmupStableDecayLR",
        {"total_steps": 30, "warmup_steps": 5, "decay_steps": 10, "decay": "1-sqrt"},
        "torch",
    ),
    "Noisy": (
        "NoisyLR",
        {"scheduler": {"name": "StepLR", "kwargs": {"step_size": 3}}, "noise_range": 2},
        "torch",
    ),
    "Sequential-mixed-rescaling": (
        "SequentialLR",
        {
            "schedulers": [
                {"name": "LinearLR", "kwargs": {"start_factor": 0.2, "total_iters": 5}},
                {"name": "StepLR", "kwargs": {"step_size": 4, "gamma": 0.5}},
                {"name": "CosineAnnealingLR", "kwargs": {"T_max": 10}},
            ],
            "milestones": [5, 12],
            "interval_rescaling": [True, False],
        },
        "oneflow",
    ),
}


@pytest.mark.parametrize("key", list(SCHEDULES))
def test_the_graph_applies_the_core_lr_rounded_to_float32(key):
    name, kwargs, flavor = SCHEDULES[key]
    tables = core_tables(name, kwargs, [0.1, 0.03], 30, flavor)
    applied = in_child(graph_applied_lrs, tables, None, None)
    expected = np.array(tables, dtype=np.float32).T
    assert applied.shape == (30, 2)
    np.testing.assert_array_equal(applied, expected)
    assert len(set(expected[:, 0])) > 3  # the lr really moves


def test_oneflow_own_graph_schedulers_are_only_close():
    # For contrast: OneFlow's own SequentialLR with mixed interval_rescaling, in
    # its graph, against its own eager values (dualtrain's oneflow flavour equals
    # those; see tests/frameworks).
    import oneflow as flow

    name, kwargs, flavor = SCHEDULES["Sequential-mixed-rescaling"]
    tables = core_tables(name, kwargs, [0.1], 30, flavor)

    applied = in_child(graph_applied_lrs, tables, _native_sequential, [0.1])
    eager = np.array(tables[0], dtype=np.float32)
    worst = np.max(np.abs(applied[:, 0] - eager) / eager)
    assert worst > 0.05, worst  # OneFlow's graph drifts from its own eager lrs here
    assert flow.__version__.startswith("0.9")


def _native_sequential(optimizer):
    import oneflow as flow

    s = flow.optim.lr_scheduler
    members = [
        s.LinearLR(optimizer, start_factor=0.2, total_iters=5),
        s.StepLR(optimizer, step_size=4, gamma=0.5),
        s.CosineAnnealingLR(optimizer, T_max=10),
    ]
    return s.SequentialLR(optimizer, members, milestones=[5, 12], interval_rescaling=[True, False])


def test_piecewise_tables_are_compressed():
    from dualtrain_oneflow.graph import piecewise

    table = [0.1] * 5 + [0.05] * 5 + [0.025] * 3
    assert piecewise(table) == ([4, 9], [0.1, 0.05, 0.025])
    assert piecewise([0.3]) == ([], [0.3])


# --- what the graph refuses, before it starts ------------------------------------------


def regression_config(**changes):
    problem = get_problem("regression")
    train, val = problem.data.split(problem.val_fraction, 0)
    settings = {"backend": "oneflow", "mode": "graph", "dtype": "float32", "epochs": 1}
    config = RunConfig(**{**settings, **changes})
    return config, problem.model, train, val


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"schedule": ScheduleConfig("ReduceLROnPlateau")}, ["ReduceLROnPlateau", "eager"]),
        (
            {"schedule": ScheduleConfig("OneCycleLR", "torch", {"max_lr": 0.1, "total_steps": 16})},
            ["OneCycleLR cycles momentum"],
        ),
        ({"dtype": "float64"}, ["float32", "float64"]),
        ({"batch_size": 64}, ["last batch of 32", "drop_last"]),
        ({"optimizer": "rmsprop", "options": {"momentum": 0.5}}, ["RMSprop momentum=0.5"]),
        ({"options": {"momentum": 0.9, "dampening": 0.1}}, ["dampening=0.1"]),
    ],
)
def test_what_the_graph_cannot_run_is_one_line(changes, words):
    config, model, train, val = regression_config(**changes)
    with pytest.raises(CapabilityError) as info:
        train_engine(config, model, train, val)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# --- crash isolation ---------------------------------------------------------------------


class CrashingGraph(NumpyBackend):
    """The NumPy reference posing as a graph backend whose graph crashes.

    The environment says how: DUALTRAIN_TEST_CRASH=<marker file>:<times>:<how>.
    """

    name = "crashing"
    supports_graph = True
    isolate_graph = True

    def compile_step(self, model, optimizer, plan):
        step = self.eager_step(model, optimizer)
        marker, times, how = os.environ["DUALTRAIN_TEST_CRASH"].split(":")
        marker = Path(marker)
        crashes = int(marker.read_text()) if marker.exists() else 0
        if crashes < int(times):
            marker.write_text(str(crashes + 1))
            if how == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            if how == "error":
                raise ValueError("a wrong setting, not a crash")
        return step


class CrashingMidRun(NumpyBackend):
    """Crashes once, at the first step after a recovery checkpoint exists in the
    temporary folder DUALTRAIN_TEST_CRASH_AT names."""

    name = "crashing-mid-run"
    supports_graph = True
    isolate_graph = True
    graph_crashes_per_step = 0.05  # a recovery checkpoint every 100 steps or fewer

    def compile_step(self, model, optimizer, plan):
        step = self.eager_step(model, optimizer)
        folder = Path(os.environ["DUALTRAIN_TEST_CRASH_AT"])
        marker = folder / "marker"

        def crashing(x, y):
            if not marker.exists() and any(folder.glob("dualtrain-recovery-*/step-*")):
                marker.write_text("crashed")
                os.kill(os.getpid(), signal.SIGSEGV)
            return step(x, y)

        return crashing


def test_a_crash_mid_run_goes_on_from_the_last_recovery_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALTRAIN_TEST_CRASH_AT", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run keeps them
    register_backend(CrashingMidRun)
    try:
        problem = get_problem("linear")  # one step an epoch
        config = RunConfig(
            backend="crashing-mid-run", mode="graph", lr=0.001, epochs=250, batch_size=4,
            shuffle=False,
        )  # fmt: skip
        run = train_engine(config, problem.model, problem.data, None, problem.weights)
    finally:
        unregister_backend("crashing-mid-run")
    [note] = run.notes
    found = re.fullmatch(
        r"crashing-mid-run/graph: attempt 1 crashed \(killed by SIGSEGV\) after ~\d+ steps, "
        r"[\d.]+ s in, retrying from step (\d+)",
        note,
    )
    assert found and int(found.group(1)) > 0, note
    plain = with_overrides(config, backend="numpy", mode="eager")
    reference = train_engine(plain, problem.model, problem.data, None, problem.weights)
    assert run.trajectory.losses == reference.trajectory.losses  # as if it never crashed
    assert len(run.trajectory.steps) == 250


def crash_run(tmp_path, monkeypatch, times, how):
    monkeypatch.setenv("DUALTRAIN_TEST_CRASH", f"{tmp_path / 'crashes'}:{times}:{how}")
    problem = get_problem("linear")
    config = RunConfig(mode="graph", lr=0.001, epochs=3, batch_size=4, shuffle=False)
    job = functools.partial(_fit_with, config, problem)
    return run_in_child(job, "crashing/graph", retries=2)


def _fit_with(config, problem, heartbeat):
    from dualtrain.loop import fit

    return fit(config, problem.model, problem.data, None, problem.weights, CrashingGraph())


def test_a_crash_is_retried_and_reported(tmp_path, monkeypatch):
    run, notes = crash_run(tmp_path, monkeypatch, times=1, how="segv")
    [note] = notes
    assert re.fullmatch(
        r"crashing/graph: attempt 1 crashed \(killed by SIGSEGV\) after ~0 steps, [\d.]+ s in, "
        r"retrying",
        note,
    )
    assert run.trajectory.losses[0] == 324.0  # the retry trained from the start
    assert (tmp_path / "crashes").read_text() == "1"


def test_a_python_error_is_not_retried(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="a wrong setting, not a crash"):
        crash_run(tmp_path, monkeypatch, times=1, how="error")
    assert (tmp_path / "crashes").read_text() == "1"


def test_crashing_every_time_gives_up_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(EngineCrashed) as info:
        crash_run(tmp_path, monkeypatch, times=5, how="segv")
    assert str(info.value).startswith("crashing/graph crashed on 3 attempts: ")
    assert str(info.value).count("SIGSEGV") == 3
    assert isinstance(info.value, ConfigError)  # the command exits 2 with this line


# --- a port from torch trains the same --------------------------------------------------


def test_a_torch_training_ported_to_oneflow_trains_the_same():
    # Written once, the way a torch user would: a model, SGD with Nesterov
    # momentum, a cosine schedule stepped every batch. dualtrain runs it on both
    # frameworks from the same weights and batches; torch is the reference.
    problem = get_problem("classification")
    model = dualtrain.mlp([2, 32, 32, 3], activation="relu", loss="cross_entropy")
    result = dualtrain.compare(
        model,
        problem.data.x,
        problem.data.y,
        backends=["torch", "oneflow"],
        modes=["eager"],
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        scheduler="CosineAnnealingLR",
        scheduler_args={"T_max": 100},
        interval="step",
        epochs=10,
        batch_size=60,
    )
    assert [r.engine for r in result.results] == ["torch/eager", "oneflow/eager"]
    assert result.passed, [(r.engine, r.loss_max_rel_diff) for r in result.results]
    oneflow = result.results[1]
    assert oneflow.lr_max_diff == 0.0
    assert oneflow.loss_max_rel_diff < 1e-5
    losses = oneflow.run.trajectory.losses
    assert len(losses) == 100 and losses[-1] < 0.5 * losses[0]
    assert math.isfinite(oneflow.param_max_rel_diff)


# --- optimizer state in and out of the graph ---------------------------------------------


def eager_then_graph(optimizer_name, heartbeat=None):
    """3 eager steps, state out; a new model and graph, state in; 3 graph steps.
    Against 6 eager steps from the same start: the losses and final state."""
    from dualtrain.backend import get_backend
    from dualtrain.model import init_weights, mlp
    from dualtrain.optim import OptimizerSpec

    backend, spec = get_backend("oneflow"), mlp([3, 4, 1])
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 3)), rng.normal(size=(8, 1))) for _ in range(6)]
    opt_spec = OptimizerSpec(
        optimizer_name, 0.05, {"momentum": 0.9} if optimizer_name == "sgd" else {}
    )
    plan = Scheduler(ScheduleConfig(), [0.05]).plan((1, 6), per_step=True)
    plan = dataclasses.replace(plan, first_step=3)  # the graph goes on from step 3

    def fresh(weights):
        model = backend.build(spec, "float32", "cpu")
        backend.load_state(model, weights)
        return model, backend.make_optimizer(model, opt_spec)

    model, optimizer = fresh(init_weights(spec, 0))
    step = backend.eager_step(model, optimizer)
    straight = [step(x, y) for x, y in batches]

    model, optimizer = fresh(init_weights(spec, 0))
    step = backend.eager_step(model, optimizer)
    split = [step(x, y) for x, y in batches[:3]]
    weights, state = backend.read_state(model), backend.optimizer_state(optimizer)
    model2, optimizer2 = fresh(weights)
    backend.load_optimizer_state(optimizer2, state)
    step = backend.compile_step(model2, optimizer2, plan)
    split += [step(x, y) for x, y in batches[3:]]
    final = backend.optimizer_state(optimizer2)
    return straight, split, state, final


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_state_moves_between_eager_and_graph(optimizer):
    straight, split, middle, final = in_child(eager_then_graph, optimizer)
    np.testing.assert_allclose(split, straight, rtol=1e-6)
    assert int(middle["0.weight/step"]) == 3 and int(final["0.weight/step"]) == 6
    slot = "momentum_buffer" if optimizer == "sgd" else "exp_avg"  # torch's names
    assert f"0.weight/{slot}" in middle and f"0.weight/{slot}" in final


# --- OneFlow's own graph schedulers against the oneflow flavour --------------------------

NATIVE = {
    "StepLR": {"step_size": 4, "gamma": 0.5},
    "ExponentialLR": {"gamma": 0.9},
    "CosineAnnealingLR": {"T_max": 12},
    "PolynomialLR": {"decay_batch": 10, "end_learning_rate": 0.001, "power": 2.0},
    "CosineDecayLR": {"decay_steps": 10, "alpha": 0.1},
    "LinearLR": {"start_factor": 0.25, "total_iters": 8},
}


def _native(name, kwargs, optimizer):
    import oneflow as flow

    return getattr(flow.optim.lr_scheduler, name)(optimizer, **kwargs)


@pytest.mark.parametrize("name", list(NATIVE))
def test_oneflow_own_graph_lrs_are_within_an_ulp_of_the_oneflow_flavour(name):
    tables = core_tables(name, NATIVE[name], [0.1], 20, flavor="oneflow")
    native = functools.partial(_native, name, NATIVE[name])
    applied = in_child(graph_applied_lrs, tables, native, [0.1])
    ours = np.array(tables[0], dtype=np.float32)
    ulps = np.abs(applied[:, 0].astype(np.float32).view(np.int32) - ours.view(np.int32))
    assert ulps.max() <= 1, (name, ulps)
    assert len(set(ours)) > 2
