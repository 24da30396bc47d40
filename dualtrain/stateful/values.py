"""What the schedulers do to param-group values, framework-free.

A group's lr may be a float or a 0-dim tensor (torch's compiled-optimizer
recipe). These helpers copy, read and write such values by duck typing
(`clone`, `fill_`, `item`), as torch's own scheduler does, so the core never
imports a framework: a base lr never aliases the tensor it came from, and a
tensor lr is written in place (no recompile) rather than replaced.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from typing import Any

from dualtrain.errors import ConfigError, ConfigTypeError

#: torch's documentation section on the order of optimizer and scheduler steps.
ORDER_DOCS = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"

EPOCH_DEPRECATION_WARNING = (
    "scheduler.step(epoch) is deprecated (as in torch): it sets last_epoch to epoch and "
    "uses the closed form where the scheduler has one, instead of the chainable form "
    "that step() uses; call step() without an argument"
)

STEP_ORDER_WARNING = (
    "lr_scheduler.step() was called before optimizer.step(): since PyTorch 1.1 the "
    "optimizer steps first, else the first value of the schedule is skipped; see " + ORDER_DOCS
)

STEP_OVERRIDDEN_WARNING = (
    "`optimizer.step()` has been overridden after the lr scheduler was built, so the "
    "scheduler cannot tell whether it ran first; call optimizer.step() before "
    "lr_scheduler.step(), see " + ORDER_DOCS
)

GET_LR_WARNING = "get_lr() computes the next lr; the lr in effect is get_last_lr()"


def param_groups(optimizer: Any) -> list:
    """The optimizer's param groups: dicts (torch, NumPy) or dict-like (OneFlow's
    ParamGroup: item access, `in` and `setdefault`, which is all the schedulers use)."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)) or not groups or not all(_has_lr(g) for g in groups):
        raise ConfigTypeError(
            f"optimizer must expose param_groups, a list of dict-like groups with 'lr', "
            f"got {type(optimizer).__name__}"
        )
    return groups


def _has_lr(group: Any) -> bool:
    try:
        return "lr" in group and hasattr(group, "__setitem__") and hasattr(group, "setdefault")
    except TypeError:
        return False


def is_tensor(value: Any) -> bool:
    """A tensor-like value (has `fill_` and `clone`), not a Python number."""
    return not isinstance(value, (int, float)) and hasattr(value, "fill_")


def copy_value(value: Any) -> Any:
    """A copy that does not alias `value` (a tensor is cloned; numbers are immutable)."""
    return value.clone() if is_tensor(value) else value


def scalar(value: Any) -> Any:
    """A Python number from a number or a 0-dim tensor (what the pure schedules take)."""
    if hasattr(value, "item"):  # a tensor, a NumPy scalar; Python numbers have none
        return value.item()
    return value


def set_value(group: Any, key: str, value: Any) -> None:
    """group[key] = value, in place when the group holds a tensor there."""
    current = group[key] if key in group else None
    if is_tensor(current):
        if current is not value:
            current.fill_(scalar(value))
    else:
        group[key] = value


def formatted(owner: str, name: str, value: Any, n_groups: int) -> list:
    """One copied value per group from a value or a list of them, as torch formats them."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_groups:
            raise ConfigError(
                f"{owner}: {name} must have one value per param group ({n_groups}), "
                f"got {len(value)}: {list(value)!r}"
            )
        return [copy_value(v) for v in value]
    return [copy_value(value) for _ in range(n_groups)]


def watch_optimizer_step(optimizer: Any) -> None:
    """Wrap `optimizer.step` so a scheduler can tell it ran (torch's `_opt_called`).

    The marker names are torch's, so torch's and dualtrain's schedulers on one
    optimizer share a single wrapper; the optimizer is held weakly, so neither
    keeps the other alive.
    """
    step = getattr(optimizer, "step", None)
    func = getattr(step, "__func__", None)
    if func is None or hasattr(step, "_wrapped_by_lr_sched"):
        return
    try:
        opt_ref = weakref.ref(optimizer)
    except TypeError:
        return

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        opt = opt_ref()
        opt._opt_called = True
        return func.__get__(opt, opt.__class__)(*args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    try:
        optimizer.step = wrapper
    except AttributeError:
        pass


def warn_on_step_order(optimizer: Any) -> None:
    """torch's warnings for the first scheduler step: wrong order, or a replaced step,
    at the line that called `step()` (stacklevel 3: this function, then `step`)."""
    step = getattr(optimizer, "step", None)
    if not callable(getattr(type(optimizer), "step", None)):
        return  # a stand-in without step(): nothing to check
    if not hasattr(step, "_wrapped_by_lr_sched"):
        warnings.warn(STEP_OVERRIDDEN_WARNING, UserWarning, stacklevel=3)
    elif not getattr(optimizer, "_opt_called", False):
        warnings.warn(STEP_ORDER_WARNING, UserWarning, stacklevel=3)
