"""What the drop-in schedulers write besides the lr, against torch's own classes.

A mutation run (docs/mutation.md) found that the lrs were checked everywhere but
the rest of what a torch scheduler leaves behind was not: the keys it writes into
the param groups (`initial_lr`, `max_lr`, `min_lr`, the momenta), its state dict,
the closed forms behind `step(epoch)`, and the signatures `help()` shows. Each test
below drives torch's class and dualtrain's the same way and compares with `==`.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.stateful.classes import scheduled_class

T = torch.optim.lr_scheduler


def make_opt(lrs=(0.1, 0.02), optimizer=torch.optim.SGD, **options):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return optimizer(groups, lr=lrs[0], **options)


def groups(opt):
    """Every param-group entry but the parameters themselves."""
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def drive(build, steps, **opt_kwargs):
    """The param groups after construction and after each of `steps` steps."""
    opt = make_opt(**opt_kwargs)
    sched = build(opt)
    out = [groups(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(groups(opt))
    return out, sched


MOMENTUM_SCHEDULES = {
    "one-cycle-sgd": (
        lambda M, o: M.OneCycleLR(o, max_lr=[0.5, 0.3], total_steps=12, div_factor=5.0,
                                  final_div_factor=20.0, base_momentum=0.8, max_momentum=0.9),
        {"momentum": 0.9},
    ),
    "one-cycle-adam": (
        lambda M, o: M.OneCycleLR(o, max_lr=0.5, total_steps=12, three_phase=True,
                                  anneal_strategy="linear"),
        {"optimizer": torch.optim.Adam, "betas": (0.9, 0.99)},
    ),
    "cyclic-sgd": (
        lambda M, o: M.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3,
                                mode="triangular2", base_momentum=[0.7, 0.75], max_momentum=0.95),
        {"momentum": 0.9},
    ),
    "cyclic-adam": (
        lambda M, o: M.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, step_size_down=3,
                                mode="exp_range", gamma=0.9),
        {"optimizer": torch.optim.Adam, "betas": (0.9, 0.99)},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", MOMENTUM_SCHEDULES)
def test_param_groups_hold_what_torch_writes(case):
    """initial_lr, max_lr, min_lr, momentum or betas, max_momentum, base_momentum:
    the values torch's constructor and steps leave in every group."""
    build, opt_kwargs = MOMENTUM_SCHEDULES[case]
    theirs, _ = drive(lambda o: build(T, o), 8, **opt_kwargs)
    ours, _ = drive(lambda o: build(D, o), 8, **opt_kwargs)
    assert ours == theirs


@pytest.mark.parametrize("case", MOMENTUM_SCHEDULES)
def test_state_dict_holds_what_torch_saves(case):
    build, opt_kwargs = MOMENTUM_SCHEDULES[case]
    _, theirs = drive(lambda o: build(T, o), 5, **opt_kwargs)
    _, ours = drive(lambda o: build(D, o), 5, **opt_kwargs)
    theirs_state, ours_state = theirs.state_dict(), ours.state_dict()
    shared = {"base_lrs", "last_epoch", "_step_count", "_last_lr", "max_lrs", "total_steps",
              "base_momentums", "max_momentums", "use_beta1", "cycle_momentum", "scale_mode",
              "total_size", "step_ratio", "mode", "gamma"} & set(theirs_state)  # fmt: skip
    assert {k: ours_state[k] for k in shared} == {k: theirs_state[k] for k in shared}


def test_closed_forms_of_step_with_an_epoch():
    """step(epoch) jumps through torch's _get_closed_form_lr (and warns, as torch)."""
    builds = [
        lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=3),
        lambda M, o: M.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=1),
        lambda M, o: M.LinearLR(o, start_factor=0.25, total_iters=4),
        lambda M, o: M.PolynomialLR(o, total_iters=4, power=2.0),
        lambda M, o: M.StepLR(o, 2, 0.5),
        lambda M, o: M.MultiStepLR(o, [1, 3], 0.5),
        lambda M, o: M.ExponentialLR(o, 0.5),
        lambda M, o: M.CosineAnnealingLR(o, 5, 0.01),
    ]
    for build in builds:
        out = {}
        for M in (T, D):
            opt = make_opt()
            sched = build(M, opt)
            values = []
            for epoch in (2, 0, 5, 1, 7):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    sched.step(epoch)
                values.append([g["lr"] for g in opt.param_groups])
            out[M] = values
        assert out[D] == out[T]


def test_linear_lr_without_iterations_keeps_the_start_factor():
    """total_iters=0: torch's chainable steps never leave start_factor (its closed
    form would divide by zero); step(epoch) here keeps it too."""
    opt = make_opt()
    sched = D.LinearLR(opt, start_factor=0.25, total_iters=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sched.step(3)
    assert [g["lr"] for g in opt.param_groups] == [0.1 * 0.25, 0.02 * 0.25]
    assert (
        drive(lambda o: T.LinearLR(o, 0.25, total_iters=0), 4)[0]
        == drive(lambda o: D.LinearLR(o, 0.25, total_iters=0), 4)[0]
    )


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_warm_restarts_growing_periods(t_mult):
    def build(M, o):
        return M.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=t_mult, eta_min=0.001)

    theirs, t_sched = drive(lambda o: build(T, o), 20)
    ours, o_sched = drive(lambda o: build(D, o), 20)
    assert ours == theirs
    assert (o_sched.T_i, o_sched.T_cur) == (t_sched.T_i, t_sched.T_cur)


def test_lrs_at_is_the_closed_form_without_stepping():
    opt = make_opt()
    sched = D.StepLR(opt, step_size=2, gamma=0.5)
    assert sched.lrs_at(5) == [0.1 * 0.25, 0.02 * 0.25]
    assert sched.last_epoch == 0 and [g["lr"] for g in opt.param_groups] == [0.1, 0.02]


def test_a_built_class_has_torchs_signature_and_steps_as_torch():
    """`scheduled_class` (what dualtrain.lr_scheduler runs for every name) gives a
    class named after the schedule, with torch's arguments in torch's order."""
    cls = scheduled_class("StepLR")
    assert cls.__name__ == "StepLR" and cls.__module__ == "dualtrain.stateful.classes"
    assert cls.schedule_name == "StepLR" and "StepLR" in cls.__doc__
    params = inspect.signature(cls).parameters
    assert [(n, p.kind, p.default) for n, p in params.items()] == [
        ("optimizer", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("step_size", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("gamma", inspect.Parameter.POSITIONAL_OR_KEYWORD, 0.1),
        ("last_epoch", inspect.Parameter.POSITIONAL_OR_KEYWORD, -1),
        ("verbose", inspect.Parameter.POSITIONAL_OR_KEYWORD, False),
        ("flavor", inspect.Parameter.KEYWORD_ONLY, "torch"),
        ("last_step", inspect.Parameter.KEYWORD_ONLY, None),
    ]
    assert drive(lambda o: cls(o, 2, 0.5), 5)[0] == drive(lambda o: T.StepLR(o, 2, 0.5), 5)[0]
    assert scheduled_class("OneCycleLR") is D.OneCycleLR  # the hand-written ones stay


def test_chained_and_sequential_state_in_the_other_frameworks_key():
    """A state saved by OneFlow nests members under `schedulers`, torch's under
    `_schedulers`; either loads, and the members continue where they were."""
    first_opt = make_opt()
    a, b = D.StepLR(first_opt, 2, 0.5), D.ExponentialLR(first_opt, 0.9)
    chain = D.ChainedScheduler([a, b])
    for _ in range(3):
        first_opt.step()
        chain.step()
    state = chain.state_dict()
    state["schedulers"] = state.pop("_schedulers")  # as OneFlow names it
    opt = make_opt()
    c, d = D.StepLR(opt, 2, 0.5), D.ExponentialLR(opt, 0.9)
    other = D.ChainedScheduler([c, d])
    other.load_state_dict(state)
    assert (c.last_epoch, d.last_epoch) == (a.last_epoch, b.last_epoch) == (3, 3)
