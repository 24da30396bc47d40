"""The schedules no framework ships (Hugging Face's cosine with a floor, timm's cosine
restarts, fairseq's inverse square root, a linear warmup wrapper): their one-line
refusals (the house rule: name the schedule, the argument, the value and what was
expected), timm's cycle arithmetic with a cycle_mul other than 2, fairseq's first
step after the warmup, and the warmup wrapper's default. Corners a mutation run
found unchecked (docs/mutation.md); expected values are worked out by hand from the
sources' definitions, written in each test.
"""

from __future__ import annotations

import math

import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule
from dualtrain.schedules.modern import LinearWarmupLR

STEP = {"name": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}
WSD = {"warmup_steps": 2, "stable_steps": 3, "decay_steps": 2}


def pure(name, **kwargs):
    [schedule] = build_schedule(name, kwargs=kwargs)
    return schedule


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("CosineWithMinLR", {"total_steps": 0, "min_lr": 0.0},
         "CosineWithMinLR: total_steps must be a positive int, got 0"),
        ("CosineWithMinLR", {"total_steps": 5, "warmup_steps": -1, "min_lr": 0.0},
         "CosineWithMinLR: warmup_steps must be a non-negative int, got -1"),
        ("CosineWithMinLR", {"total_steps": 5, "warmup_steps": 5, "min_lr": 0.0},
         "CosineWithMinLR: warmup_steps must be < total_steps (5), got 5"),
        ("CosineWithMinLR", {"total_steps": 5},
         "CosineWithMinLR: min_lr must be given exactly when min_lr_ratio is not, got None"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr": 0.1, "min_lr_ratio": 0.1},
         "CosineWithMinLR: min_lr must be given exactly when min_lr_ratio is not, got 0.1"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr": -0.1},
         "CosineWithMinLR: min_lr must be a number >= 0, got -0.1"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr_ratio": -0.5},
         "CosineWithMinLR: min_lr_ratio must be a number in [0, 1], got -0.5"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr_ratio": 1.5},
         "CosineWithMinLR: min_lr_ratio must be a number in [0, 1], got 1.5"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr": 0.0, "warmup_start_factor": -0.5},
         "CosineWithMinLR: warmup_start_factor must be a number in [0, 1], got -0.5"),
        ("CosineWithMinLR", {"total_steps": 5, "min_lr": 0.0, "warmup_start_factor": 1.5},
         "CosineWithMinLR: warmup_start_factor must be a number in [0, 1], got 1.5"),
        ("CosineRestartsLR", {"t_initial": 0},
         "CosineRestartsLR: t_initial must be a positive int, got 0"),
        ("CosineRestartsLR", {"t_initial": 4, "lr_min": -0.1},
         "CosineRestartsLR: lr_min must be a number >= 0, got -0.1"),
        ("CosineRestartsLR", {"t_initial": 4, "cycle_mul": 0.5},
         "CosineRestartsLR: cycle_mul must be a number >= 1, got 0.5"),
        ("CosineRestartsLR", {"t_initial": 4, "cycle_decay": -0.5},
         "CosineRestartsLR: cycle_decay must be a number >= 0, got -0.5"),
        ("CosineRestartsLR", {"t_initial": 4, "cycle_limit": 0},
         "CosineRestartsLR: cycle_limit must be a positive int, got 0"),
        ("CosineRestartsLR", {"t_initial": 4, "warmup_t": -1},
         "CosineRestartsLR: warmup_t must be a non-negative int, got -1"),
        ("CosineRestartsLR", {"t_initial": 4, "warmup_lr_init": -0.1},
         "CosineRestartsLR: warmup_lr_init must be a number >= 0, got -0.1"),
        ("CosineRestartsLR", {"t_initial": 4, "warmup_prefix": 1},
         "CosineRestartsLR: warmup_prefix must be True or False, got 1"),
        ("CosineRestartsLR", {"t_initial": 4, "k_decay": 0},
         "CosineRestartsLR: k_decay must be a number > 0, got 0"),
        ("WarmupStableDecayLR", {"total_steps": 0},
         "WarmupStableDecayLR: total_steps must be a positive int, got 0"),
        ("WarmupStableDecayLR", {"warmup_steps": 0.5, "stable_steps": 3, "decay_steps": 2},
         "WarmupStableDecayLR: warmup_steps must be an int when total_steps is not given, "
         "got 0.5"),
        ("WarmupStableDecayLR", {"warmup_steps": 0.0, "total_steps": 10},
         "WarmupStableDecayLR: warmup_steps must be a non-negative int or a float in (0, 1), "
         "got 0.0"),
        ("WarmupStableDecayLR", {"decay_steps": 1.0, "total_steps": 10},
         "WarmupStableDecayLR: decay_steps must be a non-negative int or a float in (0, 1), "
         "got 1.0"),
        ("WarmupStableDecayLR", {"warmup_steps": 2, "decay_steps": 2},
         "WarmupStableDecayLR: stable_steps must be given when total_steps is not, got None"),
        ("WarmupStableDecayLR", {"warmup_steps": 2, "stable_steps": -1, "decay_steps": 2},
         "WarmupStableDecayLR: stable_steps must be a non-negative int or a float in (0, 1), "
         "got -1"),
        ("WarmupStableDecayLR", WSD | {"total_steps": 5},
         "WarmupStableDecayLR: total_steps must be >= the phases' sum 7, got 5"),
        ("WarmupStableDecayLR", WSD | {"warmup_start_factor": -0.5},
         "WarmupStableDecayLR: warmup_start_factor must be a number in [0, 1], got -0.5"),
        ("WarmupStableDecayLR", WSD | {"warmup_start_factor": 1.5},
         "WarmupStableDecayLR: warmup_start_factor must be a number in [0, 1], got 1.5"),
        ("WarmupStableDecayLR", WSD | {"min_lr_ratio": -0.5},
         "WarmupStableDecayLR: min_lr_ratio must be a number in [0, 1], got -0.5"),
        ("WarmupStableDecayLR", WSD | {"decay": "exp"},
         "WarmupStableDecayLR: decay must be one of 'linear', 'cosine', '1-sqrt', got 'exp'"),
        ("InverseSqrtLR", {"warmup_updates": 0},
         "InverseSqrtLR: warmup_updates must be a positive int, got 0"),
        ("InverseSqrtLR", {"warmup_updates": 4, "warmup_init_lr": -0.1},
         "InverseSqrtLR: warmup_init_lr must be a number >= 0, got -0.1"),
        ("LinearWarmupLR", {"scheduler": STEP, "warmup_steps": -1},
         "LinearWarmupLR: warmup_steps must be a non-negative int, got -1"),
        ("LinearWarmupLR", {"scheduler": STEP, "warmup_start_factor": -0.5},
         "LinearWarmupLR: warmup_start_factor must be a number in [0, 1], got -0.5"),
        ("LinearWarmupLR", {"scheduler": STEP, "warmup_method": "cosine"},
         "LinearWarmupLR: warmup_method must be one of 'linear', 'constant', got 'cosine'"),
    ],
)  # fmt: skip
def test_refusal_names_the_argument_the_value_and_what_was_expected(name, kwargs, message):
    with pytest.raises(ConfigError) as caught:
        build_schedule(name, kwargs=kwargs)
    assert str(caught.value) == message


def test_cosine_restarts_with_cycle_mul_three_finds_timms_cycles():
    """timm: cycle i has length t_initial * mul**i and starts at
    t_initial * (mul**i - 1) / (mul - 1). t_initial=2, mul=3: cycles of 2, 6 and 18
    steps from 0, 2 and 8 (cycle_limit 3 keeps all three); within a cycle,
    lr = lr_min + (base - lr_min) * (1 + cos(pi * t_curr / t_i)) / 2. Steps away from
    the cycle starts, where timm's floating-point log is exact."""
    schedule = pure("CosineRestartsLR", t_initial=2, cycle_mul=3.0, cycle_limit=3)
    by_hand = {1: (1, 2), 3: (1, 6), 5: (3, 6), 9: (1, 18), 12: (4, 18), 20: (12, 18)}
    for step, (t_curr, t_i) in by_hand.items():
        expected = 0.5 * 0.1 * (1 + math.cos(math.pi * t_curr / t_i))
        assert schedule.lr(step, 0.1) == pytest.approx(expected, rel=1e-12), step  # float order


def test_inverse_sqrt_leaves_the_warmup_at_warmup_updates():
    """fairseq: below warmup_updates the linear warmup, from warmup_updates on
    base * sqrt(warmup_updates) / sqrt(step), in that order. With warmup_updates=2 and
    base 0.1 the two forms differ in the last bit at step 2 (0.1 vs
    0.1 * 2**0.5 * 2**-0.5 = 0.10000000000000002): step 2 is already the decay."""
    schedule = pure("InverseSqrtLR", warmup_updates=2)
    assert schedule.lr(2, 0.1) == 0.1 * 2**0.5 * 2**-0.5 != 0.1
    assert schedule.lr(1, 0.1) == 0.0 + 1 * (0.1 / 2)


def test_linear_warmup_defaults_to_five_steps_from_zero():
    """warmup_steps=5, warmup_start_factor=0: k/5 of the wrapped lr at step k < 5,
    then the wrapped StepLR from its own step 0."""
    schedule = pure("LinearWarmupLR", scheduler=STEP)
    assert [schedule.lr(t, 0.1) for t in range(8)] == [
        0.1 * (0.0 + 1.0 * k / 5) for k in range(5)
    ] + [0.1, 0.1, 0.05]


def test_linear_warmup_built_directly_refuses_what_is_not_a_schedule():
    """(build_schedule checks a nested config itself; the class checks what it gets.)"""
    with pytest.raises(ConfigError) as caught:
        LinearWarmupLR(5)
    assert str(caught.value) == (
        "LinearWarmupLR: scheduler must be a schedule config {name, kwargs}, got 5"
    )


def test_warmup_stable_decay_over_a_single_step():
    """total_steps=1: decay_steps 0.1 of it floors to 0, no warmup, one stable step."""
    schedule = pure("WarmupStableDecayLR", total_steps=1)
    assert (schedule.warmup_steps, schedule.stable_steps, schedule.decay_steps) == (0, 1, 0)
    assert schedule.lr(0, 0.1) == 0.1


def test_warmup_stable_decay_takes_a_fraction_of_total_steps_for_the_stable_phase():
    """stable_steps=0.5 of total_steps=10: 5 steps (floored), between 2 and 3."""
    schedule = pure(
        "WarmupStableDecayLR", total_steps=10, warmup_steps=2, stable_steps=0.5, decay_steps=3
    )
    assert schedule.stable_steps == 5
    assert [schedule.lr(t, 0.1) for t in (2, 6, 7)] == [0.1, 0.1, 0.1]  # stable from 2 to 6
    assert schedule.lr(8, 0.1) == 0.1 * (0.0 + 1.0 * (1.0 - 1 / 3))  # a third into the decay
