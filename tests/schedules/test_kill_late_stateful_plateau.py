"""ReduceLROnPlateau against torch's and OneFlow's own classes: the whole state after
construction and along a run with threshold_mode='abs', a floor, patience and cooldown;
step(metrics, epoch)'s warning; OneFlow's verbose attribute and the verbose line; the
refusal of a group added later without its floor (docs/mutation.md: what the late part
of a full mutation run found unchecked).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError, ConfigRuntimeError

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler

# Falls by more than the abs threshold 0.05 but less than 5% (threshold_mode 'rel' would
# call each a stall), stalls, falls by less than 0.05, stalls: reductions with patience 1
# and cooldown 1, until the 0.02 floor holds the lr.
METRICS = [10.0, 9.9, 9.9, 9.8, 9.79, 9.79, 9.7, 9.7, 9.7, 9.7, 9.7, 9.7]
KWARGS = {"factor": 0.5, "patience": 1, "cooldown": 1, "threshold": 0.05}


def torch_opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def oneflow_opt():
    return flow.optim.SGD([flow.nn.Parameter(flow.zeros(1))], lr=0.1)


def run(sched):
    states = [dict(sched.state_dict())]
    for metric in METRICS:
        sched.step(metric)
        states.append(dict(sched.state_dict()))
    return states


def test_state_along_an_abs_threshold_run_with_a_floor_as_torchs():
    """Every state_dict entry torch keeps, after construction and after each step."""
    theirs = run(T.ReduceLROnPlateau(torch_opt(), threshold_mode="abs", min_lr=0.02, **KWARGS))
    mine = run(D.ReduceLROnPlateau(torch_opt(), threshold_mode="abs", min_lr=0.02, **KWARGS))
    assert [{k: s[k] for k in theirs[0]} for s in mine] == theirs
    assert theirs[0]["cooldown_counter"] == 0 and theirs[0]["num_bad_epochs"] == 0
    assert theirs[-1]["_last_lr"] == [0.02]  # 0.1 -> 0.05 -> 0.025 -> floor 0.02


def test_state_along_an_abs_threshold_run_with_a_floor_as_oneflows():
    """OneFlow's keys (last_step, num_bad_steps, verbose False), same run."""
    theirs = run(F.ReduceLROnPlateau(oneflow_opt(), threshold_mode="abs", min_lr=0.02, **KWARGS))
    mine = run(
        D.ReduceLROnPlateau(
            oneflow_opt(), threshold_mode="abs", min_lr=0.02, flavor="oneflow", **KWARGS
        )
    )
    assert [{k: m[k] for k in t} for m, t in zip(mine, theirs, strict=True)] == theirs
    assert theirs[0]["verbose"] is False and mine[0]["verbose"] is False


def test_get_last_lr_right_after_construction_is_torchs():
    ours, theirs = D.ReduceLROnPlateau(torch_opt()), T.ReduceLROnPlateau(torch_opt())
    assert ours.get_last_lr() == theirs.get_last_lr() == [0.1]


# mutmut's trampoline (tools/mutation) puts one more frame between the caller and
# every mutated function, so no stack level can point at the caller there: under
# mutmut the caller's file is not compared (the stack levels are checked outside
# mutmut: tools/mutation/equivalent.toml, [[outside]]), everything else is.
UNDER_MUTMUT = "mutants" in Path(D.__file__).parts


def at(filename):
    return None if UNDER_MUTMUT else filename


def test_step_with_an_epoch_warns_at_the_callers_line_as_torchs():
    """step(metrics, epoch): a deprecation warning as torch's, a UserWarning at the line
    that called it, and last_epoch set to the epoch given."""
    seen = []
    for module in (T, D):
        sched = module.ReduceLROnPlateau(torch_opt())
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            sched.step(1.0, 3)
        seen.append([(w.category, at(w.filename)) for w in record])
        assert sched.last_epoch == 3
    assert seen[0] == seen[1] == [(UserWarning, at(__file__))]
    assert str(record[0].message) == (  # ours: torch's meaning in our own words
        "scheduler.step(epoch) is deprecated (as in torch): it sets last_epoch to epoch and "
        "uses the closed form where the scheduler has one, instead of the chainable form "
        "that step() uses; call step() without an argument"
    )


def test_verbose_prints_each_reduction(capsys):
    """verbose=True: one line per reduced group, the lr in 4-digit scientific form
    (0.1 halved after patience 0 on a stalled metric: 5.0000e-02)."""
    sched = D.ReduceLROnPlateau(torch_opt(), factor=0.5, patience=0, verbose=True)
    sched.step(1.0)
    sched.step(1.0)
    assert capsys.readouterr().out == (
        "ReduceLROnPlateau: step 2, param_groups[0] lr reduced to 5.0000e-02\n"
    )
    assert sched.verbose is True


def test_a_group_added_later_without_its_floor_is_refused_in_full():
    """min_lr given per group: a group added later has no floor; the reduction that
    needs it is refused, naming both counts and what to do."""
    opt = torch_opt()
    sched = D.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0])
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.2})
    sched.step(1.0)
    with pytest.raises(ConfigRuntimeError) as info:
        sched.step(1.0)
    assert str(info.value) == (
        "ReduceLROnPlateau: The number of param groups in the optimizer (2) differs from "
        "min_lrs (1), as when a group is added after construction: append the new group's "
        "floor to min_lrs"
    )


def test_a_negative_min_lr_is_refused_at_construction_in_full():
    """The floor is checked when the scheduler is built, with the value (torch takes
    -1 silently; the house rule: a bad input gets one line naming it)."""
    with pytest.raises(ConfigError) as info:
        D.ReduceLROnPlateau(torch_opt(), min_lr=-1)
    assert str(info.value) == "ReduceLROnPlateau: min_lr must be a number >= 0, got -1"


def test_an_unknown_flavour_is_refused_in_full():
    with pytest.raises(ConfigError) as info:
        D.ReduceLROnPlateau(torch_opt(), flavor="jax")
    assert str(info.value) == "flavor must be one of torch, oneflow, got 'jax'"
