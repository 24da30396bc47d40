"""ReduceLROnPlateau's state across torch, OneFlow and dualtrain: a state saved by one
framework's own class, loaded into dualtrain's (either flavour), steps on as that class
does; a state is loaded entry for entry, as torch loads it (docs/mutation.md: what a
full mutation run found unchecked).
"""

from __future__ import annotations

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler

# patience 1: after these metrics the best is 0.9 and one bad step is counted, so the
# next bad metric reduces the lrs only if that count came through the state.
BEFORE = [1.0, 0.9, 0.95]
AFTER = [0.96, 0.97, 0.98, 0.85, 0.99]


def torch_opt():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in (0.1, 0.05)]
    return torch.optim.SGD(groups, lr=0.1)


def oneflow_opt():
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in (0.1, 0.05)]
    return flow.optim.SGD(groups, lr=0.1)


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def feed(sched, metrics):
    out = []
    for metric in metrics:
        sched.step(metric)
        out.append(lrs(sched.optimizer))
    return out


SOURCES = {
    "torch": lambda: T.ReduceLROnPlateau(torch_opt(), patience=1),
    "oneflow": lambda: F.ReduceLROnPlateau(oneflow_opt(), patience=1),
}


@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
@pytest.mark.parametrize("source", SOURCES)
def test_a_state_saved_by_either_framework_steps_on_as_it_does(source, flavor):
    """The bad-step counter (torch's num_bad_epochs, OneFlow's num_bad_steps) and the
    step counter come through under this flavour's names: the next bad metric reduces."""
    theirs = SOURCES[source]()
    feed(theirs, BEFORE)
    opt = torch_opt()
    mine = D.ReduceLROnPlateau(opt, patience=1, flavor=flavor)
    mine.load_state_dict(dict(theirs.state_dict()))
    bad = "num_bad_epochs" if flavor == "torch" else "num_bad_steps"
    counter = "last_epoch" if flavor == "torch" else "last_step"
    state = mine.state_dict()
    assert (state[bad], state[counter], state["best"]) == (1, 3, 0.9)
    expected = feed(theirs, AFTER)
    assert expected[0] == [0.1 * 0.1, 0.05 * 0.1]  # reduced at the first step after loading
    assert feed(mine, AFTER) == expected  # max(lr * factor, min_lr): the same float ops


def test_a_state_is_loaded_entry_for_entry_as_torch_loads_it():
    """A state of today's format (it has `mode`) keeps every entry, an `lrs` too, as
    torch's load_state_dict does; a partial state updates only what it holds."""
    runs = []
    for module in (T, D):
        first = module.ReduceLROnPlateau(torch_opt(), patience=1)
        feed(first, BEFORE)
        sched = module.ReduceLROnPlateau(torch_opt(), patience=1)
        sched.load_state_dict(dict(first.state_dict()) | {"lrs": [1.0, 2.0]})
        kept = sched.state_dict()["lrs"]
        partial = module.ReduceLROnPlateau(torch_opt(), patience=1)
        partial.load_state_dict({"best": 0.9, "num_bad_epochs": 1})
        runs.append((kept, feed(sched, AFTER), feed(partial, AFTER)))
    assert runs[1] == runs[0]
    assert runs[0][0] == [1.0, 2.0]


def test_plateau_has_no_schedule_of_the_step_alone():
    sched = D.ReduceLROnPlateau(torch_opt())
    with pytest.raises(ConfigError) as info:
        _ = sched.schedules
    assert str(info.value) == (
        "ReduceLROnPlateau: its lrs depend on the metrics fed to step(), so it has no "
        "schedule of the step alone"
    )


@pytest.mark.parametrize("floors", [[0.01], [0.01, 0.02, 0.03]])
@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
def test_a_min_lr_list_of_the_wrong_length_is_refused_as_both_frameworks_refuse_it(floors, flavor):
    """torch and OneFlow raise ValueError ("expected 2 min_lrs, got 1") when a list of
    floors does not have one per group of the optimizer; dualtrain names the list."""
    make, theirs = (torch_opt, T) if flavor == "torch" else (oneflow_opt, F)
    with pytest.raises(ValueError, match=f"expected 2 min_lrs, got {len(floors)}"):
        theirs.ReduceLROnPlateau(make(), min_lr=floors)
    with pytest.raises(ConfigError) as caught:
        D.ReduceLROnPlateau(make(), min_lr=floors, flavor=flavor)
    assert str(caught.value) == (
        f"ReduceLROnPlateau: min_lr must be one value per param group (2), got {floors}"
    )
    assert isinstance(caught.value, ValueError)


def test_a_min_lr_list_of_one_floor_per_group_is_kept_group_by_group():
    sched = D.ReduceLROnPlateau(torch_opt(), min_lr=[0.01, 0.02])
    assert sched.min_lrs == [0.01, 0.02]
