"""Which names behave differently in torch and OneFlow, what a wrapper and OneCycleLR
hand to the groups and to torch's `base_lrs`, CyclicLR's triangular mode with a
gamma, and the text lambdas' hashes: corners a mutation run found unchecked
(docs/mutation.md). Expected values come from torch's and OneFlow's own classes.
"""

from __future__ import annotations

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.schedules import build_schedule, has_distinct_flavors
from dualtrain.schedules.expr import Expression

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def torch_opt(lr=0.1, **options):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, **options)


def lrs(opt, sched, n):
    out = []
    for _ in range(n):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def oneflow_opt(lr=0.1):
    return flow.optim.SGD([flow.nn.Parameter(flow.zeros(1))], lr=lr)


def pure(name, flavor="torch", **kwargs):
    [schedule] = build_schedule(name, flavor, kwargs)
    return schedule


# --- has_distinct_flavors ----------------------------------------------------------------


def test_names_whose_flavours_differ_only_in_float_order_are_not_distinct():
    """torch's StepLR folds its update, OneFlow's computes the closed form: the same
    lrs but for the last bits, so one behaviour."""
    opt, their_opt = torch_opt(), oneflow_opt()
    torch_lrs = lrs(opt, T.StepLR(opt, 2, 0.3), 9)
    oneflow_lrs = lrs(their_opt, F.StepLR(their_opt, 2, 0.3), 9)
    # float order: measured 1 ulp apart at most (1e-19 on 8.1e-4)
    assert torch_lrs == pytest.approx(oneflow_lrs, rel=1e-12)
    assert not has_distinct_flavors("StepLR")
    assert not has_distinct_flavors("ExponentialLR")
    assert not has_distinct_flavors("CosineAnnealingLR")


def test_names_whose_flavours_behave_differently_are_distinct():
    """ConstantLR with total_iters=0: torch keeps the factor forever, OneFlow applies
    none; MultiStepLR: OneFlow refuses a repeated milestone torch counts twice."""
    opt, their_opt = torch_opt(), oneflow_opt()
    assert lrs(opt, T.ConstantLR(opt, 0.5, 0), 3) == [0.05] * 3
    assert lrs(their_opt, F.ConstantLR(their_opt, 0.5, 0), 3) == [0.1] * 3
    with pytest.raises(AssertionError, match="must be increasing"):
        F.MultiStepLR(oneflow_opt(), [2, 2])
    T.MultiStepLR(torch_opt(), [2, 2])
    assert has_distinct_flavors("ConstantLR")
    assert has_distinct_flavors("MultiStepLR")
    assert has_distinct_flavors("PolynomialLR")  # OneFlow decays to end_learning_rate


def test_names_with_one_class_or_none_are_not_distinct():
    assert not has_distinct_flavors("CyclicLR")  # torch's only, served in both flavours
    assert not has_distinct_flavors("CosineDecayLR")  # OneFlow's only
    assert not has_distinct_flavors("ReduceLROnPlateau")  # outside the registry
    assert not has_distinct_flavors("NoSuchLR")


# --- what goes into the groups and into torch's base_lrs ---------------------------------


def test_one_cycle_given_to_a_generic_scheduler_writes_torchs_group_keys():
    """torch's OneCycleLR constructor writes initial_lr (max_lr / div_factor), max_lr
    and min_lr (initial_lr / final_div_factor) into each group; a generic LRScheduler
    driving the pure schedule writes the same, and counts from the same base."""
    kwargs = {"max_lr": 0.4, "total_steps": 10, "div_factor": 8.0, "final_div_factor": 5.0}
    theirs_opt, ours_opt = torch_opt(0.3), torch_opt(0.3)
    theirs = T.OneCycleLR(theirs_opt, **kwargs, cycle_momentum=False)
    ours = D.LRScheduler(ours_opt, [pure("OneCycleLR", **kwargs, cycle_momentum=False)])

    def group(opt):
        return {k: v for k, v in opt.param_groups[0].items() if k != "params"}

    assert group(ours_opt) == group(theirs_opt)
    assert group(theirs_opt)["initial_lr"] == 0.05 and group(theirs_opt)["min_lr"] == 0.01
    assert ours.base_lrs == theirs.base_lrs == [0.05]
    assert lrs(ours_opt, ours, 10) == lrs(theirs_opt, theirs, 10)


@pytest.mark.parametrize("wrapper", ["NoisyLR", "LinearWarmupLR"])
def test_a_wrapper_counts_from_what_the_wrapped_schedule_counts_from(wrapper):
    """torch's StepLR counts from the group's lr (its base_lrs); wrapped, the same."""
    opt = torch_opt(0.3)
    assert T.StepLR(opt, 2).base_lrs == [0.3]
    wrapped = pure(wrapper, scheduler={"name": "StepLR", "kwargs": {"step_size": 2}})
    assert wrapped.start_lr(0.3) == 0.3


def test_cyclic_triangular_ignores_gamma_as_torch():
    """gamma scales only exp_range; triangular keeps every cycle's full height."""
    kwargs = {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, "gamma": 0.5}
    opt = torch_opt()
    theirs = lrs(opt, T.CyclicLR(opt, **kwargs, mode="triangular", cycle_momentum=False), 12)
    schedule = pure("CyclicLR", **kwargs, mode="triangular", cycle_momentum=False)
    assert [schedule.lr(t, 0.1) for t in range(12)] == theirs
    assert max(theirs[6:]) == pytest.approx(0.1)  # the third cycle still peaks at max_lr


# --- text lambdas as dict keys -----------------------------------------------------------


def test_different_expressions_hash_differently():
    """Equal expressions hash equal (test_mutation_engine); different ones spread over
    different hashes, so a dict keyed by them does not collide them all."""
    texts = [f"{k / 10} ** epoch" for k in range(1, 21)]
    hashes = {hash(Expression(text)) for text in texts}
    assert len(hashes) == len(texts)
    assert hash(Expression("0.9 ** epoch")) == hash(Expression("0.9 ** epoch"))
