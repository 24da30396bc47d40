"""dualtrain's oneflow flavour against OneFlow 0.9's own schedulers (eager).

Every expected trajectory is recorded here, from `oneflow.optim.lr_scheduler`'s
class stepping a real OneFlow optimizer; dualtrain must match it within 1e-12
relative, through `dualtrain schedule --format json` and through
`build_schedule`. Configs OneFlow refuses must be refused by `dualtrain
schedule` with exit status 2 and one line.
"""

from __future__ import annotations

import functools

import numpy as np
import oneflow
import pytest
from schedule_parity import (
    REL,
    Trajectory,
    assert_one_line_refusal,
    assert_same_trajectory,
    command_trajectory,
    engine_trajectory,
    framework_trajectory,
    member,
    params,
    run_command,
)
from schedule_parity import case as _case

import dualtrain.lr_scheduler

case = functools.partial(_case, "oneflow")
M = member

PLATEAU_MIN = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.75, 0.75, 0.75, 0.75]
PLATEAU_MIN += [0.75, 0.75, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
PLATEAU_MAX = [0.1, 0.2, 0.2, 0.2, 0.2, 0.25, 0.25, 0.25, 0.25, 0.25, 0.3, 0.29, 0.3, 0.3, 0.3]
PLATEAU_MAX += [0.31, 0.31, 0.31, 0.31, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
NOISY = [5.0, 4.0, 4.2, 3.9999, 4.1, 3.5, 3.6, 3.55, 3.7, 3.4, 3.39, 3.45, 3.5, 3.5, 3.2, 3.3]
NOISY += [3.3, 3.3, 3.3, 3.3, 3.0, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1]

CASES = [
    case("StepLR", [0.1], 20, step_size=3, gamma=0.5),
    case("StepLR", [0.1, 0.01], 15, step_size=1, gamma=0.9),
    case("StepLR", [0.3], 25, "default-gamma", step_size=7),
    case("MultiStepLR", [0.1], 15, milestones=[3, 6, 10], gamma=0.5),
    case("MultiStepLR", [0.1, 0.2], 12, "default-gamma", milestones=[2, 5]),
    case("MultiStepLR", [0.1], 8, "milestone-0", milestones=[0, 4], gamma=0.5),
    case("ExponentialLR", [0.1], 20, gamma=0.9),
    case("ExponentialLR", [0.1, 0.3], 15, gamma=0.5),
    case("ExponentialLR", [0.1], 5, "gamma-1", gamma=1.0),
    case("LinearLR", [0.1], 10, "defaults"),
    case("LinearLR", [0.1], 8, "start_factor-0", start_factor=0.0, end_factor=1.0, total_iters=4),
    case("LinearLR", [0.1], 6, "total_iters-0", start_factor=0.5, total_iters=0),
    case("LinearLR", [0.1, 0.05], 12, "decay", start_factor=1.0, end_factor=0.1, total_iters=6),
    case("ConstantLR", [0.05], 10, factor=0.5, total_iters=4),
    case("ConstantLR", [0.1], 8, "total_iters-0", factor=0.5, total_iters=0),
    case("ConstantLR", [0.1, 0.3], 8, "factor-0", factor=0.0, total_iters=3),
    case("ConstantLR", [0.1], 10, "defaults"),
    # past T_max the cosine goes back up, as in torch
    case("CosineAnnealingLR", [0.1], 25, "past-T_max", T_max=5),
    case("CosineAnnealingLR", [0.1], 40, "past-T_max", T_max=4, eta_min=0.01),
    case("CosineAnnealingLR", [0.1, 0.02], 30, "large-T_max", T_max=1000, eta_min=0.001),
    case("CosineDecayLR", [0.1], 15, decay_steps=10),
    case("CosineDecayLR", [0.1], 15, decay_steps=8, alpha=0.1),
    case("CosineDecayLR", [0.1, 0.5], 12, decay_steps=5, alpha=0.5),
    case("CosineAnnealingWarmRestarts", [0.1], 20, T_0=3),
    case("CosineAnnealingWarmRestarts", [0.1], 40, T_0=2, T_mult=2, eta_min=0.01),
    case("CosineAnnealingWarmRestarts", [0.1, 0.5], 45, T_0=1, T_mult=3, eta_min=0.001),
    case("CosineAnnealingWarmRestarts", [0.1], 30, "decay_rate", T_0=4, decay_rate=0.5),
    case("CosineAnnealingWarmRestarts", [0.1], 30, "restart_limit-decay_rate", T_0=3, T_mult=2,
         decay_rate=0.8, restart_limit=2, eta_min=0.001),
    case("CosineAnnealingWarmRestarts", [0.1], 20, "restart_limit", T_0=4, restart_limit=3),
    case("CosineAnnealingWarmRestarts", [0.1], 60, "T_mult-decay_rate", T_0=2, T_mult=3,
         decay_rate=0.9),
    # OneFlow finds the cycle with a float log: floor(log(243, 3)) = 4 at step 121, not 5.
    case("CosineAnnealingWarmRestarts", [0.1], 125, "float-log-3", T_0=1, T_mult=3,
         eta_min=0.001, decay_rate=0.9),
    # floor(log(1000, 10)) = 2 at step 111, not 3.
    case("CosineAnnealingWarmRestarts", [0.1], 115, "float-log-10", T_0=1, T_mult=10),
    case("PolynomialLR", [0.1], 10, decay_batch=5),
    case("PolynomialLR", [0.1, 0.01], 14, "cycle", decay_batch=4, end_learning_rate=0.001,
         power=2.0, cycle=True),
    case("PolynomialLR", [0.3], 14, "sqrt-to-0", decay_batch=10, end_learning_rate=0.0, power=0.5),
    case("PolynomialLR", [0.1], 20, "cycle-linear", decay_batch=3, power=1.0, cycle=True),
    case("LambdaLR", [0.1], 15, lr_lambda="0.95 ** epoch"),
    case("LambdaLR", [0.1, 0.05], 15, "per-group", lr_lambda=["0.9 ** epoch", "1 / (epoch + 1)"]),
    case("LambdaLR", [0.2], 12, "warmup", lr_lambda="min(1.0, (step + 1) / 5)"),
    case("SequentialLR", [0.1], 20, "global-step", milestones=[5], schedulers=[
        M("LinearLR", start_factor=0.1, total_iters=5), M("CosineDecayLR", decay_steps=10)]),
    case("SequentialLR", [0.1], 20, "interval_rescaling", milestones=[5], interval_rescaling=True,
         schedulers=[M("LinearLR", start_factor=0.1, total_iters=5),
                     M("CosineDecayLR", decay_steps=10)]),
    case("SequentialLR", [0.1, 0.2], 20, "interval_rescaling-mixed", milestones=[3, 8],
         interval_rescaling=[True, False], schedulers=[
             M("ConstantLR", factor=0.5, total_iters=3), M("StepLR", step_size=2, gamma=0.5),
             M("ExponentialLR", gamma=0.9)]),
    case("SequentialLR", [0.1], 16, "interval_rescaling-mixed", milestones=[4, 10],
         interval_rescaling=[False, True], schedulers=[
             M("LinearLR", start_factor=0.25, total_iters=4),
             M("CosineAnnealingLR", T_max=6, eta_min=0.01), M("MultiStepLR", milestones=[2, 4])]),
    case("SequentialLR", [0.1], 10, "milestone-0", milestones=[0], schedulers=[
        M("ConstantLR", factor=0.5, total_iters=2), M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [1.0], 10, "docstring", schedulers=[
        M("ConstantLR", factor=0.1, total_iters=2), M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [0.1, 0.05], 20, "three", schedulers=[
        M("StepLR", step_size=3, gamma=0.5), M("MultiStepLR", milestones=[5, 9], gamma=0.1),
        M("ConstantLR", factor=0.5, total_iters=2)]),
    case("ChainedScheduler", [0.1], 30, schedulers=[
        M("LinearLR", start_factor=0.2, total_iters=4),
        M("CosineAnnealingLR", T_max=6, eta_min=0.01)]),
    case("ChainedScheduler", [0.1], 20, schedulers=[
        M("CosineAnnealingWarmRestarts", T_0=4, eta_min=0.001), M("PolynomialLR", decay_batch=8)]),
    case("WarmupLR", [0.001], 10, "constant", warmup_factor=0.5, warmup_iters=5,
         warmup_method="constant"),
    case("WarmupLR", [0.001, 0.002], 10, "linear", warmup_factor=0.5, warmup_iters=5,
         warmup_method="linear"),
    case("WarmupLR", [0.001], 12, "docstring", warmup_factor=0.5, warmup_iters=2,
         warmup_method="linear", scheduler=M("CosineDecayLR", decay_steps=5, alpha=0.1)),
    case("WarmupLR", [0.1], 20, "linear-prefix", warmup_factor=0.1, warmup_iters=4,
         warmup_method="linear", warmup_prefix=True, scheduler=M("CosineDecayLR", decay_steps=10)),
    case("WarmupLR", [0.1, 0.1], 15, "constant", warmup_factor=0.25, warmup_iters=3,
         warmup_method="constant", scheduler=M("StepLR", step_size=4, gamma=0.5)),
    case("WarmupLR", [0.1, 0.3], 15, "constant-prefix", warmup_factor=0.25, warmup_iters=3,
         warmup_method="constant", warmup_prefix=True, scheduler=M("ExponentialLR", gamma=0.9)),
    case("WarmupLR", [0.1], 12, "warmup_iters-0", warmup_iters=0,
         scheduler=M("ExponentialLR", gamma=0.8)),
    case("WarmupLR", [0.1], 12, "defaults"),
    case("WarmupLR", [0.1], 25, "linear", warmup_factor=0.01, warmup_iters=5, warmup_prefix=False,
         scheduler=M("CosineAnnealingWarmRestarts", T_0=4, T_mult=2)),
    case("ReduceLROnPlateau", [0.1], 26, patience=2, factor=0.5, metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 26, "max-abs", mode="max", threshold_mode="abs",
         threshold=0.02, patience=1, factor=0.5, metrics=PLATEAU_MAX),
    case("ReduceLROnPlateau", [0.1, 0.05], 26, "cooldown-min_lr-per-group", patience=0,
         cooldown=2, factor=0.5, min_lr=[0.01, 0.004], metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 31, "abs-cooldown-eps", threshold_mode="abs", threshold=0.05,
         patience=2, cooldown=1, factor=0.3, eps=0.05, metrics=NOISY),
]  # fmt: skip

# Configs OneFlow refuses, with what it raises (at construction or on a step()).
REFUSED = [
    case("MultiStepLR", [0.1], 5, "unsorted", milestones=[4, 2], raises=AssertionError),
    case("MultiStepLR", [0.1], 5, "repeated", milestones=[2, 2, 4], raises=AssertionError),
    case("StepLR", [0.1], 5, step_size=0, raises=AssertionError),
    case("StepLR", [0.1], 5, "torch-argument", step_size=2, last_epoch=-1, raises=TypeError),
    case("ExponentialLR", [0.1], 5, gamma=0.0, raises=ValueError),
    case("CosineDecayLR", [0.1], 5, decay_steps=0, raises=AssertionError),
    case("PolynomialLR", [0.1], 5, decay_batch=0, raises=AssertionError),
    case("LinearLR", [0.1], 5, start_factor=1.5, raises=ValueError),
    case("ConstantLR", [0.1], 5, factor=-0.5, raises=ValueError),
    case("CosineAnnealingLR", [0.1], 5, T_max=0, raises=ZeroDivisionError),
    case("CosineAnnealingWarmRestarts", [0.1], 5, T_0=2, T_mult=0, raises=ValueError),
    case("WarmupLR", [0.1], 5, warmup_method="cosine", raises=ValueError),
    case("WarmupLR", [0.1], 5, "no-scheduler-no-warmup", warmup_iters=0, raises=ValueError),
    case("WarmupLR", [0.1, 0.2], 5, "linear-groups-differ", warmup_method="linear",
         scheduler=M("ExponentialLR", gamma=0.9), raises=ValueError),
    case("SequentialLR", [0.1], 8, "LambdaLR-first", milestones=[3], schedulers=[
        M("LambdaLR", lr_lambda="0.9 ** epoch"), M("ExponentialLR", gamma=0.9)],
         raises=NotImplementedError),
    case("SequentialLR", [0.1], 8, "LambdaLR-second", milestones=[3], schedulers=[
        M("ExponentialLR", gamma=0.9), M("LambdaLR", lr_lambda="0.9 ** epoch")],
         raises=NotImplementedError),
    case("SequentialLR", [0.1], 8, "interval_rescaling-count", milestones=[3],
         interval_rescaling=[True, False],
         schedulers=[M("ConstantLR"), M("ExponentialLR", gamma=0.9)], raises=ValueError),
    case("ChainedScheduler", [0.1], 8, "LambdaLR", schedulers=[
        M("ExponentialLR", gamma=0.9), M("LambdaLR", lr_lambda="0.9 ** epoch")],
         raises=NotImplementedError),
    case("ReduceLROnPlateau", [0.1], 3, factor=1.5, metrics=[1.0, 1.0], raises=ValueError),
]  # fmt: skip

ONEFLOW_NAMES = {
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineDecayLR",
    "CosineAnnealingWarmRestarts", "PolynomialLR", "LambdaLR", "LinearLR", "ConstantLR",
    "SequentialLR", "ChainedScheduler", "WarmupLR", "ReduceLROnPlateau",
}  # fmt: skip


def test_every_oneflow_scheduler_has_three_cases():
    counts = {name: sum(c.name == name for c in CASES) for name in ONEFLOW_NAMES}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("case", params(CASES))
def test_command_matches_oneflow(case, capsys, tmp_path):
    want = framework_trajectory(oneflow, case)
    code, out, err = run_command(case, capsys, tmp_path)
    assert (code, err) == (0, ""), err
    assert_same_trajectory(command_trajectory(case, out), want)


@pytest.mark.parametrize("case", params(CASES))
def test_build_schedule_matches_oneflow(case):
    assert_same_trajectory(engine_trajectory(case), framework_trajectory(oneflow, case))


@pytest.mark.parametrize("case", params(REFUSED))
def test_refused_by_oneflow_and_by_command(case, capsys, tmp_path):
    with pytest.raises(case.raises):
        framework_trajectory(oneflow, case)
    assert_one_line_refusal(*run_command(case, capsys, tmp_path))


# --- drop-in: dualtrain.lr_scheduler driving a OneFlow optimizer ---------------------------

# name: scheduler from a scheduler module, an optimizer and the flavor keyword
DROP_IN = {
    "StepLR": lambda m, opt, kw: m.StepLR(opt, step_size=3, gamma=0.5, **kw),
    "CosineDecayLR": lambda m, opt, kw: m.CosineDecayLR(opt, decay_steps=6, alpha=0.1, **kw),
    "PolynomialLR-cycle": lambda m, opt, kw: m.PolynomialLR(
        opt, decay_batch=3, end_learning_rate=0.001, power=2.0, cycle=True, **kw
    ),
    "SequentialLR-interval_rescaling": lambda m, opt, kw: m.SequentialLR(
        opt,
        [m.LinearLR(opt, start_factor=0.1, total_iters=4, **kw), m.ExponentialLR(opt, 0.8, **kw)],
        milestones=[4],
        interval_rescaling=True,
        **kw,
    ),
    "WarmupLR-prefix": lambda m, opt, kw: m.WarmupLR(
        m.CosineAnnealingLR(opt, T_max=5, **kw),
        warmup_factor=0.1,
        warmup_iters=3,
        warmup_prefix=True,
    ),
    "ReduceLROnPlateau": lambda m, opt, kw: m.ReduceLROnPlateau(
        opt, factor=0.5, patience=1, threshold=0.2
    ),
}


def train(make_scheduler, module, flavor_kwargs, steps: int = 12):
    """A small regression trained with real gradients in OneFlow eager; (weights, trajectory)."""
    oneflow.manual_seed(0)
    model = oneflow.nn.Linear(4, 1)
    x = oneflow.tensor(np.linspace(-1.0, 1.0, 32).reshape(8, 4), dtype=oneflow.float32)
    y = oneflow.sin(x.sum(dim=1, keepdim=True))
    weight, bias = model.parameters()
    groups = [{"params": [weight]}, {"params": [bias], "lr": 0.05}]
    optimizer = oneflow.optim.SGD(groups, lr=0.1, momentum=0.9)
    scheduler = make_scheduler(module, optimizer, flavor_kwargs)
    trajectory = Trajectory([[] for _ in optimizer.param_groups])
    for _ in range(steps):
        optimizer.zero_grad()
        loss = oneflow.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        if isinstance(scheduler, module.ReduceLROnPlateau):
            scheduler.step(loss.item())
        else:
            scheduler.step()
        for g, group in enumerate(optimizer.param_groups):
            trajectory.lrs[g].append(group["lr"])
    return [p.detach().numpy().copy() for p in model.parameters()], trajectory


# OneFlow's param_groups hold oneflow.optim.optimizer.ParamGroup objects (item
# access, `in`, setdefault; not dicts): dualtrain.lr_scheduler drives them too.
@pytest.mark.parametrize("name", DROP_IN)
def test_drop_in_trains_like_oneflow(name):
    make_scheduler = DROP_IN[name]
    want_weights, want = train(make_scheduler, oneflow.optim.lr_scheduler, {})
    got_weights, got = train(make_scheduler, dualtrain.lr_scheduler, {"flavor": "oneflow"})
    assert len(set(want.lrs[0])) > 1, "the schedule must move the lr to prove anything"
    assert_same_trajectory(got, want)
    for got_w, want_w in zip(got_weights, want_weights, strict=True):
        np.testing.assert_allclose(got_w, want_w, rtol=REL, atol=0.0)
