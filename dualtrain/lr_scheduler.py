"""PyTorch-API schedulers that drive any optimizer exposing `param_groups`.

Drop-in for `torch.optim.lr_scheduler`: `StepLR(optimizer, step_size=30,
gamma=0.1)`, `step()`, `get_last_lr()`, `state_dict()`, `last_epoch`. They work
on a torch optimizer, a OneFlow one, or dualtrain's NumPy optimizer alike. Each
keeps only its counter; the lr comes from the pure schedules in
`dualtrain.schedules`. `flavor="oneflow"` picks OneFlow's behaviour where the
same name differs between the frameworks.

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

import inspect
from dataclasses import asdict, replace
from typing import Any

from dualtrain.errors import ConfigError
from dualtrain.schedules import (
    _NESTED,
    PlateauState,
    Schedule,
    _build_nested,
    check_kwargs,
    schedule_class,
    schedule_names,
    split_per_group,
)
from dualtrain.schedules import ReduceLROnPlateau as PlateauRule


def _groups(optimizer: Any) -> list:
    """The optimizer's param groups: dicts (torch, NumPy) or dict-like (OneFlow's
    ParamGroup: item access, `in` and `setdefault`, which is all this module uses)."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, (list, tuple)) or not groups or not all(_has_lr(g) for g in groups):
        raise ConfigError(
            f"optimizer must expose param_groups, a list of dict-like groups with 'lr', "
            f"got {type(optimizer).__name__}"
        )
    return groups


def _has_lr(group: Any) -> bool:
    try:
        return "lr" in group and hasattr(group, "__setitem__") and hasattr(group, "setdefault")
    except TypeError:
        return False


class LRScheduler:
    """Sets each param group's lr (and momentum) from its schedule at every step."""

    def __init__(
        self, optimizer: Any, schedules: list[Schedule], last_epoch: int = -1, flavor="torch"
    ) -> None:
        self.optimizer = optimizer
        self.schedules = schedules
        self.flavor = flavor
        groups = _groups(optimizer)
        for index, (schedule, group) in enumerate(zip(schedules, groups, strict=True)):
            if last_epoch == -1:
                schedule.setup_group(group)
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise ConfigError(
                    f"param_groups[{index}] has no 'initial_lr': resuming with "
                    f"last_epoch={last_epoch} needs the optimizer's state loaded first"
                )
        self.base_lrs = [
            s.start_lr(g["initial_lr"]) for s, g in zip(schedules, groups, strict=True)
        ]
        for schedule in schedules:
            schedule.check_bases(self.base_lrs)
        self._momentum_key = self._find_momentum_key(groups)
        self.last_epoch = last_epoch
        self.step()

    def _find_momentum_key(self, groups: list[dict]) -> str | None:
        if not any(s.cycles_momentum for s in self.schedules):
            return None
        defaults = getattr(self.optimizer, "defaults", groups[0])
        for key in ("betas", "momentum"):
            if key in defaults:
                return key
        name = type(self.schedules[0]).name
        raise ConfigError(
            f"{name}: cycle_momentum needs an optimizer with momentum or betas, "
            f"got {type(self.optimizer).__name__}"
        )

    def lrs_at(self, step: int) -> list[float]:
        """Every group's lr at `step`, without changing anything."""
        return [s.lr(step, b) for s, b in zip(self.schedules, self._bases(), strict=True)]

    def _bases(self) -> list[float]:
        return [g["initial_lr"] for g in self.optimizer.param_groups]

    def step(self) -> None:
        """Move to the next step and set every group's lr (and momentum)."""
        self.last_epoch += 1
        lrs = self.lrs_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        if self._momentum_key:
            self._set_momentum(self.last_epoch)
        self._last_lr = lrs

    def _set_momentum(self, step: int) -> None:
        for group, schedule in zip(self.optimizer.param_groups, self.schedules, strict=True):
            value = schedule.momentum(step)
            if value is None:
                continue
            if self._momentum_key == "betas":
                group["betas"] = (value, *group["betas"][1:])
            else:
                group["momentum"] = value

    def get_last_lr(self) -> list[float]:
        """The lrs set by the last `step()`."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The counter and what cannot be derived from the arguments."""
        return {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "_last_lr": list(self._last_lr),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()`; the optimizer's own state is loaded separately."""
        missing = {"last_epoch", "base_lrs", "_last_lr"} - state_dict.keys()
        if missing:
            raise ConfigError(f"scheduler state is missing {sorted(missing)}")
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["_last_lr"])


def _bind(cls: type, args: tuple, kwargs: dict, skip: tuple = ()) -> dict:
    """Positional arguments by the schedule's own signature, as torch accepts them."""
    names = [n for n in inspect.signature(cls.__init__).parameters if n != "self" and n not in skip]
    if len(args) > len(names):
        raise ConfigError(f"{cls.name}: takes at most {len(names)} arguments, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for key in kwargs.keys() & bound.keys():
        raise ConfigError(f"{cls.name}: got two values for argument {key!r}")
    bound.update(kwargs)
    check_kwargs(cls.name, cls, bound, skip=skip)
    return bound


def _per_group(cls: type, optimizer: Any, kwargs: dict, flavor: str = "torch") -> list[Schedule]:
    n_groups = len(_groups(optimizer))
    per_group = split_per_group(cls.name, kwargs, cls.per_group, n_groups)
    # A nested {name, kwargs} config (NoisyLR's `scheduler`, ...) is built as
    # build_schedule builds it: one member per group, in this flavour.
    for key in _NESTED & kwargs.keys():
        if isinstance(kwargs[key], (dict, list)):
            members = _build_nested(cls.name, key, kwargs[key], flavor, n_groups)
            for group, member in zip(per_group, members, strict=True):
                group[key] = member
    return [cls(**kw) for kw in per_group]


def _member_schedules(owner: str, members: Any, optimizer: Any) -> list[list[Schedule]]:
    """Per group, the member schedules of a composite, from stateful members."""
    if not isinstance(members, (list, tuple)) or not members:
        raise ConfigError(f"{owner}: schedulers must be a non-empty list, got {members!r}")
    for index, member in enumerate(members):
        if not isinstance(member, LRScheduler):
            raise ConfigError(
                f"{owner}: schedulers[{index}] must be a dualtrain scheduler, "
                f"got {type(member).__name__}"
            )
        if optimizer is not None and member.optimizer is not optimizer:
            raise ConfigError(f"{owner}: schedulers[{index}] belongs to another optimizer")
    return [list(group) for group in zip(*(m.schedules for m in members), strict=True)]


def _arity(cls: type) -> int:
    return len(inspect.signature(cls.__init__).parameters) - 1


def _simple(name: str) -> type[LRScheduler]:
    """A PyTorch-API class for schedule `name`, arguments as torch orders them."""

    def __init__(self, optimizer, *args, last_epoch=-1, flavor="torch", **kwargs):
        cls = schedule_class(name, flavor)
        if len(args) == _arity(cls) + 1:  # torch takes last_epoch after the arguments
            *args, last_epoch = args
        schedules = _per_group(cls, optimizer, _bind(cls, args, kwargs), flavor)
        LRScheduler.__init__(self, optimizer, schedules, last_epoch, flavor)

    doc = f"`{name}` with torch's arguments (or OneFlow's, with flavor='oneflow')."
    return type(name, (LRScheduler,), {"__init__": __init__, "__doc__": doc})


class SequentialLR(LRScheduler):
    """Run `schedulers` one after another, switching at `milestones`."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1, flavor="torch", **kw):
        cls = schedule_class("SequentialLR", flavor)
        members = _member_schedules(cls.name, schedulers, optimizer)
        check_kwargs(cls.name, cls, {"schedulers": 0, "milestones": 0, **kw})
        schedules = [cls(group, milestones, **kw) for group in members]
        super().__init__(optimizer, schedules, last_epoch, flavor)


class ChainedScheduler(LRScheduler):
    """Apply every scheduler in `schedulers` at each step."""

    def __init__(self, schedulers, optimizer=None, flavor="torch") -> None:
        cls = schedule_class("ChainedScheduler", flavor)
        if optimizer is None and isinstance(schedulers, (list, tuple)) and schedulers:
            optimizer = getattr(schedulers[0], "optimizer", None)
        members = _member_schedules(cls.name, schedulers, optimizer)
        super().__init__(optimizer, [cls(group) for group in members], -1, flavor)


class WarmupLR(LRScheduler):
    """OneFlow's WarmupLR: a warmup in front of a scheduler, or on its own."""

    def __init__(self, scheduler_or_optimizer, *args, last_epoch=-1, **kwargs) -> None:
        cls = schedule_class("WarmupLR", "oneflow")
        kwargs = _bind(cls, args, kwargs, skip=("scheduler",))
        if isinstance(scheduler_or_optimizer, LRScheduler):
            optimizer = scheduler_or_optimizer.optimizer
            wrapped = scheduler_or_optimizer.schedules
        else:
            optimizer = scheduler_or_optimizer
            wrapped = [None] * len(_groups(optimizer))
        schedules = [cls(scheduler=s, **kwargs) for s in wrapped]
        super().__init__(optimizer, schedules, last_epoch, "oneflow")


class ReduceLROnPlateau:
    """Reduce every group's lr when a metric stops improving; `step(metric)`."""

    def __init__(self, optimizer, *args, **kwargs) -> None:
        kwargs = _bind(PlateauRule, args, kwargs, skip=("n_groups",))
        self.optimizer = optimizer
        self.rule = PlateauRule(**kwargs, n_groups=len(_groups(optimizer)))
        self.state = self.rule.initial_state(self._lrs())
        self._last_lr = list(self.state.lrs)

    def _lrs(self) -> tuple[float, ...]:
        return tuple(g["lr"] for g in self.optimizer.param_groups)

    @property
    def last_epoch(self) -> int:
        return self.state.last_epoch

    def step(self, metrics: float) -> None:
        """Feed one value of the watched metric (after an epoch, usually)."""
        self.state = self.rule.step(replace(self.state, lrs=self._lrs()), metrics)
        for group, lr in zip(self.optimizer.param_groups, self.state.lrs, strict=True):
            group["lr"] = lr
        self._last_lr = list(self.state.lrs)

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self.state) | {"lrs": list(self.state.lrs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            state = PlateauState(**{**state_dict, "lrs": tuple(state_dict["lrs"])})
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"ReduceLROnPlateau state is malformed: {exc}") from None
        self.state = state
        self._last_lr = list(state.lrs)


_COMPOSITES = {"SequentialLR", "ChainedScheduler", "WarmupLR"}
for _name in schedule_names():
    if _name not in _COMPOSITES:
        globals()[_name] = _simple(_name)

WarmUpLR = WarmupLR  # OneFlow's other spelling

__all__ = ["LRScheduler", "ReduceLROnPlateau", "WarmUpLR", *schedule_names()]
