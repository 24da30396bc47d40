"""`LRScheduler`'s stepping machinery against torch's own classes: where get_lr()'s
warning points, the per-group schedules kept until a hyperparameter changes, a group
added after construction, per-group momentum, the optimizer's defaults as the momentum
key, and the verbose line (docs/mutation.md: what the late part of a full mutation run
found unchecked).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler


def param():
    return torch.nn.Parameter(torch.zeros(1))


def sgd(lrs=(0.1,), momentum=0.9):
    groups = [{"params": [param()], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)


def one_cycle(n_groups=1, flavor="torch"):
    kwargs = {"max_lr": 0.5, "total_steps": 10}
    return build_schedule("OneCycleLR", flavor, kwargs, n_groups)


# mutmut's trampoline (tools/mutation) puts one more frame between the caller and
# every mutated function, so no stack level can point at the caller there: under
# mutmut the caller's line is not compared (the stack levels are checked outside
# mutmut: tools/mutation/equivalent.toml, [[outside]]), everything else is.
UNDER_MUTMUT = "mutants" in Path(D.__file__).parts


def at(*where):
    return (None,) * len(where) if UNDER_MUTMUT else where


def test_get_lr_outside_step_warns_once_at_the_callers_line_every_time():
    """get_lr() called by the user (not by step()) warns, as a UserWarning pointing at
    the caller's line, and again after a step (step() resets its inside-step flag)."""
    opt = sgd()
    sched = D.StepLR(opt, 2)
    lines = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        lines.append(_line_of_next_call() + 1)
        sched.get_lr()
        opt.step()
        sched.step()
        lines.append(_line_of_next_call() + 1)
        sched.get_lr()
    assert [(w.category, *at(w.filename, w.lineno)) for w in record] == [
        (UserWarning, *at(__file__, line)) for line in lines
    ]


def _line_of_next_call():
    import inspect

    return inspect.currentframe().f_back.f_lineno


def test_the_schedules_are_kept_until_a_hyperparameter_changes():
    """The per-group schedules are built once and rebuilt when a hyperparameter changes
    (base.py's docstring): the same objects twice, new ones (with the new value) after."""
    sched = D.StepLR(sgd((0.1, 0.05)), step_size=2)
    first = sched.schedules
    assert [a is b for a, b in zip(first, sched.schedules, strict=True)] == [True, True]
    sched.step_size = 3
    again = sched.schedules
    assert [a is b for a, b in zip(first, again, strict=True)] == [False, False]
    # step 3 with step_size 3: one decay by the default gamma 0.1
    assert sched.lrs_at(3) == pytest.approx([0.1 * 0.1, 0.05 * 0.1], rel=1e-15)


def test_a_group_added_after_construction_is_refused_before_any_lr_is_written():
    """torch flavour: the schedules were built for one group; a second group added later
    makes step() raise before it writes any lr (the first group keeps 0.1, not 0.01)."""
    opt = sgd((0.1,))
    sched = D.StepLR(opt, 1)
    opt.add_param_group({"params": [param()], "lr": 0.3})
    opt.step()
    with pytest.raises(ValueError, match="zip\\(\\) argument 2 is longer than argument 1"):
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.3]


def test_a_group_added_after_construction_is_refused_by_the_oneflow_flavour():
    """OneFlow flavour: the lrs computed for one group do not fit two groups: refused."""
    groups = [{"params": [flow.nn.Parameter(flow.zeros(1))], "lr": 0.4}]
    opt = flow.optim.SGD(groups, lr=0.4)
    sched = D.StepLR(opt, 1, flavor="oneflow")
    opt.add_param_group({"params": [flow.nn.Parameter(flow.zeros(1))], "lr": 0.3})
    with pytest.raises(ValueError, match="zip\\(\\) argument 2 is shorter than argument 1"):
        sched.step()


def test_a_group_whose_schedule_has_no_momentum_keeps_its_own_and_the_next_cycles():
    """Group 0 runs StepLR (no momentum: it keeps the optimizer's 0.9), group 1 runs
    OneCycleLR: its momentum is torch's OneCycleLR's, at construction and a step on."""
    opt = sgd((0.1, 0.1))
    schedules = build_schedule("StepLR", "torch", {"step_size": 2}, 1) + one_cycle()
    sched = D.LRScheduler(opt, schedules)
    ref_opt = sgd((0.1,))
    ref = T.OneCycleLR(ref_opt, 0.5, total_steps=10)
    seen, expected = [], []
    for _ in range(3):
        seen.append([g["momentum"] for g in opt.param_groups])
        expected.append([0.9, ref_opt.param_groups[0]["momentum"]])
        opt.step()
        sched.step()
        ref_opt.step()
        ref.step()
    assert seen == expected
    assert expected[0] == [0.9, 0.95]  # OneCycleLR starts at max_momentum 0.95


def test_the_momentum_key_comes_from_the_optimizers_defaults_as_torchs():
    """SGD whose group carries an extra 'betas' entry: torch's OneCycleLR reads the
    optimizer's defaults (momentum, no betas) and cycles 'momentum'; so does ours."""
    results = []
    makers = (
        lambda o: T.OneCycleLR(o, 0.5, total_steps=10),
        lambda o: D.LRScheduler(o, one_cycle()),
    )
    for make in makers:
        opt = torch.optim.SGD([{"params": [param()], "betas": (0.5, 0.5)}], lr=0.1, momentum=0.9)
        sched = make(opt)
        opt.step()
        sched.step()
        group = opt.param_groups[0]
        results.append((group["momentum"], group["betas"]))
    assert results[0] == results[1]
    assert results[1][1] == (0.5, 0.5)  # untouched: the key is 'momentum'


class StandIn:
    """An optimizer-like object without `defaults`: its groups are all there is."""

    def __init__(self):
        self.param_groups = [{"lr": 0.1, "momentum": 0.9}]
        self.steps = 0

    def step(self):
        self.steps += 1


def test_an_optimizer_without_defaults_gives_the_momentum_key_by_its_first_group():
    """OneCycleLR on a stand-in without `defaults`: the first group's 'momentum' is
    cycled, as torch's OneCycleLR cycles it on SGD (same steps, same values)."""
    opt = StandIn()
    sched = D.LRScheduler(opt, one_cycle())
    ref_opt = sgd((0.1,))
    ref = T.OneCycleLR(ref_opt, 0.5, total_steps=10)
    for _ in range(2):
        opt.step()
        sched.step()
        ref_opt.step()
        ref.step()
    assert opt.param_groups[0]["momentum"] == ref_opt.param_groups[0]["momentum"]
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
    assert opt.steps == 2


def test_verbose_names_the_class_step_and_group(capsys):
    """verbose: one line per group per step, '<class>: step <n>, param_groups[<i>] lr =
    <lr>' (0.4 halved at step 1 by StepLR(step_size=1, gamma=0.5): 0.2)."""
    groups = [{"params": [flow.nn.Parameter(flow.zeros(1))], "lr": 0.4}]
    opt = flow.optim.SGD(groups, lr=0.4)
    sched = D.StepLR(opt, 1, 0.5, verbose=True, flavor="oneflow")
    capsys.readouterr()
    opt.step()
    sched.step()
    assert capsys.readouterr().out == "StepLR: step 1, param_groups[0] lr = 0.2\n"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"milestones": torch.tensor([2, 4])}, "milestones"),
        ({"milestones": [2, 4], "gamma": torch.tensor([0.5, 0.5])}, "gamma"),
        ({"milestones": [2, torch.tensor([4, 6])]}, "milestones"),
    ],
)
def test_a_tensor_of_several_values_is_refused_in_one_line(kwargs, key):
    # torch's MultiStepLR takes tensor milestones and never decays (its Counter keys them
    # by identity); ours refuses them, naming the argument.
    from dualtrain.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        D.MultiStepLR(sgd(), **kwargs)
    assert str(info.value) == (
        f"MultiStepLR: {key} is a tensor of shape (2,); give numbers (a list for several) "
        "or one-value tensors"
    )


def test_a_hyperparameter_changed_to_a_tensor_of_several_values_is_noticed():
    """Comparing the old arguments with new ones that hold a tensor of several values
    cannot say "equal": the schedules are rebuilt, which refuses the tensor, rather than
    kept with the old gamma."""
    from dualtrain.errors import ConfigError

    opt = sgd()
    sched = D.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    sched.step()
    sched.gamma = torch.tensor([0.25, 0.25])
    with pytest.raises(ConfigError, match=r"^StepLR: gamma is a tensor of shape \(2,\)"):
        sched.step()
