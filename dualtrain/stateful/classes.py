"""One PyTorch-API (and OneFlow-API) class per schedule, holding torch's attributes.

Most classes are `Scheduled`: the schedule's arguments, bound positionally in
the flavour's own order (torch's `last_epoch`, OneFlow's `last_step` and
`verbose` after them), stored as attributes of the same names (`step_size`,
`gamma`, `T_max`, `eta_min`, ...). LambdaLR, MultiplicativeLR, CyclicLR,
OneCycleLR and CosineAnnealingWarmRestarts keep torch's own attribute names and
state (`lr_lambdas`, `max_lrs`, `T_cur`, ...), written out below.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
from typing import Any

from dualtrain.errors import ConfigError, ConfigTypeError
from dualtrain.schedules import check_kwargs, schedule_class, split_per_group
from dualtrain.stateful.base import LRScheduler
from dualtrain.stateful.values import formatted, param_groups, set_value


@functools.cache
def _arguments(cls: type) -> tuple[str, ...]:
    """The schedule class's argument names, in order. Read on every `step()` (to see
    whether an attribute changed), so read from the signature once: it cost 20 us a
    step, ten times torch's whole `StepLR.step()` (`make bench`, schedules)."""
    return tuple(n for n in inspect.signature(cls.__init__).parameters if n != "self")


def _bind(cls: type, args: tuple, kwargs: dict) -> tuple[dict, int, bool]:
    """(schedule arguments, last_epoch, verbose) from positional and keyword
    arguments, in the order the flavour's class takes them."""
    names = [*_arguments(cls), "last_epoch", "verbose"]
    if len(args) > len(names):
        raise ConfigTypeError(f"{cls.name}: takes at most {len(names)} arguments, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for key in kwargs.keys() & bound.keys():
        raise ConfigTypeError(f"{cls.name}: got two values for argument {key!r}")
    bound.update(kwargs)
    if "last_step" in bound:
        if "last_epoch" in bound:
            raise ConfigTypeError(f"{cls.name}: give last_epoch or last_step, not both")
        bound["last_epoch"] = bound.pop("last_step")
    last_epoch, verbose = bound.pop("last_epoch", -1), bound.pop("verbose", False)
    check_kwargs(cls.name, cls, bound)
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return defaults | bound, last_epoch, verbose


# Arguments a framework keeps under another attribute name: (schedule, flavour) -> names.
STORED_AS = {("PolynomialLR", "oneflow"): {"decay_batch": "max_decay_steps"}}


class Scheduled(LRScheduler):
    """A scheduler for one registered schedule; its arguments are its attributes."""

    def __init__(self, optimizer: Any, *args: Any, flavor: str = "torch", **kwargs: Any) -> None:
        cls = schedule_class(self.schedule_name, flavor)
        bound, last_epoch, verbose = _bind(cls, args, kwargs)
        split_per_group(cls.name, bound, cls.per_group, len(param_groups(optimizer)))
        renames = STORED_AS.get((cls.name, flavor), {})
        self.__dict__.update({renames.get(k, k): v for k, v in bound.items()})
        self._before_start(last_epoch, flavor)
        self._start(optimizer, last_epoch, verbose, flavor)

    def _before_start(self, last_epoch: int, flavor: str) -> None:
        """Attributes torch sets before its base constructor runs (most have none)."""

    def _schedule_kwargs(self, group: int) -> dict[str, Any]:
        cls = schedule_class(self.schedule_name, self.flavor)
        renames = STORED_AS.get((cls.name, self.flavor), {})
        out = {}
        for name in _arguments(cls):
            if renames.get(name, name) in self.__dict__:
                value = self.__dict__[renames.get(name, name)]
                if name in cls.per_group and isinstance(value, (list, tuple)):
                    value = value[group]
                out[name] = value
        return out


def _lambdas(owner: str, lr_lambda: Any, n_groups: int) -> list:
    if not isinstance(lr_lambda, (list, tuple)):
        return [lr_lambda] * n_groups
    if len(lr_lambda) != n_groups:
        raise ConfigError(
            f"{owner}: expected {n_groups} lr_lambdas (one per param group), got {len(lr_lambda)}"
        )
    return list(lr_lambda)


class _WithLambdas(LRScheduler):
    """torch's `lr_lambdas`: a function's state is not saved, a callable object's
    `__dict__` is (and a lambda written as text is saved as its text)."""

    def __init__(
        self, optimizer, lr_lambda, last_epoch=-1, verbose=False, *, flavor="torch", last_step=None
    ) -> None:
        self.lr_lambdas = _lambdas(self.schedule_name, lr_lambda, len(param_groups(optimizer)))
        self._start(optimizer, last_epoch if last_step is None else last_step, verbose, flavor)

    def _schedule_kwargs(self, group):
        return {"lr_lambda": self.lr_lambdas[group]}

    def state_dict(self):
        state = super().state_dict()
        state["lr_lambdas"] = [_saved(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", None) or []
        super().load_state_dict(state)
        for index, value in enumerate(saved):
            if isinstance(value, str):
                self.lr_lambdas[index] = value
            elif value is not None:
                self.lr_lambdas[index].__dict__.update(value)


def _saved(fn: Any) -> Any:
    if isinstance(fn, str):
        return fn
    if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__"):
        return None
    return fn.__dict__.copy()


class LambdaLR(_WithLambdas):
    """lr = base_lr * lr_lambda(epoch); one lambda, or one per param group."""

    schedule_name = "LambdaLR"


class MultiplicativeLR(_WithLambdas):
    """lr = previous lr * lr_lambda(epoch)."""

    schedule_name = "MultiplicativeLR"


def _momentum_support(owner: str, optimizer: Any) -> bool:
    """True for Adam-style betas, False for SGD-style momentum; refuses neither."""
    defaults = getattr(optimizer, "defaults", param_groups(optimizer)[0])
    if "momentum" not in defaults and "betas" not in defaults:
        raise ConfigError(
            f"{owner}: cycle_momentum needs an optimizer with momentum or betas, "
            f"got {type(optimizer).__name__}"
        )
    return "betas" in defaults


def _write_momentum(optimizer, use_beta1, max_momentums, base_momentums) -> None:
    for top, low, group in zip(max_momentums, base_momentums, optimizer.param_groups, strict=True):
        if use_beta1:
            group["betas"] = (top, *group["betas"][1:])
        else:
            group["momentum"] = top
        group["max_momentum"], group["base_momentum"] = top, low


class CyclicLR(LRScheduler):
    """Triangular cycles between base_lr and max_lr; momentum against them."""

    schedule_name = "CyclicLR"

    def __init__(
        self,
        optimizer,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
        last_epoch=-1,
        verbose=False,
        *,
        flavor="torch",
        last_step=None,
    ) -> None:
        last_epoch = last_epoch if last_step is None else last_step
        n = len(param_groups(optimizer))
        base_lrs = formatted(self.schedule_name, "base_lr", base_lr, n)
        self.max_lrs = formatted(self.schedule_name, "max_lr", max_lr, n)
        self.step_size_up, self.step_size_down = step_size_up, step_size_down
        self.mode, self.gamma, self.scale_mode = mode, gamma, scale_mode
        self._scale_fn_custom = scale_fn
        self.cycle_momentum = cycle_momentum
        self.base_momentums = formatted(self.schedule_name, "base_momentum", base_momentum, n)
        self.max_momentums = formatted(self.schedule_name, "max_momentum", max_momentum, n)
        self.flavor, self.base_lrs = flavor, base_lrs
        first = self._schedules(n)[0]  # checks every argument before touching the groups
        self.total_size, self.step_ratio = first.total_size, first.step_ratio
        self._init_scale_fn()
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                set_value(group, "lr", lr)
        if cycle_momentum:
            self.use_beta1 = _momentum_support(self.schedule_name, optimizer)
            if last_epoch == -1:
                _write_momentum(optimizer, self.use_beta1, self.max_momentums, self.base_momentums)
        self._start(optimizer, last_epoch, verbose, flavor)
        self.base_lrs = base_lrs

    def _schedule_kwargs(self, group):
        return {
            "base_lr": self.base_lrs[group],
            "max_lr": self.max_lrs[group],
            "step_size_up": self.step_size_up,
            "step_size_down": self.step_size_down,
            "mode": self.mode,
            "gamma": self.gamma,
            "scale_fn": self._scale_fn_custom,
            "scale_mode": self.scale_mode,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentums[group],
            "max_momentum": self.max_momentums[group],
        }

    def _init_scale_fn(self) -> None:
        """torch: a built-in mode's scale function and the scale mode it implies."""
        if self._scale_fn_custom is not None:
            return
        schedule = self._schedules(len(self.max_lrs))[0]
        self._scale_fn_ref, self.scale_mode = schedule.scale_fn, schedule.scale_mode

    def scale_fn(self, x: float) -> float:
        """The cycle's amplitude factor at cycle (or iteration) x."""
        fn = self._scale_fn_custom if self._scale_fn_custom is not None else self._scale_fn_ref
        return fn(x)

    def state_dict(self):
        state = super().state_dict()
        state.pop("_scale_fn_ref", None)
        state["_scale_fn_custom"] = _saved(self._scale_fn_custom)
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        custom = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if custom is not None and self._scale_fn_custom is not None:
            self._scale_fn_custom.__dict__.update(custom)
        self._init_scale_fn()


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up to max_lr, then anneal far below the start."""

    schedule_name = "OneCycleLR"
    # torch's annealing functions, by the names its state and tests use
    _annealing_cos = staticmethod(schedule_class("OneCycleLR").annealing_cos)
    _annealing_linear = staticmethod(schedule_class("OneCycleLR").annealing_linear)

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        last_epoch=-1,
        verbose=False,
        *,
        flavor="torch",
        last_step=None,
    ) -> None:
        last_epoch = last_epoch if last_step is None else last_step
        n = len(param_groups(optimizer))
        self.max_lrs = formatted(self.schedule_name, "max_lr", max_lr, n)
        self.total_steps, self.epochs, self.steps_per_epoch = total_steps, epochs, steps_per_epoch
        self.pct_start, self.anneal_strategy = pct_start, anneal_strategy
        self._anneal_func_type = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.base_momentums = formatted(self.schedule_name, "base_momentum", base_momentum, n)
        self.max_momentums = formatted(self.schedule_name, "max_momentum", max_momentum, n)
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.three_phase = three_phase
        self.flavor = flavor
        schedules = self._schedules(n)  # checks every argument before touching the groups
        self.total_steps = schedules[0].total_steps
        if last_epoch == -1:
            for top, group in zip(self.max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            self.use_beta1 = _momentum_support(self.schedule_name, optimizer)
            if last_epoch == -1:
                _write_momentum(optimizer, self.use_beta1, self.max_momentums, self.base_momentums)
        self._start(optimizer, last_epoch, verbose, flavor)

    def _anneal_kind(self) -> str:
        if "_anneal_func_type" in self.__dict__:
            return self._anneal_func_type
        legacy = self.__dict__.get("anneal_func")  # a state saved by torch before 2.2
        if legacy is not None:
            return "linear" if legacy is OneCycleLR._annealing_linear else "cos"
        return self.anneal_strategy

    def _schedule_kwargs(self, group):
        return {
            "max_lr": self.max_lrs[group],
            "total_steps": self.total_steps,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "pct_start": self.pct_start,
            "anneal_strategy": self._anneal_kind(),
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentums[group],
            "max_momentum": self.max_momentums[group],
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
        }


class CosineAnnealingWarmRestarts(Scheduled):
    """Cosine annealing restarted every T_i steps (T_i = T_0 * T_mult ** restarts).

    torch flavour: `T_cur` and `T_i` are state (settable), and `step(epoch)` takes
    fractional epochs. OneFlow flavour: the closed form of the step.
    """

    schedule_name = "CosineAnnealingWarmRestarts"

    def _before_start(self, last_epoch: int, flavor: str) -> None:
        if flavor == "torch":
            self.T_i, self.T_cur = self.T_0, last_epoch

    def get_lr(self, base_lr=None, step=None):
        if base_lr is not None or self.flavor == "oneflow":
            return super().get_lr(base_lr, step)
        schedule = self._schedules()[0]
        return [schedule.cosine(self.T_cur, self.T_i, b) for b in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """One step, or (torch) straight to `epoch`, fractional epochs allowed."""
        if self.flavor == "oneflow":
            return super().step(epoch)
        schedule = self._schedules()[0]
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur, self.T_i = schedule.advance(self.T_cur, self.T_i)
        elif epoch < 0:
            raise ConfigError(f"{self.schedule_name}: epoch must be >= 0, got {epoch!r}")
        else:
            self.T_cur, self.T_i = schedule.position_at(epoch)
        self.last_epoch = math.floor(epoch)  # as torch: step(2.5) is epoch 2
        self._get_lr_called_within_step = True
        try:
            lrs = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        self._apply(lrs)


# The explicit classes above; every other registered name gets a `Scheduled` class.
EXPLICIT = {
    cls.schedule_name: cls
    for cls in (LambdaLR, MultiplicativeLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts)
}


def scheduled_class(name: str) -> type[LRScheduler]:
    """The PyTorch-API class for schedule `name`, arguments as the frameworks order them."""
    if name in EXPLICIT:
        return EXPLICIT[name]
    doc = f"`{name}` with torch's arguments (OneFlow's with flavor='oneflow')."
    cls = type(name, (Scheduled,), {"schedule_name": name, "__doc__": doc, "__module__": __name__})
    cls.__signature__ = _signature(schedule_class(name, "torch"))  # what help() shows
    return cls


def _signature(cls: type) -> inspect.Signature:
    """optimizer, the schedule's own arguments, then torch's and OneFlow's extras."""
    own = [p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"]
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [
            inspect.Parameter("optimizer", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in own),
            inspect.Parameter("last_epoch", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=-1),
            inspect.Parameter("verbose", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False),
            inspect.Parameter("flavor", keyword, default="torch"),
            inspect.Parameter("last_step", keyword, default=None),
        ]
    )
