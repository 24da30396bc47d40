"""The NumPy optimizers' bookkeeping against torch's (docs/mutation.md): the `defaults`
the schedulers read to find momentum or betas, and the step count each keeps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.optim import OptimizerSpec
from dualtrain_numpy.optim import Optimizer

P0, GRAD = np.array([1.0, -0.5]), np.array([0.5, -1.0])


def numpy_opt(name, **options):
    spec = OptimizerSpec(name, lr=0.1, options=options)
    return Optimizer(name, spec.assign(["w"]), {"w": P0.copy()}, {"w": GRAD.copy()})


def torch_opt(cls, **options):
    param = torch.nn.Parameter(torch.tensor(P0))
    param.grad = torch.tensor(GRAD)
    return cls([param], lr=0.1, **options)


@pytest.mark.parametrize(("name", "key"), [("sgd", "momentum"), ("adam", "betas")])
def test_defaults_hold_the_hyperparameters_a_scheduler_looks_for(name, key):
    opt = numpy_opt(name, **({"momentum": 0.9} if name == "sgd" else {}))
    assert key in opt.defaults and "params" not in opt.defaults and opt.defaults["lr"] == 0.1
    theirs = (
        torch_opt(torch.optim.SGD, momentum=0.9) if name == "sgd" else torch_opt(torch.optim.Adam)
    )
    ours_sched = D.OneCycleLR(opt, max_lr=1.0, total_steps=6)
    theirs_sched = torch.optim.lr_scheduler.OneCycleLR(theirs, max_lr=1.0, total_steps=6)
    for _ in range(5):
        assert opt.param_groups[0][key] == theirs.param_groups[0][key]
        assert opt.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        opt.step()
        theirs.step()
        ours_sched.step()
        theirs_sched.step()


@pytest.mark.parametrize(
    ("name", "cls", "options"),
    [
        ("rmsprop", torch.optim.RMSprop, {}),
        ("rmsprop", torch.optim.RMSprop, {"momentum": 0.5, "centered": True}),
        ("adam", torch.optim.Adam, {}),
        ("adamw", torch.optim.AdamW, {"amsgrad": True}),
    ],
)
def test_step_count_is_torchs(name, cls, options):
    ours, theirs = numpy_opt(name, **options), torch_opt(cls, **options)
    for _ in range(3):
        ours.step()
        theirs.step()
    [their_state] = theirs.state.values()
    assert ours.state["w"]["step"] == int(their_state["step"]) == 3
    assert set(ours.state["w"]) == set(their_state)
