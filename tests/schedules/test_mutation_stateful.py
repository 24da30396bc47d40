"""The stateful schedulers' state round trips and nested composites, against torch or
against the pure composite schedule (docs/mutation.md: what a mutation run found
unchecked). torch's classes give the expected values wherever torch can run the case.
"""

from __future__ import annotations

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler


def make_opt(lrs=(0.1,), **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], **options)


def lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def steps(sched, opt, n):
    out = []
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(lrs(opt))
    return out


class Scale:
    """A CyclicLR scale_fn with state (torch saves its __dict__)."""

    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return self.k**x


@pytest.mark.parametrize("M", [T, D], ids=["torch", "dualtrain"])
def test_cyclic_custom_scale_fn_state_loads_into_the_object(M):
    """The saved __dict__ of a callable scale_fn is restored into the new scheduler's
    object, which then scales as the saved one did."""
    first_opt = make_opt(momentum=0.9)
    first = M.CyclicLR(first_opt, 0.01, 0.1, step_size_up=2, scale_fn=Scale(0.5))
    steps(first, first_opt, 3)
    opt = make_opt(momentum=0.9)
    second = M.CyclicLR(opt, 0.01, 0.1, step_size_up=2, scale_fn=Scale(0.9))
    second.load_state_dict(first.state_dict())
    assert second._scale_fn_custom.k == 0.5
    for group, lr in zip(opt.param_groups, lrs(first_opt), strict=True):
        group["lr"] = lr
    assert steps(second, opt, 6) == steps(first, first_opt, 6)


def test_cyclic_state_without_the_custom_entry_keeps_the_object():
    sched = D.CyclicLR(make_opt(momentum=0.9), 0.01, 0.1, scale_fn=Scale(0.5))
    state = sched.state_dict()
    del state["_scale_fn_custom"]
    sched.load_state_dict(state)
    assert sched._scale_fn_custom.k == 0.5 and sched.scale_fn(2) == 0.25


def test_lambda_state_with_text_and_missing_entries():
    """A lambda written as text is saved as its text and loaded back as text; a state
    without lr_lambdas leaves the lambdas alone."""
    first = D.LambdaLR(make_opt((0.1, 0.2)), ["0.5 ** epoch", lambda e: 1.0])
    state = first.state_dict()
    assert state["lr_lambdas"] == ["0.5 ** epoch", None]
    opt = make_opt((0.1, 0.2))
    other = D.LambdaLR(opt, ["0.9 ** epoch", lambda e: 2.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0] == "0.5 ** epoch" and other.lr_lambdas[1](3) == 2.0
    assert other.lrs_at(2) == [0.1 * 0.25, 0.2 * 2.0]
    del state["lr_lambdas"]
    other.load_state_dict(state)
    assert other.lr_lambdas[0] == "0.5 ** epoch"


def test_state_must_be_a_dict_and_keeps_the_optimizer():
    opt = make_opt()
    sched = D.StepLR(opt, 2)
    with pytest.raises(ConfigError, match="scheduler state must be a dict, got list"):
        sched.load_state_dict([("last_epoch", 3)])
    state = sched.state_dict() | {"optimizer": "not mine", "last_epoch": 3}
    sched.load_state_dict(state)
    assert sched.optimizer is opt and sched.last_epoch == 3


def test_oneflow_state_says_last_step_torch_last_epoch():
    torch_state = D.StepLR(make_opt(), 2).state_dict()
    oneflow_state = D.StepLR(make_opt(), 2, flavor="oneflow").state_dict()
    assert "last_epoch" in torch_state and "last_step" not in torch_state
    assert "last_step" in oneflow_state and "last_epoch" not in oneflow_state


def test_plateau_is_better_and_has_no_schedule():
    sched = D.ReduceLROnPlateau(make_opt(), mode="max", threshold=0.1, threshold_mode="abs")
    theirs = T.ReduceLROnPlateau(make_opt(), mode="max", threshold=0.1, threshold_mode="abs")
    for a, best in [(1.2, 1.0), (1.1, 1.0), (1.05, 1.0), (0.9, 1.0)]:
        assert sched.is_better(a, best) == theirs._is_better(a, best)  # torch 2.14: private
    with pytest.raises(ConfigError, match="ReduceLROnPlateau: its lrs depend on the metrics"):
        _ = sched.schedules


def test_closed_form_step_needs_every_group_to_have_one():
    """step(epoch) of a scheduler built from schedules uses the closed form only when
    every group's schedule has one (torch: the class has _get_closed_form_lr)."""
    opt = make_opt((1.0, 1.0))
    exp = build_schedule("ExponentialLR", kwargs={"gamma": 0.5})[0]
    lam = build_schedule("MultiplicativeLR", kwargs={"lr_lambda": "0.5"})[0]
    mixed = D.LRScheduler(opt, [exp, lam])
    assert not mixed._has_closed_form()
    assert D.LRScheduler(make_opt((1.0, 1.0)), [exp, exp])._has_closed_form()


NESTED = {
    # a chain as the member a SequentialLR restarts at its milestone
    "chain-in-sequence": lambda M, o: M.SequentialLR(
        o,
        [M.ConstantLR(o, 0.5, 2), M.ChainedScheduler([M.ExponentialLR(o, 0.9), M.StepLR(o, 2)])],
        milestones=[3],
    ),
    # a sequence restarted inside an outer sequence
    "sequence-in-sequence": lambda M, o: M.SequentialLR(
        o,
        [
            M.ExponentialLR(o, 0.8),
            M.SequentialLR(o, [M.ConstantLR(o, 0.5, 2), M.ExponentialLR(o, 0.9)], milestones=[2]),
        ],
        milestones=[3],
    ),
}


def _nested_config(name):
    """The same composites as pure schedule configs."""
    const = {"name": "ConstantLR", "kwargs": {"factor": 0.5, "total_iters": 2}}
    exp9 = {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    if name == "chain-in-sequence":
        step = {"name": "StepLR", "kwargs": {"step_size": 2}}
        inner = {"name": "ChainedScheduler", "kwargs": {"schedulers": [exp9, step]}}
        return {"schedulers": [const, inner], "milestones": [3]}
    inner = {"name": "SequentialLR", "kwargs": {"schedulers": [const, exp9], "milestones": [2]}}
    exp8 = {"name": "ExponentialLR", "kwargs": {"gamma": 0.8}}
    return {"schedulers": [exp8, inner], "milestones": [3]}


@pytest.mark.parametrize("name", NESTED)
def test_nested_composites_restart_as_the_pure_schedule_says(name):
    """torch raises when SequentialLR restarts a composite member at its milestone;
    dualtrain restarts the composite's members at their step 0. The stateful objects
    and the pure composite (two separate implementations) give the same floats."""
    opt = make_opt((0.1, 0.05))
    sched = NESTED[name](D, opt)
    stateful = [lrs(opt)] + steps(sched, opt, 9)
    pure = build_schedule("SequentialLR", kwargs=_nested_config(name), n_groups=2)
    assert stateful == [[s.lr(t, b) for s, b in zip(pure, (0.1, 0.05), strict=True)]
                        for t in range(10)]  # fmt: skip
    assert sched.get_last_lr() == stateful[-1]
    with pytest.raises(Exception):  # noqa: B017 - torch's own failure, whatever its type
        torch_opt = make_opt((0.1, 0.05))
        steps(NESTED[name](T, torch_opt), torch_opt, 9)
