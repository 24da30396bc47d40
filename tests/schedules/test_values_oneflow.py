"""OneFlow-flavour schedule values (OneFlow 0.9 semantics), derived by hand,
and ReduceLROnPlateau, whose rule is the same in both frameworks.

Every expectation below is written out from the schedule's documented formula,
or as a literal list worked out on paper; the engine is never the source of an
expected value.
"""

from __future__ import annotations

import math
import re

import pytest

from dualtrain.errors import ConfigError
from dualtrain.lr_scheduler import LRScheduler
from dualtrain.schedules import build_schedule

REL = 1e-12


def member(name, **kwargs):
    return {"name": name, "kwargs": kwargs}


def run(name, kwargs, steps, base=1.0, flavor="oneflow", n_groups=1, group=0):
    schedules = build_schedule(name, flavor, kwargs, n_groups)
    assert len(schedules) == n_groups
    return [schedules[group].lr(t, base) for t in range(steps)]


def cosine(low, high, t, period):
    """high at t=0, low at t=period: low + (high - low) * (1 + cos(pi t / period)) / 2."""
    return low + (high - low) * (1 + math.cos(math.pi * t / period)) / 2


def cosine_decay(t, decay_steps, alpha):
    """CosineDecayLR's factor: (1 - alpha) * (1 + cos(pi t / D)) / 2 + alpha, alpha from D on."""
    if t >= decay_steps:
        return alpha
    return (1 - alpha) * (1 + math.cos(math.pi * t / decay_steps)) / 2 + alpha


# (cycle index, step in cycle, cycle length) for T_0=2, T_mult=2 (2, 4, 8, 16 steps)
# and for T_0=1, T_mult=3 (1, 3, 9, 27 steps), worked out by hand.
CYC_2_2 = [(0, c, 2) for c in range(2)] + [(1, c, 4) for c in range(4)]
CYC_2_2 += [(2, c, 8) for c in range(8)] + [(3, 0, 16), (3, 1, 16)]
CYC_1_3 = [(0, 0, 1)] + [(1, c, 3) for c in range(3)] + [(2, c, 9) for c in range(9)]
CYC_1_3 += [(3, 0, 27), (3, 1, 27)]

# OneFlow PolynomialLR with cycle=True: step 0 counts as 1 and the horizon is
# D * ceil(t / D). Remaining fraction (1 - t / horizon) for D=4 and for D=3:
CYCLE_D4 = [3 / 4, 3 / 4, 2 / 4, 1 / 4, 0 / 4, 3 / 8, 2 / 8, 1 / 8, 0 / 8, 3 / 12]
CYCLE_D3 = [2 / 3, 2 / 3, 1 / 3, 0 / 3, 2 / 6, 1 / 6, 0 / 6, 2 / 9, 1 / 9]

ONEFLOW = [
    # MultiStepLR: base * gamma ** (milestones passed), strictly increasing milestones
    pytest.param("MultiStepLR", {"milestones": [2, 5], "gamma": 0.5}, 0.4,
                 [0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1], id="MultiStepLR-2-5"),
    pytest.param("MultiStepLR", {"milestones": [3]}, 1.0,  # default gamma 0.1
                 [1.0, 1.0, 1.0, 0.1, 0.1], id="MultiStepLR-default-gamma"),
    pytest.param("MultiStepLR", {"milestones": [0, 4], "gamma": 0.5}, 1.0,
                 [0.5, 0.5, 0.5, 0.5, 0.25, 0.25], id="MultiStepLR-zero"),
    pytest.param("MultiStepLR", {"milestones": []}, 0.7, [0.7] * 4, id="MultiStepLR-none"),
    # LinearLR: base * (s + (e - s) * t / T) before T, base * e from T on
    pytest.param("LinearLR", {"start_factor": 0.0, "end_factor": 1.0, "total_iters": 4}, 1.0,
                 [0.0, 0.25, 0.5, 0.75, 1.0, 1.0], id="LinearLR-from-zero"),
    # total_iters=0: end_factor at once (torch would keep start_factor)
    pytest.param("LinearLR", {"start_factor": 0.5, "end_factor": 0.8, "total_iters": 0}, 1.0,
                 [0.8] * 5, id="LinearLR-zero-iters"),
    pytest.param("LinearLR", {"start_factor": 1.0, "end_factor": 0.2, "total_iters": 4}, 2.0,
                 [2.0, 1.6, 1.2, 0.8, 0.4, 0.4, 0.4], id="LinearLR-down"),
    pytest.param("LinearLR", {}, 0.3,  # defaults 1/3 -> 1 over 5 steps
                 [0.3 * (1 / 3 + (2 / 3) * t / 5) for t in range(5)] + [0.3] * 3,
                 id="LinearLR-defaults"),
    # ConstantLR: base * factor before total_iters, base from then on
    pytest.param("ConstantLR", {"factor": 0.5, "total_iters": 3}, 0.2,
                 [0.1, 0.1, 0.1, 0.2, 0.2], id="ConstantLR-3"),
    pytest.param("ConstantLR", {"factor": 0.25, "total_iters": 0}, 1.0,  # no factor at all
                 [1.0] * 5, id="ConstantLR-zero-iters"),
    pytest.param("ConstantLR", {"factor": 0.0, "total_iters": 2}, 1.0,
                 [0.0, 0.0, 1.0, 1.0, 1.0], id="ConstantLR-zero-factor"),
    pytest.param("ConstantLR", {}, 0.3, [0.1] * 5 + [0.3] * 3, id="ConstantLR-defaults"),
    # PolynomialLR: (base - end) * (1 - min(t, D) / D) ** power + end
    pytest.param("PolynomialLR", {"decay_batch": 4}, 0.1,  # end_learning_rate 1e-4
                 [(0.1 - 1e-4) * (1 - min(t, 4) / 4) + 1e-4 for t in range(7)],
                 id="PolynomialLR-defaults"),
    pytest.param("PolynomialLR", {"decay_batch": 5, "end_learning_rate": 0.01, "power": 2.0},
                 1.0, [0.99 * (1 - min(t, 5) / 5) ** 2 + 0.01 for t in range(8)],
                 id="PolynomialLR-square"),
    pytest.param("PolynomialLR", {"decay_batch": 4, "end_learning_rate": 0.0, "cycle": True},
                 1.0, CYCLE_D4, id="PolynomialLR-cycle"),
    pytest.param("PolynomialLR", {"decay_batch": 3, "end_learning_rate": 0.1, "power": 2.0,
                                  "cycle": True},
                 1.0, [0.9 * f**2 + 0.1 for f in CYCLE_D3], id="PolynomialLR-cycle-power"),
    # CosineAnnealingWarmRestarts: base * decay_rate ** cycle, eta_min from restart_limit on
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 3, "decay_rate": 0.5}, 1.0,
                 [cosine(0.0, 0.5 ** (t // 3), t % 3, 3) for t in range(10)], id="CAWR-decay"),
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 2, "T_mult": 2, "eta_min": 0.01,
                                                 "decay_rate": 0.5, "restart_limit": 3}, 1.0,
                 [cosine(0.01, 0.5**k, c, n) if k < 3 else 0.01 for k, c, n in CYC_2_2],
                 id="CAWR-mult2-limit3"),
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 4, "eta_min": 0.1, "restart_limit": 1},
                 1.0, [cosine(0.1, 1.0, t, 4) for t in range(4)] + [0.1] * 4, id="CAWR-limit1"),
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 1, "T_mult": 3, "eta_min": 0.05}, 1.0,
                 [cosine(0.05, 1.0, c, n) for _, c, n in CYC_1_3], id="CAWR-mult3-unlimited"),
    # SequentialLR: interval_rescaling False -> the next member sees the global step
    pytest.param("SequentialLR", {"schedulers": [member("ConstantLR", factor=0.1, total_iters=2),
                                                 member("ExponentialLR", gamma=0.9)],
                                  "milestones": [2]}, 1.0,
                 [0.1, 0.1] + [0.9**t for t in range(2, 8)], id="SequentialLR-global"),
    pytest.param("SequentialLR", {"schedulers": [member("ConstantLR", factor=0.1, total_iters=2),
                                                 member("ExponentialLR", gamma=0.9)],
                                  "milestones": [2], "interval_rescaling": True}, 1.0,
                 [0.1, 0.1] + [0.9 ** (t - 2) for t in range(2, 8)], id="SequentialLR-rescaled"),
    pytest.param("SequentialLR", {"schedulers": [
                     member("ConstantLR", factor=0.1, total_iters=2),
                     member("ExponentialLR", gamma=0.9), member("StepLR", step_size=2, gamma=0.5)],
                     "milestones": [2, 5], "interval_rescaling": [False, True]}, 0.5,
                 [0.05, 0.05] + [0.5 * 0.9**t for t in range(2, 5)]
                 + [0.5 * 0.5 ** ((t - 5) // 2) for t in range(5, 10)], id="SequentialLR-mixed"),
    pytest.param("SequentialLR", {"schedulers": [
                     member("ConstantLR", factor=0.1, total_iters=2),
                     member("ExponentialLR", gamma=0.9), member("StepLR", step_size=2, gamma=0.5)],
                     "milestones": [2, 5], "interval_rescaling": [True, False]}, 0.5,
                 [0.05, 0.05] + [0.5 * 0.9 ** (t - 2) for t in range(2, 5)]
                 + [0.5 * 0.5 ** (t // 2) for t in range(5, 10)], id="SequentialLR-mixed2"),
    pytest.param("SequentialLR", {"schedulers": [
                     member("LinearLR", start_factor=0.0, total_iters=3),
                     member("CosineDecayLR", decay_steps=4)], "milestones": [3],
                     "interval_rescaling": True}, 1.0,
                 [0.0, 1 / 3, 2 / 3] + [cosine(0.0, 1.0, t, 4) for t in range(4)] + [0.0, 0.0],
                 id="SequentialLR-linear-cosinedecay"),
    # ChainedScheduler: closed forms in turn, each on the previous member's lr
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("ConstantLR", factor=0.1, total_iters=2),
                     member("ExponentialLR", gamma=0.9)]}, 2.0,
                 [2.0 * (0.1 if t < 2 else 1.0) * 0.9**t for t in range(7)],
                 id="Chained-const-exp"),
    # unlike torch, ExponentialLR's closed form applies on top of LambdaLR's
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("MultiplicativeLR", lr_lambda="0.5"),
                     member("ExponentialLR", gamma=0.9)]}, 1.0,
                 [0.5**t * 0.9**t for t in range(7)], id="Chained-multiplicative-exp"),
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("PolynomialLR", decay_batch=4, end_learning_rate=0.1),
                     member("StepLR", step_size=2, gamma=0.5)]}, 1.0,
                 [(0.9 * (1 - min(t, 4) / 4) + 0.1) * 0.5 ** (t // 2) for t in range(7)],
                 id="Chained-poly-step"),
    # the other order: PolynomialLR decays StepLR's lr towards end_learning_rate
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("StepLR", step_size=2, gamma=0.5),
                     member("PolynomialLR", decay_batch=4, end_learning_rate=0.1)]}, 1.0,
                 [(0.5 ** (t // 2) - 0.1) * (1 - min(t, 4) / 4) + 0.1 for t in range(7)],
                 id="Chained-step-poly"),
]  # fmt: skip


def _cd(t):  # the wrapped CosineDecayLR(decay_steps=10, alpha=0.1) used below
    return cosine_decay(t, 10, 0.1)


# OneFlow-only names, served by both flavours with one behaviour.
SHARED = [
    pytest.param("CosineDecayLR", {"decay_steps": 4}, 1.0,
                 [cosine(0.0, 1.0, t, 4) for t in range(4)] + [0.0] * 3, id="CosineDecayLR-4"),
    pytest.param("CosineDecayLR", {"decay_steps": 5, "alpha": 0.1}, 2.0,
                 [2.0 * (0.9 * (1 + math.cos(math.pi * t / 5)) / 2 + 0.1) for t in range(5)]
                 + [0.2] * 3, id="CosineDecayLR-alpha"),
    pytest.param("CosineDecayLR", {"decay_steps": 1, "alpha": 0.5}, 1.0,
                 [1.0, 0.5, 0.5, 0.5], id="CosineDecayLR-1"),
    # WarmupLR on its own: a ramp (or a constant factor) to base over warmup_iters
    pytest.param("WarmupLR", {"warmup_factor": 0.2, "warmup_iters": 4}, 0.5,
                 [0.5 * (0.2 + 0.8 * t / 4) for t in range(4)] + [0.5] * 3, id="Warmup-linear"),
    pytest.param("WarmupLR", {"warmup_factor": 0.2, "warmup_iters": 4,
                              "warmup_method": "constant"}, 0.5,
                 [0.1] * 4 + [0.5] * 3, id="Warmup-constant"),
    # linear, not prefix: ramp from 0.1 to the wrapped lr at step 4, then the wrapped lr
    pytest.param("WarmupLR", {"scheduler": member("CosineDecayLR", decay_steps=10, alpha=0.1),
                              "warmup_factor": 0.1, "warmup_iters": 4}, 1.0,
                 [0.1 + (_cd(4) - 0.1) * t / 4 for t in range(4)] + [_cd(t) for t in range(4, 13)],
                 id="Warmup-linear-wrapped"),
    # linear, prefix: ramp to 1, then the wrapped schedule from its own step 0
    pytest.param("WarmupLR", {"scheduler": member("CosineDecayLR", decay_steps=10, alpha=0.1),
                              "warmup_factor": 0.1, "warmup_iters": 4, "warmup_prefix": True},
                 1.0, [0.1 + 0.9 * t / 4 for t in range(4)] + [_cd(t - 4) for t in range(4, 16)],
                 id="Warmup-linear-prefix"),
    pytest.param("WarmupLR", {"scheduler": member("StepLR", step_size=3, gamma=0.5),
                              "warmup_factor": 0.2, "warmup_iters": 4,
                              "warmup_method": "constant"}, 1.0,
                 [0.2] * 4 + [0.5 ** (t // 3) for t in range(4, 10)], id="Warmup-constant-wrapped"),
    pytest.param("WarmupLR", {"scheduler": member("StepLR", step_size=3, gamma=0.5),
                              "warmup_factor": 0.2, "warmup_iters": 4,
                              "warmup_method": "constant", "warmup_prefix": True}, 1.0,
                 [0.2] * 4 + [0.5 ** ((t - 4) // 3) for t in range(4, 11)],
                 id="Warmup-constant-prefix"),
    pytest.param("WarmupLR", {"scheduler": member("ExponentialLR", gamma=0.9),
                              "warmup_iters": 0}, 1.0,
                 [0.9**t for t in range(6)], id="Warmup-zero-iters"),
    # the wrapped LinearLR is at 0.75 x base at step 2: the ramp ends there, then rises
    pytest.param("WarmupLR", {"scheduler": member("LinearLR", start_factor=0.5,
                                                  end_factor=1.0, total_iters=4),
                              "warmup_factor": 0.5, "warmup_iters": 2}, 1.0,
                 [0.5, 0.625, 0.75, 0.875, 1.0, 1.0], id="Warmup-rising"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "base", "expected"), ONEFLOW)
def test_oneflow_values(name, kwargs, base, expected):
    assert run(name, kwargs, len(expected), base) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
@pytest.mark.parametrize(("name", "kwargs", "base", "expected"), SHARED)
def test_oneflow_names_in_both_flavors(name, kwargs, base, expected, flavor):
    assert run(name, kwargs, len(expected), base, flavor) == pytest.approx(expected, rel=REL)


def test_chained_with_per_group_member():
    kwargs = {"schedulers": [member("MultiplicativeLR", lr_lambda=["1.0", "0.5"]),
                             member("ExponentialLR", gamma=0.9)]}  # fmt: skip
    g0 = run("ChainedScheduler", kwargs, 6, base=0.1, n_groups=2, group=0)
    g1 = run("ChainedScheduler", kwargs, 6, base=0.3, n_groups=2, group=1)
    assert g0 == pytest.approx([0.1 * 0.9**t for t in range(6)], rel=REL)
    assert g1 == pytest.approx([0.3 * 0.5**t * 0.9**t for t in range(6)], rel=REL)


def test_warmup_pure_function_per_group():
    # The wrapped StepLR(3, 0.5) is at 0.5 x base at step 4; the pure function of each
    # group ramps to it (a scheduler over both groups refuses, as OneFlow does: below).
    kwargs = {"scheduler": member("StepLR", step_size=3, gamma=0.5),
              "warmup_factor": 0.1, "warmup_iters": 4}  # fmt: skip
    for group, base in enumerate((0.1, 0.3)):
        expected = [base * (0.1 + 0.4 * t / 4) for t in range(4)]
        expected += [base * 0.5 ** (t // 3) for t in range(4, 8)]
        got = run("WarmupLR", kwargs, 8, base=base, n_groups=2, group=group)
        assert got == pytest.approx(expected, rel=REL)


# ------------------------------------------------------- ReduceLROnPlateau
def plateau(kwargs, lrs, metrics):
    """The lrs after each metric, and the final state."""
    rule = build_schedule("ReduceLROnPlateau", kwargs=kwargs, n_groups=len(lrs))
    state = rule.initial_state(lrs)
    seen = []
    for metric in metrics:
        state = rule.step(state, metric)
        seen.append(list(state.lrs))
    return seen, state


# (kwargs, initial lrs, metrics, lrs after each metric), traced by hand:
PLATEAU = [
    # threshold 0: better means strictly lower; reduce on the 3rd bad epoch in a row
    pytest.param({"factor": 0.5, "patience": 2, "threshold": 0.0}, [1.0],
                 [10, 9, 9, 9, 9, 8, 8, 8, 8, 8],
                 [[1.0]] * 4 + [[0.5]] * 4 + [[0.25]] * 2, id="min-rel-patience2"),
    # rel 1e-4: 0.99995 is not below 1 * (1 - 1e-4); patience 0 reduces at once
    pytest.param({"patience": 0}, [1.0], [1.0, 0.99995, 0.5, 0.49999],
                 [[1.0], [0.1], [0.1], [0.01]], id="min-rel-threshold"),
    # abs 0.1: 4.95 is not below 5 - 0.1; 4.85 is
    pytest.param({"threshold_mode": "abs", "threshold": 0.1, "patience": 0, "factor": 0.5},
                 [1.0], [5.0, 4.95, 4.85, 4.8, 4.7],
                 [[1.0], [0.5], [0.5], [0.25], [0.25]], id="min-abs"),
    # max abs 0.5, patience 1, cooldown 2: after a cut, two epochs are never bad
    pytest.param({"mode": "max", "threshold_mode": "abs", "threshold": 0.5, "patience": 1,
                  "cooldown": 2, "factor": 0.5}, [1.0],
                 [1.0, 1.4, 1.6, 1.6, 1.6, 1.6, 1.6, 1.6, 2.2, 2.2, 2.2],
                 [[1.0]] * 4 + [[0.5]] * 6 + [[0.25]], id="max-abs-cooldown"),
    # max rel 0.1: 1.05 is not above 1 * 1.1, 1.2 is; 1.25 is not above 1.2 * 1.1
    pytest.param({"mode": "max", "threshold": 0.1, "patience": 0}, [1.0],
                 [1.0, 1.05, 1.2, 1.25, 1.5],
                 [[1.0], [0.1], [0.1], [0.01], [0.01]], id="max-rel"),
    # per-group min_lr and eps 0.03: group 0 stops at 0.3; group 1's cut from 0.05
    # to 0.025 is smaller than eps, so it is skipped
    pytest.param({"factor": 0.5, "patience": 0, "min_lr": [0.3, 0.0], "eps": 0.03},
                 [1.0, 0.1], [1, 1, 1, 1, 1],
                 [[1.0, 0.1], [0.5, 0.05], [0.3, 0.05], [0.3, 0.05], [0.3, 0.05]],
                 id="min-lr-list-eps"),
    # default eps 1e-8: 1.5e-8 -> 1.5e-9 (a cut of 1.35e-8), then 1.35e-9 is too small
    pytest.param({"patience": 0}, [1.5e-8], [1, 1, 1, 1],
                 [[1.5e-8], [1.5e-9], [1.5e-9], [1.5e-9]], id="default-eps"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "lrs", "metrics", "expected"), PLATEAU)
def test_plateau_lrs(kwargs, lrs, metrics, expected):
    seen, state = plateau(kwargs, lrs, metrics)
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        assert got == pytest.approx(want, rel=REL)
    assert state.last_epoch == len(metrics)


def test_plateau_state_fields():
    # min, patience 2, threshold 0: best and the bad-epoch count, step by step
    rule = build_schedule("ReduceLROnPlateau", kwargs={"patience": 2, "threshold": 0.0,
                                                       "cooldown": 1})  # fmt: skip
    state = rule.initial_state([1.0])
    assert state.best == math.inf and state.num_bad_epochs == 0 and state.last_epoch == 0
    trace = []
    for metric in [3.0, 2.0, 2.5, 2.5, 2.5, 2.5, 1.0]:
        state = rule.step(state, metric)
        trace.append((state.best, state.num_bad_epochs, state.cooldown_counter, state.lrs))
    assert trace == [
        (3.0, 0, 0, (1.0,)),
        (2.0, 0, 0, (1.0,)),
        (2.0, 1, 0, (1.0,)),
        (2.0, 2, 0, (1.0,)),
        (2.0, 0, 1, (pytest.approx(0.1, rel=REL),)),  # 3 bad > patience 2: cut, cooldown 1
        (2.0, 0, 0, (pytest.approx(0.1, rel=REL),)),  # in cooldown: the bad epoch is ignored
        (1.0, 0, 0, (pytest.approx(0.1, rel=REL),)),
    ]


def test_plateau_max_mode_starts_from_minus_infinity():
    rule = build_schedule("ReduceLROnPlateau", kwargs={"mode": "max"}, n_groups=2)
    state = rule.initial_state([0.1, 0.2])
    assert state.best == -math.inf
    assert state.lrs == (0.1, 0.2)


@pytest.mark.parametrize(
    ("name", "kwargs", "where"),
    [("SequentialLR", {"schedulers": [member("ExponentialLR", gamma=0.9),
                                      member("LambdaLR", lr_lambda="0.9 ** epoch")],
                       "milestones": [3]}, "schedulers[1]"),
     ("ChainedScheduler", {"schedulers": [member("LambdaLR", lr_lambda="0.9 ** epoch")]},
      "schedulers[0]"),
     ("ChainedScheduler", {"schedulers": [member("ChainedScheduler", schedulers=[
         member("StepLR", step_size=2)])]}, "schedulers[0]"),
     ("SequentialLR", {"schedulers": [member("StepLR", step_size=2),
                                      member("WarmupLR", warmup_iters=2)],
                       "milestones": [3]}, "schedulers[1]"),
     ("WarmupLR", {"scheduler": member("LambdaLR", lr_lambda="0.9 ** epoch"),
                   "warmup_iters": 0}, "scheduler")],
)  # fmt: skip
def test_oneflow_refuses_members_without_a_closed_form(name, kwargs, where):
    # OneFlow 0.9 composes members through get_lr(base_lr, step), which LambdaLR and
    # the composites leave unimplemented: it raises NotImplementedError there.
    with pytest.raises(ConfigError, match=rf"{name}: {re.escape(where)} is "):
        build_schedule(name, "oneflow", kwargs)


def test_oneflow_warmup_refuses_groups_with_different_lrs():
    # OneFlow ramps every group to the first group's end factor, so it refuses them.
    opt = type("Opt", (), {})()
    opt.param_groups = [{"lr": 0.1}, {"lr": 0.2}]
    kwargs = {"scheduler": member("ExponentialLR", gamma=0.9), "warmup_iters": 2}
    with pytest.raises(ConfigError, match=r"WarmupLR: .*one lr for all param groups"):
        LRScheduler(opt, build_schedule("WarmupLR", "oneflow", kwargs, 2), flavor="oneflow")
    # a prefix warmup ramps each group to its own lr, so OneFlow allows it
    opt.param_groups = [{"lr": 0.1}, {"lr": 0.2}]
    prefixed = build_schedule("WarmupLR", "oneflow", {**kwargs, "warmup_prefix": True}, 2)
    assert LRScheduler(opt, prefixed, flavor="oneflow").get_last_lr() == pytest.approx(
        [0.1 / 3, 0.2 / 3]
    )


def test_warm_up_lr_is_oneflow_other_spelling():
    kwargs = {"warmup_factor": 0.5, "warmup_iters": 2}
    assert run("WarmUpLR", kwargs, 4) == run("WarmupLR", kwargs, 4) == [0.5, 0.75, 1.0, 1.0]
