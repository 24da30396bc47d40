"""dualtrain.lr_scheduler with flavor="oneflow" as a drop-in for oneflow.optim.lr_scheduler.

Each test drives OneFlow 0.9's own class and dualtrain's the same way, each on
its own OneFlow optimizer, and compares the lrs, the attributes and the state
dicts. Lrs agree within 1e-12 relative: both compute the same closed forms in
Python floats, a few in another association order (the last bits).
"""

from __future__ import annotations

import math

import oneflow as flow
import pytest

import dualtrain.lr_scheduler as D

F = flow.optim.lr_scheduler
REL = 1e-12


def make_opt(lrs=(0.1, 0.05)):
    groups = [{"params": [flow.nn.Parameter(flow.ones(2))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def ours(cls):
    """dualtrain's class with OneFlow's behaviour, as a OneFlow user builds it."""
    return lambda *args, **kwargs: cls(*args, flavor="oneflow", **kwargs)


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def close(a, b):
    pairs = [(x, y) for r, s in zip(a, b, strict=True) for x, y in zip(r, s, strict=True)]
    return all(math.isclose(x, y, rel_tol=REL, abs_tol=1e-15) for x, y in pairs)


def trajectory(build, steps, lr_values=(0.1, 0.05)):
    opt = make_opt(lr_values)
    sched = build(opt)
    out = [lrs(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(lrs(opt))
    return out, sched


CONFIGS = {
    "StepLR": lambda M, o: M.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [2, 6], 0.3),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 8, 0.001),
    "CosineDecayLR": lambda M, o: M.CosineDecayLR(o, decay_steps=7, alpha=0.1),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, 5, 0.001, 2.0, True),
    "ConstantLR": lambda M, o: M.ConstantLR(o, 0.2, 4),
    "LinearLR": lambda M, o: M.LinearLR(o, 0.0, 0.8, 6),
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda step: 1 / (step + 1)),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(
        o, 3, 2, 0.001, decay_rate=0.5, restart_limit=3
    ),
}


class Ours:
    """dualtrain.lr_scheduler seen as a OneFlow module: every class in the oneflow flavour."""

    def __getattr__(self, name):
        return ours(getattr(D, name))


OURS = Ours()


@pytest.mark.parametrize("name", CONFIGS)
def test_each_class_in_the_oneflow_flavour_steps_as_oneflow(name):
    want, theirs = trajectory(lambda o: CONFIGS[name](F, o), 24)
    got, mine = trajectory(lambda o: CONFIGS[name](OURS, o), 24)
    assert close(got, want)
    assert mine.last_step == theirs.last_step == 24
    assert set(mine.state_dict()) == set(theirs.state_dict())


def test_chained_and_sequential_compose_closed_forms_as_oneflow():
    def chained(M, o):
        return M.ChainedScheduler([M.ConstantLR(o, 0.1, 3), M.ExponentialLR(o, 0.9)])

    def sequential(M, o):
        members = [M.LinearLR(o, 0.1, 1.0, 4), M.StepLR(o, 2, 0.5), M.ExponentialLR(o, 0.8)]
        return M.SequentialLR(o, members, [4, 9], [True, False])

    for build in (chained, sequential):
        want, theirs = trajectory(lambda o, b=build: b(F, o), 16)
        got, mine = trajectory(lambda o, b=build: b(OURS, o), 16)
        assert close(got, want)
        assert [s.last_step for s in mine.schedulers] == [s.last_step for s in theirs.schedulers]
        assert set(mine.state_dict()) == set(theirs.state_dict())
        nested = mine.state_dict()["schedulers"]
        assert [set(s) for s in nested] == [set(s) for s in theirs.state_dict()["schedulers"]]


@pytest.mark.parametrize(
    "method, prefix", [("linear", False), ("linear", True), ("constant", False)]
)
def test_warmup_around_a_scheduler_and_alone(method, prefix):
    def wrapped(M, o):
        inner = M.CosineAnnealingLR(o, T_max=10, eta_min=0.001)
        return M.WarmupLR(inner, warmup_factor=0.2, warmup_iters=4, warmup_method=method,
                          warmup_prefix=prefix)  # fmt: skip

    def alone(M, o):
        return M.WarmupLR(scheduler_or_optimizer=o, warmup_factor=0.5, warmup_iters=3)

    for build in (wrapped, alone):
        want, theirs = trajectory(lambda o, b=build: b(F, o), 15, lr_values=(0.1,))
        got, mine = trajectory(lambda o, b=build: b(OURS, o), 15, lr_values=(0.1,))
        assert close(got, want)
        attrs = ["warmup_factor", "warmup_iters", "warmup_method", "warmup_prefix", "last_step"]
        assert [getattr(mine, a) for a in attrs] == [getattr(theirs, a) for a in attrs]
        assert set(mine.state_dict()) == set(theirs.state_dict())


def test_a_warmup_state_loaded_into_other_arguments_continues_as_oneflows():
    def resumed(M):
        opt = make_opt((0.1,))
        first = M.WarmupLR(M.CosineAnnealingLR(opt, 20), warmup_factor=0.1, warmup_iters=5)
        for _ in range(7):
            first.step()
        inner = M.CosineAnnealingLR(opt, 50, 0.01)
        second = M.WarmupLR(inner, warmup_factor=0.5, warmup_iters=2)
        second.load_state_dict(first.state_dict())
        out = []
        for _ in range(5):
            second.step()
            out.append(lrs(opt))
        return out, (second.warmup_factor, second.warmup_iters, inner.T_max, inner.eta_min)

    (got, got_attrs), (want, want_attrs) = resumed(OURS), resumed(F)
    assert close(got, want) and got_attrs == want_attrs == (0.1, 5, 20, 0.0)


def test_plateau_in_the_oneflow_flavour():
    metrics = [1.0, 0.8, 0.8, 0.8, 0.79, 0.9, 0.9, 0.9, 0.9, 0.5]
    runs = []
    for M in (F, OURS):
        opt = make_opt()
        sched = M.ReduceLROnPlateau(opt, "min", 0.5, 1, 1e-3, "rel", 1, 0.01, 1e-8, False)
        for metric in metrics:
            sched.step(metric)
        runs.append((sched._last_lr, sched.num_bad_steps, sched.last_step, set(sched.state_dict())))
    assert runs[1] == runs[0]


def test_last_step_verbose_and_positional_arguments_as_oneflow_takes_them(capsys):
    opt = make_opt((0.4,))
    for group in opt.param_groups:
        group["initial_lr"] = 0.4
    sched = D.StepLR(opt, 2, 0.5, 3, True, flavor="oneflow")  # last_step=3, verbose
    assert (sched.last_step, sched.last_epoch, lrs(opt)) == (4, 4, [0.1])
    assert "lr" in capsys.readouterr().out
    same = D.ExponentialLR(make_opt((0.4,)), 0.5, last_step=-1, verbose=False, flavor="oneflow")
    assert same.state_dict()["last_step"] == 0 and "last_epoch" not in same.state_dict()
