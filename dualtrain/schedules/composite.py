"""Schedules built from other schedules: SequentialLR, ChainedScheduler, WarmupLR.

PyTorch composes them through each member's chainable one-step update, so
their lr has no closed form in general: it is the fold of those updates from
the base lr (memoised, so a trajectory costs one update per step). OneFlow
composes closed forms, so its flavours are closed forms too.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from dualtrain.errors import ConfigError
from dualtrain.schedules import checks
from dualtrain.schedules.base import Schedule


def _members(owner: str, schedulers) -> list[Schedule]:
    if not isinstance(schedulers, (list, tuple)) or not schedulers:
        raise checks.fail(owner, "schedulers", "a non-empty list of schedules", schedulers)
    for index, member in enumerate(schedulers):
        if not isinstance(member, Schedule):
            raise checks.fail(owner, f"schedulers[{index}]", "a schedule", member)
    return list(schedulers)


def _oneflow_composable(owner: str, key: str, members: Sequence[Schedule | None]) -> None:
    """OneFlow composes members through their closed form; refuse those without one."""
    for index, member in enumerate(members):
        if member is not None and not member.oneflow_composable:
            where = f"{key}[{index}]" if key == "schedulers" else key
            raise ConfigError(
                f"{owner}: {where} is {member.name}, which OneFlow 0.9 cannot compose "
                "(its get_lr(base_lr, step) raises NotImplementedError); expected a "
                "closed-form schedule such as StepLR or ExponentialLR"
            )


def _milestones(owner: str, milestones, members: Sequence[Schedule]) -> list[int]:
    values = checks.int_list(owner, "milestones", milestones)
    if len(values) != len(members) - 1:
        raise ConfigError(
            f"{owner}: milestones must have one entry fewer than schedulers "
            f"({len(members) - 1}), got {len(values)}: {values!r}"
        )
    return values


class _Composite(Schedule):
    """A schedule made of `schedulers`; it cycles momentum when a member does."""

    schedulers: list[Schedule]

    @property
    def cycles_momentum(self) -> bool:  # type: ignore[override]
        return any(m.cycles_momentum for m in self.schedulers)

    def check_bases(self, base_lrs):
        for member in self.schedulers:
            member.check_bases(base_lrs)

    def setup_group(self, group):
        # torch builds the members first, each writing into the group in turn and
        # then keeping the first initial_lr it finds (setdefault).
        for member in self.schedulers:
            member.setup_group(group)
            group.setdefault("initial_lr", group["lr"])

    def momentum(self, step):
        # In a chain the last member that sets momentum wins, as in torch.
        values = [m.momentum(step) for m in self.schedulers if m.cycles_momentum]
        return values[-1] if values else None


class _Folded(_Composite):
    """A torch composite: its lrs replay what torch's stateful objects do.

    torch composes through stateful members, each with its own counter: a
    SequentialLR steps one member (restarting it at its milestone), a
    ChainedScheduler steps all. A member nested in a composite keeps torch's
    quirks (a nested member's first step is not in 'initial' mode, a nested
    SequentialLR's counter runs one ahead), so the lr is a fold over
    (lr, counters) from the group's base lr, replayed below and memoised per base.
    """

    def lr(self, step, base_lr):
        return self._replay(step, base_lr)[step][0]

    def momentum(self, step):
        runs = self.__dict__.get("_runs") or {1.0: None}
        return self._replay(step, next(iter(runs)))[step][1]

    def chain_lr(self, prev, step, base_lr, initial):
        return self.lr(step, base_lr)  # a composite sets the lr it replays

    def _replay(self, step: int, base_lr: float) -> list[tuple[float, float | None]]:
        runs = self.__dict__.setdefault("_runs", {})
        if runs.get(base_lr) is None:
            replay = _Replay(base_lr)
            runs[base_lr] = ([replay.record(_construct(self, base_lr, replay))], replay)
        values, replay = runs[base_lr]
        while len(values) <= step:
            replay.momentum = None
            values.append(replay.record(_advance(self, values[-1][0], replay)))
        return values


class _Replay:
    """The counters of every member in a replay, and the momentum set this step."""

    def __init__(self, base_lr: float) -> None:
        self.base, self.clocks, self.momentum = base_lr, {}, None

    def record(self, lr: float) -> tuple[float, float | None]:
        return lr, self.momentum

    def act(self, leaf: Schedule, lr: float, step: int, how: str) -> float:
        """One member's update at its step `step`: 'initial', 'step' or 'restart'."""
        self.clocks[id(leaf)] = step
        if how == "restart":
            lr = leaf.restart_lr(lr, self.base)
        else:
            lr = leaf.chain_lr(lr, step, self.base, initial=how == "initial")
        if leaf.cycles_momentum:
            self.momentum = leaf.momentum(step)
        return lr


def _construct(node: Schedule, lr: float, replay: _Replay) -> float:
    """torch's constructors: members first, in order; a SequentialLR then resets the
    lr to the base, moves every member one step back and starts its first member."""
    if not isinstance(node, _Folded):
        return replay.act(node, lr, 0, "initial")
    for member in node.schedulers:
        lr = _construct(member, lr, replay)
    if isinstance(node, ChainedScheduler):
        return lr
    replay.clocks[id(node)] = 0
    _undo(node, replay)
    first = node.schedulers[bisect.bisect_right(node.milestones, 0)]
    if isinstance(first, _Folded):  # its _initial_step() is a plain step()
        return _advance(first, replay.base, replay)
    return replay.act(first, replay.base, replay.clocks[id(first)] + 1, "initial")


def _undo(node: _Folded, replay: _Replay) -> None:
    for member in node.schedulers:
        if isinstance(member, _Folded):
            _undo(member, replay)
        else:
            replay.clocks[id(member)] -= 1


def _advance(node: Schedule, lr: float, replay: _Replay) -> float:
    """torch's step(): a member one step on; a chain steps all; a sequence, one."""
    if not isinstance(node, _Folded):
        return replay.act(node, lr, replay.clocks[id(node)] + 1, "step")
    if isinstance(node, ChainedScheduler):
        for member in node.schedulers:
            lr = _advance(member, lr, replay)
        return lr
    now = replay.clocks[id(node)] = replay.clocks[id(node)] + 1
    index = bisect.bisect_right(node.milestones, now)
    if index and node.milestones[index - 1] == now:
        return _restart(node.schedulers[index], lr, replay)
    return _advance(node.schedulers[index], lr, replay)


def _restart(node: Schedule, lr: float, replay: _Replay) -> float:
    """torch's _update_lr(0) at a milestone (for a nested composite, where torch
    raises, dualtrain restarts its members at step 0)."""
    if not isinstance(node, _Folded):
        return replay.act(node, lr, 0, "restart")
    if isinstance(node, ChainedScheduler):
        for member in node.schedulers:
            lr = _restart(member, lr, replay)
        return lr
    replay.clocks[id(node)] = 0
    return _restart(node.schedulers[bisect.bisect_right(node.milestones, 0)], lr, replay)


class SequentialLR(_Folded):
    """torch: member i runs from milestones[i-1], restarted at its step 0 there."""

    name = "SequentialLR"
    flavors = ("torch",)

    def __init__(self, schedulers, milestones) -> None:
        self.schedulers = _members(self.name, schedulers)
        self.milestones = _milestones(self.name, milestones, self.schedulers)


class ChainedScheduler(_Folded):
    """torch: every member's one-step update applied in turn to the same lr."""

    name = "ChainedScheduler"
    flavors = ("torch",)

    def __init__(self, schedulers) -> None:
        self.schedulers = _members(self.name, schedulers)


class OneFlowSequentialLR(_Composite):
    """OneFlow: member i sees the global step unless interval_rescaling[i-1] is set,
    in which case it sees the steps since its milestone (PyTorch's behaviour)."""

    name = "SequentialLR"
    flavors = ("oneflow",)
    oneflow_composable = False

    def __init__(self, schedulers, milestones, interval_rescaling=False) -> None:
        self.schedulers = _members(self.name, schedulers)
        _oneflow_composable(self.name, "schedulers", self.schedulers)
        self.milestones = _milestones(self.name, milestones, self.schedulers)
        if isinstance(interval_rescaling, bool):
            interval_rescaling = [interval_rescaling] * len(self.milestones)
        if not isinstance(interval_rescaling, (list, tuple)) or not all(
            isinstance(r, bool) for r in interval_rescaling
        ):
            raise checks.fail(
                self.name, "interval_rescaling", "a bool or a list of bools", interval_rescaling
            )
        if len(interval_rescaling) != len(self.milestones):
            raise checks.fail(
                self.name,
                "interval_rescaling",
                f"one bool per milestone ({len(self.milestones)})",
                interval_rescaling,
            )
        self.interval_rescaling = list(interval_rescaling)

    def _member_step(self, step: int) -> tuple[Schedule, int]:
        index = bisect.bisect_right(self.milestones, step)
        if index and self.interval_rescaling[index - 1]:
            step -= self.milestones[index - 1]
        return self.schedulers[index], step

    def lr(self, step, base_lr):
        member, local = self._member_step(step)
        return member.lr(local, base_lr)

    def momentum(self, step):
        member, local = self._member_step(step)
        return member.momentum(local)


class OneFlowChainedScheduler(_Composite):
    """OneFlow: each member's closed form applied to the previous member's lr."""

    name = "ChainedScheduler"
    flavors = ("oneflow",)
    oneflow_composable = False

    def __init__(self, schedulers) -> None:
        self.schedulers = _members(self.name, schedulers)
        _oneflow_composable(self.name, "schedulers", self.schedulers)

    def lr(self, step, base_lr):
        for member in self.schedulers:
            base_lr = member.lr(step, base_lr)
        return base_lr


class WarmupLR(Schedule):
    """OneFlow: a linear or constant warmup over warmup_iters steps, then `scheduler`.

    Linear warmup ramps from warmup_factor to the wrapped schedule's lr at
    warmup_iters (to 1 with warmup_prefix, where the wrapped schedule then starts
    at its own step 0). As OneFlow does, a linear warmup into a wrapped schedule
    without warmup_prefix refuses param groups with different base lrs: OneFlow
    ramps them all to the first group's end factor.
    """

    name = "WarmupLR"
    native = ("oneflow",)
    oneflow_composable = False

    def __init__(
        self,
        scheduler: Schedule | None = None,
        warmup_factor: float = 1.0 / 3,
        warmup_iters: int = 5,
        warmup_method: str = "linear",
        warmup_prefix: bool = False,
    ) -> None:
        owner = self.name
        if scheduler is not None and not isinstance(scheduler, Schedule):
            raise checks.fail(owner, "scheduler", "a schedule or None", scheduler)
        _oneflow_composable(owner, "scheduler", [scheduler])
        self.scheduler = scheduler
        self.warmup_factor = checks.number(owner, "warmup_factor", warmup_factor, low=0, high=1)
        self.warmup_iters = checks.integer(owner, "warmup_iters", warmup_iters)
        self.warmup_method = checks.choice(
            owner, "warmup_method", warmup_method, ("linear", "constant")
        )
        self.warmup_prefix = checks.boolean(owner, "warmup_prefix", warmup_prefix)
        if scheduler is None and self.warmup_iters <= 0:
            raise checks.fail(
                owner, "warmup_iters", "> 0 when no scheduler is wrapped", self.warmup_iters
            )

    def _ramps_into_scheduler(self) -> bool:
        return (
            self.scheduler is not None
            and not self.warmup_prefix
            and self.warmup_method == "linear"
            and self.warmup_iters > 0
        )

    def check_bases(self, base_lrs):
        if self.scheduler is not None:
            self.scheduler.check_bases(base_lrs)
        # OneFlow ramps every group to one end factor taken from the first group.
        first = base_lrs[0]
        # OneFlow compares with np.isclose's default tolerances.
        if self._ramps_into_scheduler() and any(
            abs(b - first) > 1e-8 + 1e-5 * abs(first) for b in base_lrs
        ):
            raise ConfigError(
                f"{self.name}: a linear warmup into a scheduler without warmup_prefix needs "
                f"one lr for all param groups (as in OneFlow), got {list(base_lrs)!r}"
            )

    def _warmup_lr(self, step: int, base_lr: float) -> float:
        from dualtrain.schedules.formulas import OneFlowConstantLR, OneFlowLinearLR

        if self.warmup_method == "constant":
            return OneFlowConstantLR(self.warmup_factor, self.warmup_iters).lr(step, base_lr)
        end_factor = 1.0
        if base_lr == 0.0:
            return 0.0  # every factor of a zero lr is zero (OneFlow divides by it)
        if self._ramps_into_scheduler():
            end_factor = self.scheduler.lr(self.warmup_iters, base_lr) / base_lr
        ramp = OneFlowLinearLR(self.warmup_factor, 0.0, self.warmup_iters)
        ramp.end_factor = end_factor  # may exceed 1 when the wrapped schedule rises
        return ramp.lr(step, base_lr)

    def lr(self, step, base_lr):
        if self.warmup_iters > 0 and (self.scheduler is None or step < self.warmup_iters):
            return self._warmup_lr(step, base_lr)
        if self.warmup_iters > 0 and self.warmup_prefix:
            step -= self.warmup_iters
        return self.scheduler.lr(step, base_lr)

    @property
    def cycles_momentum(self) -> bool:  # type: ignore[override]
        return self.scheduler is not None and self.scheduler.cycles_momentum

    def momentum(self, step):
        return None if self.scheduler is None else self.scheduler.momentum(step)
