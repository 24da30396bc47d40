"""Boundaries and defaults a mutation run found unpinned (docs/mutation.md).

Each test states a behaviour at an edge: a default argument, a `<` that could be
`<=`, a count that could be a product, checked against PyTorch's own classes
(compared with `==`: dualtrain claims torch's very floats) or derived by hand.
"""

from __future__ import annotations

import pytest
import torch
from stepping import lrs, trajectory

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import PlateauState, build_schedule
from dualtrain.schedules.cyclic import OneCycleLR
from dualtrain.schedules.modern import LinearWarmupLR, WarmupStableDecayLR

T = torch.optim.lr_scheduler


def make_opt(lrs=(1.0,), **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], **options)


def stepped(build, steps, lrs_=(1.0,), **options):
    """Every lr the optimizer holds, from construction through `steps` steps."""
    opt = make_opt(lrs_, **options)
    return trajectory(build(opt), opt, steps)


def both(build, steps, **kw):
    return stepped(lambda o: build(T, o), steps, **kw), stepped(lambda o: build(D, o), steps, **kw)


# --- ReduceLROnPlateau: torch's defaults and its eps boundary -------------------------

# 1.0 then an improvement by 1.5e-4 relative (an improvement under torch's default
# threshold 1e-4, not under a larger one), then a plateau long enough for two
# reductions at the default patience of 10.
PLATEAU_METRICS = [1.0, 1.0 - 1.5e-4] + [1.0 - 1.5e-4] * 26


def plateau_lrs(sched, opt, metrics):
    out = []
    for metric in metrics:
        opt.step()
        sched.step(metric)
        out.append(lrs(opt))
    return out


def test_plateau_defaults_are_torchs():
    """Every default (mode, factor, patience, threshold and its mode, cooldown, min_lr,
    eps) shows in one trajectory: reductions at torch's steps, by torch's factor."""
    theirs_opt, ours_opt = make_opt((0.5, 0.02)), make_opt((0.5, 0.02))
    theirs = plateau_lrs(T.ReduceLROnPlateau(theirs_opt), theirs_opt, PLATEAU_METRICS)
    ours = plateau_lrs(D.ReduceLROnPlateau(ours_opt), ours_opt, PLATEAU_METRICS)
    assert ours == theirs
    # Bad epochs count from index 2 (index 1 improved by 1.5e-4); the 11th is index 12.
    assert theirs[11] == [0.5, 0.02] and theirs[12] == [0.05, 0.002]


def test_pure_plateau_rule_defaults_are_torchs():
    opt = make_opt((0.5, 0.02))
    theirs = plateau_lrs(T.ReduceLROnPlateau(opt), opt, PLATEAU_METRICS)
    rule = build_schedule("ReduceLROnPlateau", kwargs={}, n_groups=2)
    state, ours = rule.initial_state((0.5, 0.02)), []
    for metric in PLATEAU_METRICS:
        state = rule.step(state, metric)
        ours.append(list(state.lrs))
    assert ours == theirs


@pytest.mark.parametrize(
    ("lr", "factor", "eps", "min_lr"),
    [
        (1.0, 0.5, 0.5, 0.0),  # the change equals eps exactly: torch keeps the lr
        (1.0, 0.5, 0.25, 0.0),  # the change exceeds eps: reduced
        (1.0, 0.5, 0.125, 0.75),  # floored at min_lr, a change of 0.25 > eps
        (1.0, 0.5, 0.25, 0.75),  # floored, and the change equals eps: kept
    ],
)
def test_plateau_reduction_at_the_eps_boundary(lr, factor, eps, min_lr):
    metrics = [1.0, 1.0, 1.0]  # patience 0: the second value already reduces
    kwargs = {"factor": factor, "patience": 0, "eps": eps, "min_lr": min_lr}
    theirs_opt, ours_opt = make_opt((lr,)), make_opt((lr,))
    theirs = plateau_lrs(T.ReduceLROnPlateau(theirs_opt, **kwargs), theirs_opt, metrics)
    assert plateau_lrs(D.ReduceLROnPlateau(ours_opt, **kwargs), ours_opt, metrics) == theirs
    rule = build_schedule("ReduceLROnPlateau", kwargs=kwargs)
    state, pure = PlateauState(lrs=(lr,), best=float("inf")), []
    for metric in metrics:
        state = rule.step(state, metric)
        pure.append(list(state.lrs))
    assert pure == theirs


# --- Chainable forms inside composites ---------------------------------------------


def test_multistep_repeated_milestone_inside_a_chain():
    """A milestone given twice multiplies by gamma twice there (torch's Counter), also
    when MultiStepLR is a member of ChainedScheduler or SequentialLR."""

    def chain(M, o):
        return M.ChainedScheduler([M.MultiStepLR(o, [2, 2, 4], 0.5), M.ExponentialLR(o, 0.9)])

    theirs, ours = both(chain, 8)
    assert ours == theirs
    assert theirs[2][0] == theirs[1][0] * 0.9 * 0.25  # the repeated milestone: gamma ** 2

    def sequence(M, o):
        first, second = M.ConstantLR(o, 0.5, 2), M.MultiStepLR(o, [1, 1, 3], 0.5)
        return M.SequentialLR(o, [first, second], milestones=[2])

    theirs, ours = both(sequence, 8)
    assert ours == theirs


def test_pure_chained_multistep_matches_torch():
    members = [
        {"name": "MultiStepLR", "kwargs": {"milestones": [3, 3], "gamma": 0.5}},
        {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}},
    ]
    [pure] = build_schedule("ChainedScheduler", kwargs={"schedulers": members})
    theirs = stepped(
        lambda o: T.ChainedScheduler([T.MultiStepLR(o, [3, 3], 0.5), T.ExponentialLR(o, 0.9)]), 6
    )
    assert [[pure.lr(t, 1.0)] for t in range(7)] == theirs


@pytest.mark.parametrize("position", ["first", "second"])
def test_multiplicative_inside_composites(position):
    """MultiplicativeLR multiplies from its first step on, also as a composite's member;
    its own step 0 (construction, or a SequentialLR restart) leaves the lr alone."""

    def chain(M, o):
        mult = M.MultiplicativeLR(o, lambda epoch: 0.5 + 0.1 * epoch)
        other = M.StepLR(o, 2, 0.8)
        return M.ChainedScheduler([mult, other] if position == "first" else [other, mult])

    theirs, ours = both(chain, 6)
    assert ours == theirs

    def sequence(M, o):
        mult = M.MultiplicativeLR(o, lambda epoch: 0.5 + 0.1 * epoch)
        other = M.ConstantLR(o, 0.5, 2)
        members = [mult, other] if position == "first" else [other, mult]
        return M.SequentialLR(o, members, milestones=[3])

    theirs, ours = both(sequence, 7)
    assert ours == theirs


# --- ConstantLR's refusal of factor 0 -------------------------------------------------


def test_constant_lr_factor_zero_refused_and_one_accepted():
    """torch divides by the factor at total_iters, so 0 is refused up front there;
    1 is a valid (constant) schedule in torch and here."""
    with pytest.raises(ConfigError, match="factor"):
        build_schedule("ConstantLR", kwargs={"factor": 0.0, "total_iters": 3})
    with pytest.raises(ZeroDivisionError):  # what refusing spares a torch user
        stepped(lambda o: T.ConstantLR(o, factor=0.0, total_iters=3), 3)
    [one] = build_schedule("ConstantLR", kwargs={"factor": 1.0, "total_iters": 3})
    theirs = stepped(lambda o: T.ConstantLR(o, factor=1.0, total_iters=3), 5)
    assert [[one.lr(t, 1.0)] for t in range(6)] == theirs


# --- OneCycleLR exactly at a phase's last step ------------------------------------------


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_at_the_phase_boundary_is_torchs(anneal, three_phase):
    """With pct_start * total_steps whole, a phase ends exactly on a step; torch takes
    that step as the end of the earlier phase (pct 1), which can differ in the last
    bit from the start of the next (pct 0). Compared with == to torch."""
    kwargs = {
        "max_lr": 0.7,
        "total_steps": 20,
        "pct_start": 0.3,
        "anneal_strategy": anneal,
        "three_phase": three_phase,
        "div_factor": 3.0,
        "final_div_factor": 7.0,
        "base_momentum": 0.83,
        "max_momentum": 0.97,
    }

    def momenta(build):
        opt = make_opt((0.1,), momentum=0.9)
        sched, out = build(opt), []
        for _ in range(19):
            out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
            opt.step()
            sched.step()
        return out

    theirs = momenta(lambda o: T.OneCycleLR(o, **kwargs))
    assert momenta(lambda o: D.OneCycleLR(o, **kwargs)) == theirs
    pure = OneCycleLR(**kwargs)
    assert [(pure.lr(t, 0.1), pure.momentum(t)) for t in range(19)] == theirs


# --- Modern schedules: lengths and boundaries, derived by hand ------------------------


def test_linear_warmup_shifts_the_wrapped_momentum():
    """The wrapped schedule starts at its own step 0 after the warmup: its momentum
    too, held at its step-0 value during the warmup."""
    cycle = {"name": "OneCycleLR", "kwargs": {"max_lr": 1.0, "total_steps": 10}}
    wrapped = build_schedule("OneCycleLR", kwargs=cycle["kwargs"])[0]
    warm = LinearWarmupLR(cycle, warmup_steps=3)
    assert warm.cycles_momentum
    expected = [wrapped.momentum(0)] * 3 + [wrapped.momentum(t) for t in range(8)]
    assert [warm.momentum(t) for t in range(11)] == expected
    assert len(set(expected)) > 3  # the momentum does move


def test_wsd_phases_must_fit_total_steps():
    ok = WarmupStableDecayLR(warmup_steps=2, stable_steps=3, decay_steps=4, total_steps=9)
    assert ok.lr(9, 1.0) == 0.0  # decayed to min_lr_ratio 0 at the last step
    with pytest.raises(ConfigError, match="total_steps"):
        WarmupStableDecayLR(warmup_steps=2, stable_steps=3, decay_steps=4, total_steps=8)


@pytest.mark.parametrize("decay", ["linear", "cosine", "1-sqrt"])
def test_wsd_without_decay_steps_drops_to_the_floor_at_once(decay):
    """decay_steps=0: the decay is over where it starts (warmup + stable), so that
    step already has the floor; the step before has the stable lr."""
    wsd = WarmupStableDecayLR(
        warmup_steps=2, stable_steps=3, decay_steps=0, min_lr_ratio=0.25, decay=decay
    )
    assert [wsd.lr(t, 2.0) for t in range(3, 8)] == [2.0, 2.0, 0.5, 0.5, 0.5]


def test_wsd_decay_starts_after_the_stable_phase():
    wsd = WarmupStableDecayLR(warmup_steps=2, stable_steps=3, decay_steps=4)
    # warmup from 0 over 2 steps, 3 stable steps, then linear 1 - progress over 4
    assert [wsd.lr(t, 1.0) for t in range(11)] == [
        0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0,
    ]  # fmt: skip
