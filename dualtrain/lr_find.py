"""The LR range test (Smith, 2015; fastai's lr_find): ramp the lr, watch the loss.

One batch a step, the lr rising exponentially (or linearly) from `min_lr` to
`max_lr` over `steps`; the loss is smoothed with a bias-corrected moving
average and the test stops early once the smoothed loss exceeds `diverge`
times its minimum. It trains a fresh copy of the model from the given
weights: the caller's weights are never touched.

Suggestions, each with its rule:
- steepest: the lr where the smoothed loss falls fastest against log(lr)
  (after the first tenth of the steps, while the average settles);
- minimum / 10: a tenth of the lr at the smoothed loss's minimum;
- valley: fastai's rule: the longest stretch where the loss keeps falling,
  and a point two thirds of the way down it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from dualtrain.backend import LrPlan, get_backend
from dualtrain.data import Dataset, batch_indices
from dualtrain.errors import ConfigError
from dualtrain.isolation import run_in_child
from dualtrain.loop import RunConfig, _refuse_what_cannot_run, graph_step, model_and_optimizer
from dualtrain.model import ModelSpec

RULES = {
    "steepest": "the lr where the smoothed loss falls fastest against log(lr)",
    "minimum/10": "a tenth of the lr at the smoothed loss's minimum",
    "valley": "the longest run of falling loss, two thirds of the way down (fastai's valley)",
}


@dataclass
class RangeTest:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped_early: bool
    suggestions: dict[str, float] = field(default_factory=dict)


def ramp(min_lr: float, max_lr: float, steps: int, shape: str = "exp") -> list[float]:
    """The lr at each step, from `min_lr` to `max_lr` inclusive.

    Example:
        >>> [round(lr, 9) for lr in ramp(0.001, 0.1, 3)]
        [0.001, 0.01, 0.1]
    """
    if not (0 < min_lr < max_lr) or not math.isfinite(max_lr):
        raise ConfigError(f"lr-find needs 0 < min_lr < max_lr, got {min_lr!r} and {max_lr!r}")
    if not isinstance(steps, int) or steps < 3:
        raise ConfigError(f"lr-find needs steps >= 3, got {steps!r}")
    if shape not in ("exp", "linear"):
        raise ConfigError(f"lr-find ramp must be exp or linear, got {shape!r}")
    t = np.arange(steps) / (steps - 1)
    values = min_lr * (max_lr / min_lr) ** t if shape == "exp" else min_lr + (max_lr - min_lr) * t
    out = [float(v) for v in values]
    out[-1] = float(max_lr)  # exactly the end, not its rounding
    return out


def lr_find(
    config: RunConfig,
    model: ModelSpec,
    train: Dataset,
    weights: dict[str, np.ndarray] | None = None,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
    shape: str = "exp",
    smooth: float = 0.98,
    diverge: float = 4.0,
    isolate: bool = True,
) -> RangeTest:
    """Run the range test on `config`'s engine; the weights passed in stay as they were.

    A graph of a backend that isolates its graphs runs in a watched child process.
    """
    backend = get_backend(config.backend)
    if isolate and config.mode == "graph" and backend.isolate_graph:
        job = functools.partial(
            _in_child, config, model, train, weights, min_lr, max_lr, steps, shape, smooth,
            diverge,
        )  # fmt: skip
        test, _ = run_in_child(job, f"{config.engine} lr-find", cpus=backend.graph_child_cpus)
        return test
    if not 0 <= smooth < 1:
        raise ConfigError(f"lr-find smoothing must be in [0, 1), got {smooth!r}")
    if not diverge > 1:
        raise ConfigError(f"lr-find divergence factor must be > 1, got {diverge!r}")
    lrs = ramp(min_lr, max_lr, steps, shape)
    _refuse_what_cannot_run(config, model, train, None, backend)
    net, optimizer = model_and_optimizer(backend, config, model, weights)
    n_groups = len(optimizer.param_groups)
    if config.mode == "graph":
        plan = LrPlan(steps, n_groups, lambda step: [lrs[step]] * n_groups, False, "lr-find")
        step_fn = graph_step(config, backend, net, optimizer, train, plan)
    else:
        step_fn = backend.eager_step(net, optimizer)
    with backend.running():
        losses, smoothed = _ramp_up(
            config, train, lrs, backend, optimizer, step_fn, smooth, diverge
        )
    test = RangeTest(lrs[: len(losses)], losses, smoothed, len(losses) < steps)
    test.suggestions = suggest(test.lrs, test.smoothed)
    return test


def _ramp_up(config, train, lrs, backend, optimizer, step_fn, smooth, diverge):
    """(losses, smoothed losses) of the steps taken before the loss diverged."""
    n_groups = len(optimizer.param_groups)
    losses, smoothed, average, best = [], [], 0.0, math.inf
    for step, index in enumerate(_batches(config, train, len(lrs))):
        backend.set_hyperparams(optimizer, [lrs[step]] * n_groups, None)
        loss = step_fn(train.x[index], train.y[index])
        losses.append(loss)
        average = smooth * average + (1 - smooth) * loss
        smoothed.append(average / (1 - smooth ** (step + 1)))
        if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * best:
            break
        best = min(best, smoothed[-1])
    return losses, smoothed


def _in_child(config, model, train, weights, *settings_and_heartbeat):
    *settings, _heartbeat = settings_and_heartbeat
    return lr_find(config, model, train, weights, *settings, isolate=False)


def _batches(config: RunConfig, train: Dataset, steps: int) -> list[np.ndarray]:
    """`steps` batches in the loop's order, epoch after epoch."""
    out: list[np.ndarray] = []
    epoch = 0
    while len(out) < steps:
        out += batch_indices(
            len(train), config.batch_size, epoch, config.seed, config.shuffle, config.drop_last
        )
        epoch += 1
    return out[:steps]


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """The three suggestions (see the module's docstring), from finite points only."""
    points = [(lr, loss) for lr, loss in zip(lrs, smoothed, strict=True) if math.isfinite(loss)]
    if len(points) < 3:
        raise ConfigError(f"lr-find: the loss diverged after {len(points)} steps; lower --min-lr")
    lr, loss = (np.array(v) for v in zip(*points, strict=True))
    slope = np.gradient(loss, np.log10(lr))
    # The moving average still leans on its first few losses: skip a tenth.
    settled = max(1, len(lr) // 10)
    return {
        "steepest": float(lr[settled + int(np.argmin(slope[settled:]))]),
        "minimum/10": float(lr[int(np.argmin(loss))] / 10),
        "valley": float(lr[_valley(list(loss))]),
    }


def _valley(losses: list[float]) -> int:
    """fastai's valley: the longest decreasing subsequence; 2/3 of the way down it."""
    n = len(losses)
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end = i
            start = end - longest[end]
    third = (end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))
