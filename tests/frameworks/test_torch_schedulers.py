"""dualtrain's torch flavour against `torch.optim.lr_scheduler` itself.

Every expected trajectory is recorded here, from torch's own scheduler class
stepping a real torch optimizer; dualtrain must match it within 1e-12 relative,
through `dualtrain schedule --format json` and through `build_schedule`. The
drop-in tests train a small model twice, once under torch's scheduler and once
under dualtrain's, and compare the weights. Configs torch refuses must be
refused by `dualtrain schedule` with exit status 2 and one line.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch
from schedule_parity import (
    REL,
    Trajectory,
    assert_one_line_refusal,
    assert_same_trajectory,
    command_args,
    command_trajectory,
    engine_trajectory,
    framework_trajectory,
    member,
    params,
    run_command,
    write_config,
)
from schedule_parity import case as _case

import dualtrain.lr_scheduler

case = functools.partial(_case, "torch")
M = member

# Metric sequences for ReduceLROnPlateau.
PLATEAU_MIN = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.75, 0.75, 0.75, 0.75]
PLATEAU_MIN += [0.75, 0.75, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
PLATEAU_MAX = [0.1, 0.2, 0.2, 0.2, 0.2, 0.25, 0.25, 0.25, 0.25, 0.25, 0.3, 0.29, 0.3, 0.3, 0.3]
PLATEAU_MAX += [0.31, 0.31, 0.31, 0.31, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
NOISY = [5.0, 4.0, 4.2, 3.9999, 4.1, 3.5, 3.6, 3.55, 3.7, 3.4, 3.39, 3.45, 3.5, 3.5, 3.2, 3.3]
NOISY += [3.3, 3.3, 3.3, 3.3, 3.0, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1, 3.1]

CASES = [
    case("LambdaLR", [0.1], 15, lr_lambda="0.95 ** epoch"),
    case("LambdaLR", [0.1, 0.05], 15, "per-group", lr_lambda=["0.9 ** epoch", "1 / (epoch + 1)"]),
    case("LambdaLR", [0.2], 12, "warmup", lr_lambda="min(1.0, (step + 1) / 5)"),
    case("LambdaLR", [0.1, 0.3], 25, "cosine", lr_lambda="0.5 * (1 + cos(pi * x / 10))"),
    case("LambdaLR", [1.0], 12, "switch", lr_lambda="1.0 if epoch < 5 else 0.1"),
    case("MultiplicativeLR", [0.1], 15, lr_lambda="0.95"),
    case("MultiplicativeLR", [0.1, 0.02], 15, lr_lambda="0.9 if epoch % 3 == 0 else 1.0"),
    case("MultiplicativeLR", [0.1, 0.2], 12, "per-group", lr_lambda=["0.99", "1 - 0.01 * epoch"]),
    case("MultiplicativeLR", [0.5], 10, "growing", lr_lambda="1.1"),
    case("StepLR", [0.1], 20, step_size=3, gamma=0.5),
    case("StepLR", [0.1, 0.01], 15, step_size=1, gamma=0.9),
    case("StepLR", [0.3], 25, "default-gamma", step_size=7),
    case("StepLR", [0.1], 10, "growing", step_size=2, gamma=1.5),
    case("MultiStepLR", [0.1], 15, milestones=[3, 6, 10], gamma=0.5),
    case("MultiStepLR", [0.1, 0.2], 12, "repeated", milestones=[2, 2, 5], gamma=0.1),
    case("MultiStepLR", [0.1], 12, "unsorted", milestones=[8, 3, 5], gamma=0.3),
    case("MultiStepLR", [0.1], 8, "milestone-0", milestones=[0, 4], gamma=0.5),
    case("MultiStepLR", [0.1], 10, "unsorted-repeated", milestones=[5, 3, 3, 8], gamma=0.5),
    case("ConstantLR", [0.05], 10, factor=0.5, total_iters=4),
    case("ConstantLR", [0.1], 8, "total_iters-0", factor=0.5, total_iters=0),
    case("ConstantLR", [0.1, 0.3], 10, "defaults"),
    case("ConstantLR", [0.1], 6, "factor-1", factor=1.0, total_iters=2),
    case("LinearLR", [0.1], 10, "defaults"),
    case("LinearLR", [0.1], 8, start_factor=0.25, end_factor=1.0, total_iters=4),
    case("LinearLR", [0.1], 6, "total_iters-0", start_factor=0.5, total_iters=0),
    case("LinearLR", [0.1, 0.05], 12, "decay", start_factor=1.0, end_factor=0.1, total_iters=6),
    case("LinearLR", [0.2], 14, "to-zero", start_factor=1.0, end_factor=0.0, total_iters=10),
    case("ExponentialLR", [0.1], 20, gamma=0.9),
    case("ExponentialLR", [0.1, 0.3], 15, gamma=0.5),
    case("ExponentialLR", [0.1], 5, "gamma-1", gamma=1.0),
    case("PolynomialLR", [0.1], 10, total_iters=5, power=1.0),
    case("PolynomialLR", [0.1, 0.01], 12, total_iters=8, power=2.0),
    case("PolynomialLR", [0.3], 14, "sqrt", total_iters=10, power=0.5),
    case("PolynomialLR", [0.1], 8, "defaults"),
    case("PolynomialLR", [0.1], 5, "total_iters-0", total_iters=0),
    # torch's CosineAnnealingLR is recursive; past T_max it follows the cosine back up.
    case("CosineAnnealingLR", [0.1], 25, "past-T_max", T_max=5),
    case("CosineAnnealingLR", [0.1], 40, "past-T_max", T_max=4, eta_min=0.01),
    case("CosineAnnealingLR", [0.1], 60, "large-T_max", T_max=1000, eta_min=1e-4),
    case("CosineAnnealingLR", [0.1, 0.02], 30, T_max=3, eta_min=0.001),
    case("CosineAnnealingLR", [0.1], 10, "T_max-1", T_max=1),
    case("CosineAnnealingLR", [0.05], 50, "eta_min-close", T_max=7, eta_min=0.04),
    case("ChainedScheduler", [1.0], 10, schedulers=[
        M("ConstantLR", factor=0.1, total_iters=2), M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [0.05], 25, "docstring", schedulers=[
        M("ConstantLR", factor=0.1, total_iters=20), M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [0.1], 12, schedulers=[
        M("ExponentialLR", gamma=0.9), M("ConstantLR", factor=0.5, total_iters=3)]),
    case("ChainedScheduler", [0.1], 12, "LambdaLR-first", schedulers=[
        M("LambdaLR", lr_lambda="0.95 ** epoch"), M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [0.1, 0.2], 12, "LambdaLR-last", schedulers=[
        M("ConstantLR", factor=0.5, total_iters=3), M("LambdaLR", lr_lambda="1 / (epoch + 1)")]),
    case("ChainedScheduler", [0.1], 30, schedulers=[
        M("LinearLR", start_factor=0.2, total_iters=4),
        M("CosineAnnealingLR", T_max=6, eta_min=0.01)]),
    case("ChainedScheduler", [0.1, 0.05], 20, "three", schedulers=[
        M("StepLR", step_size=3, gamma=0.5), M("MultiStepLR", milestones=[5, 9], gamma=0.1),
        M("ConstantLR", factor=0.5, total_iters=2)]),
    case("ChainedScheduler", [0.1], 24, schedulers=[
        M("CosineAnnealingLR", T_max=5, eta_min=0.01), M("StepLR", step_size=4, gamma=0.5)]),
    case("ChainedScheduler", [0.1], 12, schedulers=[
        M("MultiplicativeLR", lr_lambda="0.95"), M("LinearLR", start_factor=0.5, total_iters=4)]),
    case("ChainedScheduler", [0.1], 20, schedulers=[
        M("CosineAnnealingWarmRestarts", T_0=4, eta_min=0.001), M("ExponentialLR", gamma=0.95)]),
    case("ChainedScheduler", [0.1], 12, schedulers=[
        M("PolynomialLR", total_iters=6, power=2.0), M("LambdaLR", lr_lambda="1.0"),
        M("ExponentialLR", gamma=0.9)]),
    case("ChainedScheduler", [0.1], 8, "single", schedulers=[M("ExponentialLR", gamma=0.8)]),
    case("SequentialLR", [0.1], 20, milestones=[5], schedulers=[
        M("LinearLR", start_factor=0.1, total_iters=5), M("CosineAnnealingLR", T_max=10)]),
    case("SequentialLR", [0.05], 30, "docstring", milestones=[20], schedulers=[
        M("ConstantLR", factor=0.1, total_iters=20), M("ExponentialLR", gamma=0.9)]),
    case("SequentialLR", [0.1], 10, "milestone-0", milestones=[0], schedulers=[
        M("ConstantLR", factor=0.5, total_iters=2), M("ExponentialLR", gamma=0.9)]),
    case("SequentialLR", [0.1, 0.2], 12, "ConstantLR-0", milestones=[3], schedulers=[
        M("ConstantLR", factor=0.5, total_iters=0), M("StepLR", step_size=2, gamma=0.5)]),
    case("SequentialLR", [0.1], 12, "MultiplicativeLR", milestones=[4], schedulers=[
        M("ExponentialLR", gamma=0.5), M("MultiplicativeLR", lr_lambda="0.9")]),
    case("SequentialLR", [0.1], 16, milestones=[3], schedulers=[
        M("LinearLR", start_factor=0.5, total_iters=3),
        M("CosineAnnealingWarmRestarts", T_0=4, T_mult=2, eta_min=0.001)]),
    case("SequentialLR", [0.1], 15, "three", milestones=[3, 7], schedulers=[
        M("LinearLR", start_factor=0.2, total_iters=3), M("ConstantLR", factor=0.5, total_iters=2),
        M("CosineAnnealingLR", T_max=4, eta_min=0.01)]),
    case("SequentialLR", [0.1, 0.01], 12, "LambdaLR", milestones=[4], schedulers=[
        M("LambdaLR", lr_lambda="(epoch + 1) / 4"), M("PolynomialLR", total_iters=5, power=2.0)]),
    case("SequentialLR", [0.1], 14, "nested-milestones", milestones=[2, 6], schedulers=[
        M("StepLR", step_size=1, gamma=0.5), M("MultiStepLR", milestones=[1, 3], gamma=0.5),
        M("MultiplicativeLR", lr_lambda="0.8")]),
    case("ReduceLROnPlateau", [0.1], 26, patience=2, factor=0.5, metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 26, "max-abs", mode="max", threshold_mode="abs",
         threshold=0.02, patience=1, factor=0.5, metrics=PLATEAU_MAX),
    case("ReduceLROnPlateau", [0.1, 0.05], 26, "cooldown-min_lr-per-group", patience=0,
         cooldown=2, factor=0.5, min_lr=[0.01, 0.004], metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 26, "eps-blocks-all", patience=1, factor=0.5, eps=0.05,
         metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 26, "eps-blocks-late", patience=1, factor=0.5, eps=0.01,
         metrics=PLATEAU_MIN),
    case("ReduceLROnPlateau", [0.1], 31, "min-abs-cooldown", mode="min", threshold_mode="abs",
         threshold=0.05, patience=2, cooldown=1, factor=0.3, metrics=NOISY),
    case("ReduceLROnPlateau", [0.2, 0.1], 26, "max-rel", mode="max", threshold=0.1, patience=1,
         min_lr=0.02, metrics=PLATEAU_MAX),
    case("ReduceLROnPlateau", [0.1], 31, "min-rel", threshold=0.01, patience=3, factor=0.1,
         min_lr=1e-5, metrics=NOISY),
    case("CyclicLR", [0.1], 25, "triangular", base_lr=0.01, max_lr=0.1, step_size_up=4,
         momentum=0.9),
    case("CyclicLR", [0.1], 30, "triangular2", base_lr=0.01, max_lr=0.1, step_size_up=3,
         mode="triangular2", momentum=0.9),
    case("CyclicLR", [0.1], 30, "exp_range", base_lr=0.01, max_lr=0.1, step_size_up=3,
         mode="exp_range", gamma=0.9, momentum=0.9),
    case("CyclicLR", [0.1], 30, "scale_fn-cycle", base_lr=0.001, max_lr=0.01, step_size_up=3,
         scale_fn="0.5 ** x", scale_mode="cycle", momentum=0.9),
    case("CyclicLR", [0.1], 30, "scale_fn-iterations", base_lr=0.001, max_lr=0.01,
         step_size_up=3, scale_fn="1 / (1 + 0.05 * x)", scale_mode="iterations", momentum=0.9),
    case("CyclicLR", [0.1], 25, "down-shorter", base_lr=0.01, max_lr=0.1, step_size_up=4,
         step_size_down=2, momentum=0.9),
    case("CyclicLR", [0.1], 20, "down-longer", base_lr=0.01, max_lr=0.1, step_size_up=2,
         step_size_down=5, mode="triangular2", momentum=0.9),
    case("CyclicLR", [0.1], 20, "no-momentum", base_lr=0.01, max_lr=0.1, step_size_up=3,
         cycle_momentum=False, momentum=0.9),
    case("CyclicLR", [0.001], 20, "adam", base_lr=0.001, max_lr=0.006, step_size_up=3,
         optimizer="adam", momentum=0.9),
    case("CyclicLR", [0.1, 0.2], 20, "per-group", base_lr=[0.01, 0.02], max_lr=[0.1, 0.3],
         step_size_up=3, base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.95], momentum=0.9),
    case("CyclicLR", [0.1, 0.2], 20, "adam-exp_range", base_lr=0.01, max_lr=[0.1, 0.05],
         step_size_up=2, mode="exp_range", gamma=0.95, optimizer="adam", momentum=0.9),
    case("CyclicLR", [0.1], 15, "step_size_up-1", base_lr=0.05, max_lr=0.1, step_size_up=1,
         momentum=0.9),
    # steps = total_steps + 1, the most torch allows
    case("OneCycleLR", [0.1], 21, "cos", max_lr=0.1, total_steps=20, momentum=0.9),
    case("OneCycleLR", [0.1], 21, "linear", max_lr=0.1, total_steps=20,
         anneal_strategy="linear", momentum=0.9),
    case("OneCycleLR", [0.1], 31, "three_phase", max_lr=0.5, total_steps=30, three_phase=True,
         momentum=0.9),
    case("OneCycleLR", [0.1], 26, "factors", max_lr=1.0, total_steps=25, div_factor=10.0,
         final_div_factor=100.0, pct_start=0.4, momentum=0.9),
    case("OneCycleLR", [0.001], 21, "adam", max_lr=0.01, total_steps=20, optimizer="adam",
         momentum=0.9),
    case("OneCycleLR", [0.1, 0.2], 21, "per-group", max_lr=[0.1, 0.5], total_steps=20,
         base_momentum=[0.8, 0.85], max_momentum=[0.9, 0.99], momentum=0.9),
    case("OneCycleLR", [0.1], 21, "no-momentum", max_lr=0.1, total_steps=20,
         cycle_momentum=False, momentum=0.9),
    case("OneCycleLR", [0.1], 25, "epochs", max_lr=0.2, epochs=4, steps_per_epoch=6,
         momentum=0.9),
    case("OneCycleLR", [0.1], 41, "adam-three_phase-linear", max_lr=0.3, total_steps=40,
         pct_start=0.5, anneal_strategy="linear", three_phase=True, optimizer="adam",
         momentum=0.9),
    case("OneCycleLR", [0.1, 0.1], 16, "per-group-lr", max_lr=[0.4, 0.2], total_steps=15,
         pct_start=0.25, div_factor=4.0, momentum=0.9),
    case("CosineAnnealingWarmRestarts", [0.1], 20, T_0=3),
    case("CosineAnnealingWarmRestarts", [0.1], 40, T_0=2, T_mult=2, eta_min=0.01),
    case("CosineAnnealingWarmRestarts", [0.1, 0.5], 45, T_0=1, T_mult=3, eta_min=0.001),
    case("CosineAnnealingWarmRestarts", [0.1], 30, T_0=5, T_mult=1, eta_min=0.02),
]  # fmt: skip

# Configs torch refuses, with what it raises (at construction or on a step()).
REFUSED = [
    case("LinearLR", [0.1], 5, start_factor=0.0, raises=ValueError),
    case("LinearLR", [0.1], 5, end_factor=1.5, raises=ValueError),
    case("ConstantLR", [0.1], 5, factor=1.5, raises=ValueError),
    case("ConstantLR", [0.1], 6, "factor-0", factor=0.0, total_iters=3, raises=ZeroDivisionError),
    case("OneCycleLR", [0.1], 5, "no-length", max_lr=0.1, momentum=0.9, raises=ValueError),
    case("OneCycleLR", [0.1], 5, "empty-phase", max_lr=0.1, total_steps=10, pct_start=0.1,
         momentum=0.9, raises=ZeroDivisionError),
    case("OneCycleLR", [0.1], 5, max_lr=0.1, total_steps=10, anneal_strategy="quad",
         momentum=0.9, raises=ValueError),
    case("OneCycleLR", [0.1], 12, "step-too-many", max_lr=0.1, total_steps=10, momentum=0.9,
         raises=ValueError),
    case("CyclicLR", [0.1], 5, base_lr=0.01, max_lr=0.1, mode="sawtooth", momentum=0.9,
         raises=ValueError),
    case("ReduceLROnPlateau", [0.1], 3, factor=1.0, metrics=[1.0, 1.0], raises=ValueError),
    case("ReduceLROnPlateau", [0.1], 3, mode="avg", metrics=[1.0, 1.0], raises=ValueError),
    case("ReduceLROnPlateau", [0.1, 0.2], 3, min_lr=[0.01], metrics=[1.0, 1.0],
         raises=ValueError),
    case("CosineAnnealingWarmRestarts", [0.1], 5, T_0=0, raises=ValueError),
    case("CosineAnnealingWarmRestarts", [0.1], 5, T_0=2, T_mult=0, raises=ValueError),
    case("SequentialLR", [0.1], 5, "milestones-count", milestones=[2, 4],
         schedulers=[M("ConstantLR"), M("ExponentialLR", gamma=0.9)], raises=ValueError),
    case("SequentialLR", [0.1], 5, "plateau-member", milestones=[2],
         schedulers=[M("ConstantLR"), M("ReduceLROnPlateau")], raises=ValueError),
    case("LambdaLR", [0.1, 0.2], 5, lr_lambda=["0.9 ** epoch"], raises=ValueError),
    case("PolynomialLR", [0.1], 5, "oneflow-argument", decay_batch=3, raises=TypeError),
    case("StepLR", [0.1], 4, step_size=0, raises=ZeroDivisionError),
    case("CosineAnnealingLR", [0.1], 4, T_max=0, raises=ZeroDivisionError),
]  # fmt: skip

TORCH_NAMES = {
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
    "ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler", "SequentialLR",
    "ReduceLROnPlateau", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts",
}  # fmt: skip


def test_every_torch_scheduler_has_three_cases():
    counts = {name: sum(c.name == name for c in CASES) for name in TORCH_NAMES}
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("case", params(CASES))
def test_command_matches_torch(case, capsys, tmp_path):
    want = framework_trajectory(torch, case)
    code, out, err = run_command(case, capsys, tmp_path)
    assert (code, err) == (0, ""), err
    assert_same_trajectory(command_trajectory(case, out), want)


@pytest.mark.parametrize("case", params(CASES))
def test_build_schedule_matches_torch(case):
    assert_same_trajectory(engine_trajectory(case), framework_trajectory(torch, case))


# A few through a real process, as a user runs the command (a missing id fails collection).
SUBPROCESS = ["StepLR-1", "OneCycleLR-3-three_phase", "SequentialLR-1", "CyclicLR-9-adam"]


@pytest.mark.parametrize("case", [{p.id: p for p in params(CASES)}[i] for i in SUBPROCESS])
def test_installed_command_matches_torch(case, tmp_path):
    args = command_args(case, write_config(case, tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "dualtrain", *args], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert_same_trajectory(command_trajectory(case, proc.stdout), framework_trajectory(torch, case))


@pytest.mark.parametrize("case", params(REFUSED))
def test_refused_by_torch_and_by_command(case, capsys, tmp_path):
    with pytest.raises(case.raises):
        framework_trajectory(torch, case)
    assert_one_line_refusal(*run_command(case, capsys, tmp_path))


# --- drop-in: dualtrain.lr_scheduler driving a torch optimizer -----------------------------


def sgd(model):
    weight, bias = model.parameters()
    groups = [{"params": [weight]}, {"params": [bias], "lr": 0.05}]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)


# name: (optimizer, scheduler from a scheduler module and an optimizer, steps)
DROP_IN = {
    "StepLR-positional": (sgd, lambda m, opt: m.StepLR(opt, 3, 0.5), 12),
    "MultiStepLR-repeated": (sgd, lambda m, opt: m.MultiStepLR(opt, [2, 2, 5], 0.5), 12),
    "LambdaLR-callables": (
        sgd,
        lambda m, opt: m.LambdaLR(opt, [lambda e: 0.9**e, lambda e: 1 / (e + 1)]),
        12,
    ),
    "MultiplicativeLR": (sgd, lambda m, opt: m.MultiplicativeLR(opt, lambda e: 0.95), 12),
    "PolynomialLR": (sgd, lambda m, opt: m.PolynomialLR(opt, total_iters=8, power=2.0), 12),
    "CosineAnnealingLR-past-T_max": (
        sgd,
        lambda m, opt: m.CosineAnnealingLR(opt, T_max=4, eta_min=0.01),
        14,
    ),
    "CosineAnnealingWarmRestarts": (
        sgd,
        lambda m, opt: m.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001),
        14,
    ),
    "OneCycleLR-momentum": (
        sgd,
        lambda m, opt: m.OneCycleLR(opt, max_lr=[0.5, 0.2], total_steps=12, three_phase=True),
        12,
    ),
    "OneCycleLR-adam-beta1": (
        adam,
        lambda m, opt: m.OneCycleLR(opt, max_lr=0.05, total_steps=12, anneal_strategy="linear"),
        12,
    ),
    "CyclicLR-momentum": (
        sgd,
        lambda m, opt: m.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="triangular2"),
        14,
    ),
    "CyclicLR-adam-beta1": (
        adam,
        lambda m, opt: m.CyclicLR(opt, 0.001, 0.01, step_size_up=2, mode="exp_range", gamma=0.9),
        14,
    ),
    "SequentialLR": (
        sgd,
        lambda m, opt: m.SequentialLR(
            opt,
            [m.LinearLR(opt, start_factor=0.1, total_iters=4), m.CosineAnnealingLR(opt, T_max=6)],
            milestones=[4],
        ),
        14,
    ),
    "ChainedScheduler": (
        sgd,
        lambda m, opt: m.ChainedScheduler(
            [m.ConstantLR(opt, factor=0.5, total_iters=3), m.ExponentialLR(opt, gamma=0.9)]
        ),
        12,
    ),
    "ReduceLROnPlateau": (
        sgd,
        lambda m, opt: m.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.2),
        16,
    ),
}


def train(make_optimizer, make_scheduler, module, steps: int):
    """A small float64 regression trained with real gradients; (weights, trajectory)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1, dtype=torch.float64)
    x = torch.linspace(-1.0, 1.0, 32, dtype=torch.float64).reshape(8, 4)
    y = (x @ torch.tensor([[0.5], [-1.0], [2.0], [0.25]], dtype=torch.float64)).sin()
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(module, optimizer)
    beta1 = "betas" in optimizer.defaults
    n_groups = len(optimizer.param_groups)
    trajectory = Trajectory([[] for _ in range(n_groups)], [[] for _ in range(n_groups)])
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        if isinstance(scheduler, module.ReduceLROnPlateau):
            scheduler.step(loss.item())
        else:
            scheduler.step()
        for g, group in enumerate(optimizer.param_groups):
            trajectory.lrs[g].append(group["lr"])
            trajectory.momentum[g].append(group["betas"][0] if beta1 else group["momentum"])
    return [p.detach() for p in model.parameters()], trajectory


@pytest.mark.parametrize("name", DROP_IN)
def test_drop_in_trains_like_torch(name):
    make_optimizer, make_scheduler, steps = DROP_IN[name]
    want_weights, want = train(make_optimizer, make_scheduler, torch.optim.lr_scheduler, steps)
    got_weights, got = train(make_optimizer, make_scheduler, dualtrain.lr_scheduler, steps)
    assert len(set(want.lrs[0])) > 1, "the schedule must move the lr to prove anything"
    assert_same_trajectory(got, want)
    for got_w, want_w in zip(got_weights, want_weights, strict=True):
        torch.testing.assert_close(got_w, want_w, rtol=REL, atol=0.0)
