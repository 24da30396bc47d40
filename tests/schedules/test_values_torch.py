"""Torch-flavour schedule values (PyTorch 2.x semantics), derived by hand.

Every expectation below is written out from the schedule's documented formula,
or as a literal list worked out on paper; the engine is only ever the thing
under test, never the source of an expected value. Schedules whose class is
shared by both flavours (one behaviour in both frameworks) run in both.
"""

from __future__ import annotations

import math

import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule

REL = 1e-12
BOTH = pytest.mark.parametrize("flavor", ["torch", "oneflow"])


def member(name, **kwargs):
    return {"name": name, "kwargs": kwargs}


def run(name, kwargs, steps, base=1.0, flavor="torch", n_groups=1, group=0):
    schedules = build_schedule(name, flavor, kwargs, n_groups)
    assert len(schedules) == n_groups
    return [schedules[group].lr(t, base) for t in range(steps)]


def cosine(low, high, t, period):
    """high at t=0, low at t=period: low + (high - low) * (1 + cos(pi t / period)) / 2."""
    return low + (high - low) * (1 + math.cos(math.pi * t / period)) / 2


def cos_anneal(start, end, pct):
    """OneCycleLR's cosine: end + (start - end) / 2 * (1 + cos(pi * pct))."""
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def lin_anneal(start, end, pct):
    """OneCycleLR's linear: (end - start) * pct + start."""
    return (end - start) * pct + start


# Schedules with one class for both flavours: (name, kwargs, base lr, expected lrs).
SHARED = [
    # LambdaLR: lr = base * f(t)
    pytest.param("LambdaLR", {"lr_lambda": "0.95 ** epoch"}, 0.1,
                 [0.1 * 0.95**t for t in range(8)], id="LambdaLR-power"),
    pytest.param("LambdaLR", {"lr_lambda": "min(1.0, (step + 1) / 4)"}, 2.0,
                 [2.0 * min(1.0, (t + 1) / 4) for t in range(8)], id="LambdaLR-warmup"),
    pytest.param("LambdaLR", {"lr_lambda": "1.0 if epoch < 3 else 0.1"}, 1.0,
                 [1.0, 1.0, 1.0, 0.1, 0.1, 0.1], id="LambdaLR-switch"),
    pytest.param("LambdaLR", {"lr_lambda": "1 / (x + 1)"}, 0.6,
                 [0.6 / (t + 1) for t in range(6)], id="LambdaLR-x"),
    # MultiplicativeLR: lr = base * f(1) * ... * f(t); f(0) is never used
    pytest.param("MultiplicativeLR", {"lr_lambda": "0.9"}, 0.5,
                 [0.5 * 0.9**t for t in range(8)], id="MultiplicativeLR-const"),
    # f(k) = 0.5 for even k (f(0) = 0.5 too, but it must not count): 0.5 ** (t // 2)
    pytest.param("MultiplicativeLR", {"lr_lambda": "0.5 if epoch % 2 == 0 else 1.0"}, 1.0,
                 [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125], id="MultiplicativeLR-even"),
    # prod_{k=1..t} 1 / (k + 1) = 1 / (t + 1)!
    pytest.param("MultiplicativeLR", {"lr_lambda": "1 / (epoch + 1)"}, 3.0,
                 [3.0 / math.factorial(t + 1) for t in range(7)], id="MultiplicativeLR-fact"),
    # StepLR: base * gamma ** (t // step_size)
    pytest.param("StepLR", {"step_size": 3, "gamma": 0.5}, 0.1,
                 [0.1 * 0.5 ** (t // 3) for t in range(10)], id="StepLR-3"),
    pytest.param("StepLR", {"step_size": 1, "gamma": 0.1}, 1.0,
                 [0.1**t for t in range(6)], id="StepLR-1"),
    pytest.param("StepLR", {"step_size": 2}, 2.0,  # default gamma 0.1
                 [2.0, 2.0, 0.2, 0.2, 0.02, 0.02, 0.002], id="StepLR-default-gamma"),
    pytest.param("StepLR", {"step_size": 4, "gamma": 2.0}, 0.01,
                 [0.01 * 2.0 ** (t // 4) for t in range(10)], id="StepLR-grow"),
    # ExponentialLR: base * gamma ** t
    pytest.param("ExponentialLR", {"gamma": 0.9}, 0.1,
                 [0.1 * 0.9**t for t in range(10)], id="ExponentialLR-0.9"),
    pytest.param("ExponentialLR", {"gamma": 1.0}, 0.3, [0.3] * 5, id="ExponentialLR-1"),
    pytest.param("ExponentialLR", {"gamma": 1.1}, 0.01,
                 [0.01 * 1.1**t for t in range(10)], id="ExponentialLR-1.1"),
    # CosineAnnealingLR: keeps following the cosine past T_max (base again at 2 T_max)
    pytest.param("CosineAnnealingLR", {"T_max": 4}, 1.0,
                 [cosine(0.0, 1.0, t, 4) for t in range(17)], id="CosineAnnealingLR-4"),
    pytest.param("CosineAnnealingLR", {"T_max": 3, "eta_min": 0.1}, 0.5,
                 [cosine(0.1, 0.5, t, 3) for t in range(13)], id="CosineAnnealingLR-eta"),
    # T_max=1: base, eta_min, base, eta_min, ...
    pytest.param("CosineAnnealingLR", {"T_max": 1, "eta_min": 0.2}, 1.0,
                 [1.0, 0.2, 1.0, 0.2, 1.0], id="CosineAnnealingLR-1"),
]  # fmt: skip

# Cycle positions (step in cycle, cycle length) worked out for T_0=2, T_mult=2 and
# T_0=1, T_mult=3: cycles of 2, 4, 8, 16 and of 1, 3, 9, 27 steps.
POS_2_2 = [(c, 2) for c in range(2)] + [(c, 4) for c in range(4)] + [(c, 8) for c in range(8)]
POS_2_2 += [(0, 16), (1, 16)]
POS_1_3 = [(0, 1)] + [(c, 3) for c in range(3)] + [(c, 9) for c in range(9)] + [(0, 27), (1, 27)]

TORCH = [
    # MultiStepLR: a repeated milestone counts twice; unsorted milestones are sorted
    pytest.param("MultiStepLR", {"milestones": [2, 2, 5], "gamma": 0.1}, 0.5,
                 [0.5 * f for f in [1, 1, 1e-2, 1e-2, 1e-2, 1e-3, 1e-3, 1e-3]],
                 id="MultiStepLR-repeated"),
    pytest.param("MultiStepLR", {"milestones": [6, 1, 3], "gamma": 0.5}, 1.0,
                 [1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125], id="MultiStepLR-unsorted"),
    pytest.param("MultiStepLR", {"milestones": [0], "gamma": 0.5}, 1.0,  # passed at step 0
                 [0.5] * 4, id="MultiStepLR-zero"),
    pytest.param("MultiStepLR", {"milestones": []}, 0.7, [0.7] * 4, id="MultiStepLR-none"),
    # ConstantLR: base * factor before total_iters, then base
    pytest.param("ConstantLR", {"factor": 0.5, "total_iters": 3}, 0.2,
                 [0.1, 0.1, 0.1, 0.2, 0.2, 0.2], id="ConstantLR-3"),
    # torch: total_iters=0 keeps the factor forever (its 1/factor step never comes)
    pytest.param("ConstantLR", {"factor": 0.25, "total_iters": 0}, 1.0,
                 [0.25] * 6, id="ConstantLR-zero-iters"),
    pytest.param("ConstantLR", {"factor": 0.0, "total_iters": 0}, 1.0,
                 [0.0] * 6, id="ConstantLR-zero-factor"),
    pytest.param("ConstantLR", {}, 0.3,  # defaults factor 1/3, total_iters 5
                 [0.1] * 5 + [0.3] * 3, id="ConstantLR-defaults"),
    pytest.param("ConstantLR", {"factor": 1.0, "total_iters": 2}, 0.3,
                 [0.3] * 4, id="ConstantLR-one"),
    # LinearLR: base * (s + (e - s) * min(t, T) / T)
    pytest.param("LinearLR", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 4}, 1.0,
                 [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0, 1.0], id="LinearLR-up"),
    # torch: total_iters=0 keeps start_factor forever; end_factor is never reached
    pytest.param("LinearLR", {"start_factor": 0.5, "end_factor": 0.9, "total_iters": 0}, 1.0,
                 [0.5] * 5, id="LinearLR-zero-iters"),
    pytest.param("LinearLR", {"start_factor": 1.0, "end_factor": 0.0, "total_iters": 5}, 2.0,
                 [2.0 * (1 - min(t, 5) / 5) for t in range(8)], id="LinearLR-down"),
    pytest.param("LinearLR", {}, 0.3,  # defaults 1/3 -> 1 over 5 steps
                 [0.3 * (1 / 3 + (2 / 3) * min(t, 5) / 5) for t in range(8)],
                 id="LinearLR-defaults"),
    # PolynomialLR: base * (1 - min(t, T) / T) ** power, exactly 0 from T on
    pytest.param("PolynomialLR", {"total_iters": 4, "power": 1.0}, 1.0,
                 [1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0], id="PolynomialLR-linear"),
    pytest.param("PolynomialLR", {"total_iters": 5, "power": 2.0}, 0.5,
                 [0.5 * (1 - min(t, 5) / 5) ** 2 for t in range(8)], id="PolynomialLR-square"),
    pytest.param("PolynomialLR", {"total_iters": 3, "power": 0.5}, 1.0,
                 [1.0, math.sqrt(2 / 3), math.sqrt(1 / 3), 0.0, 0.0], id="PolynomialLR-sqrt"),
    pytest.param("PolynomialLR", {"total_iters": 3, "power": 0.0}, 0.4,  # 0 ** 0 == 1
                 [0.4] * 6, id="PolynomialLR-power0"),
    # torch leaves the lr alone when total_iters is 0 (its update skips t > total_iters)
    pytest.param("PolynomialLR", {"total_iters": 0, "power": 2.0}, 0.3,
                 [0.3] * 5, id="PolynomialLR-total0"),
    # CosineAnnealingWarmRestarts
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 3, "eta_min": 0.1}, 1.0,
                 [cosine(0.1, 1.0, t % 3, 3) for t in range(10)], id="CAWR-mult1"),
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 2, "T_mult": 2}, 0.5,
                 [cosine(0.0, 0.5, c, n) for c, n in POS_2_2], id="CAWR-mult2"),
    pytest.param("CosineAnnealingWarmRestarts", {"T_0": 1, "T_mult": 3, "eta_min": 0.05}, 1.0,
                 [cosine(0.05, 1.0, c, n) for c, n in POS_1_3], id="CAWR-mult3"),
    # SequentialLR (torch): members restart at their own step 0 at each milestone
    pytest.param("SequentialLR", {"schedulers": [member("ConstantLR", factor=0.1, total_iters=2),
                                                 member("ExponentialLR", gamma=0.9)],
                                  "milestones": [2]}, 1.0,
                 [0.1, 0.1, 1.0, 0.9, 0.81, 0.729], id="SequentialLR-const-exp"),
    # ConstantLR(total_iters=0) restarted at a milestone: torch's closed form gives base
    pytest.param("SequentialLR", {"schedulers": [member("ExponentialLR", gamma=0.5),
                                                 member("ConstantLR", factor=0.5, total_iters=0)],
                                  "milestones": [3]}, 1.0,
                 [1.0, 0.5, 0.25, 1.0, 1.0, 1.0], id="SequentialLR-const0-later"),
    pytest.param("SequentialLR", {"schedulers": [
                     member("LinearLR", start_factor=0.25, total_iters=4),
                     member("CosineAnnealingLR", T_max=4, eta_min=0.1)], "milestones": [4]}, 1.0,
                 [0.25, 0.4375, 0.625, 0.8125] + [cosine(0.1, 1.0, t, 4) for t in range(10)],
                 id="SequentialLR-linear-cosine"),
    pytest.param("SequentialLR", {"schedulers": [
                     member("ExponentialLR", gamma=0.5), member("StepLR", step_size=2, gamma=0.5),
                     member("MultiStepLR", milestones=[1], gamma=0.1)], "milestones": [2, 5]}, 0.8,
                 [0.8, 0.4, 0.8, 0.8, 0.4, 0.8, 0.08, 0.08], id="SequentialLR-three"),
    # MultiplicativeLR first: its step 0 leaves the base lr alone (f(0) is never used)
    pytest.param("SequentialLR", {"schedulers": [member("MultiplicativeLR", lr_lambda="0.9"),
                                                 member("ExponentialLR", gamma=0.5)],
                                  "milestones": [3]}, 1.0,
                 [1.0, 0.9, 0.81, 1.0, 0.5, 0.25], id="SequentialLR-multiplicative-first"),
    # ChainedScheduler (torch): every member's one-step update, in turn, on the same lr
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("ConstantLR", factor=0.1, total_iters=2),
                     member("ExponentialLR", gamma=0.9)]}, 2.0,
                 [2.0 * f for f in [0.1, 0.09, 0.81, 0.729, 0.6561]], id="Chained-const-exp"),
    # LambdaLR resets the lr each step, so ExponentialLR multiplies by 0.9 once, from t=1
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("LambdaLR", lr_lambda="0.5 ** epoch"),
                     member("ExponentialLR", gamma=0.9)]}, 1.0,
                 [1.0] + [0.5**t * 0.9 for t in range(1, 8)], id="Chained-lambda-exp"),
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("StepLR", step_size=2, gamma=0.5),
                     member("ExponentialLR", gamma=0.9)]}, 0.2,
                 [0.2 * 0.5 ** (t // 2) * 0.9**t for t in range(8)], id="Chained-step-exp"),
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("LinearLR", start_factor=0.5, total_iters=2),
                     member("MultiStepLR", milestones=[3], gamma=0.1)]}, 1.0,
                 [0.5, 0.75, 1.0, 0.1, 0.1, 0.1], id="Chained-linear-multistep"),
    pytest.param("ChainedScheduler", {"schedulers": [
                     member("MultiplicativeLR", lr_lambda="0.9"),
                     member("StepLR", step_size=2, gamma=0.5)]}, 1.0,
                 [0.9**t * 0.5 ** (t // 2) for t in range(7)], id="Chained-multiplicative-step"),
]  # fmt: skip


@BOTH
@pytest.mark.parametrize(("name", "kwargs", "base", "expected"), SHARED)
def test_shared_values(name, kwargs, base, expected, flavor):
    assert run(name, kwargs, len(expected), base, flavor) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize(("name", "kwargs", "base", "expected"), TORCH)
def test_torch_values(name, kwargs, base, expected):
    assert run(name, kwargs, len(expected), base) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize(("total", "power"), [(4, 1.0), (5, 2.0), (3, 0.5)])
def test_polynomial_reaches_exactly_zero(total, power):
    lrs = run("PolynomialLR", {"total_iters": total, "power": power}, total + 4, base=0.3)
    assert lrs[total - 1] > 0.0
    assert lrs[total:] == [0.0] * 4


@BOTH
def test_cosine_annealing_is_periodic_past_t_max(flavor):
    [s] = build_schedule("CosineAnnealingLR", flavor, {"T_max": 5, "eta_min": 0.01})
    assert s.lr(5, 1.0) == pytest.approx(0.01, rel=REL)  # bottom at T_max
    assert s.lr(10, 1.0) == pytest.approx(1.0, rel=REL)  # back to base at 2 T_max
    assert s.lr(15, 1.0) == pytest.approx(0.01, rel=REL)
    assert s.lr(7, 1.0) == pytest.approx(s.lr(3, 1.0), rel=REL)  # mirror image


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("StepLR", {"step_size": 2}), ("ExponentialLR", {"gamma": 0.9}),
     ("LambdaLR", {"lr_lambda": "1.0"}), ("CosineAnnealingLR", {"T_max": 3})],
    ids=["StepLR", "ExponentialLR", "LambdaLR", "CosineAnnealingLR"],
)  # fmt: skip
def test_no_momentum_when_not_cycling(name, kwargs):
    [s] = build_schedule(name, "torch", kwargs)
    assert not s.cycles_momentum
    assert [s.momentum(t) for t in range(3)] == [None] * 3


# ---------------------------------------------------------------- CyclicLR
# Heights within the triangle, worked out by hand from x = 1 + t/size - cycle:
TRI_2_2 = [0.0, 0.5, 1.0, 0.5]  # up 2, down 2
TRI_2_4 = [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]  # up 2, down 4: (x - 1) / (1/3 - 1) going down
TRI_3_3 = [0.0, 1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3]  # up 3, down 3

# (kwargs, steps, height(t), scale(t), base_momentum, max_momentum)
CYCLIC = [
    pytest.param({"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2}, 10,
                 lambda t: TRI_2_2[t % 4], lambda t: 1.0, 0.8, 0.9, id="triangular"),
    pytest.param({"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 4,
                  "mode": "triangular2", "base_momentum": 0.85, "max_momentum": 0.95}, 19,
                 lambda t: TRI_2_4[t % 6], lambda t: 0.5 ** (t // 6), 0.85, 0.95,
                 id="triangular2-up2-down4"),
    pytest.param({"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 3, "mode": "exp_range",
                  "gamma": 0.9}, 13,
                 lambda t: TRI_3_3[t % 6], lambda t: 0.9**t, 0.8, 0.9, id="exp_range"),
    # scale_fn(cycle) with cycle = t // 6 + 1: 1 / 2 ** (cycle - 1), i.e. triangular2
    pytest.param({"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 4,
                  "scale_fn": "1/(2.0**(x-1))", "scale_mode": "cycle"}, 19,
                 lambda t: TRI_2_4[t % 6], lambda t: 0.5 ** (t // 6), 0.8, 0.9,
                 id="custom-cycle"),
    # the same function of the step: 1 / 2 ** (t - 1), which is 2 at t=0
    pytest.param({"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2,
                  "scale_fn": "1/(2.0**(x-1))", "scale_mode": "iterations"}, 10,
                 lambda t: TRI_2_2[t % 4], lambda t: 2.0 ** (1 - t), 0.8, 0.9,
                 id="custom-iterations"),
]  # fmt: skip


@BOTH
@pytest.mark.parametrize(("kwargs", "steps", "height", "scale", "lo", "hi"), CYCLIC)
def test_cyclic_lr_and_momentum(kwargs, steps, height, scale, lo, hi, flavor):
    [s] = build_schedule("CyclicLR", flavor, kwargs)
    lo_lr, hi_lr = kwargs["base_lr"], kwargs["max_lr"]
    expected = [lo_lr + (hi_lr - lo_lr) * height(t) * scale(t) for t in range(steps)]
    momenta = [hi - (hi - lo) * height(t) * scale(t) for t in range(steps)]
    # CyclicLR sets the lr outright: the group's own lr (123.0) plays no part
    assert [s.lr(t, 123.0) for t in range(steps)] == pytest.approx(expected, rel=REL)
    assert [s.momentum(t) for t in range(steps)] == pytest.approx(momenta, rel=REL)


def test_cyclic_without_momentum():
    kwargs = {"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2, "cycle_momentum": False}
    [s] = build_schedule("CyclicLR", "torch", kwargs)
    assert not s.cycles_momentum
    assert [s.momentum(t) for t in range(4)] == [None] * 4
    assert [s.lr(t, 1.0) for t in range(4)] == pytest.approx([0.1, 0.55, 1.0, 0.55], rel=REL)


# -------------------------------------------------------------- OneCycleLR
# Phase ends: pct * total - 1, (three_phase: 2 * pct * total - 2), total - 1.
ONECYCLE = [
    # total 12, pct 0.25: warmup ends at step 2, anneal to step 11; initial 1/25, min /1e4
    pytest.param({"max_lr": 1.0, "total_steps": 12, "pct_start": 0.25},
                 [cos_anneal(0.04, 1.0, t / 2) for t in range(3)]
                 + [cos_anneal(1.0, 4e-6, (t - 2) / 9) for t in range(3, 13)],
                 [cos_anneal(0.95, 0.85, t / 2) for t in range(3)]
                 + [cos_anneal(0.85, 0.95, (t - 2) / 9) for t in range(3, 13)],
                 id="cos"),
    # three phases, linear: initial 2/4 = 0.5, min 0.5/2 = 0.25; ends at 2, 4, 11
    pytest.param({"max_lr": 2.0, "total_steps": 12, "pct_start": 0.25, "three_phase": True,
                  "anneal_strategy": "linear", "div_factor": 4.0, "final_div_factor": 2.0,
                  "base_momentum": 0.7, "max_momentum": 0.9},
                 [0.5, 1.25, 2.0, 1.25, 0.5] + [0.5 - 0.25 * (t - 4) / 7 for t in range(5, 13)],
                 [0.9, 0.8, 0.7, 0.8, 0.9] + [0.9] * 8,
                 id="three-phase-linear"),
    # epochs * steps_per_epoch = 10, pct 0.4: warmup ends at step 3; initial 0.05, min 5e-4
    pytest.param({"max_lr": 0.5, "epochs": 2, "steps_per_epoch": 5, "pct_start": 0.4,
                  "div_factor": 10.0, "final_div_factor": 100.0, "cycle_momentum": False},
                 [cos_anneal(0.05, 0.5, t / 3) for t in range(4)]
                 + [cos_anneal(0.5, 5e-4, (t - 3) / 6) for t in range(4, 11)],
                 None,  # cycle_momentum=False: no momentum at any step
                 id="epochs-no-momentum"),
    pytest.param({"max_lr": 1.0, "total_steps": 12, "pct_start": 0.25,
                  "anneal_strategy": "linear"},
                 [lin_anneal(0.04, 1.0, t / 2) for t in range(3)]
                 + [lin_anneal(1.0, 4e-6, (t - 2) / 9) for t in range(3, 13)],
                 [lin_anneal(0.95, 0.85, t / 2) for t in range(3)]
                 + [lin_anneal(0.85, 0.95, (t - 2) / 9) for t in range(3, 13)],
                 id="linear"),
]  # fmt: skip


@BOTH
@pytest.mark.parametrize(("kwargs", "expected", "momenta"), ONECYCLE)
def test_one_cycle_lr_and_momentum(kwargs, expected, momenta, flavor):
    [s] = build_schedule("OneCycleLR", flavor, kwargs)
    steps = len(expected)  # 0 .. total_steps: stepping to total_steps is allowed
    assert [s.lr(t, 7.0) for t in range(steps)] == pytest.approx(expected, rel=REL)
    if momenta is None:
        assert [s.momentum(t) for t in range(steps)] == [None] * steps
    else:
        assert [s.momentum(t) for t in range(steps)] == pytest.approx(momenta, rel=REL)


def test_one_cycle_past_total_steps_raises():
    [s] = build_schedule("OneCycleLR", "torch", {"max_lr": 1.0, "total_steps": 12})
    s.lr(12, 1.0)
    s.momentum(12)
    for call in (lambda: s.lr(13, 1.0), lambda: s.momentum(13)):
        with pytest.raises(ConfigError, match="total_steps") as info:
            call()
        assert "OneCycleLR" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------ param groups
def test_two_groups_use_their_own_base_lr():
    schedules = build_schedule("StepLR", "torch", {"step_size": 2, "gamma": 0.5}, n_groups=2)
    for s, base in zip(schedules, (0.1, 0.4), strict=True):
        expected = [base * 0.5 ** (t // 2) for t in range(6)]
        assert [s.lr(t, base) for t in range(6)] == pytest.approx(expected, rel=REL)


def test_lambda_lr_list_of_expressions():
    kwargs = {"lr_lambda": ["0.5 ** epoch", "1 / (epoch + 1)"]}
    g0 = run("LambdaLR", kwargs, 6, base=0.1, n_groups=2, group=0)
    g1 = run("LambdaLR", kwargs, 6, base=0.3, n_groups=2, group=1)
    assert g0 == pytest.approx([0.1 * 0.5**t for t in range(6)], rel=REL)
    assert g1 == pytest.approx([0.3 / (t + 1) for t in range(6)], rel=REL)


def test_cyclic_lr_per_group_lists():
    kwargs = {"base_lr": [0.1, 0.2], "max_lr": [1.0, 0.5], "step_size_up": 2,
              "base_momentum": [0.8, 0.7], "max_momentum": [0.9, 0.95]}  # fmt: skip
    schedules = build_schedule("CyclicLR", "torch", kwargs, n_groups=2)
    for g, s in enumerate(schedules):
        lo, hi = kwargs["base_lr"][g], kwargs["max_lr"][g]
        m_lo, m_hi = kwargs["base_momentum"][g], kwargs["max_momentum"][g]
        lrs = [lo + (hi - lo) * TRI_2_2[t % 4] for t in range(9)]
        momenta = [m_hi - (m_hi - m_lo) * TRI_2_2[t % 4] for t in range(9)]
        assert [s.lr(t, 1.0) for t in range(9)] == pytest.approx(lrs, rel=REL)
        assert [s.momentum(t) for t in range(9)] == pytest.approx(momenta, rel=REL)


def test_one_cycle_max_lr_list():
    kwargs = {"max_lr": [1.0, 2.0], "total_steps": 12, "pct_start": 0.25,
              "anneal_strategy": "linear"}  # fmt: skip
    schedules = build_schedule("OneCycleLR", "torch", kwargs, n_groups=2)
    for peak, s in zip((1.0, 2.0), schedules, strict=True):
        initial = peak / 25
        floor = initial / 1e4
        expected = [lin_anneal(initial, peak, t / 2) for t in range(3)]
        expected += [lin_anneal(peak, floor, (t - 2) / 9) for t in range(3, 13)]
        assert [s.lr(t, 1.0) for t in range(13)] == pytest.approx(expected, rel=REL)


def test_sequential_with_per_group_member():
    kwargs = {"schedulers": [member("LambdaLR", lr_lambda=["1.0", "0.5 ** epoch"]),
                             member("ExponentialLR", gamma=0.9)], "milestones": [3]}  # fmt: skip
    g0 = run("SequentialLR", kwargs, 7, base=0.1, n_groups=2, group=0)
    g1 = run("SequentialLR", kwargs, 7, base=0.3, n_groups=2, group=1)
    assert g0 == pytest.approx([0.1] * 3 + [0.1 * 0.9 ** (t - 3) for t in range(3, 7)], rel=REL)
    expected1 = [0.3 * 0.5**t for t in range(3)] + [0.3 * 0.9 ** (t - 3) for t in range(3, 7)]
    assert g1 == pytest.approx(expected1, rel=REL)
