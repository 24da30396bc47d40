"""Closed-form schedules: each one's lr as a pure function of step and base lr.

Every class has one shape: check the arguments in `__init__`, give the closed
form in `lr`, and, for PyTorch's chainable schedulers, the one-step update in
`chain_lr` that ChainedScheduler and SequentialLR compose through.
OneFlow flavours that differ subclass their PyTorch twin and override only what
differs (see docs/schedules.md for every difference, measured).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter

from dualtrain.schedules import checks
from dualtrain.schedules.base import Chainable, Schedule


class LambdaLR(Schedule):
    """lr = base_lr * lr_lambda(step)."""

    name = "LambdaLR"
    oneflow_composable = False
    per_group = ("lr_lambda",)

    def __init__(self, lr_lambda) -> None:
        self.lr_lambda = checks.function(self.name, "lr_lambda", lr_lambda)

    def lr(self, step: int, base_lr: float) -> float:
        return base_lr * self.lr_lambda(step)


class MultiplicativeLR(Chainable):
    """lr = base_lr * lr_lambda(1) * ... * lr_lambda(step), multiplied in that order;
    no closed form."""

    name = "MultiplicativeLR"
    native = ("torch",)
    per_group = ("lr_lambda",)

    def __init__(self, lr_lambda) -> None:
        self.lr_lambda = checks.function(self.name, "lr_lambda", lr_lambda)

    def chain_lr(self, prev, step, base_lr, initial):
        return prev if initial else prev * self.lr_lambda(step)


class StepLR(Chainable):
    """lr = base_lr * gamma ** (step // step_size)."""

    name = "StepLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = checks.integer(self.name, "step_size", step_size, minimum=1)
        self.gamma = checks.number(self.name, "gamma", gamma, low=0, low_open=True)

    def closed_form_lr(self, step, base_lr):
        return base_lr * self.gamma ** (step // self.step_size)

    def chain_lr(self, prev, step, base_lr, initial):
        return prev * self.gamma if step and step % self.step_size == 0 else prev


class OneFlowStepLR(StepLR):
    """OneFlow computes the closed form; torch folds the chainable one (last-bit differences)."""

    flavors = ("oneflow",)
    float_order_twin = True

    def lr(self, step, base_lr):
        return self.closed_form_lr(step, base_lr)


class MultiStepLR(Chainable):
    """lr = base_lr * gamma ** (milestones passed); torch counts a repeated one twice."""

    name = "MultiStepLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, milestones, gamma: float = 0.1) -> None:
        self.milestones = sorted(checks.int_list(self.name, "milestones", milestones))
        self.gamma = checks.number(self.name, "gamma", gamma, low=0, low_open=True)
        self._counts = Counter(self.milestones)

    def closed_form_lr(self, step, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, step)

    def chain_lr(self, prev, step, base_lr, initial):
        count = self._counts.get(step, 0)
        return prev * self.gamma**count if count else prev


class OneFlowMultiStepLR(MultiStepLR):
    """OneFlow refuses milestones that are not strictly increasing."""

    flavors = ("oneflow",)

    def __init__(self, milestones, gamma: float = 0.1) -> None:
        values = checks.int_list(self.name, "milestones", milestones)
        if any(b <= a for a, b in zip(values[:-1], values[1:], strict=True)):
            raise checks.fail(self.name, "milestones", "strictly increasing in OneFlow", values)
        super().__init__(values, gamma)

    def lr(self, step, base_lr):
        return self.closed_form_lr(step, base_lr)


class ConstantLR(Chainable):
    """lr = base_lr * factor before total_iters, base_lr after.

    torch: with total_iters=0 the factor stays forever (its chainable form never
    divides it back out); factor=0 with total_iters>0 divides by zero at
    total_iters, so it is refused here.
    """

    name = "ConstantLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, factor: float = 1.0 / 3, total_iters: int = 5) -> None:
        self.factor = checks.number(self.name, "factor", factor, low=0, high=1)
        self.total_iters = checks.integer(self.name, "total_iters", total_iters, minimum=0)
        self._check_zero_factor()

    def _check_zero_factor(self) -> None:
        if self.factor == 0 and self.total_iters > 0:
            raise checks.fail(
                self.name, "factor", "> 0 when total_iters > 0 (torch divides by it)", 0
            )

    def chain_lr(self, prev, step, base_lr, initial):
        if step == 0:
            return prev * self.factor
        if step != self.total_iters:
            return prev
        return prev * (1.0 / self.factor)

    def closed_form_lr(self, step, base_lr):
        # torch's order; with total_iters=0 it is the base (unlike the chainable form)
        return base_lr * (self.factor + (step >= self.total_iters) * (1 - self.factor))


class OneFlowConstantLR(ConstantLR):
    """OneFlow: total_iters=0 means no factor at all; factor=0 is allowed."""

    flavors = ("oneflow",)

    def _check_zero_factor(self) -> None:
        pass

    def lr(self, step, base_lr):
        return base_lr * self.factor if step < self.total_iters else base_lr


class LinearLR(Chainable):
    """lr ramps linearly from start_factor to end_factor x base_lr over total_iters."""

    name = "LinearLR"
    flavors = ("torch",)
    has_closed_form = True
    start_low_open = True  # torch refuses start_factor=0

    def __init__(
        self, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
    ) -> None:
        self.start_factor = checks.number(
            self.name, "start_factor", start_factor, low=0, high=1, low_open=self.start_low_open
        )
        self.end_factor = checks.number(self.name, "end_factor", end_factor, low=0, high=1)
        self.total_iters = checks.integer(self.name, "total_iters", total_iters, minimum=0)

    def chain_lr(self, prev, step, base_lr, initial):
        if step == 0:
            return prev * self.start_factor
        if initial or step > self.total_iters:
            return prev
        slope = self.end_factor - self.start_factor
        return prev * (1.0 + slope / (self.total_iters * self.start_factor + (step - 1) * slope))

    def closed_form_lr(self, step, base_lr):
        if self.total_iters == 0:  # torch divides by zero here; its steps keep start_factor
            return base_lr * self.start_factor
        ramp = (self.end_factor - self.start_factor) * min(self.total_iters, step)
        return base_lr * (self.start_factor + ramp / self.total_iters)


class OneFlowLinearLR(LinearLR):
    """OneFlow: start_factor=0 is allowed and total_iters=0 means end_factor at once."""

    flavors = ("oneflow",)
    start_low_open = False

    def lr(self, step, base_lr):
        if step < self.total_iters:
            ramp = (self.end_factor - self.start_factor) * (step / self.total_iters)
            return base_lr * (self.start_factor + ramp)
        return base_lr * self.end_factor


class ExponentialLR(Chainable):
    """lr = base_lr * gamma ** step."""

    name = "ExponentialLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, gamma: float) -> None:
        self.gamma = checks.number(self.name, "gamma", gamma, low=0, low_open=True)

    def closed_form_lr(self, step, base_lr):
        return base_lr * self.gamma**step

    def chain_lr(self, prev, step, base_lr, initial):
        return prev if initial else prev * self.gamma


class OneFlowExponentialLR(ExponentialLR):
    """OneFlow computes the closed form; torch folds the chainable one (last-bit differences)."""

    flavors = ("oneflow",)
    float_order_twin = True

    def lr(self, step, base_lr):
        return self.closed_form_lr(step, base_lr)


class PolynomialLR(Chainable):
    """torch: lr = base_lr * (1 - min(step, total_iters) / total_iters) ** power, to 0."""

    name = "PolynomialLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, total_iters: int = 5, power: float = 1.0) -> None:
        self.total_iters = checks.integer(self.name, "total_iters", total_iters, minimum=0)
        self.power = checks.number(self.name, "power", power, low=0)

    def closed_form_lr(self, step, base_lr):
        if self.total_iters == 0:  # torch divides by zero here; its steps leave the lr alone
            return base_lr
        return base_lr * (1.0 - min(self.total_iters, step) / self.total_iters) ** self.power

    def chain_lr(self, prev, step, base_lr, initial):
        if initial or step > self.total_iters:
            return prev
        ratio = (1.0 - step / self.total_iters) / (1.0 - (step - 1) / self.total_iters)
        return prev * ratio**self.power


class OneFlowPolynomialLR(Schedule):
    """OneFlow: decays to end_learning_rate, not 0; with cycle the horizon grows in
    multiples of decay_batch, and step 0 already counts as step 1."""

    name = "PolynomialLR"
    flavors = ("oneflow",)

    def __init__(
        self,
        decay_batch: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
    ) -> None:
        self.decay_batch = checks.integer(self.name, "decay_batch", decay_batch, minimum=1)
        self.end_learning_rate = checks.number(self.name, "end_learning_rate", end_learning_rate)
        self.power = checks.number(self.name, "power", power, low=0)
        self.cycle = checks.boolean(self.name, "cycle", cycle)

    def lr(self, step, base_lr):
        horizon = self.decay_batch
        if self.cycle:
            step = max(step, 1)
            horizon = horizon * math.ceil(step / horizon)
        else:
            step = min(step, horizon)
        factor = (1 - step / horizon) ** self.power
        return (base_lr - self.end_learning_rate) * factor + self.end_learning_rate


class CosineAnnealingLR(Chainable):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2.

    Past T_max both frameworks keep following the cosine: the lr climbs back
    to base_lr at 2 * T_max, and so on.
    """

    name = "CosineAnnealingLR"
    flavors = ("torch",)
    has_closed_form = True

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = checks.integer(self.name, "T_max", T_max, minimum=1)
        self.eta_min = checks.number(self.name, "eta_min", eta_min)

    def closed_form_lr(self, step, base_lr):
        cosine = 1 + math.cos(math.pi * step / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * cosine / 2

    def chain_lr(self, prev, step, base_lr, initial):
        if initial:
            return prev
        if (step - 1 - self.T_max) % (2 * self.T_max) == 0:
            return prev + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        ratio = (1 + math.cos(math.pi * step / self.T_max)) / (
            1 + math.cos(math.pi * (step - 1) / self.T_max)
        )
        return ratio * (prev - self.eta_min) + self.eta_min


class OneFlowCosineAnnealingLR(CosineAnnealingLR):
    """OneFlow computes the closed form; torch folds the chainable one (last-bit differences)."""

    flavors = ("oneflow",)
    float_order_twin = True

    def lr(self, step, base_lr):
        return self.closed_form_lr(step, base_lr)


class CosineAnnealingWarmRestarts(Schedule):
    """Cosine from base_lr to eta_min over T_0 steps, restarting; period x T_mult each time."""

    name = "CosineAnnealingWarmRestarts"
    flavors = ("torch",)

    def __init__(self, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> None:
        self.T_0 = checks.integer(self.name, "T_0", T_0, minimum=1)
        self.T_mult = checks.integer(self.name, "T_mult", T_mult, minimum=1)
        self.eta_min = checks.number(self.name, "eta_min", eta_min)

    def cycle_position(self, step: int) -> tuple[int, int, int]:
        """(restarts so far, step within the cycle, cycle length), in exact integers."""
        restarts, length = 0, self.T_0
        if self.T_mult == 1:
            return step // length, step % length, length
        while step >= length:
            step, length, restarts = step - length, length * self.T_mult, restarts + 1
        return restarts, step, length

    def lr(self, step, base_lr):
        _, t_cur, t_i = self.cycle_position(step)
        return self.cosine(t_cur, t_i, base_lr)

    def cosine(self, t_cur: float, t_i: float, base_lr: float) -> float:
        """The lr `t_cur` steps into a cycle of `t_i` steps (torch's get_lr)."""
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    def advance(self, t_cur: float, t_i: float) -> tuple[float, float]:
        """(T_cur, T_i) one step on, as torch's `step()` moves them."""
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = t_cur % t_i, t_i * self.T_mult
        return t_cur, t_i

    def position_at(self, epoch: float) -> tuple[float, float]:
        """(T_cur, T_i) at a possibly fractional `epoch`, as torch's `step(epoch)` finds them."""
        if epoch < self.T_0:
            return epoch, self.T_0
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        m = self.T_mult
        n = int(math.log(epoch / self.T_0 * (m - 1) + 1, m))
        return epoch - self.T_0 * (m**n - 1) / (m - 1), self.T_0 * m**n


class OneFlowCosineAnnealingWarmRestarts(CosineAnnealingWarmRestarts):
    """OneFlow adds decay_rate (base_lr x decay_rate ** restarts) and restart_limit
    (eta_min for good after that many cycles; 0 = no limit). It finds the cycle
    with a floating-point log when T_mult > 1, reproduced here as it computes it."""

    flavors = ("oneflow",)

    def __init__(
        self,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        decay_rate: float = 1.0,
        restart_limit: int = 0,
    ) -> None:
        super().__init__(T_0, T_mult, eta_min)
        self.decay_rate = checks.number(self.name, "decay_rate", decay_rate, low=0)
        self.restart_limit = checks.integer(self.name, "restart_limit", restart_limit, minimum=0)

    def cycle_position(self, step):
        if self.T_mult == 1:
            return super().cycle_position(step)
        m, t0 = self.T_mult, self.T_0
        restarts = math.floor(math.log(1 - step / t0 * (1 - m), m))
        return restarts, step - (1 - m**restarts) / (1 - m) * t0, m**restarts * t0

    def lr(self, step, base_lr):
        restarts, t_cur, t_i = self.cycle_position(step)
        if self.restart_limit and restarts >= self.restart_limit:
            return self.eta_min
        cosine = 0.5 * (1 + math.cos(math.pi * t_cur / t_i))
        return self.eta_min + (base_lr * self.decay_rate**restarts - self.eta_min) * cosine


class CosineDecayLR(Schedule):
    """OneFlow: lr = base_lr * ((1 - alpha) * (1 + cos(pi * step / decay_steps)) / 2 + alpha),
    then base_lr * alpha from decay_steps on."""

    name = "CosineDecayLR"
    native = ("oneflow",)

    def __init__(self, decay_steps: int, alpha: float = 0.0) -> None:
        self.decay_steps = checks.integer(self.name, "decay_steps", decay_steps, minimum=1)
        self.alpha = checks.number(self.name, "alpha", alpha)

    def lr(self, step, base_lr):
        if step >= self.decay_steps:
            return base_lr * self.alpha
        cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
        return base_lr * ((1 - self.alpha) * cosine + self.alpha)
