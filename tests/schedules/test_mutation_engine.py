"""Corners of the pure schedule engine a mutation run found unchecked (docs/mutation.md).

The argument checks' exact one-line messages (the house rule: name the argument,
the value and what was expected), the registry, the closed-form and momentum
hooks of wrappers and OneFlow composites, and the text lambdas' identity (hash,
copy and pickle). Expected values are written out by hand from the definitions.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import Schedule, build_schedule, checks, schedule_class, schedule_names
from dualtrain.schedules.base import _REGISTRY, native_frameworks
from dualtrain.schedules.expr import Expression, ExpressionError, parse_expression
from dualtrain.schedules.modern import NoisyLR

CYCLE = {"name": "OneCycleLR", "kwargs": {"max_lr": 1.0, "total_steps": 10, "div_factor": 4.0}}


@pytest.mark.parametrize(
    ("bounds", "value", "expected"),
    [
        ({}, math.inf, "a finite number"),
        ({"low": 0}, -1, "a number >= 0"),
        ({"low": 0, "low_open": True}, 0, "a number > 0"),
        ({"high": 1}, 2, "a number <= 1"),
        ({"high": 1, "high_open": True}, 1, "a number < 1"),
        ({"low": 0, "high": 1}, 1.5, "a number in [0, 1]"),
        ({"low": 0, "high": 1, "low_open": True}, 0, "a number in (0, 1]"),
        ({"low": 0, "high": 1, "high_open": True}, 1, "a number in [0, 1)"),
        ({"low": 0, "high": 1, "low_open": True, "high_open": True}, 0.0, "a number in (0, 1)"),
    ],
)
def test_number_check_message_names_the_range(bounds, value, expected):
    with pytest.raises(ConfigError) as error:
        checks.number("Owner", "arg", value, **bounds)
    assert str(error.value) == f"Owner: arg must be {expected}, got {value!r}"


@pytest.mark.parametrize(
    ("minimum", "expected"),
    [(None, "an int"), (0, "a non-negative int"), (1, "a positive int"), (3, "an int >= 3")],
)
def test_integer_check_message(minimum, expected):
    with pytest.raises(ConfigError) as error:
        checks.integer("Owner", "n", -5 if minimum is not None else 1.5, minimum=minimum)
    value = -5 if minimum is not None else 1.5
    assert str(error.value) == f"Owner: n must be {expected}, got {value!r}"


def test_other_check_messages():
    cases = [
        (lambda: checks.choice("O", "mode", "up", ("min", "max")), "mode",
         "one of 'min', 'max'", "'up'"),
        (lambda: checks.boolean("O", "flag", 1), "flag", "True or False", "1"),
        (lambda: checks.int_list("O", "ms", [1, -1]), "ms",
         "a list of non-negative ints", "[1, -1]"),
        (lambda: checks.int_list("O", "ms", [1], minimum=2), "ms", "a list of ints >= 2", "[1]"),
    ]  # fmt: skip
    for call, name, expected, shown in cases:
        with pytest.raises(ConfigError) as error:
            call()
        assert str(error.value) == f"O: {name} must be {expected}, got {shown}"


def test_a_named_subclass_registers_in_every_flavour_it_serves():
    class Probe(Schedule):
        name = "MutationProbeLR"
        flavors = ("oneflow",)

        def lr(self, step, base_lr):
            return base_lr

    class Nameless(Schedule):  # a helper base: never registered
        pass

    try:
        assert schedule_class("MutationProbeLR", "oneflow") is Probe
        assert ("MutationProbeLR", "torch") not in _REGISTRY
        assert "MutationProbeLR" in schedule_names("oneflow") and "MutationProbeLR" in (
            schedule_names()
        )
        assert "MutationProbeLR" not in schedule_names("torch")
        assert Nameless not in _REGISTRY.values()
    finally:
        _REGISTRY.pop(("MutationProbeLR", "oneflow"), None)


def test_native_frameworks_reads_aliases():
    assert native_frameworks("WarmUpLR") == native_frameworks("WarmupLR") == ("oneflow",)
    assert native_frameworks("OneCycleLR") == ("torch",)
    assert native_frameworks("ReduceLROnPlateau") == ("torch", "oneflow")


def test_closed_form_of_a_schedule_without_torchs_is_its_lr():
    [decay] = build_schedule("CosineDecayLR", "oneflow", {"decay_steps": 4, "alpha": 0.2})
    assert [decay.closed_form_lr(t, 2.0) for t in range(6)] == [decay.lr(t, 2.0) for t in range(6)]
    # 2 * (0.8 * (1 + cos(pi t / 4)) / 2 + 0.2), then 2 * 0.2 from step 4 on
    assert decay.closed_form_lr(2, 2.0) == pytest.approx(2 * (0.8 * 0.5 + 0.2), rel=1e-15)


def test_noise_wrapper_keeps_the_wrapped_start_lr_and_momentum():
    noisy = NoisyLR(CYCLE, noise_range=3)
    [cycle] = build_schedule("OneCycleLR", kwargs=CYCLE["kwargs"])
    assert noisy.start_lr(0.3) == cycle.start_lr(0.3) == 0.25  # max_lr / div_factor
    assert [noisy.momentum(t) for t in range(10)] == [cycle.momentum(t) for t in range(10)]
    assert len({noisy.momentum(t) for t in range(10)}) > 2


def test_oneflow_sequence_gives_the_member_its_own_step_for_momentum():
    """With interval_rescaling, the member after a milestone counts from 0 there,
    for its momentum as for its lr."""
    step = {"name": "StepLR", "kwargs": {"step_size": 2}}
    [seq] = build_schedule(
        "SequentialLR",
        "oneflow",
        {"schedulers": [step, CYCLE], "milestones": [3], "interval_rescaling": True},
    )
    [cycle] = build_schedule("OneCycleLR", kwargs=CYCLE["kwargs"])
    assert [seq.momentum(t) for t in range(3, 13)] == [cycle.momentum(t) for t in range(10)]
    assert [seq.momentum(t) for t in range(3)] == [None] * 3  # StepLR sets no momentum


def test_expressions_equal_hash_copy_and_pickle_by_text():
    a, b = Expression("0.9 ** epoch"), parse_expression("0.9 ** epoch")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Expression("0.9 ** epoch") != Expression("0.9 ** epoch", ("epoch",))
    where = Expression("x / 0", where="LambdaLR: lr_lambda")
    for clone in (copy.deepcopy(where), pickle.loads(pickle.dumps(where))):
        assert clone == where and clone.where == "LambdaLR: lr_lambda: "
        with pytest.raises(ExpressionError, match=r'^LambdaLR: lr_lambda: expression "x / 0"'):
            clone(1)


def test_parse_expression_takes_the_variable_names():
    f = parse_expression("2 * t", ("t",))
    assert f(3) == 6.0 and f.variables == ("t",)
    with pytest.raises(ExpressionError):
        parse_expression("2 * epoch", ("t",))


def test_a_long_refused_attribute_is_cut_to_40_characters():
    text = "math.factorial" + ".x" * 30
    with pytest.raises(ExpressionError) as error:
        Expression(text)
    shown = text[:37] + "..."  # 40 characters, the last three dots
    assert repr(shown) in str(error.value) and repr(text[:38]) not in str(error.value)
