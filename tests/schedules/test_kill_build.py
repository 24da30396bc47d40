"""Building schedules from configs, and the duck-typed optimizer access of the drop-in
classes: every refusal asserted in full, and the values torch's own classes give
(docs/mutation.md: what a full mutation run found unchecked).
"""

from __future__ import annotations

import types
import warnings
from collections import deque

import numpy as np
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule, check_kwargs, checks
from dualtrain.schedules.base import schedule_class, schedule_names, split_per_group
from dualtrain.stateful import values

T = torch.optim.lr_scheduler


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_class_without_arguments_names_none_as_what_it_expects():
    class Bare:
        def __init__(self):
            pass

    assert refusal(check_kwargs, "Bare", Bare, {"gamma": 1}) == (
        "Bare: unknown argument 'gamma' (expected: none)"
    )


def test_kwargs_left_out_build_the_defaults():
    """ConstantLR's defaults (factor 1/3, 5 steps) with no kwargs at all: 1/3 of the lr."""
    [schedule] = build_schedule("ConstantLR")
    assert schedule.lr(0, 0.3) == 0.3 * (1.0 / 3)
    assert schedule.lr(5, 0.3) == 0.3


def test_n_groups_is_the_callers_to_give_not_a_plateau_argument():
    """build_schedule's own n_groups sets the groups; one given in kwargs is unknown."""
    assert refusal(build_schedule, "ReduceLROnPlateau", kwargs={"n_groups": 2}) == (
        "ReduceLROnPlateau: unknown argument 'n_groups' (expected: mode, factor, patience, "
        "threshold, threshold_mode, cooldown, min_lr, eps)"
    )
    assert build_schedule("ReduceLROnPlateau", n_groups=3).min_lrs == [0, 0, 0]


def test_a_warmup_of_no_scheduler_warms_up_alone():
    """OneFlow's WarmupLR with scheduler None: linear from 1/3 to the base over 3 steps."""
    kwargs = {"scheduler": None, "warmup_iters": 3, "warmup_factor": 0.25}
    [schedule] = build_schedule("WarmupLR", "oneflow", kwargs)
    assert [schedule.lr(k, 1.0) for k in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_a_sequence_of_no_schedulers_is_refused_in_one_line():
    kwargs = {"schedulers": None, "milestones": [2]}
    assert refusal(build_schedule, "SequentialLR", "torch", kwargs) == (
        "SequentialLR: schedulers must be a list of {name, kwargs}, got None"
    )


def test_a_bad_member_is_named_by_its_place():
    members = [{"name": "ConstantLR"}, {"name": "StepLR", "kwargs": {}}]
    assert refusal(
        build_schedule, "SequentialLR", "torch", {"schedulers": members, "milestones": [2]}
    ) == ("SequentialLR: schedulers[1]: StepLR: missing required argument 'step_size'")
    assert refusal(
        build_schedule, "WarmupLR", "oneflow", {"scheduler": {"name": "StepLR", "kwargs": {}}}
    ) == ("WarmupLR: scheduler: StepLR: missing required argument 'step_size'")


def test_a_member_with_a_stray_key_or_a_plateau_is_refused():
    stray = {"name": "ConstantLR", "extra": 1}
    assert refusal(
        build_schedule, "SequentialLR", "torch", {"schedulers": [stray], "milestones": []}
    ) == (
        "SequentialLR: schedulers[0]: unknown key(s) ['extra'] in "
        "{'name': 'ConstantLR', 'extra': 1}"
    )
    plateau = {"name": "ReduceLROnPlateau"}
    assert refusal(
        build_schedule, "SequentialLR", "torch", {"schedulers": [plateau], "milestones": []}
    ) == (
        "SequentialLR: schedulers[0]: ReduceLROnPlateau cannot be a member: it needs a "
        "metric each step"
    )


def test_one_schedule_object_folds_each_base_lr_on_its_own():
    """The fold is per base lr: after steps from 1.0, the same StepLR from 0.5 gives
    0.5's values (torch: 0.5 * 0.1 after step_size 2, twice at step 4)."""
    [schedule] = build_schedule("StepLR", kwargs={"step_size": 2, "gamma": 0.1})
    assert [schedule.lr(k, 1.0) for k in range(5)] == [1.0, 1.0, 0.1, 0.1, 0.1 * 0.1]
    assert [schedule.lr(k, 0.5) for k in range(5)] == [0.5, 0.5, 0.05, 0.05, 0.05 * 0.1]


def test_schedule_class_defaults_to_the_torch_flavour_and_lists_names():
    assert schedule_class("StepLR") is schedule_class("StepLR", "torch")
    assert refusal(schedule_class, "StepLR", "jax") == (
        "flavor must be one of torch, oneflow, got 'jax'"
    )
    message = refusal(schedule_class, "Nope", "oneflow")
    assert message.startswith("unknown oneflow schedule 'Nope' (known: ChainedScheduler, ")
    assert message.endswith(", WarmupLR, WarmupStableDecayLR, ReduceLROnPlateau)")
    # Every name is registered in both flavours (so listing one flavour's names or all
    # names is the same list: an equivalent mutant in docs/mutation.md rests on this).
    assert schedule_names("torch") == schedule_names("oneflow") == schedule_names()


def test_every_per_group_list_is_split_whatever_comes_before_it():
    """A scalar per-group argument before a list one: the list still splits."""
    groups = split_per_group("X", {"a": 1, "b": [1, 2]}, ("a", "b"), 2)
    assert groups == [{"a": 1, "b": 1}, {"a": 1, "b": 2}]


def test_numbers_keep_their_kind_but_numpy_floats_become_python_floats():
    """checks.number hands back an int as an int and any float as a Python float (a
    NumPy float64 too), so a saved state holds plain numbers."""
    assert type(checks.number("X", "gamma", 2)) is int
    assert type(checks.number("X", "gamma", np.float64(0.5))) is float


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step_size": 0}, "StepLR: step_size must be a positive int, got 0"),
        ({"step_size": 2, "gamma": 0}, "StepLR: gamma must be a number > 0, got 0"),
    ],
)
def test_steplr_names_the_argument_it_refuses(kwargs, message):
    assert refusal(build_schedule, "StepLR", kwargs=kwargs) == message


def sequential(module):
    """torch's SequentialLR with milestones out of order ([5, 4, 2]: torch does not
    sort them, its bisect then picks the members as the list stands)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    members = [
        module.ExponentialLR(opt, 0.9),
        module.ConstantLR(opt, factor=0.5, total_iters=100),
        module.StepLR(opt, 1, 0.5),
        module.ExponentialLR(opt, 0.8),
    ]
    sched = module.SequentialLR(opt, members, milestones=[5, 4, 2])
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(8):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_sequential_lr_with_milestones_out_of_order_steps_as_torchs():
    """At step 2 the bisect finds the first member, whose step is a plain step (only a
    member reached at its own milestone restarts): 0.9 ** 3, as torch gives."""
    ours, theirs = sequential(D), sequential(T)
    assert ours == theirs
    assert theirs[2] == pytest.approx(0.729, rel=1e-15)


class Holder:
    """An optimizer stand-in holding `param_groups`."""

    def __init__(self, groups):
        self.param_groups = groups


@pytest.mark.parametrize(
    "groups",
    [
        [],  # no group
        deque([{"lr": 0.1}]),  # not a list or tuple
        [{"params": []}],  # a group without lr
        [types.MappingProxyType({"lr": 0.1})],  # read-only: no item assignment
        [5],  # not a mapping at all ("lr" in 5 raises TypeError)
    ],
    ids=["empty", "deque", "no-lr", "read-only", "int"],
)
def test_param_groups_that_cannot_be_scheduled_are_refused_naming_the_optimizer(groups):
    assert refusal(values.param_groups, Holder(groups)) == (
        "optimizer must expose param_groups, a list of dict-like groups with 'lr', got Holder"
    )


def test_a_value_is_set_where_the_group_has_none_yet():
    group = {"lr": 0.1}
    values.set_value(group, "momentum", 0.9)
    assert group == {"lr": 0.1, "momentum": 0.9}
    tensor_group = {"lr": torch.tensor(0.1)}
    held = tensor_group["lr"]
    values.set_value(tensor_group, "lr", 0.25)
    assert tensor_group["lr"] is held and held.item() == 0.25  # filled in place


@pytest.mark.parametrize("value", [None, "0.1", 0.1, 3, np.float64(0.1)])
def test_only_tensor_likes_count_as_tensors(value):
    assert values.is_tensor(value) is False


def test_a_tensor_counts_as_one_and_scalar_reads_it():
    assert values.is_tensor(torch.tensor(0.5)) is True
    assert values.scalar(torch.tensor(0.5)) == 0.5
    assert type(values.scalar(np.float32(0.5))) is float
    assert values.scalar(None) is None and values.scalar(3) == 3
