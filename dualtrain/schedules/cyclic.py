"""Schedules that cycle the lr between two bounds and momentum against it.

Both exist in PyTorch only; they set the lr outright (ignoring the group's own
lr) and, with cycle_momentum, set momentum (SGD) or beta1 (Adam) too.
"""

from __future__ import annotations

import math

from dualtrain.errors import ConfigError
from dualtrain.schedules import checks
from dualtrain.schedules.base import Schedule


class CyclicLR(Schedule):
    """Triangle waves between base_lr and max_lr (Smith, 2017), scaled per cycle or step."""

    name = "CyclicLR"
    native = ("torch",)
    per_group = ("base_lr", "max_lr", "base_momentum", "max_momentum")
    modes = ("triangular", "triangular2", "exp_range")

    def __init__(
        self,
        base_lr: float,
        max_lr: float,
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn=None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
    ) -> None:
        owner = self.name
        self.base_lr = checks.number(owner, "base_lr", base_lr)
        self.max_lr = checks.number(owner, "max_lr", max_lr)
        up = checks.number(owner, "step_size_up", step_size_up, low=0, low_open=True)
        down = up if step_size_down is None else step_size_down
        down = checks.number(owner, "step_size_down", down, low=0, low_open=True)
        self.total_size = float(up) + float(down)
        self.step_ratio = float(up) / self.total_size
        self.gamma = checks.number(owner, "gamma", gamma, low=0, low_open=True)
        if scale_fn is None:
            self.mode = checks.choice(owner, "mode", mode, self.modes)
            self.scale_fn = self._builtin_scale_fn()
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"
        else:
            self.mode = mode
            self.scale_fn = checks.function(owner, "scale_fn", scale_fn)
            self.scale_mode = checks.choice(
                owner, "scale_mode", scale_mode, ("cycle", "iterations")
            )
        self.cycles_momentum = checks.boolean(owner, "cycle_momentum", cycle_momentum)
        self.base_momentum = checks.number(owner, "base_momentum", base_momentum)
        self.max_momentum = checks.number(owner, "max_momentum", max_momentum)

    def _builtin_scale_fn(self):
        if self.mode == "triangular":
            return lambda cycle: 1.0
        if self.mode == "triangular2":
            return lambda cycle: 1 / (2.0 ** (cycle - 1))
        return lambda step: self.gamma**step

    def _position(self, step: int) -> tuple[float, float]:
        """(height in [0, 1] within the triangle, the scale_fn's value)."""
        cycle = math.floor(1 + step / self.total_size)
        x = 1.0 + step / self.total_size - cycle
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else step)
        return height, scale

    def lr(self, step, base_lr):
        height, scale = self._position(step)
        return self.base_lr + (self.max_lr - self.base_lr) * height * scale

    def momentum(self, step):
        if not self.cycles_momentum:
            return None
        height, scale = self._position(step)
        return self.max_momentum - (self.max_momentum - self.base_momentum) * height * scale

    def start_lr(self, base_lr):
        return self.base_lr

    def setup_group(self, group):
        group["lr"] = self.base_lr


class OneCycleLR(Schedule):
    """The 1cycle policy (Smith & Topin, 2018): warm up to max_lr, anneal far below.

    Defined for steps 0..total_steps; one more step raises, as in torch.
    """

    name = "OneCycleLR"
    native = ("torch",)
    per_group = ("max_lr", "base_momentum", "max_momentum")

    def __init__(
        self,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        owner = self.name
        self.total_steps = self._total_steps(total_steps, epochs, steps_per_epoch)
        self.max_lr = checks.number(owner, "max_lr", max_lr)
        pct_start = checks.number(owner, "pct_start", pct_start, low=0, high=1)
        self.anneal = checks.choice(owner, "anneal_strategy", anneal_strategy, ("cos", "linear"))
        self.cycles_momentum = checks.boolean(owner, "cycle_momentum", cycle_momentum)
        self.base_momentum = checks.number(owner, "base_momentum", base_momentum)
        self.max_momentum = checks.number(owner, "max_momentum", max_momentum)
        div_factor = checks.number(owner, "div_factor", div_factor, low=0, low_open=True)
        final_div = checks.number(owner, "final_div_factor", final_div_factor, low=0, low_open=True)
        self.initial_lr = self.max_lr / div_factor
        self.min_lr = self.initial_lr / final_div
        self.phases = self._phases(pct_start, checks.boolean(owner, "three_phase", three_phase))
        self._refuse_empty_phases(pct_start)

    def _refuse_empty_phases(self, pct_start: float) -> None:
        # torch divides by a phase's length, so an empty phase is a ZeroDivisionError
        # in the middle of training there; refuse the config up front instead.
        start = 0.0
        for end, _, _ in self.phases:
            if end == start:
                raise ConfigError(
                    f"{self.name}: pct_start={pct_start!r} with total_steps={self.total_steps} "
                    f"leaves a phase of zero length at step {end:g}; expected a pct_start "
                    "that gives every phase at least one step"
                )
            start = end

    def _total_steps(self, total_steps, epochs, steps_per_epoch) -> int:
        if total_steps is not None:
            return checks.integer(self.name, "total_steps", total_steps, minimum=1)
        if epochs is not None and steps_per_epoch is not None:
            epochs = checks.integer(self.name, "epochs", epochs, minimum=1)
            per_epoch = checks.integer(self.name, "steps_per_epoch", steps_per_epoch, minimum=1)
            return epochs * per_epoch
        raise ConfigError(
            f"{self.name}: give total_steps, or both epochs and steps_per_epoch, "
            f"got total_steps={total_steps!r}, epochs={epochs!r}, "
            f"steps_per_epoch={steps_per_epoch!r}"
        )

    def _phases(self, pct: float, three_phase: bool) -> list[tuple[float, tuple, tuple]]:
        """(end step, (lr from, lr to), (momentum from, momentum to)) per phase."""
        lo, hi, peak, floor = self.base_momentum, self.max_momentum, self.max_lr, self.min_lr
        start, last = self.initial_lr, self.total_steps - 1
        warmup = (float(pct * self.total_steps) - 1, (start, peak), (hi, lo))
        if not three_phase:
            return [warmup, (last, (peak, floor), (lo, hi))]
        back = (float(2 * pct * self.total_steps) - 2, (peak, start), (lo, hi))
        return [warmup, back, (last, (start, floor), (hi, hi))]

    @staticmethod
    def annealing_cos(begin: float, end: float, pct: float) -> float:
        """Cosine from `begin` (pct 0) to `end` (pct 1), in torch's float order."""
        return end + (begin - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    @staticmethod
    def annealing_linear(begin: float, end: float, pct: float) -> float:
        """A straight line from `begin` (pct 0) to `end` (pct 1)."""
        return (end - begin) * pct + begin

    def _anneal(self, pair: tuple[float, float], pct: float) -> float:
        if self.anneal == "cos":
            return self.annealing_cos(*pair, pct)
        return self.annealing_linear(*pair, pct)

    def _phase_at(self, step: int):
        if step > self.total_steps:
            raise ConfigError(
                f"{self.name}: tried to step {step} times, but total_steps is {self.total_steps}"
            )
        start = 0.0
        for index, (end, lrs, momenta) in enumerate(self.phases):
            if step <= end or index == len(self.phases) - 1:
                return (step - start) / (end - start), lrs, momenta
            start = end
        raise AssertionError("unreachable: the last phase always matches")

    def lr(self, step, base_lr):
        pct, lrs, _ = self._phase_at(step)
        return self._anneal(lrs, pct)

    def momentum(self, step):
        if not self.cycles_momentum:
            return None
        pct, _, momenta = self._phase_at(step)
        return self._anneal(momenta, pct)

    def start_lr(self, base_lr):
        return self.initial_lr

    def setup_group(self, group):
        group["initial_lr"] = self.initial_lr  # item by item: OneFlow's groups have no update()
        group["max_lr"] = self.max_lr
        group["min_lr"] = self.min_lr
