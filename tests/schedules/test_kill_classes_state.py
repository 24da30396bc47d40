"""OneCycleLR's annealing kind in saved states (torch's `_anneal_func_type` and the
`anneal_func` of states saved before torch 2.2), CosineAnnealingWarmRestarts' two
forms of `get_lr` in each flavour against torch's and OneFlow's own classes, and what
help() shows for a built class (docs/mutation.md: what a full mutation run found
unchecked).
"""

from __future__ import annotations

import pydoc
import warnings

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.stateful.classes import scheduled_class
from dualtrain.stateful.values import GET_LR_WARNING

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def torch_opt(lrs=(0.1, 0.05)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def oneflow_opt(lrs=(0.4, 0.2)):
    groups = [{"params": [flow.nn.Parameter(flow.zeros(2))], "lr": lr} for lr in lrs]
    return flow.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def groups(opt):
    return [(float(g["lr"]), float(g["momentum"])) for g in opt.param_groups]


def trajectory(sched, opt, steps):
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(groups(opt))
    return out


def one_cycle(M, opt, anneal):
    return M.OneCycleLR(opt, 0.1, total_steps=12, anneal_strategy=anneal)


KINDS = [("linear", "cos"), ("cos", "linear")]


@pytest.mark.parametrize(("saved", "built"), KINDS)
def test_one_cycle_loads_torchs_anneal_kind(saved, built):
    """A state torch saved with one annealing (`_anneal_func_type`), loaded into a
    scheduler built with the other, anneals as the saved one: lrs and momenta continue
    as torch's own scheduler does (OneCycleLR sets both from the step alone)."""
    their_opt = torch_opt()
    theirs = one_cycle(T, their_opt, saved)
    trajectory(theirs, their_opt, 3)
    opt = torch_opt()
    ours = one_cycle(D, opt, built)
    ours.load_state_dict(theirs.state_dict())
    assert trajectory(ours, opt, 8) == trajectory(theirs, their_opt, 8)


@pytest.mark.parametrize(("saved", "built"), KINDS)
def test_one_cycle_loads_a_state_saved_before_torch_2_2(saved, built):
    """Before 2.2 torch saved the annealing function itself, `anneal_func`, with no
    `_anneal_func_type`; torch 2.x still anneals such a state with that function. The
    same state built by hand for each class (its own function) steps as torch's."""
    runs = []
    for M in (T, D):
        opt = torch_opt()
        sched = one_cycle(M, opt, built)
        trajectory(sched, opt, 3)
        del sched._anneal_func_type
        state = sched.state_dict()
        state["anneal_func"] = getattr(M.OneCycleLR, f"_annealing_{saved}")
        sched.load_state_dict(state)
        runs.append(trajectory(sched, opt, 8))
    assert runs[1] == runs[0]
    opt = torch_opt()
    reference = one_cycle(T, opt, saved)  # the saved kind, from the start
    assert runs[0] == trajectory(reference, opt, 11)[3:]


def warm_restarts(M, opt, **kwargs):
    return M.CosineAnnealingWarmRestarts(opt, 3, 2, eta_min=0.001, **kwargs)


def test_warm_restarts_get_lr_with_a_base_is_the_closed_form_in_the_torch_flavour():
    """OneFlow's form get_lr(base_lr, step) on the torch flavour: the lr torch's own
    scheduler sets at `step` from that base (cycles of 3, 6, 12 steps)."""
    opt = torch_opt((0.1,))
    theirs = warm_restarts(T, opt)
    expected = [groups(opt)[0][0]] + [lr for ((lr, _),) in trajectory(theirs, opt, 11)]
    ours = warm_restarts(D, torch_opt((0.7,)))
    assert [ours.get_lr(0.1, step) for step in range(12)] == expected


def test_warm_restarts_get_lr_as_oneflows():
    """OneFlow's own class: get_lr(base_lr, step) with decay_rate and restart_limit."""
    kwargs = {"decay_rate": 0.5, "restart_limit": 3}
    theirs = warm_restarts(F, oneflow_opt(), **kwargs)
    ours = warm_restarts(D, oneflow_opt(), flavor="oneflow", **kwargs)
    for base in (0.4, 0.2):
        got = [ours.get_lr(base, step) for step in range(25)]
        assert got == [theirs.get_lr(base, step) for step in range(25)]
    assert got[21] == 0.001  # restart_limit: eta_min from the 4th cycle (step 21) on


def test_warm_restarts_get_lr_without_arguments_in_the_oneflow_flavour():
    """torch's no-argument form, on the OneFlow flavour: with torch's warning, every
    group's lr at the current step, which is OneFlow's get_lr(base_lr, last_step)."""
    their_opt, opt = oneflow_opt(), oneflow_opt()
    theirs = warm_restarts(F, their_opt, decay_rate=0.5)
    ours = warm_restarts(D, opt, flavor="oneflow", decay_rate=0.5)
    for _ in range(5):
        their_opt.step()
        theirs.step()
        opt.step()
        ours.step()
    with pytest.warns(UserWarning, match=GET_LR_WARNING.replace("(", r"\(").replace(")", r"\)")):
        got = ours.get_lr()
    assert got == [theirs.get_lr(b, theirs.last_step) for b in theirs.base_lrs]


def test_help_shows_a_built_class_as_the_schedule():
    """help() on a class built for a registered name: its module, torch's arguments
    then the flavours' extras, its doc, and no attribute but its schedule's name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = pydoc.render_doc(scheduled_class("ExponentialLR"), renderer=pydoc.plaintext)
    lines = [line.strip(" |") for line in text.splitlines()]
    assert "class ExponentialLR in module dualtrain.stateful.classes" in lines[0]
    assert lines[3] == (
        "ExponentialLR(optimizer, gamma: 'float', last_epoch=-1, verbose=False, *, "
        "flavor='torch', last_step=None)"
    )
    assert lines[5] == "`ExponentialLR` with torch's arguments (OneFlow's with flavor='oneflow')."
    start = lines.index("Data and other attributes defined here:")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("-----"))
    defined = {line.split(" = ")[0] for line in lines[start + 1 : end] if " = " in line}
    # __annotations__ appears where the Python version creates it on access
    assert defined - {"__annotations__"} == {"__signature__", "schedule_name"}


def _resumed_at(M, last_epoch, cls=None):
    opt = torch_opt((0.1,))
    opt.param_groups[0]["initial_lr"] = 0.2
    return (cls or M.CosineAnnealingWarmRestarts)(opt, 3, 2, last_epoch=last_epoch), opt


def test_warm_restarts_from_a_counter_below_minus_one_start_at_step_0_as_torchs():
    """torch's first step from any negative counter (here last_epoch=-5, the groups
    holding initial_lr 0.2) moves to epoch 0, T_cur 0, lr 0.2; steps, a fractional
    step(epoch) and the state that follows are torch's."""
    states = []
    for M in (T, D):
        sched, opt = _resumed_at(M, -5)
        assert (sched.last_epoch, sched.T_cur, sched.T_i, groups(opt)[0][0]) == (0, 0, 3, 0.2)
        trajectory(sched, opt, 4)
        sched.step(2.5)  # warm restarts take an epoch without torch's deprecation warning
        states.append(sched.state_dict())
    assert states[1] == states[0]
    assert states[0]["T_cur"] == 2.5 and states[0]["last_epoch"] == 2


def test_a_subclass_get_lr_is_called_within_step_as_in_torch():
    """torch's protocol for a subclass's get_lr: `_get_lr_called_within_step` is True
    while step() (the constructor's included) asks for the lrs, False after."""
    seen = {}
    for M in (T, D):

        class Watched(M.CosineAnnealingWarmRestarts):
            def get_lr(self):
                self.calls = [*getattr(self, "calls", []), self._get_lr_called_within_step]
                return super().get_lr()

        sched, opt = _resumed_at(M, -1, Watched)
        trajectory(sched, opt, 2)
        sched.step(4)
        seen[M] = [*sched.calls, sched._get_lr_called_within_step]
    assert seen[D] == seen[T] == [True, True, True, True, False]
