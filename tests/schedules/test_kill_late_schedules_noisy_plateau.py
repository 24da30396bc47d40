"""timm's lr noise wrapper (NoisyLR) and ReduceLROnPlateau's pure rule at their edges:
every refusal word for word (the house rule: the schedule, the argument, what was
expected and the value given), an empty noise range [s, s), timm's open clip
|noise| < noise_pct at its exact boundary, the plateau rule's relative threshold
against the absolute one, its default of one param group and its floors given per
call; and the expression evaluator's 60-character cut of a text shown in an error.
Corners the last (most expensive) mutants of a full mutation run found unchecked
(docs/mutation.md); each expected value is worked out by hand in its test.
"""

from __future__ import annotations

import numpy as np
import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule
from dualtrain.schedules.expr import Expression, ExpressionError
from dualtrain.schedules.modern import NoisyLR
from dualtrain.schedules.plateau import ReduceLROnPlateau

STEP = {"name": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}


def noisy(**kwargs):
    [schedule] = build_schedule("NoisyLR", kwargs={"scheduler": STEP, **kwargs})
    return schedule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_range": [1, -2]},
         "NoisyLR: noise_range must be a list of non-negative ints, got [1, -2]"),
        ({"noise_range": [5, 2]},
         "NoisyLR: noise_range must be a step or [start, end) steps, got [5, 2]"),
        ({"noise_range": [1, 2, 3]},
         "NoisyLR: noise_range must be a step or [start, end) steps, got [1, 2, 3]"),
        # uniform noise has no clip check after it: the bound alone refuses 0.
        ({"noise_pct": 0, "noise_type": "uniform"},
         "NoisyLR: noise_pct must be a number > 0, got 0"),
        ({"noise_pct": -0.1, "noise_type": "uniform"},
         "NoisyLR: noise_pct must be a number > 0, got -0.1"),
        ({"noise_std": 0}, "NoisyLR: noise_std must be a number > 0, got 0"),
        ({"noise_std": 0, "noise_type": "uniform"},
         "NoisyLR: noise_std must be a number > 0, got 0"),
        ({"noise_seed": -1}, "NoisyLR: noise_seed must be a non-negative int, got -1"),
        ({"noise_type": "gauss"},
         "NoisyLR: noise_type must be one of 'normal', 'uniform', got 'gauss'"),
        # 0.01 < 0.05 * 1.0 (the default std): too few draws would pass the clip.
        ({"noise_pct": 0.01}, "NoisyLR: noise_pct must be >= 0.05 * noise_std, got 0.01"),
    ],
)  # fmt: skip
def test_noisy_refusals_word_for_word(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        noisy(**kwargs)
    assert str(caught.value) == message


def test_an_empty_noise_range_is_accepted_and_adds_no_noise():
    """[3, 3) holds no step (timm's noise_range_t [3, 3] never adds noise): the lrs
    are StepLR's own, 1, 1, 0.5, 0.5, 0.25, 0.25 for base 1, gamma 0.5, step 2."""
    schedule = noisy(noise_range=[3, 3])
    assert [schedule.lr(t, 1.0) for t in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_a_draw_exactly_at_noise_pct_is_redrawn():
    """timm keeps a normal draw only while |noise| < noise_pct (strictly). With std 1
    and noise_pct set to |first draw| of NumPy's generator seeded [42, 0], that first
    draw sits on the boundary: it is redrawn, and the noise is the first later draw
    of the same stream strictly inside."""
    stream = np.random.default_rng([42, 0]).standard_normal(64)
    pct = abs(float(stream[0]))
    assert pct >= 0.05  # the clip check's floor (0.05 * std), so the wrapper accepts it
    inside = next(float(z) for z in stream[1:] if abs(z) < pct)
    schedule = noisy(noise_range=0, noise_pct=pct, noise_std=1.0, noise_seed=42)
    assert schedule.noise(0) == inside != float(stream[0])


# --- ReduceLROnPlateau's pure rule ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "up"}, "ReduceLROnPlateau: mode must be one of 'min', 'max', got 'up'"),
        ({"factor": 1.0}, "ReduceLROnPlateau: factor must be a number in [0, 1), got 1.0"),
        ({"patience": -1}, "ReduceLROnPlateau: patience must be a non-negative int, got -1"),
        ({"threshold": -1}, "ReduceLROnPlateau: threshold must be a number >= 0, got -1"),
        ({"threshold_mode": "x"},
         "ReduceLROnPlateau: threshold_mode must be one of 'rel', 'abs', got 'x'"),
        ({"cooldown": -1}, "ReduceLROnPlateau: cooldown must be a non-negative int, got -1"),
        ({"eps": -1}, "ReduceLROnPlateau: eps must be a number >= 0, got -1"),
        ({"min_lr": [0.1], "n_groups": 2},
         "ReduceLROnPlateau: min_lr must be one value per param group (2), got [0.1]"),
        ({"min_lr": -1}, "ReduceLROnPlateau: min_lr must be a number >= 0, got -1"),
        ({"min_lr": [0.0, -1], "n_groups": 2},
         "ReduceLROnPlateau: min_lr must be a number >= 0, got -1"),
    ],
)  # fmt: skip
def test_plateau_refusals_word_for_word(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        ReduceLROnPlateau(**kwargs)
    assert str(caught.value) == message


def test_relative_threshold_is_not_the_absolute_one():
    """torch's rule in min mode: rel is metric < best * (1 - threshold), abs is
    metric < best - threshold. Best 10, threshold 0.1: 9.5 is not below 9 (rel) but is
    below 9.9 (abs); rel is the default."""
    assert ReduceLROnPlateau(threshold=0.1).is_better(9.5, 10.0) is False
    assert ReduceLROnPlateau(threshold=0.1, threshold_mode="rel").is_better(9.5, 10.0) is False
    assert ReduceLROnPlateau(threshold=0.1, threshold_mode="abs").is_better(9.5, 10.0) is True
    assert ReduceLROnPlateau(threshold=0.1).is_better(8.9, 10.0) is True


def test_the_rule_defaults_to_one_param_group():
    """Built without n_groups it holds one floor (min_lr 0, as torch's with one group)
    and reduces a one-group state: 1.0 * 0.1 = 0.1."""
    rule = ReduceLROnPlateau()
    assert rule.min_lrs == [0]
    assert rule.reduced((1.0,)) == (0.1,)


def test_floors_given_to_reduced_replace_the_rule_own():
    """reduced(lrs, min_lrs) takes the floors it is given (the stateful scheduler passes
    the optimizer's): 1.0 * 0.1 = 0.1 is raised to the floor 0.5, not to the rule's 0."""
    rule = ReduceLROnPlateau(n_groups=2)
    assert rule.reduced((1.0, 2.0), (0.5, 0.0)) == (0.5, 0.2)
    assert rule.reduced((1.0, 2.0)) == (0.1, 0.2)


def test_a_floor_count_other_than_the_lr_count_is_refused():
    """One floor per lr: a missing floor is Python's strict zip error, never a group
    silently dropped from the result."""
    rule = ReduceLROnPlateau()
    with pytest.raises(ValueError) as caught:
        rule.reduced((1.0, 2.0))
    assert str(caught.value) == "zip() argument 2 is shorter than argument 1"


# --- the expression evaluator's shown text -----------------------------------------------


def refusal(text):
    with pytest.raises(ExpressionError) as caught:
        Expression(text)
    return str(caught.value)


def test_an_error_shows_a_text_of_60_characters_whole_and_cuts_61_to_57_and_dots():
    name60, name61 = "y" * 53, "y" * 54
    assert len("step + " + name60) == 60
    assert refusal("step + " + name60).startswith(f'expression "step + {name60}": unknown name')
    # 61 characters: the first 57 ("step + " and 50 y's), then "...".
    assert refusal("step + " + name61).startswith(
        f'expression "step + {"y" * 50}...": unknown name'
    )


# --- the wrapped schedule's config (NoisyLR built directly: build_schedule builds
# --- and checks the member itself before the wrapper sees it) ------------------------------


def test_a_wrapped_config_keeps_its_flavor():
    """ConstantLR(factor 0.5, total_iters 0) is where the frameworks differ: torch's class
    keeps the factor forever, OneFlow's applies none (both measured with their own
    classes in test_kill_schedules_registry.py). Without a noise range NoisyLR is its
    wrapped schedule, so the config's flavor decides: 0.5 for torch (the default), 1 for
    OneFlow."""
    constant = {"name": "ConstantLR", "kwargs": {"factor": 0.5, "total_iters": 0}}
    torch_one, oneflow_one = NoisyLR(constant), NoisyLR(constant | {"flavor": "oneflow"})
    assert [torch_one.lr(t, 1.0) for t in range(3)] == [0.5] * 3
    assert [oneflow_one.lr(t, 1.0) for t in range(3)] == [1.0] * 3


def test_a_wrapped_config_is_built_for_one_group():
    """A per-group list in the wrapped config holds one value: fairseq's inverse square
    root from warmup_init_lr 0.3 to base 0.6 over 3 updates is 0.3 + 0.1 t, then
    0.6 * sqrt(3 / t). (rel 1e-12: float64 rounding of 0.3 + 0.1 t.)"""
    inverse = {"name": "InverseSqrtLR", "kwargs": {"warmup_updates": 3, "warmup_init_lr": [0.3]}}
    schedule = NoisyLR(inverse)
    want = [0.3, 0.4, 0.5, 0.6, 0.6 * (3 / 4) ** 0.5]
    assert [schedule.lr(t, 0.6) for t in range(5)] == pytest.approx(want, rel=1e-12)


def test_a_wrapped_value_that_is_no_schedule_is_refused_word_for_word():
    with pytest.raises(ConfigError) as caught:
        NoisyLR(5)
    assert str(caught.value) == "NoisyLR: scheduler must be a schedule config {name, kwargs}, got 5"
