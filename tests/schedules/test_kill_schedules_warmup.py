"""OneFlow's WarmupLR and SequentialLR as pure schedules, against OneFlow 0.9's own
classes: the default warmup length, a one-step warmup (with and without
warmup_prefix), the equal-lrs check at np.isclose's exact boundary, the checks a
wrapper and a composite pass down to what they hold, and the one-line refusals of
each argument. Corners a mutation run found unchecked (docs/mutation.md).
"""

from __future__ import annotations

import oneflow as flow
import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule
from dualtrain.schedules.composite import WarmupLR
from dualtrain.schedules.formulas import OneFlowStepLR
from dualtrain.schedules.modern import NoisyLR

F = flow.optim.lr_scheduler


def make_opt(lrs=(0.1,)):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(1))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0])


def oneflow_lrs(build, n, lrs=(0.1,)):
    opt = make_opt(lrs)
    sched = build(opt)
    out = []
    for _ in range(n):
        out.append([float(g["lr"]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def step_lr():
    return OneFlowStepLR(2, 0.5)


def warmup(**kwargs):
    """OneFlow's WarmupLR around StepLR(2, 0.5), as a pure schedule."""
    step = {"name": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}
    [schedule] = build_schedule("WarmupLR", "oneflow", {"scheduler": step} | kwargs)
    return schedule


def test_warmup_defaults_are_oneflows():
    """OneFlow's defaults: warmup_factor 1/3 over warmup_iters=5, linear, no prefix."""
    theirs = oneflow_lrs(lambda o: F.WarmupLR(F.StepLR(o, 2, 0.5)), 8)
    assert [[warmup().lr(t, 0.1)] for t in range(8)] == theirs
    alone = oneflow_lrs(lambda o: F.WarmupLR(o), 8)
    [schedule] = build_schedule("WarmupLR", "oneflow", {})
    assert [[schedule.lr(t, 0.1)] for t in range(8)] == alone
    assert alone[4][0] < alone[5][0] == 0.1  # five warmup steps, then the base


def test_one_step_warmup_with_prefix_delays_the_wrapped_schedule_as_oneflow():
    """warmup_prefix: the wrapped StepLR starts at its own step 0 after the warmup,
    however short the warmup is."""
    theirs = oneflow_lrs(
        lambda o: F.WarmupLR(F.StepLR(o, 2, 0.5), warmup_iters=1, warmup_prefix=True), 7
    )
    schedule = warmup(warmup_iters=1, warmup_prefix=True)
    assert [[schedule.lr(t, 0.1)] for t in range(7)] == theirs
    assert [row[0] for row in theirs[1:4]] == [0.1, 0.1, 0.05]  # StepLR's steps 0, 1, 2


def test_no_warmup_serves_groups_with_different_lrs_as_oneflow():
    """warmup_iters=0: no ramp, so nothing to take from one group's lr for all."""
    theirs = oneflow_lrs(lambda o: F.WarmupLR(F.StepLR(o, 2, 0.5), warmup_iters=0), 6, (0.1, 0.2))
    schedule = warmup(warmup_iters=0)
    schedule.check_bases([0.1, 0.2])
    assert [[schedule.lr(t, b) for b in (0.1, 0.2)] for t in range(6)] == theirs


def test_one_step_linear_warmup_refuses_different_lrs_as_oneflow():
    with pytest.raises(ValueError, match="different warmup configs"):
        F.WarmupLR(F.StepLR(make_opt((0.1, 0.2)), 2, 0.5), warmup_iters=1)
    with pytest.raises(ConfigError, match="one lr for all param groups"):
        warmup(warmup_iters=1).check_bases([0.1, 0.2])


# Found by search: the second lr is exactly np.isclose's tolerance away from the first
# (abs(b - a) == 1e-8 + 1e-5 * abs(a) in floats), the boundary OneFlow still accepts.
AT_TOLERANCE = (0.7761075297036133, 0.7761153007789103)


@pytest.mark.parametrize(
    ("lrs", "accepted"),
    [(AT_TOLERANCE, True), ((0.5, 0.5 + 1e-5), False), ((0.5, 0.5 + 4e-6), True)],
)
def test_equal_lrs_check_is_numpys_isclose_at_its_boundary(lrs, accepted):
    """OneFlow's check is np.isclose(base_lrs, first): |b - a| <= 1e-8 + 1e-5 * |a|."""
    a, b = lrs
    assert (abs(b - a) == 1e-8 + 1e-5 * abs(a)) == (lrs == AT_TOLERANCE)

    def build(o):
        return F.WarmupLR(F.StepLR(o, 2, 0.5), warmup_iters=3)

    if accepted:
        oneflow_lrs(build, 2, lrs)
        warmup(warmup_iters=3).check_bases(list(lrs))
        return
    with pytest.raises(ValueError, match="different warmup configs"):
        oneflow_lrs(build, 2, lrs)
    with pytest.raises(ConfigError, match="one lr for all param groups"):
        warmup(warmup_iters=3).check_bases(list(lrs))


def test_warmup_of_a_zero_lr_is_zero():
    """A group whose lr is 0: every warmup factor of 0 is 0 (OneFlow itself divides by
    the lr there and raises ZeroDivisionError; worked out by hand), then StepLR's 0."""
    with pytest.raises(ZeroDivisionError):
        F.WarmupLR(F.StepLR(make_opt((0.0,)), 2, 0.5), warmup_iters=3)
    schedule = warmup(warmup_iters=3)
    assert [schedule.lr(t, 0.0) for t in range(6)] == [0.0] * 6


def test_checks_pass_down_to_what_a_warmup_or_a_composite_holds():
    """A OneFlow warmup ramping into StepLR needs one lr for all groups; wrapped in
    NoisyLR inside another warmup, or as a member of a torch sequence, it still does."""
    inner = {"name": "WarmupLR", "flavor": "oneflow",
             "kwargs": {"scheduler": {"name": "StepLR", "kwargs": {"step_size": 2}},
                        "warmup_iters": 2}}  # fmt: skip
    outer = WarmupLR(NoisyLR(inner), warmup_iters=0)
    with pytest.raises(ConfigError, match="one lr for all param groups"):
        outer.check_bases([0.1, 0.2])
    outer.check_bases([0.1, 0.1])
    exp = {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    [seq] = build_schedule("SequentialLR", kwargs={"schedulers": [exp, inner], "milestones": [2]})
    with pytest.raises(ConfigError, match="one lr for all param groups"):
        seq.check_bases([0.1, 0.2])
    seq.check_bases([0.1, 0.1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheduler": 5}, "WarmupLR: scheduler must be a schedule or None, got 5"),
        ({"warmup_factor": 1.5}, "WarmupLR: warmup_factor must be a number in [0, 1], got 1.5"),
        ({"warmup_iters": 2.5}, "WarmupLR: warmup_iters must be an int, got 2.5"),
        ({"warmup_method": "cosine"},
         "WarmupLR: warmup_method must be one of 'linear', 'constant', got 'cosine'"),
        ({"warmup_prefix": 1}, "WarmupLR: warmup_prefix must be True or False, got 1"),
        ({"warmup_iters": 0},
         "WarmupLR: warmup_iters must be > 0 when no scheduler is wrapped, got 0"),
        ({"warmup_iters": -2},
         "WarmupLR: warmup_iters must be > 0 when no scheduler is wrapped, got -2"),
    ],
)  # fmt: skip
def test_warmup_refusals_name_the_argument_and_the_value(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        WarmupLR(**kwargs)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("rescaling", "message"),
    [
        ("yes", "SequentialLR: interval_rescaling must be a bool or a list of bools, got 'yes'"),
        ([True, 1],
         "SequentialLR: interval_rescaling must be a bool or a list of bools, got [True, 1]"),
        ([True], "SequentialLR: interval_rescaling must be one bool per milestone (2), got [True]"),
    ],
)  # fmt: skip
def test_oneflow_sequence_refuses_bad_interval_rescaling_in_one_line(rescaling, message):
    step = {"name": "StepLR", "kwargs": {"step_size": 2}}
    kwargs = {
        "schedulers": [step, step, step],
        "milestones": [2, 4],
        "interval_rescaling": rescaling,
    }
    with pytest.raises(ConfigError) as caught:
        build_schedule("SequentialLR", "oneflow", kwargs)
    assert str(caught.value) == message


def test_composites_refuse_bad_members_and_milestones_in_one_line():
    """Built directly from schedules (the API `build_schedule` also uses)."""
    from dualtrain.schedules.composite import (
        OneFlowChainedScheduler,
        OneFlowSequentialLR,
        SequentialLR,
    )
    from dualtrain.schedules.formulas import LambdaLR

    cases = [
        (lambda: SequentialLR([], []),
         "SequentialLR: schedulers must be a non-empty list of schedules, got []"),
        (lambda: SequentialLR([step_lr(), 5], [2]),
         "SequentialLR: schedulers[1] must be a schedule, got 5"),
        (lambda: SequentialLR([step_lr(), step_lr()], "2"),
         "SequentialLR: milestones must be a list of non-negative ints, got '2'"),
        (lambda: SequentialLR([step_lr(), step_lr()], [1, 2]),
         "SequentialLR: milestones must have one entry fewer than schedulers (1), got 2: [1, 2]"),
        (lambda: OneFlowChainedScheduler([step_lr(), LambdaLR("0.9 ** epoch")]),
         "ChainedScheduler: schedulers[1] is LambdaLR, which OneFlow 0.9 cannot compose "
         "(its get_lr(base_lr, step) raises NotImplementedError); expected a closed-form "
         "schedule such as StepLR or ExponentialLR"),
        (lambda: OneFlowSequentialLR([LambdaLR("0.9 ** epoch")], []),
         "SequentialLR: schedulers[0] is LambdaLR, which OneFlow 0.9 cannot compose "
         "(its get_lr(base_lr, step) raises NotImplementedError); expected a closed-form "
         "schedule such as StepLR or ExponentialLR"),
        (lambda: WarmupLR(LambdaLR("0.9 ** epoch")),
         "WarmupLR: scheduler is LambdaLR, which OneFlow 0.9 cannot compose "
         "(its get_lr(base_lr, step) raises NotImplementedError); expected a closed-form "
         "schedule such as StepLR or ExponentialLR"),
    ]  # fmt: skip
    for build, message in cases:
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value) == message
