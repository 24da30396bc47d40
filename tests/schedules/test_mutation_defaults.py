"""Every drop-in scheduler built with only its required arguments, against torch's.

A mutation run (docs/mutation.md) changed default arguments (CyclicLR's
step_size_up=2000, OneCycleLR's momenta, ...) without a test noticing: the tests
passed their own values. Here each class gets torch's defaults and the whole
param group (lr, momentum or betas, initial_lr, max_lr, ...) is compared with
`==` after every step, on one param group (some code paths index group 0).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError

T = torch.optim.lr_scheduler


def make_opt(n_groups=1, adam=False):
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1 / (i + 1)}
        for i in range(n_groups)
    ]
    if adam:
        return torch.optim.Adam(groups, lr=0.1)
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def groups(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def drive(build, steps, n_groups=1, adam=False, stepping=None):
    opt = make_opt(n_groups, adam)
    sched = build(opt)
    out = [groups(opt)]
    for t in range(steps):
        opt.step()
        (stepping or (lambda s, t: s.step()))(sched, t)
        out.append((groups(opt), sched.last_epoch, sched.get_last_lr()))
    return out


DEFAULTS = {
    "StepLR": lambda M, o: M.StepLR(o, 3),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [2, 5]),
    "ConstantLR": lambda M, o: M.ConstantLR(o),
    "LinearLR": lambda M, o: M.LinearLR(o),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.8),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 4),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 3),
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda e: 0.9**e),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda e: 0.9),
    # step_size_up's default is 2000: a run of 30 steps sees its slope
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, 0.5, total_steps=30),
    "OneCycleLR-epochs": lambda M, o: M.OneCycleLR(o, 0.5, epochs=3, steps_per_epoch=10),
}


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
@pytest.mark.parametrize("name", DEFAULTS)
def test_defaults_and_groups_are_torchs(name, adam):
    build = DEFAULTS[name]
    assert drive(lambda o: build(D, o), 30, adam=adam) == drive(
        lambda o: build(T, o), 30, adam=adam
    )


def test_warm_restarts_with_epochs_on_one_group():
    """step(epoch) with fractional epochs, then plain steps, as torch moves T_cur."""
    epochs = [0.5, 1.0, 2.5, 3.0, None, None, 7.25, None, 0.0, None]

    def stepping(sched, t):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sched.step(epochs[t])

    for t_mult in (1, 2):

        def build(M, o, t_mult=t_mult):
            return M.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=t_mult, eta_min=0.01)

        theirs = drive(lambda o: build(T, o), len(epochs), stepping=stepping)
        assert drive(lambda o: build(D, o), len(epochs), stepping=stepping) == theirs


def test_warm_restarts_refuses_a_negative_epoch():
    sched = D.CosineAnnealingWarmRestarts(make_opt(), T_0=2)
    message = r"CosineAnnealingWarmRestarts: epoch must be >= 0, got -1"
    with pytest.raises(ConfigError, match=message):
        sched.step(-1)


def test_resumed_warm_restarts_count_on_from_last_epoch():
    """Built with last_epoch=k (initial_lr in the groups), T_cur starts at k as in torch."""

    def build(M, o):
        M.CosineAnnealingWarmRestarts(o, T_0=3)
        return M.CosineAnnealingWarmRestarts(o, T_0=3, last_epoch=4)

    assert drive(lambda o: build(D, o), 8) == drive(lambda o: build(T, o), 8)


def test_sequential_positional_last_epoch_and_bad_arguments():
    def build(M, o, *extra):
        members = [M.ConstantLR(o, 0.5, 2), M.ExponentialLR(o, 0.9)]
        return M.SequentialLR(o, members, [2], *extra)

    assert drive(lambda o: build(D, o, -1), 6) == drive(lambda o: build(T, o, -1), 6)
    with pytest.raises(TypeError, match="too many positional arguments"):
        build(D, make_opt(), -1, False)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['colour'\]"):
        opt = make_opt()
        D.SequentialLR(opt, [D.ConstantLR(opt, 0.5, 2), D.ExponentialLR(opt, 0.9)], [2], colour=1)
