"""`LRScheduler` built from schedules or subclassed as torch's base class, against
torch's and OneFlow's own classes: its argument checks (the message names the value
and what was expected), torch's positional `last_epoch`, OneFlow's `last_step` and
`verbose` (docs/mutation.md: what a full mutation run found unchecked).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import oneflow as flow
import pytest
import torch
from stepping import trajectory

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def torch_opt(lrs=(0.1, 0.05)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def oneflow_opt(lrs=(0.4,)):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0])


def step_schedules(n_groups, flavor="torch"):
    return build_schedule("StepLR", flavor, {"step_size": 2, "gamma": 0.5}, n_groups)


@pytest.mark.parametrize(
    ("schedules", "shown"),
    [([1, 2], "[1, 2]"), ("StepLR", "'StepLR'"), (True, "True")],
)
def test_schedules_that_are_not_a_list_of_schedules_are_refused(schedules, shown):
    """A list of something else, a name, or a bool (an int that is not a last_epoch)."""
    with pytest.raises(ConfigError) as info:
        D.LRScheduler(torch_opt(), schedules)
    assert str(info.value) == f"schedules must be a list of Schedule objects, got {shown}"


def test_one_schedule_per_param_group():
    with pytest.raises(ConfigError) as info:
        D.LRScheduler(torch_opt((0.1, 0.05)), step_schedules(1))
    assert str(info.value) == "schedules must have one entry per param group (2), got 1"
    sched = D.LRScheduler(torch_opt((0.1, 0.05)), tuple(step_schedules(2)))  # a tuple is a list
    assert sched.lrs_at(2) == [0.1 * 0.5, 0.05 * 0.5]


def _halving_get_lr(self):
    return [b * 0.5 ** (self.last_epoch // 2) for b in self.base_lrs]


def _subclass(module):
    """A torch-style subclass: super().__init__(optimizer, last_epoch) and its get_lr()."""

    def init(self, optimizer, last_epoch=-1):
        module.LRScheduler.__init__(self, optimizer, last_epoch)  # positional last_epoch

    return type("Halving", (module.LRScheduler,), {"__init__": init, "get_lr": _halving_get_lr})


@pytest.mark.parametrize("last_epoch", [-1, 3])
def test_a_subclass_passes_last_epoch_positionally_as_to_torch(last_epoch):
    """torch's LRScheduler(optimizer, last_epoch): the int is the counter, not schedules;
    resuming at 3 reads the initial_lr the groups hold and steps on from 4."""
    runs = []
    for module in (T, D):
        opt = torch_opt()
        if last_epoch >= 0:
            for group in opt.param_groups:
                group["initial_lr"] = group["lr"] * 2
        sched = _subclass(module)(opt, last_epoch)
        runs.append((sched.last_epoch, sched.base_lrs, trajectory(sched, opt, 5)))
    assert runs[1] == runs[0]


def test_last_step_resumes_the_counter_as_oneflow():
    """OneFlow's last_step: resuming at 3, the first step sets the lr of step 4.
    OneFlow's StepLR(step_size=2, gamma=0.5) gives the expected values."""
    runs = []
    for build in (
        lambda o: F.StepLR(o, 2, 0.5, last_step=3),
        lambda o: D.LRScheduler(o, step_schedules(1, "oneflow"), flavor="oneflow", last_step=3),
    ):
        opt = oneflow_opt()
        opt.param_groups[0]["initial_lr"] = 0.8
        sched = build(opt)
        runs.append((sched.last_step, trajectory(sched, opt, 4)))
    assert runs[1] == runs[0]
    assert runs[0][0] == 4 and runs[0][1][0] == [0.8 * 0.25]


def test_verbose_prints_each_groups_lr_at_each_step_as_oneflow(capsys):
    """OneFlow keeps `verbose` and prints one line per param group at every step
    (construction's included); dualtrain's lines say the same in its own words."""
    counts = []
    for build in (
        lambda o: F.StepLR(o, 2, 0.5, verbose=True),
        lambda o: D.LRScheduler(o, step_schedules(2, "oneflow"), flavor="oneflow", verbose=True),
    ):
        opt = oneflow_opt((0.4, 0.2))
        sched = build(opt)
        trajectory(sched, opt, 2)
        out = capsys.readouterr().out.splitlines()
        assert sched.verbose is True
        assert all("param_groups[" in line for line in out)
        counts.append(len(out))
    assert counts == [6, 6]  # 3 steps (construction + 2) x 2 groups
    quiet = D.LRScheduler(oneflow_opt(), step_schedules(1, "oneflow"), flavor="oneflow")
    trajectory(quiet, quiet.optimizer, 2)
    assert capsys.readouterr().out == "" and quiet.verbose is False


@pytest.mark.parametrize("scheduler", [[{"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}], {}])
def test_a_wrapped_schedule_must_be_one_config(scheduler):
    """A drop-in class builds a nested `scheduler` config itself; a list of configs or
    an empty dict is refused with the value, before the pure class sees it."""
    with pytest.raises(ConfigError) as info:
        D.LinearWarmupLR(torch_opt((0.1,)), warmup_steps=2, scheduler=scheduler)
    assert (
        str(info.value)
        == f"LinearWarmupLR: scheduler: expected {{name, kwargs}}, got {scheduler!r}"
    )
    config = {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}}
    sched = D.LinearWarmupLR(torch_opt((0.1,)), warmup_steps=2, scheduler=config)
    assert sched.lrs_at(3) == [0.1 * 0.9]  # past the warmup: ExponentialLR's step 1


def test_refusals_name_the_value():
    with pytest.raises(ConfigError) as info:
        D.LRScheduler(torch_opt(), step_schedules(2), flavor="jax")
    assert str(info.value) == "flavor must be one of torch, oneflow, got 'jax'"
    with pytest.raises(ConfigError) as info:
        D.LRScheduler(torch_opt((0.1,)), step_schedules(1), last_epoch=3)
    assert str(info.value) == (
        "param 'initial_lr' is not specified in param_groups[0] when resuming scheduler "
        "with last_epoch >= 0 (last_epoch=3): load the optimizer's state first, it holds "
        "initial_lr"
    )
    sched = _subclass(D)(torch_opt())
    with pytest.raises(NotImplementedError) as info:
        _ = sched.schedules
    assert str(info.value) == "Halving computes its lrs in get_lr()"
    cycle = build_schedule("OneCycleLR", kwargs={"max_lr": 0.5, "total_steps": 10})
    adagrad = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError) as info:
        D.LRScheduler(adagrad, cycle)
    assert str(info.value) == (
        "LRScheduler: cycle_momentum needs an optimizer with momentum or betas, got Adagrad"
    )


def test_oneflow_get_lr_of_a_base_and_a_step_as_oneflows():
    """OneFlow's get_lr(base_lr, step): one group's closed form, nothing changed."""
    theirs = F.StepLR(oneflow_opt(), 2, 0.5)
    mine = D.LRScheduler(oneflow_opt(), step_schedules(1, "oneflow"), flavor="oneflow")
    assert mine.get_lr(0.8, 5) == theirs.get_lr(0.8, 5) == 0.8 * 0.25
    assert mine.last_step == 0


# mutmut's trampoline (tools/mutation) puts one more frame between the caller and
# every mutated function, so no stack level can point at the caller there: under
# mutmut the caller's file and line are not compared (the stack levels are checked
# outside mutmut: tools/mutation/equivalent.toml, [[outside]]), everything else is.
UNDER_MUTMUT = "mutants" in Path(D.__file__).parts
DOCS = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
EPOCH_DEPRECATION_WARNING = (  # torch's meaning, in dualtrain's words
    "scheduler.step(epoch) is deprecated (as in torch): it sets last_epoch to epoch and "
    "uses the closed form where the scheduler has one, instead of the chainable form "
    "that step() uses; call step() without an argument"
)
STEP_ORDER_WARNING = (
    "lr_scheduler.step() was called before optimizer.step(): since PyTorch 1.1 the "
    "optimizer steps first, else the first value of the schedule is skipped; see " + DOCS
)
STEP_OVERRIDDEN_WARNING = (
    "`optimizer.step()` has been overridden after the lr scheduler was built, so the "
    "scheduler cannot tell whether it ran first; call optimizer.step() before "
    "lr_scheduler.step(), see " + DOCS
)


def at(where):
    return None if UNDER_MUTMUT else where


def test_epoch_warning_points_at_the_callers_line_as_torchs():
    """step(epoch) warns as torch does, at the line that called it (torch's
    stacklevel=2); get_lr() outside step() warns that it is not the lr in effect."""
    for module in (T, D):
        opt = torch_opt()
        sched = module.StepLR(opt, 2)
        opt.step()
        with pytest.warns(UserWarning) as record:
            sched.step(3)
        assert [at(w.filename) for w in record] == [at(__file__)]
        assert sched.last_epoch == 3
    assert str(record[0].message) == EPOCH_DEPRECATION_WARNING  # ours (torch words its own)
    with pytest.warns(UserWarning, match="get_lr\\(\\) computes the next lr; the lr in effect"):
        sched.get_lr()


@pytest.mark.parametrize("replaced", [False, True])
def test_step_order_warnings_point_at_the_line_that_stepped_the_scheduler_as_torchs(replaced):
    """The first step() before optimizer.step() (or after optimizer.step was replaced)
    warns at the caller's own line, the line torch's warning names."""
    lines = {}
    for module in (T, D):
        opt = torch_opt()
        sched = module.StepLR(opt, 2)
        if replaced:
            opt.step = lambda: None
        with pytest.warns(UserWarning) as record:
            line = inspect.currentframe().f_lineno + 1
            sched.step()
        assert [at(w.filename) for w in record] == [at(__file__)]
        lines[module] = [(str(w.message), at(w.lineno)) for w in record]
    message = STEP_OVERRIDDEN_WARNING if replaced else STEP_ORDER_WARNING
    assert lines[D] == [(message, at(line))]
    assert [at(w) for _, w in lines[T]] == [at(line)]
