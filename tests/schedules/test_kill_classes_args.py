"""The hand-written drop-in classes (LambdaLR, MultiplicativeLR, CyclicLR, OneCycleLR,
CosineAnnealingWarmRestarts) against torch's and OneFlow's own: their argument checks
(the message names the value and what was expected), `last_step`, `verbose` and the
keys of their state (docs/mutation.md: what a full mutation run found unchecked).
"""

from __future__ import annotations

import oneflow as flow
import pytest
import torch
from stepping import trajectory

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def torch_opt(lrs=(0.1, 0.05), optimizer=torch.optim.SGD, **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    if optimizer is torch.optim.SGD:
        options.setdefault("momentum", 0.9)
    return optimizer(groups, lr=lrs[0], **options)


def oneflow_opt(lrs=(0.4, 0.2)):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def halve(epoch):
    return 0.5**epoch


def keep_most(epoch):
    return 0.9


# Each class with arguments torch's class takes as they are.
BUILDS = {
    "LambdaLR": lambda M, o, **kw: M.LambdaLR(o, halve, **kw),
    "MultiplicativeLR": lambda M, o, **kw: M.MultiplicativeLR(o, keep_most, **kw),
    "CyclicLR": lambda M, o, **kw: M.CyclicLR(o, 0.01, 0.1, step_size_up=2, **kw),
    "OneCycleLR": lambda M, o, **kw: M.OneCycleLR(o, 0.1, total_steps=10, **kw),
    "CosineAnnealingWarmRestarts": lambda M, o, **kw: M.CosineAnnealingWarmRestarts(o, 3, 2, **kw),
}

# State keys dualtrain keeps and torch does not: arguments torch folds into others
# (CyclicLR's total_size and step_ratio, OneCycleLR's _schedule_phases) that dualtrain
# keeps to rebuild the pure schedule from the state (docs/schedules.md).
OURS_ONLY = {
    "CyclicLR": {"step_size_up", "step_size_down"},
    "OneCycleLR": {
        "max_lrs",
        "epochs",
        "steps_per_epoch",
        "pct_start",
        "anneal_strategy",
        "base_momentums",
        "max_momentums",
        "div_factor",
        "final_div_factor",
        "three_phase",
    },
}
TORCH_ONLY = {"OneCycleLR": {"_schedule_phases"}}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_defaults_are_quiet_and_save_what_torch_saves(name, capsys):
    """torch 2.x has no `verbose`: with the defaults nothing is printed and the state
    holds torch's keys (no `verbose`, no CyclicLR `_scale_fn_ref`, which torch drops as
    it cannot be pickled), plus only the arguments listed above."""
    states = {}
    for M in (T, D):
        opt = torch_opt()
        sched = BUILDS[name](M, opt)
        trajectory(sched, opt, 3)
        states[M] = set(sched.state_dict())
    assert capsys.readouterr().out == ""
    assert states[D] - states[T] == OURS_ONLY.get(name, set())
    assert states[T] - states[D] == TORCH_ONLY.get(name, set())


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_verbose_prints_each_groups_lr_in_the_oneflow_flavour(name, capsys):
    """OneFlow's verbose=True prints one line per param group at every step, the
    first step (in the constructor) included, and keeps `verbose` in the state."""
    opt = torch_opt((0.1, 0.05))
    sched = BUILDS[name](D, opt, flavor="oneflow", verbose=True)
    trajectory(sched, opt, 2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6  # 3 steps x 2 groups
    assert [line.split("param_groups[")[1][0] for line in out] == ["0", "1"] * 3
    assert sched.state_dict()["verbose"] is True


def test_lambda_lr_verbose_as_oneflows(capsys):
    """OneFlow's own LambdaLR: as many lines, and `verbose` saved as True."""
    counts, saved = [], []
    for build in (
        lambda o: F.LambdaLR(o, halve, verbose=True),
        lambda o: D.LambdaLR(o, halve, verbose=True, flavor="oneflow"),
    ):
        opt = oneflow_opt()
        sched = build(opt)
        trajectory(sched, opt, 2)
        counts.append(len(capsys.readouterr().out.splitlines()))
        saved.append(sched.state_dict()["verbose"])
    assert counts == [6, 6] and saved == [True, True]


@pytest.mark.parametrize("name", ["LambdaLR", "MultiplicativeLR"])
def test_wrong_number_of_lr_lambdas(name):
    """torch refuses it too (a ValueError); the message names the count and the groups."""
    with pytest.raises(ValueError):
        getattr(T, name)(torch_opt((0.1, 0.05, 0.01)), [halve, halve])
    with pytest.raises(ConfigError) as info:
        getattr(D, name)(torch_opt((0.1, 0.05, 0.01)), [halve, halve])
    assert str(info.value) == f"{name}: expected 3 lr_lambdas (one per param group), got 2"


CYCLIC = {"base_lr": 0.01, "max_lr": 0.1, "base_momentum": 0.8, "max_momentum": 0.9}
ONE_CYCLE = {"max_lr": 0.1, "base_momentum": 0.85, "max_momentum": 0.95}


@pytest.mark.parametrize(
    ("name", "arguments", "wrong"),
    [("CyclicLR", CYCLIC, key) for key in CYCLIC]
    + [("OneCycleLR", ONE_CYCLE, key) for key in ONE_CYCLE],
)
def test_a_per_group_list_of_the_wrong_length_is_named(name, arguments, wrong):
    """Two param groups, three values for one argument: torch raises ValueError; the
    message names the class, the argument, the groups and the values."""
    kwargs = dict(arguments, **{wrong: [0.5, 0.6, 0.7]})
    if name == "OneCycleLR":
        kwargs["total_steps"] = 10
    with pytest.raises(ValueError):
        getattr(T, name)(torch_opt(), **kwargs)
    with pytest.raises(ConfigError) as info:
        getattr(D, name)(torch_opt(), **kwargs)
    assert str(info.value) == (
        f"{name}: {wrong} must have one value per param group (2), got 3: [0.5, 0.6, 0.7]"
    )


def adagrad(momentum_in_group):
    opt = torch_opt(optimizer=torch.optim.Adagrad)
    if momentum_in_group:
        for group in opt.param_groups:
            group["momentum"] = 0.9
    return opt


@pytest.mark.parametrize("momentum_in_group", [False, True], ids=["plain", "group-momentum"])
@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
def test_cycle_momentum_without_momentum_is_named(name, momentum_in_group):
    """Adagrad's defaults have neither momentum nor betas: torch raises ValueError, even
    where a param group holds a "momentum" entry (torch asks the defaults); the message
    names the class and the optimizer, and the groups are left as torch leaves them
    (the lr keys written, no momentum key)."""
    their_opt, opt = adagrad(momentum_in_group), adagrad(momentum_in_group)
    with pytest.raises(ValueError):
        BUILDS[name](T, their_opt)
    with pytest.raises(ConfigError) as info:
        BUILDS[name](D, opt)
    left = [
        [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups]
        for o in (opt, their_opt)
    ]
    assert left[0] == left[1]
    assert str(info.value) == (
        f"{name}: cycle_momentum needs an optimizer with momentum or betas, got Adagrad"
    )


def _resumed(M, name, **resume):
    """A scheduler built with last_epoch=-1 writes the groups' initial_lr (and
    CyclicLR's/OneCycleLR's keys); a second one resumes from them at step 3."""
    opt = torch_opt()
    first = BUILDS[name](M, opt)
    trajectory(first, opt, 5)
    return BUILDS[name](M, opt, **resume), opt


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_last_step_is_last_epoch_in_the_torch_flavour(name):
    """OneFlow's keyword works in the torch flavour too: last_step=3 resumes as torch's
    last_epoch=3 does (the first step in the constructor moves to step 4)."""
    theirs, their_opt = _resumed(T, name, last_epoch=3)
    ours, our_opt = _resumed(D, name, last_step=3)
    assert ours.last_epoch == theirs.last_epoch == 4
    assert trajectory(ours, our_opt, 4) == trajectory(theirs, their_opt, 4)


def test_lambda_lr_last_step_as_oneflows():
    """OneFlow's LambdaLR(last_step=3): the constructor's step sets the lr of step 4,
    0.8 * 0.5 ** 4 from an initial_lr of 0.8."""
    runs = []
    for build in (
        lambda o: F.LambdaLR(o, halve, last_step=3),
        lambda o: D.LambdaLR(o, halve, last_step=3, flavor="oneflow"),
    ):
        opt = oneflow_opt((0.4,))
        opt.param_groups[0]["initial_lr"] = 0.8
        sched = build(opt)
        runs.append((sched.last_step, trajectory(sched, opt, 2)))
    assert runs[1] == runs[0]
    assert runs[0][0] == 4 and runs[0][1][0] == [0.8 * 0.5**4]


def momenta(opt):
    return [(float(g["lr"]), float(g["momentum"])) for g in opt.param_groups]


@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
def test_cycle_momentum_on_an_optimizer_without_defaults(name):
    """OneFlow's SGD has no `defaults` (its groups hold momentum): the momentum cycles
    against the lr as torch's own class cycles it on a torch SGD. (OneFlow flavour:
    CyclicLR and OneCycleLR step alike in both, and the torch flavour warns once on
    a OneFlow optimizer, whose step() it cannot wrap.)"""
    runs = []
    theirs, ours = (T, torch_opt((0.4, 0.2)), {}), (D, oneflow_opt(), {"flavor": "oneflow"})
    for M, opt, flavor in (theirs, ours):
        sched = BUILDS[name](M, opt, **flavor)
        run = [momenta(opt)]
        for _ in range(6):
            opt.step()
            sched.step()
            run.append(momenta(opt))
        runs.append(run)
    assert runs[1] == runs[0]
    assert len({m for row in runs[0] for _, m in row}) > 2  # the momentum does move
