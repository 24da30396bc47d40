"""Schedules from recent practice that neither torch nor OneFlow ships.

Warmup-stable-decay (MiniCPM), Hugging Face's cosine with a floor, timm's cosine
with restarts and its seeded lr noise, fairseq's inverse square root, and a
warmup in front of any schedule. Each is one behaviour offered in both
flavours; see docs/modern_schedules.md for every formula and its source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from dualtrain.schedules import checks
from dualtrain.schedules.base import Schedule

NEITHER: tuple[str, ...] = ()  # no framework ships these names


def _length(owner: str, name: str, value, total_steps: int | None) -> int:
    """A phase length: an int number of steps, or a float in (0, 1) of total_steps."""
    if checks.is_int(value) and value >= 0:
        return value
    if isinstance(value, float) and 0 < value < 1:
        if total_steps is None:
            raise checks.fail(owner, name, "an int when total_steps is not given", value)
        return int(value * total_steps)  # floor, so the phases never outgrow total_steps
    raise checks.fail(owner, name, "a non-negative int or a float in (0, 1)", value)


def _ramp(step: int, steps: int, start_factor: float) -> float:
    """The linear warmup factor: start_factor at step 0, 1 at `steps`."""
    return start_factor + (1.0 - start_factor) * step / steps


def _cosine(progress: float) -> float:
    """1 at progress 0, 0 at progress 1."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _wrapped(owner: str, scheduler) -> Schedule:
    """The wrapped schedule; a {name, kwargs[, flavor]} config is built for one group."""
    if isinstance(scheduler, Mapping) and "name" in scheduler:
        from dualtrain.schedules import build_schedule

        built = build_schedule(
            scheduler["name"], scheduler.get("flavor", "torch"), scheduler.get("kwargs"), 1
        )
        if isinstance(built, list):
            return built[0]
    if not isinstance(scheduler, Schedule):
        raise checks.fail(owner, "scheduler", "a schedule config {name, kwargs}", scheduler)
    return scheduler


class WarmupStableDecayLR(Schedule):
    """WSD: linear warmup, constant, then decay to min_lr_ratio * base (Hu et al. 2024)."""

    name = "WarmupStableDecayLR"
    native = NEITHER
    SHAPES = {"linear": lambda p: 1.0 - p, "cosine": _cosine, "1-sqrt": lambda p: 1 - math.sqrt(p)}

    def __init__(
        self,
        warmup_steps: int | float = 0,
        stable_steps: int | float | None = None,
        decay_steps: int | float = 0.1,
        total_steps: int | None = None,
        warmup_start_factor: float = 0.0,
        min_lr_ratio: float = 0.0,
        decay: str = "linear",
    ) -> None:
        owner = self.name
        if total_steps is not None:
            total_steps = checks.integer(owner, "total_steps", total_steps, minimum=1)
        self.warmup_steps = _length(owner, "warmup_steps", warmup_steps, total_steps)
        self.decay_steps = _length(owner, "decay_steps", decay_steps, total_steps)
        if stable_steps is None:
            if total_steps is None:
                raise checks.fail(owner, "stable_steps", "given when total_steps is not", None)
            stable_steps = total_steps - self.warmup_steps - self.decay_steps
        self.stable_steps = _length(owner, "stable_steps", stable_steps, total_steps)
        phases = self.warmup_steps + self.stable_steps + self.decay_steps
        if total_steps is not None and phases > total_steps:
            raise checks.fail(owner, "total_steps", f">= the phases' sum {phases}", total_steps)
        self.warmup_start_factor = checks.number(
            owner, "warmup_start_factor", warmup_start_factor, low=0, high=1
        )
        self.min_lr_ratio = checks.number(owner, "min_lr_ratio", min_lr_ratio, low=0, high=1)
        self.decay = checks.choice(owner, "decay", decay, tuple(self.SHAPES))

    def lr(self, step, base_lr):
        if step < self.warmup_steps:
            return base_lr * _ramp(step, self.warmup_steps, self.warmup_start_factor)
        into_decay = step - self.warmup_steps - self.stable_steps
        if into_decay < 0:
            return base_lr
        progress = min(1.0, into_decay / self.decay_steps) if self.decay_steps else 1.0
        floor = self.min_lr_ratio
        return base_lr * (floor + (1.0 - floor) * self.SHAPES[self.decay](progress))


class CosineWithMinLR(Schedule):
    """Hugging Face's cosine with a floor and warmup; stays at the floor after total_steps."""

    name = "CosineWithMinLR"
    native = NEITHER
    per_group = ("min_lr",)

    def __init__(
        self,
        total_steps: int,
        warmup_steps: int = 0,
        min_lr: float | None = None,
        min_lr_ratio: float | None = None,
        warmup_start_factor: float = 0.0,
    ) -> None:
        owner = self.name
        self.total_steps = checks.integer(owner, "total_steps", total_steps, minimum=1)
        self.warmup_steps = checks.integer(owner, "warmup_steps", warmup_steps, minimum=0)
        if self.warmup_steps >= self.total_steps:
            raise checks.fail(owner, "warmup_steps", f"< total_steps ({total_steps})", warmup_steps)
        if (min_lr is None) == (min_lr_ratio is None):
            raise checks.fail(owner, "min_lr", "given exactly when min_lr_ratio is not", min_lr)
        if min_lr is not None:
            self.min_lr = checks.number(owner, "min_lr", min_lr, low=0)
        else:
            self.min_lr_ratio = checks.number(owner, "min_lr_ratio", min_lr_ratio, low=0, high=1)
        self.absolute = min_lr is not None
        self.warmup_start_factor = checks.number(
            owner, "warmup_start_factor", warmup_start_factor, low=0, high=1
        )

    def lr(self, step, base_lr):
        if step < self.warmup_steps:
            return base_lr * _ramp(step, self.warmup_steps, self.warmup_start_factor)
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        if self.absolute:
            return self.min_lr + (base_lr - self.min_lr) * _cosine(progress)
        return base_lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * _cosine(progress))


class CosineRestartsLR(Schedule):
    """timm 0.9's CosineLRScheduler._get_lr, the step as its counter t."""

    name = "CosineRestartsLR"
    native = NEITHER

    def __init__(
        self,
        t_initial: int,
        lr_min: float = 0.0,
        cycle_mul: float = 1.0,
        cycle_decay: float = 1.0,
        cycle_limit: int = 1,
        warmup_t: int = 0,
        warmup_lr_init: float = 0.0,
        warmup_prefix: bool = False,
        k_decay: float = 1.0,
    ) -> None:
        owner = self.name
        self.t_initial = checks.integer(owner, "t_initial", t_initial, minimum=1)
        self.lr_min = checks.number(owner, "lr_min", lr_min, low=0)
        # timm takes any cycle_mul, but below 1 math.log fails once the cycles run out.
        self.cycle_mul = checks.number(owner, "cycle_mul", cycle_mul, low=1)
        self.cycle_decay = checks.number(owner, "cycle_decay", cycle_decay, low=0)
        self.cycle_limit = checks.integer(owner, "cycle_limit", cycle_limit, minimum=1)
        self.warmup_t = checks.integer(owner, "warmup_t", warmup_t, minimum=0)
        self.warmup_lr_init = checks.number(owner, "warmup_lr_init", warmup_lr_init, low=0)
        self.warmup_prefix = checks.boolean(owner, "warmup_prefix", warmup_prefix)
        self.k_decay = checks.number(owner, "k_decay", k_decay, low=0, low_open=True)

    def lr(self, step, base_lr):
        t, mul, t0 = step, self.cycle_mul, self.t_initial
        if t < self.warmup_t:
            return self.warmup_lr_init + t * (base_lr - self.warmup_lr_init) / self.warmup_t
        if self.warmup_prefix:
            t = t - self.warmup_t
        if mul != 1:  # timm's exact float arithmetic, boundaries included
            i = math.floor(math.log(1 - t / t0 * (1 - mul), mul))
            t_i = mul**i * t0
            t_curr = t - (1 - mul**i) / (1 - mul) * t0
        else:
            i, t_i = t // t0, t0
            t_curr = t - (t0 * i)
        if i >= self.cycle_limit:
            return self.lr_min
        lr_max, k = base_lr * self.cycle_decay**i, self.k_decay
        return self.lr_min + 0.5 * (lr_max - self.lr_min) * (
            1 + math.cos(math.pi * t_curr**k / t_i**k)
        )


class InverseSqrtLR(Schedule):
    """fairseq's inverse_sqrt: linear warmup, then base * sqrt(warmup_updates / step)."""

    name = "InverseSqrtLR"
    native = NEITHER
    per_group = ("warmup_init_lr",)

    def __init__(self, warmup_updates: int, warmup_init_lr: float = 0.0) -> None:
        owner = self.name
        self.warmup_updates = checks.integer(owner, "warmup_updates", warmup_updates, minimum=1)
        self.warmup_init_lr = checks.number(owner, "warmup_init_lr", warmup_init_lr, low=0)

    def lr(self, step, base_lr):
        if step < self.warmup_updates:
            lr_step = (base_lr - self.warmup_init_lr) / self.warmup_updates
            return self.warmup_init_lr + step * lr_step
        return base_lr * self.warmup_updates**0.5 * step**-0.5


class _Wrapper(Schedule):
    """A schedule around `self.scheduler`, which keeps its own momentum and group setup."""

    scheduler: Schedule

    @property
    def cycles_momentum(self) -> bool:  # type: ignore[override]
        return self.scheduler.cycles_momentum

    def momentum(self, step):
        return self.scheduler.momentum(step)

    def start_lr(self, base_lr):
        return self.scheduler.start_lr(base_lr)

    def check_bases(self, base_lrs):
        self.scheduler.check_bases(base_lrs)

    def setup_group(self, group):
        self.scheduler.setup_group(group)


class NoisyLR(_Wrapper):
    """timm's lr noise on any schedule: lr * (1 + noise), seeded by (noise_seed, step)."""

    name = "NoisyLR"
    native = NEITHER

    def __init__(
        self,
        scheduler,
        noise_range: int | list[int] | None = None,
        noise_pct: float = 0.67,
        noise_std: float = 1.0,
        noise_seed: int = 42,
        noise_type: str = "normal",
    ) -> None:
        owner = self.name
        self.scheduler = _wrapped(owner, scheduler)
        if checks.is_int(noise_range) and noise_range >= 0:
            noise_range = [noise_range, math.inf]
        elif noise_range is not None:
            noise_range = checks.int_list(owner, "noise_range", noise_range)
            if len(noise_range) != 2 or noise_range[0] > noise_range[1]:
                raise checks.fail(owner, "noise_range", "a step or [start, end) steps", noise_range)
        self.noise_range = noise_range
        self.noise_pct = checks.number(owner, "noise_pct", noise_pct, low=0, low_open=True)
        self.noise_std = checks.number(owner, "noise_std", noise_std, low=0, low_open=True)
        self.noise_seed = checks.integer(owner, "noise_seed", noise_seed, minimum=0)
        self.noise_type = checks.choice(owner, "noise_type", noise_type, ("normal", "uniform"))
        if noise_type == "normal" and self.noise_pct < 0.05 * self.noise_std:
            # timm redraws until |noise| < noise_pct; this keeps the redraws few.
            raise checks.fail(owner, "noise_pct", ">= 0.05 * noise_std", noise_pct)

    def noise(self, step: int) -> float:
        """The relative noise at `step`: a pure function of (noise_seed, step)."""
        rng = np.random.default_rng([self.noise_seed, step])
        if self.noise_type == "uniform":
            return 2.0 * (float(rng.random()) - 0.5) * self.noise_pct
        while True:
            draws = self.noise_std * rng.standard_normal(16)
            kept = draws[np.abs(draws) < self.noise_pct]
            if kept.size:
                return float(kept[0])

    def lr(self, step, base_lr):
        lr = self.scheduler.lr(step, base_lr)
        if self.noise_range and self.noise_range[0] <= step < self.noise_range[1]:
            return lr + lr * self.noise(step)
        return lr


class LinearWarmupLR(_Wrapper):
    """A warmup in front of `scheduler`, which then starts at its own step 0."""

    name = "LinearWarmupLR"
    native = NEITHER

    def __init__(
        self,
        scheduler,
        warmup_steps: int = 5,
        warmup_start_factor: float = 0.0,
        warmup_method: str = "linear",
    ) -> None:
        owner = self.name
        self.scheduler = _wrapped(owner, scheduler)
        self.warmup_steps = checks.integer(owner, "warmup_steps", warmup_steps, minimum=0)
        self.warmup_start_factor = checks.number(
            owner, "warmup_start_factor", warmup_start_factor, low=0, high=1
        )
        self.warmup_method = checks.choice(
            owner, "warmup_method", warmup_method, ("linear", "constant")
        )

    def lr(self, step, base_lr):
        if step >= self.warmup_steps:
            return self.scheduler.lr(step - self.warmup_steps, base_lr)
        target = self.scheduler.lr(0, base_lr)
        if self.warmup_method == "constant":
            return target * self.warmup_start_factor
        return target * _ramp(step, self.warmup_steps, self.warmup_start_factor)

    def momentum(self, step):
        return self.scheduler.momentum(max(0, step - self.warmup_steps))
