"""Momentum through composites and wrappers, restarts of members without a closed form,
warm restarts' cycle positions, and ReduceLROnPlateau's state in every spelling it
reads: corners a mutation run found unchecked (docs/mutation.md). Expected values
come from torch's classes or from the definitions, written out.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule, schedule_names
from dualtrain.schedules.composite import WarmupLR
from dualtrain.schedules.modern import NoisyLR

T = torch.optim.lr_scheduler
CYCLE = {"max_lr": 1.0, "total_steps": 12, "div_factor": 4.0}


def make_opt(lrs=(0.1,), **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], **options)


def trace(build, n, **options):
    opt = make_opt(**options)
    sched = build(opt)
    out = []
    for _ in range(n):
        out.append([(g["lr"], g.get("momentum")) for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def cycle():
    return build_schedule("OneCycleLR", kwargs=CYCLE)[0]


def test_torch_chain_with_a_momentum_member_sets_torchs_momentum():
    def build(M, o):
        return M.ChainedScheduler([M.OneCycleLR(o, **CYCLE), M.ExponentialLR(o, 0.9)])

    theirs = trace(lambda o: build(T, o), 12, momentum=0.9)
    assert trace(lambda o: build(D, o), 12, momentum=0.9) == theirs
    members = [{"name": "OneCycleLR", "kwargs": CYCLE},
               {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}]  # fmt: skip
    [pure] = build_schedule("ChainedScheduler", kwargs={"schedulers": members})
    # asked for momentum before any lr: the replay's momenta do not depend on the base lr
    assert [pure.momentum(t) for t in range(12)] == [row[0][1] for row in theirs]


def test_oneflow_chain_momentum_is_the_last_cycling_members():
    first = {"name": "OneCycleLR", "kwargs": CYCLE}
    second = {"name": "OneCycleLR", "kwargs": CYCLE | {"base_momentum": 0.5}}
    step = {"name": "StepLR", "kwargs": {"step_size": 2}}
    [chain] = build_schedule("ChainedScheduler", "oneflow", {"schedulers": [first, step, second]})
    later = build_schedule("OneCycleLR", kwargs=second["kwargs"])[0]
    assert [chain.momentum(t) for t in range(12)] == [later.momentum(t) for t in range(12)]
    [plain] = build_schedule("ChainedScheduler", "oneflow", {"schedulers": [step, step]})
    assert plain.momentum(3) is None


def test_oneflow_warmup_passes_the_wrapped_momentum_through():
    warm = WarmupLR(cycle(), warmup_factor=0.5, warmup_iters=3)
    assert warm.cycles_momentum
    assert [warm.momentum(t) for t in range(12)] == [cycle().momentum(t) for t in range(12)]
    assert WarmupLR(None, warmup_iters=3).momentum(1) is None


def test_noise_wrapper_passes_group_setup_and_base_checks_through():
    """NoisyLR around CyclicLR writes CyclicLR's base_lr into the group, as torch's
    CyclicLR constructor does; around OneFlow's ramping WarmupLR it refuses what
    WarmupLR refuses."""
    cyclic = {"name": "CyclicLR", "kwargs": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2}}
    noisy = NoisyLR(cyclic)
    group = {"lr": 0.5}
    noisy.setup_group(group)
    assert group == {"lr": 0.01}
    step = {"name": "StepLR", "flavor": "oneflow", "kwargs": {"step_size": 2}}
    warm = {"name": "WarmupLR", "flavor": "oneflow",
            "kwargs": {"scheduler": step, "warmup_iters": 2}}  # fmt: skip
    with pytest.raises(ConfigError, match="one lr for all param groups"):
        NoisyLR(warm).check_bases([0.1, 0.2])
    NoisyLR(warm).check_bases([0.1, 0.1])


@pytest.mark.parametrize("member", ["LambdaLR", "MultiplicativeLR"])
def test_sequence_restarts_a_member_without_closed_form_as_torch(member):
    """At its milestone SequentialLR restarts the member at its step 0: torch's
    chainable form there, from the lr the group holds (LambdaLR: base * f(0))."""

    def build(M, o):
        other = getattr(M, member)(o, lambda e: 0.5 + 0.25 * e)
        return M.SequentialLR(o, [M.ExponentialLR(o, 0.5), other], milestones=[2])

    assert trace(lambda o: build(D, o), 8) == trace(lambda o: build(T, o), 8)


def test_a_sequence_nested_first_steps_back_with_its_members():
    """A SequentialLR as the first member of another: torch's constructor moves every
    leaf one step back (recursively) before starting it; the pure composite agrees
    with the stateful objects."""
    opt = make_opt((0.1, 0.05))
    inner = D.SequentialLR(opt, [D.ConstantLR(opt, 0.5, 1), D.ExponentialLR(opt, 0.9)], [2])
    with warnings.catch_warnings():  # the outer constructor steps the inner one, as torch's
        warnings.simplefilter("ignore", UserWarning)
        outer = D.SequentialLR(opt, [inner, D.StepLR(opt, 2, 0.5)], [4])
    stateful = [[g["lr"] for g in opt.param_groups]]
    for _ in range(8):
        opt.step()
        outer.step()
        stateful.append([g["lr"] for g in opt.param_groups])
    const = {"name": "ConstantLR", "kwargs": {"factor": 0.5, "total_iters": 1}}
    exp = {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    nested = {"name": "SequentialLR", "kwargs": {"schedulers": [const, exp], "milestones": [2]}}
    step = {"name": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}
    pure = build_schedule("SequentialLR", kwargs={"schedulers": [nested, step],
                                                  "milestones": [4]}, n_groups=2)  # fmt: skip
    assert stateful == [[s.lr(t, b) for s, b in zip(pure, (0.1, 0.05), strict=True)]
                        for t in range(9)]  # fmt: skip


@pytest.mark.parametrize(("t_0", "t_mult"), [(2, 2), (1, 3), (3, 1)])
def test_pure_warm_restarts_follow_torchs_cycles(t_0, t_mult):
    [pure] = build_schedule(
        "CosineAnnealingWarmRestarts", kwargs={"T_0": t_0, "T_mult": t_mult, "eta_min": 0.01}
    )
    theirs = trace(lambda o: T.CosineAnnealingWarmRestarts(o, t_0, t_mult, 0.01), 30)
    assert [pure.lr(t, 0.1) for t in range(30)] == pytest.approx(
        [row[0][0] for row in theirs],
        rel=1e-13,  # torch steps T_cur by floats: last bits
    )
    # the first restart is at T_0: the lr is back at the base there
    assert pure.lr(t_0, 0.1) == 0.1
    assert pure.lr(t_0 - 1, 0.1) < 0.1 or t_0 == 1


def test_oneflow_warm_restarts_refuse_bad_decay_and_limit():
    for kwargs, name in [
        ({"decay_rate": -0.5}, "decay_rate"),
        ({"restart_limit": -1}, "restart_limit"),
    ]:
        with pytest.raises(ConfigError, match=rf"CosineAnnealingWarmRestarts: {name} must be"):
            build_schedule("CosineAnnealingWarmRestarts", "oneflow", {"T_0": 2} | kwargs)


def test_schedule_names_per_flavour():
    both = schedule_names()
    assert schedule_names("torch") == schedule_names("oneflow") == both  # every name both
    assert "CosineDecayLR" in both and "OneCycleLR" in both and "ReduceLROnPlateau" not in both


# --- ReduceLROnPlateau's state: torch's, OneFlow's and dualtrain's earlier keys --------


def plateau_after(flavor, metrics, **kwargs):
    opt = make_opt((0.1, 0.05))
    sched = D.ReduceLROnPlateau(opt, patience=1, flavor=flavor, **kwargs)
    for metric in metrics:
        sched.step(metric)
    return sched


@pytest.mark.parametrize(("source", "target"), [("torch", "oneflow"), ("oneflow", "torch")])
def test_plateau_state_loads_across_flavours(source, target):
    saved = plateau_after(source, [1.0, 0.9, 0.95, 0.96], mode="min").state_dict()
    sched = plateau_after(target, [])
    sched.load_state_dict(saved)
    state = sched.state_dict()
    bad = "num_bad_epochs" if target == "torch" else "num_bad_steps"
    counter = "last_epoch" if target == "torch" else "last_step"
    assert (state[bad], state[counter], state["best"]) == (0, 4, 0.9)  # reduced at step 4


def test_plateau_loads_dualtrains_earlier_state_and_refuses_a_malformed_one():
    sched = plateau_after("torch", [], mode="max")
    sched.load_state_dict({"lrs": [0.1, 0.05], "best": 2.0, "num_bad_epochs": 1,
                           "cooldown_counter": 0, "last_epoch": 3})  # fmt: skip
    assert "lrs" not in sched.state_dict() and sched.best == 2.0 and sched.num_bad_epochs == 1
    assert sched.mode_worse == -math.inf  # mode "max": the worst is -inf
    with pytest.raises(ConfigError, match=r"ReduceLROnPlateau state is malformed: .*factor"):
        sched.load_state_dict(sched.state_dict() | {"factor": 2.0})
    with pytest.raises(ConfigError, match=r"malformed: no 'best' in \['mode'\]"):
        sched.load_state_dict({"mode": "min"})
