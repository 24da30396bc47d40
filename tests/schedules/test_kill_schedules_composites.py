"""The pure composites (`build_schedule("SequentialLR")` and friends) against torch's
own stateful classes: restarts of members without a closed form, the first member
picked at a milestone of 0 or 1, the groups a composite writes when it drives a
generic `LRScheduler`, momentum after the cycling member is done, OneFlow's chain
of several cycling members, and the replay's cost. Corners a mutation run found
unchecked (docs/mutation.md); where torch raises (a nested composite restarted at a
milestone), the expected lrs are worked out by hand in the test.
"""

from __future__ import annotations

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler


def make_opt(lrs=(0.1,), **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], **options)


def torch_trace(build, n, **options):
    """(lr, momentum) of the first group before each of n steps of torch's scheduler."""
    opt = make_opt(**options)
    sched = build(opt)
    out = []
    for _ in range(n):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0].get("momentum")))
        opt.step()
        sched.step()
    return out


def member(name, **kwargs):
    return {"name": name, "kwargs": kwargs}


def pure(name, **kwargs):
    [schedule] = build_schedule(name, kwargs=kwargs)
    return schedule


def factor(epoch):
    # f(0) = 0.5 (not 1, and not f(1) = 0.75): a restart at step 0 shows which step it used
    return 0.5 + 0.25 * epoch


@pytest.mark.parametrize("name", ["MultiplicativeLR", "LambdaLR"])
def test_pure_sequence_restarts_a_member_without_closed_form_as_torch(name):
    """torch restarts the member at its milestone with `_update_lr(0)`: no closed form,
    so its chainable form at step 0 from the lr the group holds (MultiplicativeLR:
    lr * f(0); LambdaLR: base * f(0))."""

    def build(o):
        return T.SequentialLR(o, [T.ExponentialLR(o, 0.5), getattr(T, name)(o, factor)], [2])

    theirs = [lr for lr, _ in torch_trace(build, 7)]
    seq = pure(
        "SequentialLR",
        schedulers=[member("ExponentialLR", gamma=0.5), member(name, lr_lambda=factor)],
        milestones=[2],
    )
    assert [seq.lr(t, 0.1) for t in range(7)] == theirs


@pytest.mark.parametrize("milestone", [0, 1, 2])
def test_pure_sequence_starts_the_member_torch_starts(milestone):
    """torch's constructor starts schedulers[bisect_right(milestones, 0)]: the second
    member when the milestone is 0, the first when it is 1 or more."""

    def build(o):
        return T.SequentialLR(o, [T.ConstantLR(o, 0.5, 4), T.ExponentialLR(o, 0.8)], [milestone])

    theirs = [lr for lr, _ in torch_trace(build, 6)]
    seq = pure(
        "SequentialLR",
        schedulers=[
            member("ConstantLR", factor=0.5, total_iters=4),
            member("ExponentialLR", gamma=0.8),
        ],  # fmt: skip
        milestones=[milestone],
    )
    assert [seq.lr(t, 0.1) for t in range(6)] == theirs


def test_pure_sequence_leaves_momentum_where_the_cycling_member_left_it():
    """After OneCycleLR's milestone torch steps only ExponentialLR, which writes no
    momentum: the pure schedule has no momentum to set there (None), so the group
    keeps OneCycleLR's last one, as in torch."""
    cycle = {"max_lr": 1.0, "total_steps": 10, "div_factor": 4.0}

    def build(o):
        return T.SequentialLR(o, [T.OneCycleLR(o, **cycle), T.ExponentialLR(o, 0.9)], [4])

    theirs = torch_trace(build, 8, momentum=0.9)
    seq = pure(
        "SequentialLR",
        schedulers=[member("OneCycleLR", **cycle), member("ExponentialLR", gamma=0.9)],
        milestones=[4],
    )
    assert [seq.momentum(t) for t in range(4)] == [m for _, m in theirs[:4]]
    assert [seq.momentum(t) for t in range(4, 8)] == [None] * 4
    assert {m for _, m in theirs[4:]} == {theirs[3][1]}  # torch's group keeps the last one
    # and the stateful generic scheduler driving the pure one writes what torch's group holds
    opt = make_opt(momentum=0.9)
    sched = D.LRScheduler(opt, [seq])
    ours = []
    for _ in range(8):
        ours.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    assert ours == theirs


@pytest.mark.parametrize("order", ["exp_first", "cyclic_first"])
def test_generic_scheduler_over_a_pure_sequence_writes_the_groups_as_torch(order):
    """torch builds the members first: CyclicLR writes its base_lr into the group's lr,
    and the first member built fixes initial_lr (setdefault), which is the base the
    sequence restarts from. A generic LRScheduler given the pure sequence does the same
    to the group, then steps it through the chainable form."""
    cyclic = {"base_lr": 0.01, "max_lr": 0.05, "step_size_up": 2}

    def members(M, o):
        builders = [lambda: M.ExponentialLR(o, 0.5),
                    lambda: M.CyclicLR(o, **cyclic, cycle_momentum=False)]  # fmt: skip
        return [b() for b in (builders if order == "exp_first" else builders[::-1])]

    opt = make_opt((0.3,))
    theirs_sched = T.SequentialLR(opt, members(T, opt), [3])
    specs = [member("ExponentialLR", gamma=0.5), member("CyclicLR", **cyclic, cycle_momentum=False)]
    specs = specs if order == "exp_first" else specs[::-1]
    mine_opt = make_opt((0.3,))
    mine = D.LRScheduler(mine_opt, [pure("SequentialLR", schedulers=specs, milestones=[3])])
    expected_initial = 0.3 if order == "exp_first" else 0.01
    assert opt.param_groups[0]["initial_lr"] == expected_initial
    assert mine_opt.param_groups[0]["initial_lr"] == expected_initial
    assert mine.base_lrs == [expected_initial]
    theirs, ours = [], []
    for _ in range(7):
        theirs.append(opt.param_groups[0]["lr"])
        ours.append(mine_opt.param_groups[0]["lr"])
        opt.step()
        mine_opt.step()
        theirs_sched.step()
        mine.step()
    assert ours == theirs


def test_oneflow_chain_momentum_is_the_last_of_three_cycling_members():
    """OneFlow's ChainedScheduler sets what its last momentum-cycling member sets: with
    three, the third's momenta, which are torch's OneCycleLR's for that config."""
    cycle = {"max_lr": 1.0, "total_steps": 10, "div_factor": 4.0}
    configs = [cycle | {"base_momentum": m} for m in (0.5, 0.6, 0.7)]
    [chain] = build_schedule(
        "ChainedScheduler", "oneflow", {"schedulers": [member("OneCycleLR", **c) for c in configs]}
    )
    last = torch_trace(lambda o: T.OneCycleLR(o, **configs[2]), 10, momentum=0.9)
    assert [chain.momentum(t) for t in range(10)] == [m for _, m in last]


def test_pure_sequence_costs_one_update_a_step():
    """The fold is memoised per base lr ("a trajectory costs one update a step"): a
    trajectory of n steps calls a member's lambda about n times, not n * n / 2."""
    calls = []

    def counted(epoch):
        calls.append(epoch)
        return 0.9

    seq = pure(
        "SequentialLR",
        schedulers=[
            member("ExponentialLR", gamma=0.5),
            member("MultiplicativeLR", lr_lambda=counted),
        ],
        milestones=[2],
    )
    lrs = [seq.lr(t, 0.1) for t in range(60)]
    assert lrs[2] == 0.1 * 0.5 * 0.9 and lrs[3] == 0.1 * 0.5 * 0.9 * 0.9  # restarted: lr * f(0)
    assert len(calls) == 58  # steps 2..59, once each


# --- a composite nested in a sequence, restarted at the outer milestone ------------------
# torch raises there (its ChainedScheduler and SequentialLR have no get_lr); dualtrain
# restarts the nested composite's members at their step 0 (composite.py, `_restart`).


def test_nested_chain_restarts_each_member_from_the_lr_the_one_before_left():
    """Outer: ExponentialLR(0.5) until 2, then a chain of [ExponentialLR(0.8),
    MultiplicativeLR(f)]. At step 2 each chain member restarts at its step 0 in
    turn: ExponentialLR's closed form gives the base 0.1, MultiplicativeLR multiplies
    that by f(0) = 0.5: 0.05. Then both step: 0.05 * 0.8 * f(1) = 0.05 * 0.8 * 0.75."""
    chain = member(
        "ChainedScheduler",
        schedulers=[
            member("ExponentialLR", gamma=0.8),
            member("MultiplicativeLR", lr_lambda=factor),
        ],
    )
    seq = pure(
        "SequentialLR", schedulers=[member("ExponentialLR", gamma=0.5), chain], milestones=[2]
    )
    lrs = [seq.lr(t, 0.1) for t in range(4)]
    assert lrs == [0.1, 0.1 * 0.5, 0.1 * 0.5, 0.1 * 0.5 * 0.8 * 0.75]


@pytest.mark.parametrize("inner_milestone", [1, 2])
def test_nested_sequence_restarts_at_its_own_step_zero(inner_milestone):
    """Outer: ExponentialLR(0.5) until 2, then a sequence of [MultiplicativeLR(f),
    StepLR(1, 0.1)] with milestone m. At step 2 the nested sequence restarts at its
    step 0, so its first member restarts (MultiplicativeLR: 0.05 * f(0)); its own
    milestone comes m steps later, where StepLR restarts at its closed form (the base
    0.1); in between MultiplicativeLR steps on (its step 1: * f(1))."""
    inner = member(
        "SequentialLR",
        schedulers=[
            member("MultiplicativeLR", lr_lambda=factor),
            member("StepLR", step_size=1, gamma=0.1),
        ],  # fmt: skip
        milestones=[inner_milestone],
    )
    seq = pure(
        "SequentialLR", schedulers=[member("ExponentialLR", gamma=0.5), inner], milestones=[2]
    )
    lrs = [seq.lr(t, 0.1) for t in range(6)]
    restarted = 0.1 * 0.5 * 0.5  # the lr at step 1 (0.05) times f(0)
    if inner_milestone == 1:
        tail = [0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1]  # StepLR restarted at 3, then steps
    else:
        tail = [restarted * 0.75, 0.1, 0.1 * 0.1]  # f(1) at 3, StepLR restarted at 4
    assert lrs == [0.1, 0.05, restarted, *tail]


def test_nested_sequence_restart_resets_the_counter_of_its_own_nested_first_member():
    """Three levels: outer [ExponentialLR(0.5), middle] at 2; middle [inner, ConstantLR]
    at 10; inner [ExponentialLR(0.8), StepLR(1, 0.1)] at 2. At the outer milestone
    (step 2) middle restarts, and so does inner, its first member, at inner's step 0:
    ExponentialLR(0.8) restarts at the base 0.1. inner's milestone then comes two steps
    later (step 4: StepLR restarts at the base 0.1), with one ExponentialLR step in
    between (step 3: 0.08)."""
    inner = member(
        "SequentialLR",
        schedulers=[member("ExponentialLR", gamma=0.8), member("StepLR", step_size=1, gamma=0.1)],
        milestones=[2],
    )
    middle = member(
        "SequentialLR",
        schedulers=[inner, member("ConstantLR", factor=0.5, total_iters=2)],
        milestones=[10],
    )
    seq = pure(
        "SequentialLR", schedulers=[member("ExponentialLR", gamma=0.5), middle], milestones=[2]
    )
    lrs = [seq.lr(t, 0.1) for t in range(6)]
    assert lrs == [0.1, 0.1 * 0.5, 0.1, 0.1 * 0.8, 0.1, 0.1 * 0.1]
