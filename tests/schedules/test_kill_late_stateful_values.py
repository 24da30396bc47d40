"""How a scheduler watches `optimizer.step` (torch's `_opt_called` marker): a step
already marked as wrapped is left alone as torch leaves it, and a stand-in whose step
is a plain function still steps (docs/mutation.md: what the late part of a full
mutation run found unchecked).
"""

from __future__ import annotations

import torch

import dualtrain.lr_scheduler as D

T = torch.optim.lr_scheduler


class Marked(torch.optim.SGD):
    """SGD whose class-level step already carries torch's wrapped-by-scheduler marker."""

    def step(self, closure=None):
        return super().step(closure)

    step._wrapped_by_lr_sched = True


def test_a_step_already_marked_as_wrapped_is_not_wrapped_again_as_torchs():
    """torch's scheduler sees the marker on opt.step and leaves the method as the class
    defines it (no instance attribute 'step'); so does ours."""
    left_alone = []
    for module in (T, D):
        opt = Marked([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        module.StepLR(opt, 1)
        left_alone.append("step" not in opt.__dict__)
    assert left_alone == [True, True]


class PlainStep:
    """An optimizer stand-in whose step is a plain function on the instance."""

    def __init__(self):
        self.param_groups = [{"lr": 0.1}]
        self.calls = 0
        self.step = lambda: setattr(self, "calls", self.calls + 1)


def test_a_stand_in_whose_step_is_a_plain_function_still_steps():
    """Nothing to wrap (no bound method): the stand-in's step runs as given, and the
    scheduler halves the lr at each step (StepLR(step_size=1, gamma=0.5))."""
    opt = PlainStep()
    sched = D.StepLR(opt, 1, 0.5)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.calls == 2
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5 * 0.5
