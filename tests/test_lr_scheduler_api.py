"""dualtrain.lr_scheduler behaves like torch.optim.lr_scheduler on any optimizer.

The stand-in optimizers below hold only what a scheduler touches. Expected
values are torch's (and OneFlow 0.9's, for flavor="oneflow"), written out.
"""

from __future__ import annotations

import json
import math

import pytest

from dualtrain import lr_scheduler as L
from dualtrain.errors import ConfigError

REL = 1e-12


class SGDLike:
    def __init__(self, *lrs, momentum=0.9):
        self.defaults = {"lr": lrs[0], "momentum": momentum}
        self.param_groups = [{"lr": lr, "momentum": momentum} for lr in lrs]


class AdamLike:
    def __init__(self, *lrs, betas=(0.9, 0.999)):
        self.defaults = {"lr": lrs[0], "betas": betas}
        self.param_groups = [{"lr": lr, "betas": betas} for lr in lrs]


class Plain:
    """No momentum and no betas: nothing for a momentum cycle to drive."""

    def __init__(self, *lrs):
        self.defaults = {"lr": lrs[0]}
        self.param_groups = [{"lr": lr} for lr in lrs]


def approx(values):
    return pytest.approx(values, rel=REL)


def lrs_over(sched, opt, steps, group=0):
    """The group's lr now and after each of `steps - 1` further step() calls."""
    out = [opt.param_groups[group]["lr"]]
    for _ in range(steps - 1):
        sched.step()
        out.append(opt.param_groups[group]["lr"])
    return out


# --- construction, counters, base lrs ----------------------------------------------------


def test_positional_arguments_in_torch_order():
    opt = SGDLike(1.0)
    sched = L.StepLR(opt, 2, 0.5)
    assert lrs_over(sched, opt, 5) == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = SGDLike(1.0)
    cyclic = L.CyclicLR(opt, 0.1, 1.0, 2)  # base_lr, max_lr, step_size_up
    assert lrs_over(cyclic, opt, 4) == approx([0.1, 0.55, 1.0, 0.55])
    opt = SGDLike(1.0)
    assert lrs_over(L.MultiStepLR(opt, [1, 3], 0.5), opt, 4) == [1.0, 0.5, 0.5, 0.25]


def test_positional_and_keyword_for_the_same_argument_is_refused():
    with pytest.raises(ConfigError, match="step_size"):
        L.StepLR(SGDLike(1.0), 2, step_size=3)


def test_last_epoch_positional_as_in_torch():
    # torch: LambdaLR(optimizer, lr_lambda, last_epoch=-1); Hugging Face's schedule
    # helpers call it exactly so: LambdaLR(optimizer, lr_lambda, last_epoch).
    opt = SGDLike(1.0)
    sched = L.LambdaLR(opt, lambda epoch: 0.5**epoch, -1)
    assert lrs_over(sched, opt, 3) == [1.0, 0.5, 0.25]
    opt = SGDLike(1.0)
    assert lrs_over(L.StepLR(opt, 2, 0.5, -1), opt, 3) == [1.0, 1.0, 0.5]


def test_counter_last_lr_initial_lr_and_base_lrs():
    opt = SGDLike(0.4, 0.2)
    sched = L.ExponentialLR(opt, gamma=0.5)
    assert sched.last_epoch == 0  # construction takes the first step, as in torch
    assert sched.base_lrs == [0.4, 0.2]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.4, 0.2]
    assert sched.get_last_lr() == [0.4, 0.2]
    for _ in range(3):
        sched.step()
    assert sched.last_epoch == 3
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups] == [0.05, 0.025]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.4, 0.2]  # never moves


def test_get_last_lr_is_a_copy():
    sched = L.StepLR(SGDLike(1.0), 2)
    sched.get_last_lr().append(99.0)
    assert sched.get_last_lr() == [1.0]


def test_per_group_lambdas_and_callables():
    opt = SGDLike(1.0, 2.0)
    sched = L.LambdaLR(opt, [lambda e: 1.0 / (e + 1), "0.5 ** epoch"])
    for _ in range(2):
        sched.step()
    assert sched.get_last_lr() == approx([1.0 / 3, 2.0 * 0.25])


def test_resume_with_initial_lr_counts_on_from_last_epoch():
    opt = SGDLike(0.5)  # the optimizer as saved after 3 steps of StepLR(2, 0.5) from 1.0
    for group in opt.param_groups:
        group["initial_lr"] = 1.0
    sched = L.StepLR(opt, step_size=2, gamma=0.5, last_epoch=3)
    assert sched.last_epoch == 4  # torch: construction steps from last_epoch
    assert opt.param_groups[0]["lr"] == 0.25


def test_resume_without_initial_lr_is_refused():
    with pytest.raises(ConfigError, match="initial_lr"):
        L.StepLR(SGDLike(1.0), step_size=2, last_epoch=3)


def test_optimizer_without_param_groups_is_refused():
    with pytest.raises(ConfigError, match="param_groups"):
        L.StepLR(object(), step_size=2)


def test_state_dict_is_json_and_restores_the_counter():
    opt = SGDLike(1.0)
    sched = L.StepLR(opt, 2, 0.5)
    for _ in range(3):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    fresh_opt = SGDLike(1.0)
    fresh = L.StepLR(fresh_opt, 3, 0.9)  # other arguments: the state carries the saved ones
    fresh.load_state_dict(state)
    assert (fresh.last_epoch, fresh.get_last_lr(), fresh.step_size, fresh.gamma) == (
        3,
        [0.5],
        2,
        0.5,
    )
    # As in torch, the lr lives in the optimizer: its state comes back separately.
    fresh_opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    fresh.step()
    assert fresh_opt.param_groups[0]["lr"] == 0.25
    with pytest.raises(ConfigError, match="must be a dict"):
        fresh.load_state_dict([("last_epoch", 1)])


# --- composites from scheduler objects ----------------------------------------------------


def constant_then_exponential(opt, flavor):
    return [
        L.ConstantLR(opt, factor=0.1, total_iters=2, flavor=flavor),
        L.ExponentialLR(opt, gamma=0.9, flavor=flavor),
    ]


SEQUENTIAL = {"torch": [0.1, 0.1, 1.0, 0.9, 0.81], "oneflow": [0.1, 0.1, 0.81, 0.729, 0.6561]}
CHAINED = {"torch": [0.1, 0.09, 0.81, 0.729], "oneflow": [0.1, 0.09, 0.81, 0.729]}


@pytest.mark.parametrize("group, base", [(0, 2.0), (1, 0.5)])
@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
def test_sequential_lr(flavor, group, base):
    opt = SGDLike(2.0, 0.5)
    members = constant_then_exponential(opt, flavor)
    sched = L.SequentialLR(opt, members, milestones=[2], flavor=flavor)
    assert sched.last_epoch == 0
    assert lrs_over(sched, opt, 5, group) == approx([base * f for f in SEQUENTIAL[flavor]])


@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
def test_chained_scheduler(flavor):
    opt = SGDLike(3.0)
    sched = L.ChainedScheduler(constant_then_exponential(opt, flavor), flavor=flavor)
    assert sched.optimizer is opt  # taken from the members, as torch does
    assert lrs_over(sched, opt, 4) == approx([3.0 * f for f in CHAINED[flavor]])


def test_members_on_another_optimizer_are_refused():
    mine, other = SGDLike(1.0), SGDLike(1.0)
    stranger = L.ExponentialLR(other, gamma=0.9)
    with pytest.raises(ConfigError, match=r"schedulers\[1\] belongs to another optimizer"):
        L.SequentialLR(mine, [L.StepLR(mine, 2), stranger], milestones=[2])
    with pytest.raises(ConfigError, match=r"schedulers\[1\] belongs to another optimizer"):
        L.ChainedScheduler([L.StepLR(mine, 2), stranger])
    with pytest.raises(ConfigError, match="another optimizer"):
        L.ChainedScheduler([L.StepLR(mine, 2)], optimizer=other)


def test_members_must_be_schedulers():
    opt = SGDLike(1.0)
    with pytest.raises(ConfigError, match="schedulers"):
        L.SequentialLR(opt, [], milestones=[])
    with pytest.raises(ConfigError, match=r"schedulers\[0\]"):
        L.ChainedScheduler([object()], optimizer=opt)


def test_sequential_after_cyclic_uses_the_base_torch_sets():
    # torch's CyclicLR sets group["initial_lr"] = base_lr (0.1 here); the ExponentialLR
    # built after it takes that as its base, so SequentialLR restarts it from 0.1
    # (torch 2.x: 0.1, 0.55, 1.0, 0.1, 0.09, 0.081).
    opt = SGDLike(1.0)
    members = [L.CyclicLR(opt, 0.1, 1.0, step_size_up=2), L.ExponentialLR(opt, 0.9)]
    sched = L.SequentialLR(opt, members, milestones=[3])
    assert opt.param_groups[0]["initial_lr"] == 0.1
    assert lrs_over(sched, opt, 6) == approx([0.1, 0.55, 1.0, 0.1, 0.09, 0.081])


# --- WarmupLR ------------------------------------------------------------------------------


def test_warmup_lr_on_an_optimizer():
    opt = SGDLike(1.0)
    sched = L.WarmupLR(opt, warmup_factor=0.5, warmup_iters=2)
    assert sched.flavor == "oneflow"
    # linear from 0.5 to 1.0 over 2 steps, then the base lr
    assert lrs_over(sched, opt, 4) == approx([0.5, 0.75, 1.0, 1.0])


def test_warmup_lr_around_a_scheduler():
    opt = SGDLike(1.0)
    inner = L.StepLR(opt, step_size=2, gamma=0.5)
    sched = L.WarmupLR(inner, warmup_factor=0.5, warmup_iters=2)
    assert sched.optimizer is opt
    # ramps to StepLR's lr at step 2 (0.5), then follows StepLR
    assert lrs_over(sched, opt, 5) == approx([0.5, 0.5, 0.5, 0.5, 0.25])
    opt = SGDLike(1.0)
    inner = L.StepLR(opt, step_size=2, gamma=0.5)
    prefixed = L.WarmupLR(inner, 0.5, 2, "linear", True)  # positional, warmup_prefix=True
    # ramps to 1.0 at step 2, then StepLR from its own step 0
    assert lrs_over(prefixed, opt, 6) == approx([0.5, 0.75, 1.0, 1.0, 0.5, 0.5])


# --- momentum cycling ------------------------------------------------------------------------


def test_one_cycle_drives_sgd_momentum():
    opt = SGDLike(1.0, 1.0)
    sched = L.OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10)
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]
    assert sched.get_last_lr() == approx([1.0 / 25, 2.0 / 25])
    sched.step()
    sched.step()  # the peak: 0.3 * 10 - 1 = step 2
    assert [g["momentum"] for g in opt.param_groups] == approx([0.85, 0.85])
    assert sched.get_last_lr() == approx([1.0, 2.0])
    assert all("betas" not in g for g in opt.param_groups)


def test_one_cycle_drives_adam_beta1_and_keeps_beta2():
    opt = AdamLike(1.0)
    sched = L.OneCycleLR(opt, 1.0, 10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.999)
    sched.step()
    beta1, beta2 = opt.param_groups[0]["betas"]
    assert beta1 == pytest.approx(0.9, rel=REL) and beta2 == 0.999
    assert "momentum" not in opt.param_groups[0]


def test_cyclic_momentum_against_the_lr():
    opt = SGDLike(1.0)
    sched = L.CyclicLR(opt, 0.1, 1.0, step_size_up=2, base_momentum=0.8, max_momentum=0.9)
    moments = [opt.param_groups[0]["momentum"]]
    for _ in range(4):
        sched.step()
        moments.append(opt.param_groups[0]["momentum"])
    assert moments == approx([0.9, 0.85, 0.8, 0.85, 0.9])


@pytest.mark.parametrize(
    "build",
    [
        lambda o: L.OneCycleLR(o, max_lr=1.0, total_steps=10),
        lambda o: L.CyclicLR(o, base_lr=0.1, max_lr=1.0),
    ],
    ids=["OneCycleLR", "CyclicLR"],
)
def test_momentum_cycle_needs_momentum_or_betas(build):
    with pytest.raises(ConfigError, match="cycle_momentum"):
        build(Plain(1.0))


def test_no_momentum_cycle_on_a_plain_optimizer_is_fine():
    opt = Plain(1.0)
    sched = L.CyclicLR(opt, 0.1, 1.0, step_size_up=2, cycle_momentum=False)
    sched.step()
    # torch sets the group lr to base_lr first, so initial_lr becomes 0.1 (torch 2.14)
    assert opt.param_groups[0] == {"lr": approx(0.55), "initial_lr": 0.1}


# --- ReduceLROnPlateau -------------------------------------------------------------------------


def test_plateau_positional_and_state_round_trip():
    opt = SGDLike(1.0, 0.5)
    sched = L.ReduceLROnPlateau(opt, "min", 0.5, 0)  # mode, factor, patience
    sched.step(1.0)  # improves on inf
    sched.step(1.0)  # one bad epoch > patience 0: halve
    assert sched.get_last_lr() == [0.5, 0.25] and sched.last_epoch == 2
    state = json.loads(json.dumps(sched.state_dict()))
    fresh_opt = SGDLike(0.5, 0.25)
    fresh = L.ReduceLROnPlateau(fresh_opt, "min", 0.5, 0)
    fresh.load_state_dict(state)
    fresh.step(2.0)
    sched.step(2.0)
    assert fresh.get_last_lr() == sched.get_last_lr() == [0.25, 0.125]
    assert math.isinf(L.ReduceLROnPlateau(SGDLike(1.0)).state_dict()["best"])
    with pytest.raises(ConfigError, match="malformed"):
        fresh.load_state_dict({"lrs": [1.0]})
