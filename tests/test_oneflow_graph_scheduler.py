"""`dualtrain_oneflow.graph_scheduler`: any dualtrain scheduler in the user's own nn.Graph.

The lr a graph applied is read from the update: one float32 weight per param
group, plain SGD (no momentum), gradient exactly 1 and the weight reset to 0
before each call, so after the call the weight is -float32(lr). Graphs run in a
watched child process (`dualtrain.isolation`): OneFlow 0.9.0's graph runtime
crashes now and then on CPU, and a crash is retried, never a failure. Two
graphs in all: a fresh run, and one resumed mid-schedule.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from dualtrain import lr_scheduler as dt
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.isolation import run_in_child

flow = pytest.importorskip("oneflow")
graph_scheduler = pytest.importorskip("dualtrain_oneflow").graph_scheduler

STEPS = 12  # graph calls
TABLE = 10  # steps the tables cover: calls 10 and 11 must keep the last lr
COSINE = "0.5 * (1 + math.cos(math.pi * epoch / 7))"


def _probe(n):
    """A module whose loss is the sum of n scalar weights: each gets gradient 1."""

    class Probe(flow.nn.Module):
        def __init__(self):
            super().__init__()
            for g in range(n):
                setattr(self, f"w{g}", flow.nn.Parameter(flow.zeros(1)))

        def forward(self, x):
            total = flow.sum(x) * 0
            for g in range(n):
                total = total + flow.sum(getattr(self, f"w{g}"))
            return total

    return Probe()


def _schedulers(weights):
    """One scheduler of each kind OneFlow's graph refuses or has no class for."""
    w = iter(weights)
    lambdas = flow.optim.SGD([{"params": [next(w)], "lr": 0.1}, {"params": [next(w)], "lr": 0.3}])
    chained = flow.optim.SGD([next(w)], lr=0.2)
    sequential = flow.optim.SGD([next(w)], lr=0.4)
    modern = flow.optim.SGD([next(w)], lr=0.5)
    return [
        dt.LambdaLR(lambdas, [COSINE, lambda epoch: 0.9**epoch]),
        dt.ChainedScheduler(
            [dt.LinearLR(chained, start_factor=0.25, total_iters=4), dt.StepLR(chained, 3, 0.5)]
        ),
        dt.SequentialLR(
            sequential,
            [
                dt.ConstantLR(sequential, factor=0.5, total_iters=2),
                dt.ExponentialLR(sequential, 0.8),
            ],
            milestones=[3],
        ),
        dt.WarmupStableDecayLR(modern, warmup_steps=3, decay_steps=4, total_steps=TABLE),
    ]


N_WEIGHTS = 5  # the LambdaLR has two groups


def applied_and_eager(resume_at: int, heartbeat=None) -> tuple[np.ndarray, np.ndarray, list]:
    """(lr the graph applied, the schedulers' own eager lrs, checks), one column a group.

    The schedulers are first stepped `resume_at` times eagerly; the graph then
    starts at that step, as a graph restored from a checkpoint would.
    """
    probe = _probe(N_WEIGHTS)
    weights = [getattr(probe, f"w{g}") for g in range(N_WEIGHTS)]
    schedulers = _schedulers(weights)
    for _ in range(resume_at):
        for scheduler in schedulers:
            scheduler.step()
    before = [_lrs(s.optimizer) for s in schedulers]
    wrapped = [graph_scheduler(s, TABLE) for s in schedulers]
    # Wrapping neither steps the scheduler nor touches the optimizer's lrs.
    checks = [
        before == [_lrs(s.optimizer) for s in schedulers],
        [lr_sch.first_step for lr_sch in wrapped] == [resume_at] * len(wrapped),
    ]

    class UsersGraph(flow.nn.Graph):  # as a user writes one: their module, their optimizers
        def __init__(self):
            super().__init__()
            self.probe = probe
            for lr_sch in wrapped:
                self.add_optimizer(lr_sch.optimizer, lr_sch=lr_sch)

        def build(self, x):
            loss = self.probe(x)
            loss.backward()
            return loss

    graph = UsersGraph()
    if resume_at:
        graph.load_state_dict(
            {**graph.state_dict(), "System-Train-TrainStep": flow.tensor([resume_at])}
        )
    applied, x = [], flow.zeros(1)
    for _ in range(STEPS):
        with flow.no_grad():
            for w in weights:
                w.fill_(0.0)
        graph(x).numpy()
        applied.append([-float(w.numpy()[0]) for w in weights])
        if heartbeat:
            heartbeat()
    eager = []  # the same schedulers, stepped eagerly from where they were wrapped
    for _ in range(STEPS):
        eager.append([lr for s in schedulers for lr in _lrs(s.optimizer)])
        for scheduler in schedulers:
            scheduler.step()
    return np.array(applied, dtype=np.float64), np.array(eager), checks


def _lrs(optimizer) -> list[float]:
    return [float(group["lr"]) for group in optimizer.param_groups]


def _in_child(resume_at: int):
    result, _ = run_in_child(functools.partial(applied_and_eager, resume_at), "graph_scheduler")
    return result


def _expected(eager: np.ndarray) -> np.ndarray:
    """float32 of the eager lr; past the table, its last entry."""
    held = np.concatenate([eager[:TABLE], np.repeat(eager[TABLE - 1 : TABLE], STEPS - TABLE, 0)])
    return held.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("resume_at", [0, 4])
def test_the_graph_applies_float32_of_the_dualtrain_lr(resume_at):
    applied, eager, checks = _in_child(resume_at)
    assert checks == [True, True]
    # Bit for bit: the weight after one step from 0 with gradient 1 is exactly -float32(lr).
    np.testing.assert_array_equal(applied, _expected(eager))
    # The schedules really move inside the table (no constant table passes by luck).
    assert all(len(set(column[:TABLE])) > 2 for column in eager.T)
    if resume_at == 0:
        # Independent of dualtrain: the text lambda and 0.9 ** epoch worked out in Python.
        by_hand = [
            [0.1 * (0.5 * (1 + math.cos(math.pi * e / 7))), 0.3 * 0.9**e] for e in range(TABLE)
        ]
        np.testing.assert_array_equal(applied[:TABLE, :2], np.float32(by_hand).astype(np.float64))


# --- without a graph ---------------------------------------------------------------------
# Schedulers stepped eagerly here are OneFlow-flavoured, as a OneFlow user would build them.


def _optimizer(*lrs):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(1))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, momentum=0.9)


def test_tables_start_at_the_scheduler_position_and_leave_it_alone():
    optimizer = _optimizer(0.1, 0.2)
    scheduler = dt.StepLR(optimizer, step_size=2, gamma=0.5, flavor="oneflow")
    scheduler.step()
    wrapped = graph_scheduler(scheduler, 4)
    # lrs after 1, 2, 3, 4 steps of StepLR(2, 0.5), by hand.
    assert wrapped.tables == [[0.1, 0.05, 0.05, 0.025], [0.2, 0.1, 0.1, 0.05]]
    assert wrapped.first_step == 1 and wrapped.lrs_at(0) == wrapped.lrs_at(1) == [0.1, 0.2]
    assert wrapped.lrs_at(4) == [0.025, 0.05] and wrapped.lrs_at(99) == [0.025, 0.05]
    assert scheduler.last_epoch == 1 and _lrs(optimizer) == [0.1, 0.2]


def test_the_conf_follows_the_kernels_lookup():
    from oneflow.core.job.learning_rate_schedule_conf_pb2 import LearningRateDecayConf

    optimizer = _optimizer(1.0)
    scheduler = dt.MultiStepLR(optimizer, milestones=[3, 5], gamma=0.1, flavor="oneflow")
    for _ in range(2):
        scheduler.step()
    wrapped = graph_scheduler(scheduler, 6)
    conf = LearningRateDecayConf()
    wrapped._generate_conf_for_graph(conf)
    boundaries = list(conf.piecewise_constant_conf.boundaries)
    values = list(conf.piecewise_constant_conf.values)

    def kernel(step):  # OneFlow's PiecewiseConstantLearningRate, read in its source
        return values[next((i for i, b in enumerate(boundaries) if step <= b), len(boundaries))]

    # MultiStepLR([3, 5], 0.1) from 1.0, by hand: 1 until step 3, 0.1 until step 5, then 0.01.
    assert [kernel(step) for step in range(2, 10)] == [1.0, 0.1, 0.1] + [0.1**2] * 5
    assert len(values) == 3  # runs of equal lrs share one entry


def test_the_graph_reads_what_oneflow_own_schedulers_offer():
    optimizer = _optimizer(0.1, 0.2)
    scheduler = dt.ExponentialLR(optimizer, gamma=0.5, flavor="oneflow")
    wrapped = graph_scheduler(scheduler, 3)
    assert isinstance(wrapped, flow.nn.optimizer.lr_scheduler.LRScheduler)
    assert wrapped.optimizer is optimizer and wrapped.verbose is False
    assert "GraphScheduler(ExponentialLR, total_steps=3)" == repr(wrapped)
    # Eagerly, it is the scheduler it wraps.
    wrapped.step()
    assert scheduler.last_epoch == wrapped.last_step == 1
    assert wrapped.get_last_lr() == scheduler.get_last_lr() == [0.05, 0.1]
    assert wrapped.base_lrs == scheduler.base_lrs == [0.1, 0.2]


@pytest.mark.parametrize("total_steps", [0, -3, 2.0, True, "10", None])
def test_total_steps_must_be_a_positive_int(total_steps):
    scheduler = dt.StepLR(_optimizer(0.1), step_size=2)
    with pytest.raises(
        ConfigError, match=f"total_steps must be a positive int, got {total_steps!r}"
    ):
        graph_scheduler(scheduler, total_steps)


def test_what_cannot_be_tabulated_is_refused_in_one_line():
    optimizer = _optimizer(0.1)

    class Groups:  # an optimizer that is not OneFlow's
        param_groups = [{"lr": 0.1}]

    cases = [
        (dt.ReduceLROnPlateau(optimizer), CapabilityError, "ReduceLROnPlateau decides its lrs"),
        (flow.optim.lr_scheduler.ReduceLROnPlateau(optimizer), CapabilityError, "metrics"),
        (dt.StepLR(Groups(), 2), ConfigError, "built on a Groups, not a OneFlow optimizer"),
        (dt.OneCycleLR(optimizer, max_lr=1.0, total_steps=10), CapabilityError, "moves momentum"),
        (object(), ConfigError, "expected a dualtrain scheduler, got object"),
    ]
    for scheduler, error, piece in cases:
        with pytest.raises(error) as info:
            graph_scheduler(scheduler, 5)
        assert piece in str(info.value) and "\n" not in str(info.value)
