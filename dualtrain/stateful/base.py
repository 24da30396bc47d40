"""`LRScheduler`: the stateful protocol of torch's (and OneFlow's) schedulers.

torch flavour, as `torch.optim.lr_scheduler`: `step()` moves each group's lr
from the lr it holds now (the chainable form, `Schedule.chain_lr`), so two
schedulers stepping one optimizer compose; `step(epoch)` (deprecated, with
torch's warning) jumps to `epoch` through the closed form where torch has one.
OneFlow flavour, as `oneflow.optim.lr_scheduler`: `step()` sets each lr from
its base through the closed form (`Schedule.lr`), `last_step` counts.

The state is `__dict__` minus the optimizer, as in both frameworks: the
hyperparameters are plain attributes, and the per-group `Schedule` objects are
rebuilt from them (kept in a slot, out of the state), so a state loaded into a
scheduler built with other arguments continues the saved schedule.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np

from dualtrain.errors import ConfigError, ConfigKeyError
from dualtrain.schedules import _NESTED, FLAVORS, Schedule, _build_nested, schedule_class
from dualtrain.stateful import values
from dualtrain.stateful.values import copy_value, param_groups, scalar, set_value


class LRScheduler:
    """Sets each param group's lr (and momentum) from its schedule at every step.

    Built from one `Schedule` per group (`LRScheduler(optimizer, schedules)`),
    or subclassed as torch's base class is (`super().__init__(optimizer,
    last_epoch)` with your own `get_lr()`). `flavor="oneflow"` steps as OneFlow does.
    """

    __slots__ = ("__dict__", "__weakref__", "_built")
    _get_lr_called_within_step = False
    _is_initial = False
    verbose = False
    #: The registered schedule this class drives; None: given schedules or a subclass's get_lr.
    schedule_name: ClassVar[str | None] = None
    #: __dict__ entries that are not state (the optimizer, how the object was built).
    _not_state: ClassVar[tuple[str, ...]] = ("optimizer", "flavor")

    def __init__(
        self,
        optimizer: Any,
        schedules: list[Schedule] | int | None = None,
        last_epoch: int = -1,
        flavor: str = "torch",
        verbose: bool = False,
        *,
        last_step: int | None = None,
    ) -> None:
        if isinstance(schedules, int) and not isinstance(schedules, bool):
            schedules, last_epoch = None, schedules  # torch's LRScheduler(optimizer, last_epoch)
        if schedules is not None:
            if not isinstance(schedules, (list, tuple)) or not all(
                isinstance(s, Schedule) for s in schedules
            ):
                raise ConfigError(
                    f"schedules must be a list of Schedule objects, got {schedules!r}"
                )
            if len(schedules) != len(param_groups(optimizer)):
                raise ConfigError(
                    f"schedules must have one entry per param group "
                    f"({len(param_groups(optimizer))}), got {len(schedules)}"
                )
            self._built = (None, list(schedules))
        self._start(optimizer, last_epoch if last_step is None else last_step, verbose, flavor)

    # --- construction -------------------------------------------------------------

    def _start(self, optimizer: Any, last_epoch: int, verbose: bool, flavor: str) -> None:
        """What every scheduler's constructor ends with: bases, counter, first step."""
        if flavor not in FLAVORS:
            raise ConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
        self.optimizer = optimizer
        self.flavor = flavor
        groups = param_groups(optimizer)
        schedules = self._schedules(len(groups)) if self._has_schedules() else None
        if last_epoch == -1:
            for index, group in enumerate(groups):
                if schedules is not None and self.schedule_name is None:
                    schedules[index].setup_group(group)  # named classes write their own keys
                group.setdefault("initial_lr", copy_value(group["lr"]))
        else:
            for index, group in enumerate(groups):
                if "initial_lr" not in group:
                    raise ConfigKeyError(
                        f"param 'initial_lr' is not specified in param_groups[{index}] when "
                        f"resuming scheduler with last_epoch >= 0 (last_epoch={last_epoch}): "
                        "load the optimizer's state first, it holds initial_lr"
                    )
        self.base_lrs = [copy_value(g["initial_lr"]) for g in groups]
        if schedules is not None:
            for schedule in schedules:
                schedule.check_bases([scalar(b) for b in self.base_lrs])
        self.last_epoch = last_epoch
        if verbose or flavor == "oneflow":  # torch 2.x keeps no verbose attribute
            self.verbose = verbose
        self._momentum_key()  # refuses cycle_momentum without momentum, before any step
        if flavor == "torch":
            values.watch_optimizer_step(optimizer)
            self._initial_step()
        else:
            self.step()

    def _initial_step(self) -> None:
        """torch: count from zero and take the first step in 'initial' mode."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # --- the schedules ------------------------------------------------------------

    def _has_schedules(self) -> bool:
        return self.schedule_name is not None or getattr(self, "_built", None) is not None

    def _schedule_kwargs(self, group: int) -> dict[str, Any]:
        """The registered schedule's arguments for param group `group`, from attributes."""
        raise NotImplementedError

    def _schedules(self, n_groups: int | None = None) -> list[Schedule]:
        """One Schedule per group, rebuilt when the hyperparameters change."""
        built = getattr(self, "_built", None)
        if self.schedule_name is None:
            if built is None:
                raise NotImplementedError(f"{type(self).__name__} computes its lrs in get_lr()")
            return built[1]
        if n_groups is None:
            n_groups = len(self.base_lrs)
        raw = [self._schedule_kwargs(g) for g in range(n_groups)]
        if built is None or not _same(built[0], raw):
            cls = schedule_class(self.schedule_name, self.flavor)
            schedules = [
                cls(**_resolve(cls.name, kw, self.flavor, n_groups, g)) for g, kw in enumerate(raw)
            ]
            # A copy of the arguments: a list changed in place later still counts as a change.
            built = (copy.deepcopy(raw), schedules)
            self._built = built
        return built[1]

    @property
    def schedules(self) -> list[Schedule]:
        """The pure schedule of each param group (what a static graph or a plot asks)."""
        return self._schedules()

    def lrs_at(self, step: int) -> list[float]:
        """Every group's closed-form lr at `step`, without changing anything."""
        return [
            s.lr(step, scalar(b)) for s, b in zip(self._schedules(), self.base_lrs, strict=True)
        ]

    # --- stepping -----------------------------------------------------------------

    def get_lr(self, base_lr: Any = None, step: int | None = None) -> list[Any]:
        """torch: the lrs the next step sets, from the lrs the groups hold (chainable form).

        OneFlow's form `get_lr(base_lr, step)`: one group's closed-form lr.
        """
        if base_lr is not None:
            return self._schedules()[0].lr(step, scalar(base_lr))
        if not self._get_lr_called_within_step:
            warnings.warn(values.GET_LR_WARNING, UserWarning, stacklevel=2)
        groups = self.optimizer.param_groups
        return [
            s.chain_lr(g["lr"], self.last_epoch, b, self._is_initial)
            for s, g, b in zip(self._schedules(), groups, self.base_lrs, strict=True)
        ]

    def _get_closed_form_lr(self) -> list[Any]:
        """torch's closed form at `last_epoch`, from the base lrs."""
        return [
            s.closed_form_lr(self.last_epoch, b)
            for s, b in zip(self._schedules(), self.base_lrs, strict=True)
        ]

    def _has_closed_form(self) -> bool:
        return self._has_schedules() and all(s.has_closed_form for s in self._schedules())

    def step(self, epoch: float | None = None) -> None:
        """Move to the next step (or, deprecated in torch, to `epoch`) and set the lrs."""
        if self.flavor == "oneflow":
            self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
            schedules = self._schedules()
            lrs = [
                s.lr(self.last_epoch, scalar(b))
                for s, b in zip(schedules, self.base_lrs, strict=True)
            ]
            self._apply(lrs)
            return
        if self._step_count == 1:
            values.warn_on_step_order(self.optimizer)
        self._step_count += 1
        if epoch is not None:
            warnings.warn(values.EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: float | None = None) -> None:
        """torch: the chainable step, or the closed form at `epoch` where there is one."""
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                lrs = self.get_lr()
            else:
                self.last_epoch = epoch
                lrs = self._get_closed_form_lr() if self._has_closed_form() else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        self._apply(lrs)

    def _apply(self, lrs: list[Any]) -> None:
        """Write the lrs (and momenta) into the groups; remember copies of what they hold."""
        groups = self.optimizer.param_groups
        for group, lr in zip(groups, lrs, strict=True):
            set_value(group, "lr", lr)
        key = self._momentum_key()
        if key is not None:
            for group, schedule in zip(groups, self._schedules(), strict=True):
                value = schedule.momentum(self.last_epoch)
                if value is None:
                    continue
                if key == "betas":
                    group["betas"] = (value, *group["betas"][1:])
                else:
                    group["momentum"] = value
        self._last_lr = [copy_value(g["lr"]) for g in groups]
        if self.verbose:
            for index, lr in enumerate(self._last_lr):
                print(
                    f"{type(self).__name__}: step {self.last_epoch}, "
                    f"param_groups[{index}] lr = {scalar(lr):.6g}"
                )

    def _momentum_key(self) -> str | None:
        """'betas' or 'momentum' where a schedule cycles momentum; None otherwise."""
        if not self._has_schedules() or not any(s.cycles_momentum for s in self._schedules()):
            return None
        groups = self.optimizer.param_groups
        defaults = getattr(self.optimizer, "defaults", groups[0])
        for key in ("betas", "momentum"):
            if key in defaults:
                return key
        raise ConfigError(
            f"{type(self).__name__}: cycle_momentum needs an optimizer with momentum or betas, "
            f"got {type(self.optimizer).__name__}"
        )

    def get_last_lr(self) -> list[Any]:
        """The lrs set by the last `step()`: a new list of copies (tensors cloned)."""
        return list(self._last_lr)

    # --- state --------------------------------------------------------------------

    @property
    def last_step(self) -> int:
        """OneFlow's name for `last_epoch`."""
        return self.last_epoch

    @last_step.setter
    def last_step(self, value: int) -> None:
        self.last_epoch = value

    def state_dict(self) -> dict[str, Any]:
        """`__dict__` without the optimizer: counters, bases and hyperparameters."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._not_state}
        if self.flavor == "oneflow" and "last_epoch" in state:
            state = {("last_step" if k == "last_epoch" else k): v for k, v in state.items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()` (ours, torch's or OneFlow's keys); the optimizer's
        own state is loaded separately."""
        if not isinstance(state_dict, dict):
            raise ConfigError(f"scheduler state must be a dict, got {type(state_dict).__name__}")
        state = dict(state_dict)
        if "last_step" in state:
            state["last_epoch"] = state.pop("last_step")
        for key in self._not_state:
            state.pop(key, None)
        self.__dict__.update(state)


def _same(old: list[dict], new: list[dict]) -> bool:
    try:
        return bool(old == new)
    except (RuntimeError, ValueError, TypeError):  # a tensor with more than one value
        return False


def _resolve(owner: str, kwargs: dict, flavor: str, n_groups: int, group: int) -> dict:
    """A schedule's arguments as the pure class takes them: numbers for 0-dim
    tensors, and nested {name, kwargs} configs built (one member per group)."""
    out = {}
    for key, value in kwargs.items():
        if key in _NESTED and isinstance(value, (dict, list)) and not _built_members(value):
            value = _build_nested(owner, key, value, flavor, n_groups)[group]
        elif isinstance(value, (list, tuple)):
            value = type(value)(_number(owner, key, v) for v in value)
        else:
            value = _number(owner, key, value)
        out[key] = value
    return out


def _number(owner: str, key: str, value: Any) -> Any:
    """`scalar(value)`, refusing in one line a tensor or array of several values
    (torch's own classes fail on one deep inside, or ignore it)."""
    try:
        return scalar(value)
    except (RuntimeError, ValueError):
        shape = tuple(np.shape(value))  # a tensor's or an array's
        raise ConfigError(
            f"{owner}: {key} is a tensor of shape {shape}; give numbers (a list for "
            "several) or one-value tensors"
        ) from None


def _built_members(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Schedule) for v in value)
