"""How often a crash-isolated run writes the private checkpoints a retry goes on from.

A checkpoint costs C seconds (reading the state out of the engine, then
writing it with the trajectory so far, which grows with the run: measured
6 ms at 100 steps to 117 ms at 10000, without fsync). A crash loses the work
since the newest checkpoint, T/2 on average for checkpoints T seconds apart.
With crashes arriving at a rate of `lam` a second, the time lost per second of
training is C/T + lam*T/2, smallest at T = sqrt(2*C/lam) (Young's rule for
checkpoint intervals). `lam` is the measured crash rate per step divided by
the run's own step time, so a run of slow steps checkpoints less often in steps
and a run whose checkpoints grow dear spaces them out. Both C and the step
time are measured as the run goes. The numbers are in docs/oneflow.md.

These checkpoints live in a temporary folder that only outlives a crash of
the child process, never one of the machine (the parent, which owns the
folder, would be gone too), so they skip the fsyncs that a user's checkpoints
need: the page cache survives a killed process.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

#: What the first checkpoint is assumed to cost before one has been measured.
FIRST_COST_SECONDS = 0.01
#: Never longer than this between checkpoints, whatever the rule says.
MAX_SECONDS = 60.0


def interval_seconds(cost: float, step_seconds: float, crashes_per_step: float) -> float:
    """Seconds between checkpoints that lose the least time to checkpoints and crashes.

    Example:
        >>> round(interval_seconds(0.01, 0.001, 5e-4), 3)  # 10 ms checkpoints, 1 ms steps
        0.2
    """
    if crashes_per_step <= 0:
        return MAX_SECONDS
    crashes_per_second = crashes_per_step / max(step_seconds, 1e-9)
    return min(MAX_SECONDS, math.sqrt(2 * cost / crashes_per_second))


@dataclass
class RecoverySaving:
    """A `Saving` for the loop whose checkpoints come by time, as `interval_seconds` says."""

    folder: str
    keep: int = 1
    #: The backend's `graph_crashes_per_step`.
    crashes_per_step: float = 0.0
    run: dict[str, Any] = field(default_factory=dict)
    #: No fsync: see the module's docstring.
    durable = False

    def __post_init__(self) -> None:
        self.cost = FIRST_COST_SECONDS
        self.since: tuple[int, float] | None = None  # (step, time) of the last checkpoint

    def due(self, step: int, last: bool) -> bool:
        """Whether to write one after `step`; never at the end (the result follows)."""
        now = time.perf_counter()
        if last:
            return False
        if self.since is None or step <= self.since[0]:
            self.since = (step, now)  # the first step seen: the clock starts here
            return False
        done, elapsed = step - self.since[0], now - self.since[1]
        return elapsed >= interval_seconds(self.cost, elapsed / done, self.crashes_per_step)

    def saved(self, step: int, seconds: float) -> None:
        """The checkpoint due at `step` took `seconds` to write."""
        self.cost = seconds
        self.since = (step, time.perf_counter())
