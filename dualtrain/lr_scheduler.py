"""PyTorch-API schedulers that drive any optimizer exposing `param_groups`.

Drop-in for `torch.optim.lr_scheduler`: `StepLR(optimizer, step_size=30,
gamma=0.1)`, `step()`, `get_last_lr()`, `state_dict()`, `last_epoch`, torch's
chainable stepping (two schedulers on one optimizer compose), `step(epoch)`
with torch's deprecation warning, torch's attributes and exception types. They
work on a torch optimizer, a OneFlow one, or dualtrain's NumPy optimizer alike,
and on tensor lrs (written in place). `flavor="oneflow"` gives OneFlow's
behaviour instead (`last_step`, closed forms, OneFlow's state). The lr maths
comes from the pure schedules in `dualtrain.schedules`; the classes live in
`dualtrain.stateful` (see docs/schedules.md).

Example:
    >>> from dualtrain.lr_scheduler import StepLR
    >>> class Opt:  # any object with param_groups works
    ...     param_groups = [{"lr": 0.1}]
    >>> opt = Opt()
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(3):
    ...     sched.step()
    >>> opt.param_groups[0]["lr"]
    0.05
"""

from __future__ import annotations

from dualtrain.schedules import schedule_names
from dualtrain.stateful.base import LRScheduler
from dualtrain.stateful.classes import (
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LambdaLR,
    MultiplicativeLR,
    OneCycleLR,
    scheduled_class,
)
from dualtrain.stateful.composites import ChainedScheduler, SequentialLR, WarmupLR
from dualtrain.stateful.plateau import ReduceLROnPlateau
from dualtrain.stateful.values import EPOCH_DEPRECATION_WARNING

_COMPOSITES = {"SequentialLR", "ChainedScheduler", "WarmupLR"}
for _name in schedule_names():
    if _name not in _COMPOSITES and _name not in globals():
        globals()[_name] = scheduled_class(_name)

WarmUpLR = WarmupLR  # OneFlow's other spelling

__all__ = [
    "EPOCH_DEPRECATION_WARNING",
    "ChainedScheduler",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "WarmUpLR",
    "WarmupLR",
    *sorted(
        set(schedule_names())
        - _COMPOSITES
        - {"CosineAnnealingWarmRestarts", "CyclicLR", "LambdaLR", "MultiplicativeLR", "OneCycleLR"}
    ),
]
