"""Losses read back in chunks, so a device can run ahead of the host.

Reading a step's loss as a Python float makes the host wait for the device
every step. The loop instead hands each step's loss (a float, or whatever the
backend's lazy step returned) to `LossReads`, which keeps the step pending and
reads a chunk of losses in one `Backend.read_losses` call: every `every` steps,
after `MAX_WAIT` seconds, and whenever the loop needs the values now (`read()`:
the end of an epoch, a checkpoint, ReduceLROnPlateau stepping on the train
loss). Records, callbacks, progress and the non-finite check then run in step
order with the same values: the trajectory does not depend on the chunk size,
only the moment it is written does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from dualtrain.errors import ConfigError
from dualtrain.progress import Progress
from dualtrain.trajectory import Trajectory

#: Read at least this often (seconds), so progress and a watched child's
#: heartbeat keep moving however slow the steps.
MAX_WAIT = 1.0


class LossReads:
    """Steps whose loss is not read yet, and what happens once it is."""

    def __init__(
        self,
        read_losses: Callable[[list[Any]], list[float]],
        trajectory: Trajectory,
        losses: list[float],
        progress: Progress,
        on_step: Callable[[dict[str, Any]], None] | None,
        every: int,
    ) -> None:
        """`read_losses`: the backend's; each read step is recorded in `trajectory`,
        shown to `on_step`, appended to `losses` (the epoch's) and to `progress`;
        `every`: the chunk size."""
        self.read_losses, self.trajectory, self.losses = read_losses, trajectory, losses
        self.progress, self.on_step, self.every = progress, on_step, every
        self.max_wait = MAX_WAIT
        #: (step, epoch, lrs, momenta, seconds) of each step not read yet, and its
        #: loss. The loop appends to both itself and calls `read` when `every` are
        #: pending or `read_by` has passed (a call a step costs it measurably).
        self.pending: list[tuple] = []
        self.unread: list[Any] = []
        #: perf_counter time by which the next read is due (MAX_WAIT after the last).
        self.read_by = time.perf_counter() + self.max_wait

    def read(self, now: float | None = None) -> None:
        """Read every pending loss now and record those steps, in order.

        Raises ConfigError at the first non-finite loss, naming its step; the
        steps before it are recorded, none after it.
        """
        self.read_by = (time.perf_counter() if now is None else now) + self.max_wait
        if not self.pending:
            return
        # Emptied in place: the loop holds their append methods.
        pending, unread = self.pending.copy(), self.unread.copy()
        self.pending.clear()
        self.unread.clear()
        values = self.read_losses(unread)
        # A finite sum means every loss is finite (an inf or nan makes it so); a sum
        # that overflows from finite losses is then looked through as well.
        good = len(values)
        if not math.isfinite(sum(values)):
            good = next((i for i, v in enumerate(values) if not math.isfinite(v)), good)
        if good:
            # Both lists are this chunk's own: the trajectory keeps them as they are.
            entries, read = (
                (pending, values) if good == len(values) else (pending[:good], values[:good])
            )
            self.trajectory.record_steps(entries, read)
            if self.on_step:
                for record in self.trajectory.steps[-good:]:
                    self.on_step(record)
            self.losses.extend(read)
            self.progress.update(read[-1], steps=good)
        if good < len(values):
            step, epoch = pending[good][:2]
            raise ConfigError(
                f"the loss at step {step} (epoch {epoch}) is {values[good]}: training "
                "stopped; checkpoints written before it are kept"
            )
