"""The stateful ChainedScheduler and SequentialLR against torch's and OneFlow's own
classes: their refusals (the message names the value and what was expected), torch's
and OneFlow's arguments, the member a sequence starts and restarts, `get_last_lr()` at
every step, and a composite restarted inside a torch-flavour sequence (docs/mutation.md:
what a full mutation run found unchecked).
"""

from __future__ import annotations

import math

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError, ConfigTypeError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler
# OneFlow computes closed forms in another association order: the last bits differ.
REL = 1e-12


def torch_opt(lrs=(0.1, 0.05)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def oneflow_opt(lrs=(0.1,), initial=None):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    opt = flow.optim.SGD(groups, lr=lrs[0])
    if initial is not None:  # resuming: the optimizer's state holds initial_lr
        for group in opt.param_groups:
            group["initial_lr"] = initial
    return opt


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def trajectory(sched, opt, steps):
    """The lrs the groups hold and get_last_lr(), after construction and each step."""
    out = [(lrs(opt), [float(v) for v in sched.get_last_lr()])]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append((lrs(opt), [float(v) for v in sched.get_last_lr()]))
    return out


def close(a, b):
    flat_a = [x for step in a for part in step for x in part]
    flat_b = [x for step in b for part in step for x in part]
    return len(flat_a) == len(flat_b) and all(
        math.isclose(x, y, rel_tol=REL) for x, y in zip(flat_a, flat_b, strict=True)
    )


def of(flavor):
    """dualtrain's classes in `flavor`."""
    return lambda cls: lambda *a, **kw: getattr(D, cls)(*a, flavor=flavor, **kw)


# --- refusals ---------------------------------------------------------------------


def test_members_must_be_a_non_empty_list_of_schedulers():
    opt = torch_opt()
    for build, owner in (
        (lambda members: D.ChainedScheduler(members, opt), "ChainedScheduler"),
        (lambda members: D.SequentialLR(opt, members, []), "SequentialLR"),
    ):
        with pytest.raises(ConfigError) as info:
            build([])
        assert str(info.value) == f"{owner}: schedulers must be a non-empty list, got []"
        with pytest.raises(ConfigTypeError) as info:
            build([3])
        assert str(info.value) == (
            f"{owner}: schedulers[0] must be a scheduler with an optimizer, got int"
        )
        with pytest.raises(ConfigError) as info:
            build([D.ReduceLROnPlateau(opt)])
        assert str(info.value) == (
            f"{owner}: schedulers[0] is ReduceLROnPlateau, which needs a metric at each "
            "step; expected a scheduler that steps on its own"
        )


def test_sequence_needs_one_milestone_fewer_than_members():
    opt = torch_opt()
    members = [D.ConstantLR(opt, 0.5, 2), D.ExponentialLR(opt, 0.9)]
    with pytest.raises(ConfigError) as info:
        D.SequentialLR(opt, members, [1, 2])
    assert str(info.value) == (
        "SequentialLR: milestones must have one entry fewer than schedulers (1), got [1, 2]"
    )


def test_sequence_arguments_as_torch_takes_them():
    """torch: last_epoch after the milestones (positional or keyword; last_step is
    dualtrain's alias); anything else is named."""
    opt = torch_opt()
    members = [D.ConstantLR(opt, 0.5, 2), D.ExponentialLR(opt, 0.9)]
    with pytest.raises(ConfigTypeError) as info:
        D.SequentialLR(opt, members, [2], -1, False)
    assert str(info.value) == "SequentialLR: too many positional arguments: (-1, False)"
    with pytest.raises(ConfigTypeError) as info:
        D.SequentialLR(opt, members, [2], gamma=0.5)
    assert str(info.value) == "SequentialLR: unknown argument(s) ['gamma']"
    with pytest.raises(ConfigTypeError) as info:
        D.SequentialLR(opt, members, [2], flavor="oneflow", gamma=0.5)
    assert str(info.value) == "SequentialLR: unknown argument(s) ['gamma']"


@pytest.mark.parametrize("how", ["positional", "last_epoch", "last_step"])
def test_sequence_resumed_with_last_epoch_as_torchs(how):
    """torch's SequentialLR(..., last_epoch=2) counts on from 3 (and starts member 0)."""
    runs = []
    for M in (T, D):
        opt = torch_opt()
        members = [M.ConstantLR(opt, 0.5, 2), M.ExponentialLR(opt, 0.9)]
        if M is T or how == "positional":
            sched = M.SequentialLR(opt, members, [4], 2)
        else:
            sched = M.SequentialLR(opt, members, [4], **{how: 2})
        runs.append((sched.last_epoch, trajectory(sched, opt, 5)))
    assert runs[1] == runs[0]
    assert runs[0][0] == 3


# --- torch flavour: which member runs ----------------------------------------------


@pytest.mark.parametrize("milestones", [[1, 3], [2, 4]])
def test_sequence_starts_and_restarts_members_as_torchs(milestones):
    """A milestone at 1 starts member 0 still (torch looks up step 0); with two
    milestones each member restarts at its own; get_last_lr() is what the groups hold."""
    runs = []
    for M in (T, D):
        opt = torch_opt()
        members = [M.ConstantLR(opt, 0.5, 3), M.ExponentialLR(opt, 0.9), M.StepLR(opt, 1, 0.8)]
        runs.append(trajectory(M.SequentialLR(opt, members, milestones), opt, 7))
    assert runs[1] == runs[0]


def test_a_chain_restarted_in_a_sequence_restarts_each_member_as_the_pure_schedule():
    """torch raises here (its chain has no closed form); dualtrain restarts each member
    at its step 0 in turn, the last one's lr winning, as the pure composite (a separate
    implementation) says: ConstantLR's 0.5 does not survive ExponentialLR's restart."""
    opt = torch_opt()
    chain = D.ChainedScheduler([D.ConstantLR(opt, 0.5, 2), D.ExponentialLR(opt, 0.9)])
    sched = D.SequentialLR(opt, [D.ExponentialLR(opt, 0.8), chain], milestones=[3])
    got = trajectory(sched, opt, 7)
    const = {"name": "ConstantLR", "kwargs": {"factor": 0.5, "total_iters": 2}}
    exp9 = {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    inner = {"name": "ChainedScheduler", "kwargs": {"schedulers": [const, exp9]}}
    exp8 = {"name": "ExponentialLR", "kwargs": {"gamma": 0.8}}
    pure = build_schedule(
        "SequentialLR", kwargs={"schedulers": [exp8, inner], "milestones": [3]}, n_groups=2
    )
    expected = [[s.lr(t, b) for s, b in zip(pure, (0.1, 0.05), strict=True)] for t in range(8)]
    assert got == [(lr, lr) for lr in expected]
    assert expected[3] == [0.1, 0.05]  # the restart: ExponentialLR's step 0, last


def _stepped(sched, opt, steps):
    for _ in range(steps):
        opt.step()
        sched.step()
    return sched


def test_oneflow_flavour_composites_restarted_by_a_torch_flavour_sequence():
    """A torch-flavour SequentialLR restarts its member with `_update_lr(0)` (torch's
    protocol); a OneFlow-flavour chain or sequence there jumps to its own step 0 and
    steps on from it, whatever its counter was (here: stepped 3 times before). Expected:
    torch's ExponentialLR for the first two steps, then torch's StepLR (the chain's only
    member, stepped as often before) or OneFlow's own SequentialLR from step 0."""
    ours_opt = torch_opt()
    exp = D.ExponentialLR(ours_opt, 0.5)
    chain = D.ChainedScheduler([D.StepLR(ours_opt, 2, 0.5, flavor="oneflow")], flavor="oneflow")
    got = trajectory(D.SequentialLR(ours_opt, [exp, _stepped(chain, ours_opt, 3)], [2]),
                     ours_opt, 7)  # fmt: skip
    theirs_opt = torch_opt()
    exp = T.ExponentialLR(theirs_opt, 0.5)
    step = _stepped(T.StepLR(theirs_opt, 2, 0.5), theirs_opt, 3)
    assert got == trajectory(T.SequentialLR(theirs_opt, [exp, step], [2]), theirs_opt, 7)

    ours_opt = torch_opt()
    exp = D.ExponentialLR(ours_opt, 0.5)
    inner = D.SequentialLR(ours_opt, [D.ConstantLR(ours_opt, 0.5, 2, flavor="oneflow"),
                                      D.StepLR(ours_opt, 2, 0.5, flavor="oneflow")],
                           [2], True, flavor="oneflow")  # fmt: skip
    got = trajectory(D.SequentialLR(ours_opt, [exp, _stepped(inner, ours_opt, 3)], [2]),
                     ours_opt, 7)  # fmt: skip
    f_opt = oneflow_opt((0.1, 0.05))
    f_members = [F.ConstantLR(f_opt, 0.5, 2), F.StepLR(f_opt, 2, 0.5)]
    oneflow_run = trajectory(F.SequentialLR(f_opt, f_members, [2], True), f_opt, 5)
    assert close(got, [([0.1, 0.05],) * 2, ([0.05, 0.025],) * 2, *oneflow_run])


# --- OneFlow flavour ---------------------------------------------------------------


def test_oneflow_flavour_positional_arguments_and_verbose(capsys):
    """OneFlow's order: interval_rescaling, last_step, verbose; `last_epoch` is an alias
    of last_step; quiet by default, and a chain keeps verbose False as OneFlow's does."""
    ours = of("oneflow")
    runs = []
    for how in ("theirs", "positional", "last_step", "last_epoch"):
        opt = oneflow_opt(initial=0.1)
        if how == "theirs":
            members = [F.ConstantLR(opt, 0.5, 2), F.StepLR(opt, 2, 0.5)]
            sched = F.SequentialLR(opt, members, [2], True, 3, True)
        else:
            members = [ours("ConstantLR")(opt, 0.5, 2), ours("StepLR")(opt, 2, 0.5)]
            if how == "positional":
                sched = ours("SequentialLR")(opt, members, [2], True, 3, True)
            else:
                sched = ours("SequentialLR")(opt, members, [2], True, verbose=True, **{how: 3})
        capsys.readouterr()
        run = trajectory(sched, opt, 3)
        printed = capsys.readouterr().out.splitlines()
        runs.append((sched.last_step, sched.verbose, len(printed), run))
    for run in runs[1:]:
        assert run[:3] == runs[0][:3] == (7, True, 3)
        assert close(run[3], runs[0][3])
    opt = oneflow_opt()
    quiet = [
        ours("SequentialLR")(opt, [ours("ConstantLR")(opt, 0.5, 2)] * 2, [2]),
        ours("ChainedScheduler")([ours("ConstantLR")(opt, 0.5, 2)]),
    ]
    theirs = F.ChainedScheduler([F.ConstantLR(oneflow_opt(), 0.5, 2)])
    capsys.readouterr()
    for sched in quiet:
        trajectory(sched, opt, 2)
        assert sched.verbose is False and sched.state_dict()["verbose"] is False
    assert theirs.state_dict()["verbose"] is False
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("rescaling", [False, True])
def test_oneflow_flavour_sequence_tells_each_member_its_step(rescaling):
    """OneFlow's step() takes no epoch: `last_step = epoch - 1; step()` lands where
    dualtrain's step(epoch) does; the running member is told its step (counted from
    its milestone with interval_rescaling)."""
    ours = of("oneflow")
    t_opt, o_opt = oneflow_opt(), oneflow_opt()
    t_members = [F.ConstantLR(t_opt, 0.5, 2), F.StepLR(t_opt, 2, 0.5)]
    theirs = F.SequentialLR(t_opt, t_members, [3], rescaling)
    o_members = [ours("ConstantLR")(o_opt, 0.5, 2), ours("StepLR")(o_opt, 2, 0.5)]
    mine = ours("SequentialLR")(o_opt, o_members, [3], rescaling)
    for epoch in [1, 2, 3, 4, 5, 8, 6]:
        theirs.last_step = epoch - 1
        theirs.step()
        mine.step(epoch)
        assert mine.last_step == theirs.last_step == epoch
        assert [m.last_step for m in o_members] == [m.last_step for m in t_members]
        assert close([(lrs(o_opt),)], [(lrs(t_opt),)])
    assert t_members[1].last_step == (3 if rescaling else 6)


def test_a_chain_of_one_member_is_its_member():
    """Without an optimizer a chain takes its first member's (a member that has none
    is named); its base lrs and closed form are its only member's."""
    with pytest.raises(ConfigTypeError) as info:
        D.ChainedScheduler([3])
    assert str(info.value) == (
        "ChainedScheduler: schedulers[0] must be a scheduler with an optimizer, got int"
    )
    opt = torch_opt()
    chain = D.ChainedScheduler([D.StepLR(opt, 2, 0.5)])
    assert chain.optimizer is opt and chain.base_lrs == [0.1, 0.05]
    assert chain.lrs_at(5) == [0.1 * 0.25, 0.05 * 0.25]  # two halvings by step 5


def test_oneflow_sequence_runs_from_its_own_base_lrs_as_oneflows():
    """OneFlow's SequentialLR reads initial_lr when it is built, after its members: a
    group's initial_lr raised in between is the base every member's lr is computed
    from (the members keep theirs)."""
    ours = of("oneflow")
    runs = []
    for M in (F, D):
        opt = oneflow_opt()
        if M is F:
            members = [F.ConstantLR(opt, 0.5, 2), F.StepLR(opt, 2, 0.5)]
        else:
            members = [ours("ConstantLR")(opt, 0.5, 2), ours("StepLR")(opt, 2, 0.5)]
        opt.param_groups[0]["initial_lr"] = 0.4
        sched = (F.SequentialLR if M is F else ours("SequentialLR"))(opt, members, [2])
        runs.append((sched.base_lrs, [m.base_lrs for m in members], trajectory(sched, opt, 5)))
    assert runs[1][:2] == runs[0][:2] == ([0.4], [[0.1], [0.1]])
    assert close(runs[1][2], runs[0][2])
    assert runs[0][2][0][0] == [0.4 * 0.5]


def test_torch_state_loads_into_a_oneflow_flavour_sequence():
    """torch nests the members' states under `_schedulers`, OneFlow (and dualtrain's
    OneFlow flavour) under `schedulers`: either loads, the members taking the saved
    arguments and counters."""
    t_opt = torch_opt()
    t_members = [T.ConstantLR(t_opt, 0.5, 2), T.ExponentialLR(t_opt, 0.9)]
    theirs = T.SequentialLR(t_opt, t_members, [2])
    trajectory(theirs, t_opt, 4)
    opt = torch_opt()
    ours = of("oneflow")
    members = [ours("ConstantLR")(opt, 0.25, 3), ours("ExponentialLR")(opt, 0.5)]
    mine = ours("SequentialLR")(opt, members, [2])
    mine.load_state_dict(theirs.state_dict())
    assert (members[0].factor, members[0].total_iters, members[1].gamma) == (0.5, 2, 0.9)
    assert [m.last_epoch for m in members] == [m.last_epoch for m in t_members]
    assert "_schedulers" not in mine.state_dict()


def test_a_state_without_member_states_loads_the_composites_own():
    """A state with no nested members (a hand-written one) loads what it holds and
    leaves the members as they are."""
    opt = torch_opt()
    members = [D.StepLR(opt, 2, 0.5), D.ExponentialLR(opt, 0.9)]
    chain = D.ChainedScheduler(members)
    trajectory(chain, opt, 2)
    own = {k: v for k, v in chain.state_dict().items() if k != "_schedulers"}
    chain.load_state_dict(own | {"_last_lr": [1.0, 2.0]})
    assert chain.get_last_lr() == [1.0, 2.0]
    assert [m.last_epoch for m in members] == [2, 2]


def test_oneflow_flavour_chain_steps_to_an_epoch():
    """OneFlow's ChainedScheduler.step() takes no epoch: `last_step = epoch - 1; step()`
    lands where dualtrain's step(epoch) does, and tells every member that step."""
    ours = of("oneflow")
    t_opt, o_opt = oneflow_opt(), oneflow_opt()
    t_members = [F.ConstantLR(t_opt, 0.5, 3), F.StepLR(t_opt, 2, 0.5)]
    theirs = F.ChainedScheduler(t_members)
    o_members = [ours("ConstantLR")(o_opt, 0.5, 3), ours("StepLR")(o_opt, 2, 0.5)]
    mine = ours("ChainedScheduler")(o_members)
    for epoch in [2, 5, 1, 4]:
        theirs.last_step = epoch - 1
        theirs.step()
        mine.step(epoch)
        assert mine.last_step == theirs.last_step == epoch
        assert [m.last_step for m in o_members] == [m.last_step for m in t_members]
        assert close([(lrs(o_opt),)], [(lrs(t_opt),)])
