"""ReduceLROnPlateau: the one schedule that depends on data, not on the step.

Its maths is a pure transition: (state, metric) -> new state. PyTorch and
OneFlow agree on it (same rules, same defaults), so there is one flavour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dualtrain.schedules import checks


@dataclass(frozen=True)
class PlateauState:
    """What ReduceLROnPlateau remembers between metrics."""

    lrs: tuple[float, ...]
    best: float
    num_bad_epochs: int = 0
    cooldown_counter: int = 0
    last_epoch: int = 0


class ReduceLROnPlateau:
    """Multiply every group's lr by `factor` after `patience` epochs without improvement."""

    name = "ReduceLROnPlateau"
    per_group = ("min_lr",)
    cycles_momentum = False

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0,
        eps: float = 1e-8,
        n_groups: int = 1,
    ) -> None:
        owner = self.name
        self.mode = checks.choice(owner, "mode", mode, ("min", "max"))
        self.factor = checks.number(owner, "factor", factor, low=0, high=1, high_open=True)
        self.patience = checks.integer(owner, "patience", patience, minimum=0)
        self.threshold = checks.number(owner, "threshold", threshold, low=0)
        self.threshold_mode = checks.choice(owner, "threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = checks.integer(owner, "cooldown", cooldown, minimum=0)
        self.eps = checks.number(owner, "eps", eps, low=0)
        values = min_lr if isinstance(min_lr, (list, tuple)) else [min_lr] * n_groups
        if len(values) != n_groups:
            raise checks.fail(owner, "min_lr", f"one value per param group ({n_groups})", min_lr)
        self.min_lrs = [checks.number(owner, "min_lr", v, low=0) for v in values]

    def initial_state(self, lrs) -> PlateauState:
        worst = math.inf if self.mode == "min" else -math.inf
        return PlateauState(lrs=tuple(lrs), best=worst)

    def is_better(self, metric: float, best: float) -> bool:
        """Whether `metric` improves on `best` by more than the threshold."""
        sign = 1.0 if self.mode == "min" else -1.0
        if self.threshold_mode == "rel":
            return sign * metric < sign * best * (1.0 - sign * self.threshold)
        return sign * metric < sign * best - self.threshold

    def step(self, state: PlateauState, metric: float) -> PlateauState:
        """The state after one `step(metric)`."""
        state, reduce = self.observe(state, metric)
        return replace(state, lrs=self.reduced(state.lrs)) if reduce else state

    def observe(self, state: PlateauState, metric: float) -> tuple[PlateauState, bool]:
        """The counters after `metric`, and whether the lrs are reduced at this step
        (the lrs in the returned state are not reduced yet)."""
        metric = float(metric)
        best, bad, cooldown = state.best, state.num_bad_epochs + 1, state.cooldown_counter
        if self.is_better(metric, best):
            best, bad = metric, 0
        if cooldown > 0:
            cooldown, bad = cooldown - 1, 0
        reduce = bad > self.patience
        if reduce:
            cooldown, bad = self.cooldown, 0
        new = replace(
            state,
            best=best,
            num_bad_epochs=bad,
            cooldown_counter=cooldown,
            last_epoch=state.last_epoch + 1,
        )
        return new, reduce

    def reduced(self, lrs, min_lrs=None) -> tuple[float, ...]:
        """Each lr times `factor`, not below its floor; kept where the change is <= eps."""
        out = []
        floors = self.min_lrs if min_lrs is None else min_lrs
        for old, floor in zip(lrs, floors, strict=True):
            new = max(old * self.factor, floor)
            out.append(new if old - new > self.eps else old)
        return tuple(out)
