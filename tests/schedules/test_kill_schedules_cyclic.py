"""CyclicLR and OneCycleLR as pure schedules against torch's own classes: their
defaults, the smallest values torch takes (fractional step sizes, divisors below 1,
one epoch or one step per epoch, a single step), and the one-line refusal of each
argument (the house rule: name the schedule, the argument, the value and what was
expected). Corners a mutation run found unchecked (docs/mutation.md).
"""

from __future__ import annotations

import math

import pytest
import torch

from dualtrain.errors import ConfigError, ConfigTypeError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler


def torch_trace(build, n):
    """(lr, momentum) before each of n steps of torch's scheduler (n - 1 steps taken)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = build(opt)
    out = []
    for t in range(n):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        if t < n - 1:
            opt.step()
            sched.step()
    return out


def pure_trace(name, n, **kwargs):
    [schedule] = build_schedule(name, kwargs=kwargs)
    return [(schedule.lr(t, 0.1), schedule.momentum(t)) for t in range(n)]


def halving(cycle):
    return 0.5**cycle


@pytest.mark.parametrize(
    ("kwargs", "steps"),
    [
        # step_size_up defaults to 2000: 30 steps see its slope; mode triangular, gamma 1
        ({}, 30),
        ({"step_size_up": 3, "mode": "exp_range"}, 14),  # gamma's default 1.0: no decay
        ({"step_size_up": 3, "scale_fn": halving}, 14),  # scale_mode's default: per cycle
        ({"step_size_up": 0.5, "step_size_down": 0.5}, 6),  # torch takes fractional sizes
        ({"step_size_up": 2, "mode": "triangular", "gamma": 0.5}, 12),  # gamma unused
    ],
)
def test_cyclic_is_torchs(kwargs, steps):
    kwargs = {"base_lr": 0.01, "max_lr": 0.1} | kwargs
    theirs = torch_trace(lambda o: T.CyclicLR(o, **kwargs), steps)
    assert pure_trace("CyclicLR", steps, **kwargs) == theirs


@pytest.mark.parametrize(
    ("kwargs", "steps"),
    [
        ({"total_steps": 10, "div_factor": 0.5}, 11),  # starts above max_lr
        ({"total_steps": 10, "final_div_factor": 0.5}, 11),  # ends above the start
        ({"total_steps": 1}, 2),  # the shortest: one step, then torch raises
        ({"epochs": 1, "steps_per_epoch": 10}, 11),
        ({"epochs": 10, "steps_per_epoch": 1}, 11),
    ],
)
def test_one_cycle_at_torchs_smallest_values_is_torchs(kwargs, steps):
    kwargs = {"max_lr": 0.1} | kwargs
    theirs = torch_trace(lambda o: T.OneCycleLR(o, **kwargs), steps)
    assert pure_trace("OneCycleLR", steps, **kwargs) == theirs


def test_cyclic_with_a_scale_fn_keeps_the_mode_it_was_given():
    """torch keeps `mode` as given when a scale_fn replaces the built-in ones."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    theirs = T.CyclicLR(opt, 0.01, 0.1, mode="triangular2", scale_fn=halving)
    [ours] = build_schedule(
        "CyclicLR",
        kwargs={"base_lr": 0.01, "max_lr": 0.1, "mode": "triangular2", "scale_fn": halving},
    )
    assert ours.mode == theirs.mode == "triangular2"


CYCLIC = {"base_lr": 0.01, "max_lr": 0.1}
ONE_CYCLE = {"max_lr": 0.1, "total_steps": 10}
NAN = math.nan


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("CyclicLR", {"base_lr": NAN, "max_lr": 0.1},
         "CyclicLR: base_lr must be a finite number, got nan"),
        ("CyclicLR", {"base_lr": 0.01, "max_lr": NAN},
         "CyclicLR: max_lr must be a finite number, got nan"),
        ("CyclicLR", CYCLIC | {"step_size_up": 0},
         "CyclicLR: step_size_up must be a number > 0, got 0"),
        ("CyclicLR", CYCLIC | {"step_size_down": 0},
         "CyclicLR: step_size_down must be a number > 0, got 0"),
        ("CyclicLR", CYCLIC | {"gamma": 0}, "CyclicLR: gamma must be a number > 0, got 0"),
        ("CyclicLR", CYCLIC | {"mode": "sine"},
         "CyclicLR: mode must be one of 'triangular', 'triangular2', 'exp_range', got 'sine'"),
        ("CyclicLR", CYCLIC | {"scale_fn": halving, "scale_mode": "steps"},
         "CyclicLR: scale_mode must be one of 'cycle', 'iterations', got 'steps'"),
        ("CyclicLR", CYCLIC | {"cycle_momentum": 1},
         "CyclicLR: cycle_momentum must be True or False, got 1"),
        ("CyclicLR", CYCLIC | {"base_momentum": NAN},
         "CyclicLR: base_momentum must be a finite number, got nan"),
        ("CyclicLR", CYCLIC | {"max_momentum": NAN},
         "CyclicLR: max_momentum must be a finite number, got nan"),
        ("OneCycleLR", {"max_lr": NAN, "total_steps": 10},
         "OneCycleLR: max_lr must be a finite number, got nan"),
        ("OneCycleLR", ONE_CYCLE | {"pct_start": 1.5},
         "OneCycleLR: pct_start must be a number in [0, 1], got 1.5"),
        ("OneCycleLR", ONE_CYCLE | {"anneal_strategy": "exp"},
         "OneCycleLR: anneal_strategy must be one of 'cos', 'linear', got 'exp'"),
        ("OneCycleLR", ONE_CYCLE | {"cycle_momentum": 1},
         "OneCycleLR: cycle_momentum must be True or False, got 1"),
        ("OneCycleLR", ONE_CYCLE | {"base_momentum": NAN},
         "OneCycleLR: base_momentum must be a finite number, got nan"),
        ("OneCycleLR", ONE_CYCLE | {"max_momentum": NAN},
         "OneCycleLR: max_momentum must be a finite number, got nan"),
        ("OneCycleLR", ONE_CYCLE | {"div_factor": 0},
         "OneCycleLR: div_factor must be a number > 0, got 0"),
        ("OneCycleLR", ONE_CYCLE | {"final_div_factor": 0},
         "OneCycleLR: final_div_factor must be a number > 0, got 0"),
        ("OneCycleLR", ONE_CYCLE | {"three_phase": 1},
         "OneCycleLR: three_phase must be True or False, got 1"),
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": 0},
         "OneCycleLR: total_steps must be a positive int, got 0"),
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": 2.5},
         "OneCycleLR: total_steps must be a positive int, got 2.5"),
        ("OneCycleLR", {"max_lr": 0.1, "epochs": 0, "steps_per_epoch": 5},
         "OneCycleLR: epochs must be a positive int, got 0"),
        ("OneCycleLR", {"max_lr": 0.1, "epochs": 2, "steps_per_epoch": 0},
         "OneCycleLR: steps_per_epoch must be a positive int, got 0"),
        ("OneCycleLR", {"max_lr": 0.1, "epochs": 2},
         "OneCycleLR: give total_steps, or both epochs and steps_per_epoch, "
         "got total_steps=None, epochs=2, steps_per_epoch=None"),
        ("OneCycleLR", {"max_lr": 0.1, "steps_per_epoch": 4},
         "OneCycleLR: give total_steps, or both epochs and steps_per_epoch, "
         "got total_steps=None, epochs=None, steps_per_epoch=4"),
        # 0.1 * 10 - 1 = 0: the warmup phase ends where it starts
        ("OneCycleLR", ONE_CYCLE | {"pct_start": 0.1},
         "OneCycleLR: pct_start=0.1 with total_steps=10 leaves a phase of zero length at "
         "step 0; expected a pct_start that gives every phase at least one step"),
    ],
)  # fmt: skip
def test_refusal_names_the_argument_the_value_and_what_was_expected(name, kwargs, message):
    with pytest.raises(ConfigError) as caught:
        build_schedule(name, kwargs=kwargs)
    assert str(caught.value) == message


def test_cyclic_refuses_a_scale_fn_that_is_not_callable_in_torchs_words():
    with pytest.raises(ConfigTypeError) as caught:
        build_schedule("CyclicLR", kwargs=CYCLIC | {"scale_fn": 3})
    assert str(caught.value) == (
        "CyclicLR: scale_fn should be a function or an expression string like "
        "'0.95 ** epoch', got 3"
    )
