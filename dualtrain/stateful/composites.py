"""SequentialLR, ChainedScheduler and WarmupLR over stateful member schedulers.

torch flavour, as torch does it: the composite steps its members, which move the
optimizer's lrs through their chainable forms; SequentialLR restarts a member at
its milestone with `_update_lr(0)`. OneFlow flavour, as OneFlow does it: the
composite sets the lrs from the members' closed forms (the pure composite
schedule) and tells each member its step. Either way `schedules` is the pure
composite, and the state nests the members' states.
"""

from __future__ import annotations

import bisect
from typing import Any

from dualtrain.errors import ConfigError, ConfigTypeError
from dualtrain.stateful.base import LRScheduler
from dualtrain.stateful.plateau import ReduceLROnPlateau
from dualtrain.stateful.values import copy_value, param_groups, set_value


def _check_members(owner: str, members: Any, optimizer: Any) -> list:
    if not isinstance(members, (list, tuple)) or not members:
        raise ConfigError(f"{owner}: schedulers must be a non-empty list, got {members!r}")
    for index, member in enumerate(members):
        if not hasattr(member, "optimizer"):
            raise ConfigTypeError(
                f"{owner}: schedulers[{index}] must be a scheduler with an optimizer, "
                f"got {type(member).__name__}"
            )
        if isinstance(member, ReduceLROnPlateau):
            raise ConfigError(
                f"{owner}: schedulers[{index}] is ReduceLROnPlateau, which needs a metric "
                "at each step; expected a scheduler that steps on its own"
            )
        if optimizer is not None and member.optimizer is not optimizer:
            raise ConfigError(f"{owner}: schedulers[{index}] belongs to another optimizer")
    return list(members)


def _get_base_lrs(self) -> list:
    return self.__dict__.get("base_lrs") or self.members[0].base_lrs


def _set_base_lrs(self, value: list) -> None:
    self.__dict__["base_lrs"] = value


#: `base_lrs` of a chain or a sequence: its own once set, else its first member's.
_first_member_base_lrs = property(_get_base_lrs, _set_base_lrs)


class _Composite(LRScheduler):
    """State: own attributes plus each member's state under `members_key`."""

    members_key = "_schedulers"
    _not_state = ("optimizer", "flavor", "members_key")

    @property
    def members(self) -> list[LRScheduler]:
        return self.__dict__[self.members_key]

    def _member_schedules(self, group: int) -> list:
        return [m._schedules()[group] for m in self.members]

    def state_dict(self):
        state = {k: v for k, v in super().state_dict().items() if k != self.members_key}
        state[self.members_key] = [m.state_dict() for m in self.members]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        nested = state.pop(self.members_key, None)
        if nested is None:  # the other framework's key
            nested = state.pop(
                "schedulers" if self.members_key == "_schedulers" else "_schedulers", []
            )
        super().load_state_dict(state)
        for member, member_state in zip(self.members, nested, strict=False):
            member.load_state_dict(member_state)


class ChainedScheduler(_Composite):
    """Every member steps at each step, each on the lr the previous one set."""

    schedule_name = "ChainedScheduler"

    def __init__(self, schedulers, optimizer=None, flavor="torch") -> None:
        if optimizer is None and isinstance(schedulers, (list, tuple)) and schedulers:
            optimizer = getattr(schedulers[0], "optimizer", None)
        members = _check_members(self.schedule_name, schedulers, optimizer)
        if flavor == "oneflow":
            self.members_key = "schedulers"
            self.schedulers = members
            self._start(optimizer, -1, False, flavor)
            return
        self._schedulers, self.optimizer, self.flavor = members, optimizer, flavor
        self._last_lr = [copy_value(g["lr"]) for g in param_groups(optimizer)]

    def _schedule_kwargs(self, group):
        return {"schedulers": self._member_schedules(group)}

    @property
    def last_epoch(self) -> int:
        """The steps taken: the members' count (torch keeps none of its own)."""
        if self.flavor == "oneflow":
            return self.__dict__["last_epoch"]
        return self._schedulers[-1].last_epoch

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        if self.flavor == "oneflow":
            self.__dict__["last_epoch"] = value
        else:
            for member in self._schedulers:
                member.last_epoch = value

    base_lrs = _first_member_base_lrs

    def step(self, epoch=None) -> None:
        """Step every member in turn (OneFlow: apply their closed forms in turn)."""
        if self.flavor == "oneflow":
            super().step(epoch)
            for member in self.schedulers:
                member.last_epoch = self.last_epoch
            return
        for member in self._schedulers:
            member.step()
        self._last_lr = [copy_value(g["lr"]) for g in self.optimizer.param_groups]

    def _update_lr(self, epoch=None) -> None:
        """A restart at a SequentialLR milestone: every member restarts (torch raises)."""
        if self.flavor == "oneflow" or epoch is None:
            return super()._update_lr(epoch)
        for member in self._schedulers:
            member._update_lr(epoch)
        self._last_lr = [copy_value(g["lr"]) for g in self.optimizer.param_groups]


class SequentialLR(_Composite):
    """Member i runs from milestones[i-1] on (torch restarts it at its step 0 there)."""

    schedule_name = "SequentialLR"

    def __init__(self, optimizer, schedulers, milestones, *args, flavor="torch", **kwargs) -> None:
        members = _check_members(self.schedule_name, schedulers, optimizer)
        if not isinstance(milestones, (list, tuple)) or len(milestones) != len(members) - 1:
            raise ConfigError(
                f"{self.schedule_name}: milestones must have one entry fewer than schedulers "
                f"({len(members) - 1}), got {milestones!r}"
            )
        if flavor == "oneflow":
            self._start_oneflow(optimizer, members, milestones, args, kwargs)
            return
        last_epoch, kwargs = _last_epoch(self.schedule_name, args, kwargs, ())
        self._schedulers, self._milestones = members, list(milestones)
        self.flavor = flavor
        try:
            self._schedules(len(param_groups(optimizer)))  # refuses what the pure form refuses
        except NotImplementedError:
            pass  # a member with its own get_lr(): no pure form to check
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # torch resets the lrs the members set
            set_value(group, "lr", group["initial_lr"])
        _undo_one_step(self)
        index = bisect.bisect_right(self._milestones, 0)
        self._schedulers[index]._initial_step()
        self._last_lr = self._schedulers[index].get_last_lr()

    def _start_oneflow(self, optimizer, members, milestones, args, kwargs) -> None:
        names = ("interval_rescaling", "last_step", "verbose")
        bound = dict(zip(names, args, strict=False)) | kwargs
        unknown = set(bound) - {*names, "last_epoch"}
        if unknown:
            raise ConfigTypeError(f"{self.schedule_name}: unknown argument(s) {sorted(unknown)}")
        last = bound.get("last_step", bound.get("last_epoch", -1))
        self.members_key = "schedulers"
        self.schedulers, self.milestones = members, list(milestones)
        rescaling = bound.get("interval_rescaling", False)
        if isinstance(rescaling, bool):
            rescaling = [rescaling] * len(self.milestones)
        self.interval_rescaling = rescaling
        self._start(optimizer, last, bound.get("verbose", False), "oneflow")

    def _schedule_kwargs(self, group):
        kwargs = {"schedulers": self._member_schedules(group)}
        if self.flavor == "oneflow":
            return kwargs | {
                "milestones": self.milestones,
                "interval_rescaling": self.interval_rescaling,
            }
        return kwargs | {"milestones": self._milestones}

    base_lrs = _first_member_base_lrs

    def step(self, epoch=None) -> None:
        """The member whose turn it is steps (torch restarts it at its milestone)."""
        if self.flavor == "oneflow":
            super().step(epoch)
            local = self.last_epoch
            index = bisect.bisect_right(self.milestones, local)
            if index and self.interval_rescaling[index - 1]:
                local -= self.milestones[index - 1]
            self.schedulers[index].last_epoch = local
            return
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        member = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            member._update_lr(0)
        else:
            member.step()
        self._last_lr = member.get_last_lr()

    def _update_lr(self, epoch=None) -> None:
        """A restart inside an outer SequentialLR: the first member restarts (torch raises)."""
        if self.flavor == "oneflow" or epoch is None:
            return super()._update_lr(epoch)
        self.last_epoch = epoch
        member = self._schedulers[bisect.bisect_right(self._milestones, epoch)]
        member._update_lr(epoch)
        self._last_lr = member.get_last_lr()


def _undo_one_step(scheduler: Any) -> None:
    """torch's recursive_undo: every member, nested ones too, one step back."""
    for member in getattr(scheduler, "_schedulers", ()):
        if hasattr(member, "_schedulers"):
            _undo_one_step(member)
        elif hasattr(member, "last_epoch"):
            member.last_epoch -= 1


def _last_epoch(owner: str, args: tuple, kwargs: dict, names: tuple) -> tuple[int, dict]:
    if len(args) > 1:
        raise ConfigTypeError(f"{owner}: too many positional arguments: {args!r}")
    last = args[0] if args else kwargs.pop("last_epoch", kwargs.pop("last_step", -1))
    unknown = set(kwargs) - set(names)
    if unknown:
        raise ConfigTypeError(f"{owner}: unknown argument(s) {sorted(unknown)}")
    return last, kwargs


class WarmupLR(_Composite):
    """OneFlow's WarmupLR: a linear or constant warmup, in front of a scheduler or alone.

    It steps as OneFlow's does whatever the flavour (the name is OneFlow's only);
    its state nests the warmup's and the wrapped scheduler's, as OneFlow's.
    """

    schedule_name = "WarmupLR"
    members_key = "schedulers"

    def __init__(
        self,
        scheduler_or_optimizer,
        warmup_factor=1.0 / 3,
        warmup_iters=5,
        warmup_method="linear",
        warmup_prefix=False,
        last_step=-1,
        verbose=False,
        *,
        last_epoch=None,
        flavor="oneflow",
    ) -> None:
        wrapped = (
            scheduler_or_optimizer if isinstance(scheduler_or_optimizer, LRScheduler) else None
        )
        optimizer = wrapped.optimizer if wrapped is not None else scheduler_or_optimizer
        self.warmup_factor, self.warmup_iters = warmup_factor, warmup_iters
        self.warmup_method, self.warmup_prefix = warmup_method, warmup_prefix
        self.schedulers = [wrapped] if wrapped is not None else []
        self.milestones = [warmup_iters] if wrapped is not None else []
        self.interval_rescaling = [warmup_prefix] if wrapped is not None else []
        last = last_step if last_epoch is None else last_epoch
        self._start(optimizer, last, verbose, "oneflow")

    def _schedule_kwargs(self, group):
        wrapped = self._member_schedules(group)
        return {
            "scheduler": wrapped[0] if wrapped else None,
            "warmup_factor": self.warmup_factor,
            "warmup_iters": self.warmup_iters,
            "warmup_method": self.warmup_method,
            "warmup_prefix": self.warmup_prefix,
        }

    def step(self, epoch=None) -> None:
        """One step: the warmup's lr, or the wrapped scheduler's (told its step)."""
        super().step(epoch)
        if self.schedulers and self.last_epoch >= self.warmup_iters:
            shift = self.warmup_iters if self.warmup_prefix else 0
            self.schedulers[0].last_epoch = self.last_epoch - shift

    def state_dict(self):
        state = super().state_dict()
        # OneFlow's WarmupLR is a SequentialLR whose first member is the warmup itself.
        warmup = {
            "total_iters": self.warmup_iters,
            "last_step": self.last_epoch,
            "base_lrs": list(self.base_lrs),
        }
        if self.warmup_method == "linear":
            warmup["start_factor"] = self.warmup_factor
        else:
            warmup["factor"] = self.warmup_factor
        nested = state["schedulers"]
        state["schedulers"] = ([warmup] if self.warmup_iters > 0 else []) + nested
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        nested = list(state.get("schedulers", []))
        if self.schedulers and nested:  # OneFlow's [warmup, scheduler] or [scheduler]
            state["schedulers"] = nested[-1:]
        super().load_state_dict(state)
