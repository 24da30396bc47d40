"""Replaying a run to a step, through the loop itself, and acting at that step.

Why a replay from the start rather than checkpoints written during the run: the
run keeps nothing per step (writing its state before every step would cost
every run, diagnosed or not), while an eager replay with the same seed, data
order and schedule is cheap for the few steps up to a divergence, and honest:
whatever a backend keeps between steps (a data loader's or an optimizer
wrapper's own counters, the dropout masks' step) is replayed by the same loop,
not rebuilt by the diagnosis. That it is exact is checked: the reference's
replayed losses must equal the run's own, bit for bit.

The loop calls the engine's backend as always, through `Intercept`, which hands
each step to `visit` with what it needs (the backend, model, optimizer, the
backend's own step function and the loop's batch) after the loop has set that
step's lrs, and ends the replay after the last step asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dualtrain.backend import Backend, get_backend
from dualtrain.data import Dataset
from dualtrain.loop import RunConfig, fit


@dataclass
class Live:
    """One step of a replay, handed to `visit` before it runs."""

    step: int
    backend: Backend
    net: Any
    optimizer: Any
    #: The backend's own eager step: zero grad, forward, loss, backward, update.
    run: Callable[[np.ndarray, np.ndarray], float]
    x: np.ndarray
    y: np.ndarray

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(parameters and buffers, optimizer state) as arrays, copied."""
        model = {k: np.array(v, copy=True) for k, v in self.backend.read_state(self.net).items()}
        opt = self.backend.optimizer_state(self.optimizer)
        return model, {k: np.array(v, copy=True) for k, v in opt.items()}

    def load(self, state: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], step: int) -> None:
        """Put `state` (the reference's, in any dtype) into this engine, as it was
        before `step` (what a model draws per step, its dropout masks, included)."""
        model, opt = state
        self.backend.load_state(self.net, model)
        self.backend.load_optimizer_state(self.optimizer, opt)
        self.backend.start_at(self.net, step)


class _Stop(Exception):
    """Ends a replay after its last step."""


class Intercept:
    """The engine's backend as the loop sees it, but for its eager step."""

    def __init__(self, backend: Backend, visit: Callable[[Live], float], last: int) -> None:
        self._inner, self._visit, self._last = backend, visit, last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def eager_step(self, net: Any, optimizer: Any):
        inner = self._inner.eager_step(net, optimizer)
        count = [0]

        def step(x: np.ndarray, y: np.ndarray) -> float:
            t = count[0]
            count[0] += 1
            loss = self._visit(Live(t, self._inner, net, optimizer, inner, x, y))
            if t >= self._last:
                raise _Stop
            return loss

        return step


def replay(
    config: RunConfig,
    model: Any,
    train: Dataset,
    val: Dataset | None,
    start: dict[str, np.ndarray],
    last: int,
    visit: Callable[[Live], float],
) -> None:
    """Run `config`'s engine (eager) from `start` through the loop, calling `visit`
    at each of steps 0 .. `last`; `visit` returns the loss the loop records."""
    backend = Intercept(get_backend(config.backend), visit, last)
    try:
        fit(config, model, train, val, weights=start, backend=backend)  # type: ignore[arg-type]
    except _Stop:
        return
