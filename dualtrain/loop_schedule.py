"""The core's schedule as the training loop drives it: each group's lr and momentum
at a schedule step, the plan a static graph needs ahead, and ReduceLROnPlateau's
state, which is the only schedule state a checkpoint keeps."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dualtrain.backend import LrPlan
from dualtrain.errors import ConfigError
from dualtrain.lr_scheduler import LRScheduler
from dualtrain.schedules import PlateauState, ReduceLROnPlateau, build_schedule

if TYPE_CHECKING:
    from dualtrain.loop import ScheduleConfig


class Scheduler:
    """The core's schedule as the loop uses it: lrs and momenta for a schedule step.

    It counts from the bases torch's scheduler would (CyclicLR and OneCycleLR
    set them while being built), by building the PyTorch-API scheduler over
    stand-in param groups; the loop then asks for any step directly.
    """

    def __init__(self, config: ScheduleConfig, base_lrs: list[float]) -> None:
        self.config, self.base_lrs = config, list(base_lrs)
        self.plateau = self.schedules = None
        self.observed = 0  # metrics fed so far: ReduceLROnPlateau's lrs change only then
        if config.name is None:
            return
        built = build_schedule(config.name, config.flavor, config.kwargs, len(base_lrs))
        if isinstance(built, ReduceLROnPlateau):
            self.plateau, self.state = built, built.initial_state(base_lrs)
            return
        self.schedules = built
        groups = _StandInGroups(base_lrs)
        LRScheduler(groups, built, flavor=config.flavor)  # writes each group's initial_lr
        self.base_lrs = [group["initial_lr"] for group in groups.param_groups]

    def values(self, k: int) -> tuple[list[float], list[float] | None]:
        """(lr per group, momentum per group or None) at schedule step k."""
        if self.plateau is not None:
            return list(self.state.lrs), None
        if self.schedules is None:
            return list(self.base_lrs), None
        lrs = [s.lr(k, b) for s, b in zip(self.schedules, self.base_lrs, strict=True)]
        if not any(s.cycles_momentum for s in self.schedules):
            return lrs, None
        return lrs, [s.momentum(k) for s in self.schedules]

    def plan(self, steps: tuple[int, int], per_step: bool) -> LrPlan:
        """Every group's lr ahead, for `steps` = (epochs, steps per epoch)."""
        epochs, per_epoch = steps
        lrs_at = None
        if self.plateau is None:

            def lrs_at(step: int) -> list[float]:
                return self.values(step if per_step else step // per_epoch)[0]

        cycles = self.schedules is not None and any(s.cycles_momentum for s in self.schedules)
        return LrPlan(epochs * per_epoch, len(self.base_lrs), lrs_at, cycles, self.config.name)

    def snapshot(self) -> dict[str, Any] | None:
        """What a checkpoint must keep: ReduceLROnPlateau's state (others are
        functions of the step)."""
        return None if self.plateau is None else asdict(self.state)

    def restore(self, state: dict[str, Any]) -> None:
        if self.plateau is None:
            raise ConfigError(f"checkpoint: a plateau state for schedule {self.config.name!r}")
        try:
            self.state = PlateauState(
                lrs=tuple(float(v) for v in state["lrs"]),
                best=float(state["best"]),
                num_bad_epochs=int(state["num_bad_epochs"]),
                cooldown_counter=int(state["cooldown_counter"]),
                last_epoch=int(state["last_epoch"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"checkpoint: malformed ReduceLROnPlateau state ({exc})") from None
        self.observed += 1

    def observe(self, metric: float) -> None:
        """Feed ReduceLROnPlateau its metric; other schedules ignore it."""
        if self.plateau is not None:
            self.state = self.plateau.step(self.state, metric)
            self.observed += 1


class _StandInGroups:
    """param_groups with what a scheduler reads: lr, and a momentum to cycle."""

    def __init__(self, lrs: list[float]) -> None:
        self.defaults = {"momentum": 0.0}
        self.param_groups = [{"lr": lr, "momentum": 0.0} for lr in lrs]
