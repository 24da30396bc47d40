"""A learning-rate sweep: the same training at several lrs, on one or more engines.

Every run starts from the same weights and sees the same batches; only the lr
of the default param group (and of the schedule's base) changes. The result
ranks the lrs by the final validation loss (train loss without a validation
split), per engine, and says whether every engine ranks them alike: a user
porting to OneFlow wants the same conclusion on both frameworks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dualtrain.comparison import ATOL, RTOL, EngineResult, _engine_config, _judge, engines
from dualtrain.data import Dataset
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.loop import Run, RunConfig, train_engine, with_overrides
from dualtrain.model import ModelSpec, init_weights


@dataclass
class SweepRun:
    engine: str
    lr: float
    run: Run

    @property
    def final_train_loss(self) -> float:
        epochs = self.run.trajectory.epochs
        return epochs[-1]["train_loss"] if epochs else math.nan

    @property
    def final_val_loss(self) -> float | None:
        return self.run.trajectory.final_val_loss

    @property
    def score(self) -> float:
        """What the ranking uses: final validation loss, else final train loss."""
        value = self.final_val_loss
        value = self.final_train_loss if value is None else value
        return value if math.isfinite(value) else math.inf

    @property
    def best_epoch(self) -> int:
        epochs = self.run.trajectory.epochs
        key = "val_loss" if epochs and epochs[0]["val_loss"] is not None else "train_loss"
        values = [e[key] if math.isfinite(e[key]) else math.inf for e in epochs]
        return int(np.argmin(values)) if values else -1


@dataclass
class Sweep:
    lrs: list[float]
    runs: list[SweepRun]
    skipped: dict[str, str] = field(default_factory=dict)

    def engines(self) -> list[str]:
        return list(dict.fromkeys(r.engine for r in self.runs))

    def ranking(self, engine: str) -> list[float]:
        """The lrs of `engine`, best first."""
        runs = [r for r in self.runs if r.engine == engine]
        return [r.lr for r in sorted(runs, key=lambda r: (r.score, r.lr))]

    def best_lr(self, engine: str | None = None) -> float:
        return self.ranking(engine or self.engines()[0])[0]

    @property
    def rankings_agree(self) -> bool:
        orders = {tuple(self.ranking(e)) for e in self.engines()}
        return len(orders) == 1


def parse_lrs(text: str) -> list[float]:
    """`--lrs 0.03,0.01` as floats, each positive and finite, no repeats."""
    try:
        lrs = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--lrs expects comma-separated numbers, got {text!r}") from None
    if not lrs or not all(math.isfinite(v) and v > 0 for v in lrs) or len(set(lrs)) != len(lrs):
        raise ConfigError(f"--lrs expects distinct positive numbers, got {text!r}")
    return lrs


def sweep(
    config: RunConfig,
    model: ModelSpec,
    train: Dataset,
    val: Dataset | None,
    lrs: list[float],
    backends: list[str],
    modes: list[str],
    weights: dict[str, np.ndarray] | None = None,
) -> Sweep:
    """One run per lr and engine, all from the same initial weights."""
    if not lrs:
        raise ConfigError("a sweep needs at least one lr")
    start = init_weights(model, config.seed)
    start.update({k: np.asarray(v) for k, v in (weights or {}).items()})
    runs, skipped = [], {}
    for backend, mode, skip in engines(backends, modes):
        engine_config, _ = _engine_config(config, backend, mode)
        if skip:
            skipped[engine_config.engine] = skip
            continue
        try:
            for lr in lrs:
                run = train_engine(with_overrides(engine_config, lr=lr), model, train, val, start)
                runs.append(SweepRun(engine_config.engine, lr, run))
        except CapabilityError as exc:
            skipped[engine_config.engine] = str(exc)
            runs = [r for r in runs if r.engine != engine_config.engine]
    if not runs:
        raise ConfigError(f"no engine could run the sweep: {skipped}")
    return Sweep(list(lrs), runs, skipped)


def judged(
    result: Sweep, rtol: float = RTOL, atol: float = ATOL
) -> dict[float, list[EngineResult]]:
    """Per lr, every engine's run judged against the first engine's run at that lr
    by the comparison's own rule (`comparison._judge`: per-step losses and final
    parameters within rtol / atol, identical lrs). The sweep trains no extra run
    in a lower precision, so a float32 engine gets no drift floor here.

    Returns:
        {lr: [reference EngineResult, then the others, judged]}.
    """
    out = {}
    for lr in result.lrs:
        runs = [EngineResult(r.engine, run=r.run) for r in result.runs if r.lr == lr]
        for other in runs[1:]:
            _judge(runs[0], other, rtol, atol)
        out[lr] = runs
    return out


def engines_agree(verdicts: dict[float, list[EngineResult]]) -> bool:
    """Whether every engine passed against the first at every lr."""
    return all(r.passed for results in verdicts.values() for r in results[1:])
