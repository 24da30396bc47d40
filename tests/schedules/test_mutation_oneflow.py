"""OneFlow-flavour corners a mutation run found unchecked (docs/mutation.md), against
OneFlow 0.9's own classes: WarmupLR's refusals and its state, the defaults of every
OneFlow-flavour class, and `step(epoch)`.
"""

from __future__ import annotations

import math

import oneflow as flow
import pytest
from stepping import lrs, trajectory

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError

F = flow.optim.lr_scheduler
REL = 1e-12  # OneFlow's closed forms in another association order: the last bits


def make_opt(lrs=(0.1,)):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def close(a, b):
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=REL, abs_tol=1e-15)
        for r, s in zip(a, b, strict=True)
        for x, y in zip(r, s, strict=True)
    )


def ours(cls):
    return lambda *args, **kwargs: cls(*args, flavor="oneflow", **kwargs)


@pytest.mark.parametrize(
    ("second", "accepted"),
    [(1.0 + 5e-6, True), (1.0 + 2e-5, False), (1.0 + 1e-8 + 0.9e-5, True)],
)
def test_warmup_needs_equal_group_lrs_within_isclose(second, accepted):
    """OneFlow compares the groups' lrs with np.isclose's tolerances (1e-5 relative,
    1e-8 absolute) when a linear warmup ramps into a scheduler."""

    def build(M, opt, step):
        return M.WarmupLR(step(opt, 2, 0.5), warmup_factor=0.5, warmup_iters=3)

    theirs_opt, ours_opt = make_opt((1.0, second)), make_opt((1.0, second))
    if not accepted:
        with pytest.raises(ValueError, match="different warmup configs"):
            build(F, theirs_opt, F.StepLR)
        with pytest.raises(ConfigError, match="one lr for all param groups"):
            build(D, ours_opt, ours(D.StepLR))
        return
    theirs = trajectory(build(F, theirs_opt, F.StepLR), theirs_opt, 6)
    assert close(trajectory(build(D, ours_opt, ours(D.StepLR)), ours_opt, 6), theirs)


def test_warmup_alone_needs_warmup_iters():
    with pytest.raises(ValueError, match="warmup_iters can't be equal to 0"):
        F.WarmupLR(make_opt(), warmup_iters=0)
    with pytest.raises(ConfigError, match="warmup_iters must be > 0 when no scheduler"):
        D.WarmupLR(make_opt(), warmup_iters=0)
    opt = make_opt()  # one warmup step is enough
    theirs_opt = make_opt()
    theirs = trajectory(F.WarmupLR(theirs_opt, warmup_iters=1), theirs_opt, 3)
    assert close(trajectory(D.WarmupLR(opt, warmup_iters=1), opt, 3), theirs)


@pytest.mark.parametrize("method", ["linear", "constant"])
@pytest.mark.parametrize("iters", [3, 0])
def test_warmup_state_nests_the_warmup_as_oneflow(method, iters):
    """OneFlow's WarmupLR is a SequentialLR whose first member is the warmup (none when
    warmup_iters=0): its factor under the method's name, its length and base lrs."""

    def build(M, opt, step):
        return M.WarmupLR(step(opt, 2, 0.5), 0.5, iters, method)

    theirs_opt, ours_opt = make_opt(), make_opt()
    theirs = build(F, theirs_opt, F.StepLR)
    mine = build(D, ours_opt, ours(D.StepLR))
    trajectory(theirs, theirs_opt, 4)
    trajectory(mine, ours_opt, 4)
    t_state, o_state = theirs.state_dict(), mine.state_dict()
    assert len(o_state["schedulers"]) == len(t_state["schedulers"]) == (2 if iters else 1)
    if iters:
        factor = "start_factor" if method == "linear" else "factor"
        for key in ("total_iters", "base_lrs", factor):
            assert o_state["schedulers"][0][key] == t_state["schedulers"][0][key]
        assert ("factor" in o_state["schedulers"][0]) == (method == "constant")
    for key in ("step_size", "gamma", "last_step", "base_lrs"):
        assert o_state["schedulers"][-1][key] == t_state["schedulers"][-1][key]


@pytest.mark.parametrize("prefix", [False, True])
def test_warmup_loads_oneflows_state_and_continues(prefix):
    def build(M, opt, step):
        return M.WarmupLR(step(opt, 2, 0.5), 0.5, 3, "linear", prefix)

    theirs_opt = make_opt()
    theirs = build(F, theirs_opt, F.StepLR)
    before = trajectory(theirs, theirs_opt, 4)
    ours_opt = make_opt()
    mine = build(D, ours_opt, ours(D.StepLR))
    mine.load_state_dict(theirs.state_dict())
    for group, lr in zip(ours_opt.param_groups, before[-1], strict=True):
        group["lr"] = lr  # the lrs come back with the optimizer's state
    assert mine.last_step == theirs.last_step == 4
    assert mine.schedulers[0].last_step == theirs.state_dict()["schedulers"][-1]["last_step"]
    assert close(trajectory(mine, ours_opt, 5), trajectory(theirs, theirs_opt, 5))


ONEFLOW_DEFAULTS = {
    "StepLR": lambda M, o: M.StepLR(o, 3),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [2, 5]),
    "ConstantLR": lambda M, o: M.ConstantLR(o),
    "LinearLR": lambda M, o: M.LinearLR(o),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.8),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, 4),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, 4),
    "CosineDecayLR": lambda M, o: M.CosineDecayLR(o, 4),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 3),
    "LambdaLR": lambda M, o: M.LambdaLR(o, lambda e: 0.9**e),
}


@pytest.mark.parametrize("name", ONEFLOW_DEFAULTS)
def test_oneflow_defaults(name):
    build = ONEFLOW_DEFAULTS[name]
    theirs_opt, ours_opt = make_opt(), make_opt()
    theirs = trajectory(build(F, theirs_opt), theirs_opt, 12)
    assert close(trajectory(build(_Ours, ours_opt), ours_opt, 12), theirs)


class _Ours:
    """dualtrain.lr_scheduler's classes, each with flavor="oneflow"."""

    def __getattr__(self, name):
        return ours(getattr(D, name))


_Ours = _Ours()


@pytest.mark.parametrize("t_mult", [1, 2])
def test_oneflow_warm_restarts_step_to_an_epoch(t_mult):
    """OneFlow's step() takes no epoch; dualtrain's step(epoch) lands where OneFlow
    does after `last_step = epoch - 1; step()`."""
    epochs = [1, 2, 5, 3, 9, 0, 4]

    def build(M, opt):
        return M.CosineAnnealingWarmRestarts(opt, 2, t_mult, 0.01)

    theirs_opt, ours_opt = make_opt(), make_opt()
    theirs_sched, mine = build(F, theirs_opt), build(_Ours, ours_opt)
    for epoch in epochs:
        theirs_sched.last_step = epoch - 1
        theirs_sched.step()
        mine.step(epoch)
        assert mine.last_step == theirs_sched.last_step == epoch
        assert close([lrs(ours_opt)], [lrs(theirs_opt)])
