"""The shape every schedule has, and the registry of schedules by name and flavour.

A schedule describes one param group: its lr (and momentum, where it cycles
momentum) as a pure function of the step and the group's base lr. A stateful,
PyTorch-API scheduler (`dualtrain.lr_scheduler`) keeps one per group.

Where one name means two behaviours, PyTorch's and OneFlow's, each flavour is
its own class registered under the same name; `flavors` says which flavours a
class serves (a name that exists in one framework only serves both: there is
one behaviour to offer).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dualtrain.errors import ConfigError

FLAVORS = ("torch", "oneflow")

_REGISTRY: dict[tuple[str, str], type[Schedule]] = {}
# Other spellings a framework accepts for the same scheduler.
ALIASES = {"WarmUpLR": "WarmupLR"}


class Schedule:
    """One param group's schedule; subclasses fill in `lr`."""

    name: ClassVar[str] = ""
    #: The flavours whose semantics this class implements.
    flavors: ClassVar[tuple[str, ...]] = FLAVORS
    #: False where OneFlow's class has no closed form (its get_lr(base_lr, step)
    #: raises NotImplementedError), so OneFlow cannot compose it.
    oneflow_composable: ClassVar[bool] = True
    #: The frameworks that ship a scheduler of this name.
    native: ClassVar[tuple[str, ...]] = FLAVORS
    #: Arguments that may be a list holding one value per param group.
    per_group: ClassVar[tuple[str, ...]] = ()
    #: True where the schedule also sets momentum (CyclicLR, OneCycleLR).
    cycles_momentum: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.name:
            return
        for flavor in cls.flavors:
            _REGISTRY[(cls.name, flavor)] = cls

    def lr(self, step: int, base_lr: float) -> float:
        """The lr in effect during training step `step` (0 = before the first `step()`)."""
        raise NotImplementedError

    def momentum(self, step: int) -> float | None:
        """The momentum (or Adam's beta1) at `step`, or None when not scheduled."""
        return None

    def start_lr(self, base_lr: float) -> float:
        """The lr this schedule counts from (torch's `base_lrs`); most use the group's."""
        return base_lr

    def check_bases(self, base_lrs: list[float]) -> None:
        """Refuse param-group lrs this schedule cannot serve together (most serve any)."""

    def setup_group(self, group: dict) -> None:
        """What torch's constructor writes into a param group on a fresh start.

        Most write nothing; CyclicLR and OneCycleLR set the group's lr or
        initial_lr, which schedulers built after them take as their base.
        """

    # PyTorch composes ChainedScheduler and SequentialLR through the group's
    # current lr ("chainable form"), which is not always the closed form: a
    # ConstantLR restarted by SequentialLR, or LambdaLR chained before
    # ExponentialLR. The two hooks below give that form; a schedule that sets
    # the lr outright (LambdaLR, CyclicLR, ...) keeps these defaults.

    def chain_lr(self, prev: float, step: int, base_lr: float, initial: bool) -> float:
        """torch's `get_lr()`: the lr after moving to `step` from current lr `prev`."""
        return self.lr(step, base_lr)

    #: True where torch's class has a `_get_closed_form_lr`, which `step(epoch)`
    #: and SequentialLR's restart at a milestone use instead of the chainable form.
    has_closed_form: ClassVar[bool] = False

    def closed_form_lr(self, step: float, base_lr: float) -> float:
        """torch's `_get_closed_form_lr` at `step`, in torch's float order."""
        return self.lr(step, base_lr)

    def restart_lr(self, prev: float, base_lr: float) -> float:
        """torch's `_update_lr(0)` as SequentialLR calls it at a milestone: the
        closed form where torch has one, else the chainable form at step 0."""
        if self.has_closed_form:
            return self.closed_form_lr(0, base_lr)
        return self.chain_lr(prev, 0, base_lr, initial=False)


class Chainable(Schedule):
    """A torch schedule whose lr is the fold of its chainable form from the base lr.

    torch's scheduler moves the lr one `chain_lr` step at a time, so its floats
    are the fold, not the closed form (0.01 * 0.8 * 0.8 is 0.0064, while
    0.01 * 0.8 ** 2 is 0.006400000000000001). Folding here gives torch's very
    floats at every step; the fold is memoised per base lr, so a trajectory
    costs one update a step. `closed_form_lr` stays what `step(epoch)` uses.
    """

    def lr(self, step: int, base_lr: float) -> float:
        folds = self.__dict__.setdefault("_folds", {})
        values = folds.setdefault(base_lr, [])
        if not values:
            values.append(self.chain_lr(base_lr, 0, base_lr, initial=True))
        while len(values) <= step:
            values.append(self.chain_lr(values[-1], len(values), base_lr, initial=False))
        return values[step]


def schedule_class(name: str, flavor: str = "torch") -> type[Schedule]:
    """The class for schedule `name` in `flavor`; a one-line error lists the known names."""
    if flavor not in FLAVORS:
        raise ConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
    try:
        return _REGISTRY[(ALIASES.get(name, name), flavor)]
    except KeyError:
        known = ", ".join(schedule_names(flavor))
        raise ConfigError(
            f"unknown {flavor} schedule {name!r} (known: {known}, ReduceLROnPlateau)"
        ) from None


def schedule_names(flavor: str | None = None) -> list[str]:
    """Names of the registered schedules, for one flavour or all."""
    return sorted({n for n, f in _REGISTRY if flavor is None or f == flavor})


def has_distinct_flavors(name: str) -> bool:
    """True when `name` behaves differently in torch and OneFlow."""
    classes = {_behaviour(_REGISTRY.get((name, f))) for f in FLAVORS}
    return len(classes) > 1 and None not in classes


def _behaviour(cls: type[Schedule] | None) -> type[Schedule] | None:
    """A flavour twin that differs only in float order (`float_order_twin`) counts as its base."""
    if cls is not None and cls.__dict__.get("float_order_twin"):
        return cls.__mro__[1]
    return cls


def native_frameworks(name: str) -> tuple[str, ...]:
    """The frameworks that have a scheduler called `name` ("ReduceLROnPlateau": both)."""
    classes = {_REGISTRY.get((ALIASES.get(name, name), f)) for f in FLAVORS} - {None}
    if not classes:  # ReduceLROnPlateau, which lives outside the registry: both have it
        return FLAVORS
    return tuple(f for f in FLAVORS if any(f in cls.native for cls in classes))


def split_per_group(owner: str, kwargs: dict[str, Any], keys, n_groups: int) -> list[dict]:
    """One kwargs dict per group, unpacking the list-valued per-group arguments."""
    groups = [dict(kwargs) for _ in range(n_groups)]
    for key in keys:
        value = kwargs.get(key)
        if not isinstance(value, (list, tuple)):
            continue
        if len(value) != n_groups:
            raise ConfigError(
                f"{owner}: {key} must have one value per param group ({n_groups}), "
                f"got {len(value)}: {list(value)!r}"
            )
        for group, item in zip(groups, value, strict=True):
            group[key] = item
    return groups
