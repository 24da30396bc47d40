"""ReduceLROnPlateau with torch's (or OneFlow's) attributes over the pure rule.

The transition is `dualtrain.schedules.ReduceLROnPlateau.observe` (counters)
and `.reduced` (the lrs); this class keeps what torch keeps as public
attributes (`mode`, `factor`, `patience`, `threshold`, `cooldown`, `min_lrs`,
`best`, `num_bad_epochs`, ...), so a loaded state carries them. A param group
added after construction gets the scalar `min_lr`; with a list `min_lr` the
caller appends its floor to `min_lrs`, as in torch.
"""

from __future__ import annotations

from typing import Any

from dualtrain.errors import ConfigError, ConfigRuntimeError
from dualtrain.schedules import FLAVORS, PlateauState
from dualtrain.schedules import ReduceLROnPlateau as PlateauRule
from dualtrain.stateful import values
from dualtrain.stateful.base import LRScheduler
from dualtrain.stateful.values import copy_value, param_groups, set_value


class ReduceLROnPlateau(LRScheduler):
    """Reduce every group's lr when a metric stops improving; `step(metric)`."""

    _not_state = ("optimizer", "flavor")

    def __init__(
        self,
        optimizer,
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0,
        eps=1e-8,
        verbose=False,
        *,
        flavor="torch",
    ) -> None:
        if flavor not in FLAVORS:
            raise ConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
        n = len(param_groups(optimizer))
        self.flavor = flavor
        self.factor, self.patience, self.cooldown, self.eps = factor, patience, cooldown, eps
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr, self.min_lrs = None, list(min_lr)
        else:
            self.default_min_lr, self.min_lrs = min_lr, [min_lr] * n
        rule = self._rule(n)  # checks every argument, a list min_lr against the groups
        self.optimizer = optimizer
        if verbose or flavor == "oneflow":  # torch 2.x keeps no verbose attribute
            self.verbose = verbose
        self.last_epoch = 0
        self._last_lr = [copy_value(g["lr"]) for g in optimizer.param_groups]
        self.mode_worse = rule.initial_state([0.0] * n).best
        self.best, self.cooldown_counter = self.mode_worse, 0
        self.__dict__[self._bad_key] = 0
        if flavor == "oneflow":
            del self.__dict__["default_min_lr"]  # OneFlow has no such attribute

    @property
    def _bad_key(self) -> str:
        return "num_bad_epochs" if self.flavor == "torch" else "num_bad_steps"

    def _rule(self, n_groups: int | None = None) -> PlateauRule:
        """The pure rule of these settings; `n_groups` (at construction: the optimizer's
        groups) is what the floors must match, by default their own number (a group
        added later appends its floor)."""
        min_lr = list(self.min_lrs)  # one floor a group, always a list here
        if n_groups is None:
            n_groups = len(min_lr)
        return PlateauRule(
            mode=self.mode,
            factor=self.factor,
            patience=self.patience,
            threshold=self.threshold,
            threshold_mode=self.threshold_mode,
            cooldown=self.cooldown,
            min_lr=min_lr,
            eps=self.eps,
            n_groups=n_groups,
        )

    @property
    def state(self) -> PlateauState:
        """The pure rule's view of this scheduler."""
        return PlateauState(
            lrs=tuple(float(g["lr"]) for g in self.optimizer.param_groups),
            best=self.best,
            num_bad_epochs=self.__dict__[self._bad_key],
            cooldown_counter=self.cooldown_counter,
            last_epoch=self.last_epoch,
        )

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric `a` improves on `best` by more than the threshold."""
        return self._rule().is_better(a, best)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: Any, epoch: int | None = None) -> None:
        """Feed one value of the watched metric (after an epoch, usually)."""
        if epoch is not None:
            import warnings

            warnings.warn(values.EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        state, reduce = self._rule().observe(self.state, metrics)
        self.best, self.cooldown_counter = state.best, state.cooldown_counter
        self.__dict__[self._bad_key] = state.num_bad_epochs
        self.last_epoch = state.last_epoch if epoch is None else epoch
        if reduce:
            self._reduce(state.lrs)
        self._last_lr = [copy_value(g["lr"]) for g in self.optimizer.param_groups]

    def _reduce(self, lrs: tuple[float, ...]) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.__dict__.get("default_min_lr") is None:
                raise ConfigRuntimeError(
                    f"ReduceLROnPlateau: The number of param groups in the optimizer "
                    f"({len(groups)}) differs from min_lrs ({len(self.min_lrs)}), as when a "
                    "group is added after construction: append the new group's floor to min_lrs"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        new = self._rule().reduced(lrs)  # the rule's floors are self.min_lrs
        for index, (group, old, lr) in enumerate(zip(groups, lrs, new, strict=True)):
            if lr != old:
                set_value(group, "lr", lr)
                if self.verbose:
                    print(
                        f"ReduceLROnPlateau: step {self.last_epoch}, param_groups[{index}] "
                        f"lr reduced to {lr:.4e}"
                    )

    def state_dict(self) -> dict[str, Any]:
        """torch's state: every attribute but the optimizer (OneFlow's names in its flavour)."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._not_state}
        if self.flavor == "oneflow":
            state["last_step"] = state.pop("last_epoch")
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()`; also reads the state this class saved before
        it carried torch's attributes (`lrs`, `best`, `num_bad_epochs`, ...)."""
        state = dict(state_dict)
        if "best" not in state:
            raise ConfigError(f"ReduceLROnPlateau state is malformed: no 'best' in {sorted(state)}")
        if "lrs" in state and "mode" not in state:  # dualtrain's earlier format
            state.pop("lrs")
        for theirs, ours in (
            ("last_step", "last_epoch"),
            ("num_bad_steps", self._bad_key),
            ("num_bad_epochs", self._bad_key),
        ):
            if theirs in state and theirs != ours:
                state[ours] = state.pop(theirs)
        try:
            self.__dict__.update(state)
            self._rule()
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"ReduceLROnPlateau state is malformed: {exc}") from None
        self.mode_worse = self._rule().initial_state([0.0]).best

    def _schedules(self, n_groups=None):
        raise ConfigError(
            "ReduceLROnPlateau: its lrs depend on the metrics fed to step(), so it has no "
            "schedule of the step alone"
        )
