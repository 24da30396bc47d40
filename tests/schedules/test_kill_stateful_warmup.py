"""WarmupLR against OneFlow 0.9's own class: its defaults, `verbose`, `last_step` (and
the `last_epoch` alias), `step(epoch)`, the step it tells the wrapped scheduler, and
the state it saves and loads (docs/mutation.md: what a full mutation run found
unchecked).
"""

from __future__ import annotations

import oneflow as flow
import pytest
from stepping import lrs, trajectory

import dualtrain.lr_scheduler as D

F = flow.optim.lr_scheduler


def make_opt(lrs=(0.1,), initial=None):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    opt = flow.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    if initial is not None:  # resuming: the optimizer's state holds initial_lr
        for group in opt.param_groups:
            group["initial_lr"] = initial
    return opt


# OneFlow computes the closed forms in another association order: the last bits differ.
REL = 1e-12


def close(a, b):
    """Trajectories (lists of per-group lrs) equal to the last bits."""
    return len(a) == len(b) and all(
        x == pytest.approx(y, rel=REL) for r, s in zip(a, b, strict=True)
        for x, y in zip(r, s, strict=True)
    )  # fmt: skip


def step_lr(M):
    """OneFlow's StepLR, or dualtrain's in the OneFlow flavour."""
    if M is F:
        return lambda opt, *args, **kw: F.StepLR(opt, *args, **kw)
    return lambda opt, *args, **kw: D.StepLR(opt, *args, flavor="oneflow", **kw)


@pytest.mark.parametrize("wrapped", [False, True])
def test_defaults_are_oneflows(wrapped, capsys):
    """warmup_factor 1/3, warmup_iters 5, linear, no prefix, quiet."""
    runs = []
    for M in (F, D):
        opt = make_opt()
        sched = M.WarmupLR(step_lr(M)(opt, 3) if wrapped else opt)
        runs.append((trajectory(sched, opt, 8), sched.verbose, sched.state_dict()["milestones"]))
    assert close(runs[1][0], runs[0][0])
    assert runs[1][1:] == runs[0][1:] == (False, [5] if wrapped else [])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("wrapped", [False, True])
def test_verbose_prints_the_lrs_it_sets(wrapped, capsys):
    opt = make_opt((0.1, 0.1))
    sched = D.WarmupLR(step_lr(D)(opt, 3) if wrapped else opt, 0.5, 2, verbose=True)
    capsys.readouterr()  # what the wrapped scheduler and the first step printed
    trajectory(sched, opt, 3)
    out = capsys.readouterr().out.splitlines()
    assert sched.verbose is True
    assert len(out) == 3 * 2 and all("param_groups[" in line for line in out)


@pytest.mark.parametrize("keyword", ["last_step", "last_epoch"])
def test_resuming_at_a_step_as_oneflow(keyword):
    """Resumed at step 4 (past a 3-step warmup), the first step sets step 5's lr;
    `last_epoch` is dualtrain's alias of OneFlow's `last_step`."""
    theirs_opt = make_opt(initial=0.1)
    theirs = F.WarmupLR(F.StepLR(theirs_opt, 2, 0.5), 0.5, 3, last_step=4)
    ours_opt = make_opt(initial=0.1)
    mine = D.WarmupLR(step_lr(D)(ours_opt, 2, 0.5), 0.5, 3, **{keyword: 4})
    assert mine.last_step == theirs.last_step == 5
    expected = trajectory(theirs, theirs_opt, 4)
    assert expected[0] == [0.1 * 0.25]  # StepLR at step 5: two halvings
    assert close(trajectory(mine, ours_opt, 4), expected)


@pytest.mark.parametrize("prefix", [False, True])
def test_step_to_an_epoch_and_the_wrapped_schedulers_step(prefix):
    """OneFlow's step() takes no epoch: `last_step = epoch - 1; step()` lands where
    dualtrain's step(epoch) does. At each step the wrapped scheduler is told its own
    step, as OneFlow's SequentialLR tells it (shifted by the warmup with a prefix)."""
    theirs_opt, ours_opt = make_opt(), make_opt()
    t_inner = F.StepLR(theirs_opt, 2, 0.5)
    theirs = F.WarmupLR(t_inner, 0.5, 3, warmup_prefix=prefix)
    o_inner = step_lr(D)(ours_opt, 2, 0.5)
    mine = D.WarmupLR(o_inner, 0.5, 3, warmup_prefix=prefix)
    for epoch in [1, 2, 3, 4, 5, 6, 9]:
        theirs.last_step = epoch - 1
        theirs.step()
        mine.step(epoch)
        assert mine.last_step == theirs.last_step == epoch
        assert o_inner.last_step == t_inner.last_step
        assert close([lrs(ours_opt)], [lrs(theirs_opt)])
    assert t_inner.last_step == (6 if prefix else 9)


STATE_CASES = {
    # the warmup alone steps as long as the composite: its entry's step is the composite's
    "warmup-alone": (lambda M, opt: M.WarmupLR(opt, 0.5, 3), 1),
    # a warmup of one step is a member too
    "one-step-warmup": (lambda M, opt: M.WarmupLR(step_lr(M)(opt, 2, 0.5), 0.5, 1), 2),
}


@pytest.mark.parametrize("case", STATE_CASES)
def test_state_nests_the_warmup_member_as_oneflows(case):
    build, members = STATE_CASES[case]
    states = []
    for M in (F, D):
        opt = make_opt()
        sched = build(M, opt)
        trajectory(sched, opt, 4)
        states.append(sched.state_dict())
    theirs, mine = states
    assert len(mine["schedulers"]) == len(theirs["schedulers"]) == members
    for key in ("milestones", "interval_rescaling"):
        assert mine[key] == theirs[key]
    assert mine["schedulers"][0]["total_iters"] == theirs["schedulers"][0]["total_iters"]
    if case == "warmup-alone":
        assert mine["schedulers"][0]["last_step"] == theirs["schedulers"][0]["last_step"] == 4


def test_loads_oneflows_state_without_a_warmup_member():
    """warmup_iters=0: OneFlow's state nests the wrapped scheduler alone."""
    theirs_opt = make_opt()
    theirs = F.WarmupLR(F.StepLR(theirs_opt, 2, 0.5), 0.5, 0)
    before = trajectory(theirs, theirs_opt, 3)
    ours_opt = make_opt()
    inner = step_lr(D)(ours_opt, 3, 0.9)  # other arguments: the state brings the saved ones
    mine = D.WarmupLR(inner, 0.5, 0)
    mine.load_state_dict(theirs.state_dict())
    assert (inner.step_size, inner.gamma, inner.last_step) == (2, 0.5, 3)
    for group, lr in zip(ours_opt.param_groups, before[-1], strict=True):
        group["lr"] = lr  # the lrs come back with the optimizer's state
    assert close(trajectory(mine, ours_opt, 5), trajectory(theirs, theirs_opt, 5))


def test_a_state_without_member_states_loads_the_own_counters():
    """A state with no nested members (written by hand, or by torch's composites under
    `_schedulers`) loads what it holds and leaves or fills the members accordingly."""
    opt = make_opt()
    inner = step_lr(D)(opt, 2, 0.5)
    mine = D.WarmupLR(inner, 0.5, 3)
    own = {k: v for k, v in mine.state_dict().items() if k != "schedulers"}
    mine.load_state_dict(own | {"last_step": 7})
    assert mine.last_step == 7 and inner.last_step == 0
    saved = step_lr(D)(make_opt(), 4, 0.1)
    saved.last_step = 6
    mine.load_state_dict(own | {"_schedulers": [saved.state_dict()]})
    assert (inner.step_size, inner.gamma, inner.last_step) == (4, 0.1, 6)
    assert "_schedulers" not in mine.state_dict()
