"""The closed-form schedules' corners a mutation run found unchecked (docs/mutation.md):
the one-line refusals of each argument (the house rule: name the schedule, the
argument, the value and what was expected), PolynomialLR's defaults and its
degenerate horizons, OneFlow's PolynomialLR at the smallest values it accepts, and
the warm restarts' cycle positions. Expected values come from torch's and OneFlow's
own classes, or are worked out by hand in the test.
"""

from __future__ import annotations

import math
import warnings

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError, ConfigTypeError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def pure(name, flavor="torch", **kwargs):
    [schedule] = build_schedule(name, flavor, kwargs)
    return schedule


def refusal(name, flavor="torch", error=ConfigError, **kwargs):
    with pytest.raises(error) as caught:
        build_schedule(name, flavor, kwargs)
    return str(caught.value)


def torch_lrs(build, n, lr=0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def oneflow_lrs(build, n, lr=0.1):
    opt = flow.optim.SGD([flow.nn.Parameter(flow.zeros(1))], lr=lr)
    sched = build(opt)
    out = []
    for _ in range(n):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


# --- refusals, word for word -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "flavor", "kwargs", "message"),
    [
        ("LambdaLR", "torch", {"lr_lambda": 5},
         "LambdaLR: lr_lambda should be a function or an expression string like "
         "'0.95 ** epoch', got 5"),
        ("MultiStepLR", "oneflow", {"milestones": [2, 2]},
         "MultiStepLR: milestones must be strictly increasing in OneFlow, got [2, 2]"),
        ("MultiStepLR", "oneflow", {"milestones": [4, 3]},
         "MultiStepLR: milestones must be strictly increasing in OneFlow, got [4, 3]"),
        ("MultiStepLR", "oneflow", {"milestones": "3"},
         "MultiStepLR: milestones must be a list of non-negative ints, got '3'"),
        ("PolynomialLR", "torch", {"total_iters": -1},
         "PolynomialLR: total_iters must be a non-negative int, got -1"),
        ("PolynomialLR", "torch", {"power": -0.5},
         "PolynomialLR: power must be a number >= 0, got -0.5"),
        ("PolynomialLR", "oneflow", {"decay_batch": 0},
         "PolynomialLR: decay_batch must be a positive int, got 0"),
        ("PolynomialLR", "oneflow", {"decay_batch": 3, "end_learning_rate": math.inf},
         "PolynomialLR: end_learning_rate must be a finite number, got inf"),
        ("PolynomialLR", "oneflow", {"decay_batch": 3, "power": -1},
         "PolynomialLR: power must be a number >= 0, got -1"),
        ("PolynomialLR", "oneflow", {"decay_batch": 3, "cycle": 1},
         "PolynomialLR: cycle must be True or False, got 1"),
        ("MultiStepLR", "torch", {"milestones": [2, -1]},
         "MultiStepLR: milestones must be a list of non-negative ints, got [2, -1]"),
        ("MultiStepLR", "torch", {"milestones": [2], "gamma": 0},
         "MultiStepLR: gamma must be a number > 0, got 0"),
        ("LinearLR", "torch", {"start_factor": 0},
         "LinearLR: start_factor must be a number in (0, 1], got 0"),
        ("LinearLR", "torch", {"end_factor": 1.5},
         "LinearLR: end_factor must be a number in [0, 1], got 1.5"),
        ("LinearLR", "torch", {"total_iters": -1},
         "LinearLR: total_iters must be a non-negative int, got -1"),
        ("ExponentialLR", "torch", {"gamma": 0},
         "ExponentialLR: gamma must be a number > 0, got 0"),
        ("ConstantLR", "torch", {"factor": 1.5},
         "ConstantLR: factor must be a number in [0, 1], got 1.5"),
        ("ConstantLR", "torch", {"total_iters": -1},
         "ConstantLR: total_iters must be a non-negative int, got -1"),
        ("ConstantLR", "torch", {"factor": 0, "total_iters": 1},
         "ConstantLR: factor must be > 0 when total_iters > 0 (torch divides by it), got 0"),
        ("CosineAnnealingLR", "torch", {"T_max": 0},
         "CosineAnnealingLR: T_max must be a positive int, got 0"),
        ("CosineAnnealingLR", "torch", {"T_max": 3, "eta_min": math.inf},
         "CosineAnnealingLR: eta_min must be a finite number, got inf"),
        ("CosineAnnealingWarmRestarts", "torch", {"T_0": 0},
         "CosineAnnealingWarmRestarts: T_0 must be a positive int, got 0"),
        ("CosineAnnealingWarmRestarts", "torch", {"T_0": 2, "T_mult": 0},
         "CosineAnnealingWarmRestarts: T_mult must be a positive int, got 0"),
        ("CosineAnnealingWarmRestarts", "torch", {"T_0": 2, "eta_min": math.nan},
         "CosineAnnealingWarmRestarts: eta_min must be a finite number, got nan"),
        ("CosineDecayLR", "oneflow", {"decay_steps": 0},
         "CosineDecayLR: decay_steps must be a positive int, got 0"),
        ("CosineDecayLR", "oneflow", {"decay_steps": 3, "alpha": math.nan},
         "CosineDecayLR: alpha must be a finite number, got nan"),
    ],
)  # fmt: skip
def test_refusal_names_the_argument_the_value_and_what_was_expected(name, flavor, kwargs, message):
    error = ConfigTypeError if name == "LambdaLR" else ConfigError
    assert refusal(name, flavor, error, **kwargs) == message


def test_lambda_given_as_a_bad_expression_names_the_argument():
    text = refusal("LambdaLR", lr_lambda="0.9 **")
    assert text.startswith("LambdaLR: lr_lambda: ")


# --- PolynomialLR ------------------------------------------------------------------------


def test_torch_polynomial_defaults_are_torchs():
    """torch's defaults: total_iters=5, power=1.0 (a straight line to 0 over 5 steps)."""
    theirs = torch_lrs(lambda o: T.PolynomialLR(o), 8)
    assert [pure("PolynomialLR").lr(t, 0.1) for t in range(8)] == theirs
    assert theirs[5:] == [0.0] * 3 and 0 < theirs[4] < theirs[3]


def test_torch_polynomial_closed_form_over_one_step_is_torchs():
    """step(epoch) uses torch's closed form: with total_iters=1, 0 from epoch 1 on."""
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs, ours = T.PolynomialLR(theirs_opt, total_iters=1), D.PolynomialLR(ours_opt, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # step(epoch) is deprecated in torch
        for epoch in (3, 0, 1, 2):
            theirs_opt.step()
            ours_opt.step()
            theirs.step(epoch)
            ours.step(epoch)
            assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]
    assert pure("PolynomialLR", total_iters=1).closed_form_lr(2, 0.1) == 0.0


def test_torch_polynomial_over_zero_steps_leaves_the_lr_alone():
    """total_iters=0: torch's steps never change the lr (its closed form divides by
    zero), so the closed form here is the base lr at every step."""
    assert torch_lrs(lambda o: T.PolynomialLR(o, total_iters=0), 4) == [0.1] * 4
    schedule = pure("PolynomialLR", total_iters=0)
    assert [schedule.closed_form_lr(t, 0.1) for t in range(4)] == [0.1] * 4
    assert [schedule.lr(t, 0.1) for t in range(4)] == [0.1] * 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decay_batch": 1},  # the smallest horizon OneFlow takes
        {"decay_batch": 4, "power": 0.5},  # a power below 1 (OneFlow takes any >= 0)
        {"decay_batch": 3, "power": 0.5, "cycle": True, "end_learning_rate": 0.01},
    ],
)
def test_oneflow_polynomial_at_small_horizons_and_powers_is_oneflows(kwargs):
    theirs = oneflow_lrs(lambda o: F.PolynomialLR(o, **kwargs), 9)
    ours = [pure("PolynomialLR", "oneflow", **kwargs).lr(t, 0.1) for t in range(9)]
    assert ours == theirs  # the same formula in the same float order


# --- warm restarts -----------------------------------------------------------------------


def test_warm_restart_cycle_positions_count_restarts():
    """T_0=2, T_mult=2: cycles of 2, 4, 8 steps starting at 0, 2, 6: worked out by hand,
    and the in-cycle step and length are torch's T_cur and T_i after the same steps."""
    schedule = pure("CosineAnnealingWarmRestarts", T_0=2, T_mult=2)
    by_hand = [(0, t, 2) for t in (0, 1)] + [(1, t - 2, 4) for t in range(2, 6)]
    by_hand += [(2, t - 6, 8) for t in range(6, 14)]
    assert [schedule.cycle_position(t) for t in range(14)] == by_hand
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = T.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2)
    for t in range(14):
        assert (theirs.T_cur, theirs.T_i) == schedule.cycle_position(t)[1:]
        opt.step()
        theirs.step()
    # T_mult=1: every T_0 steps
    flat = pure("CosineAnnealingWarmRestarts", T_0=3)
    assert [flat.cycle_position(t) for t in (0, 2, 3, 7)] == [(0, 0, 3), (0, 2, 3), (1, 0, 3),
                                                              (2, 1, 3)]  # fmt: skip


@pytest.mark.parametrize("epoch", [1.5, 2.0, 5.25, 8.0, 10.5, 25.0, 26.0, 30.75])
def test_warm_restart_position_at_a_fractional_epoch_is_torchs(epoch):
    """step(epoch) with T_mult=3 (cycles of 2, 6, 18 steps from 0, 2, 8, 26): torch's
    T_cur and T_i, which it finds with a logarithm, as `position_at` finds them."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = T.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3)
    opt.step()
    theirs.step(epoch)
    schedule = pure("CosineAnnealingWarmRestarts", T_0=2, T_mult=3)
    assert schedule.position_at(epoch) == (theirs.T_cur, theirs.T_i)


def test_multistep_default_gamma_is_torchs():
    theirs = torch_lrs(lambda o: T.MultiStepLR(o, [2, 4]), 6)
    assert [pure("MultiStepLR", milestones=[2, 4]).lr(t, 0.1) for t in range(6)] == theirs
    assert theirs[4] == pytest.approx(0.1 * 0.1 * 0.1)  # gamma 0.1 at each milestone
