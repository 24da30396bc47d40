"""Losses read back in chunks, so a device can run ahead of the host.

Reading a step's loss as a Python float makes the host wait for the device
every step. The loop instead hands each step's loss (a float, or whatever the
backend's lazy step returned) to `LossReads`, which keeps the step's record
pending and reads a chunk of losses in one `Backend.read_losses` call: every
`every` steps, after `max_wait` seconds, and whenever the loop needs the value
now (`read()`: the end of an epoch, a checkpoint, ReduceLROnPlateau stepping on
the train loss). Records, callbacks, progress and the non-finite check then run
in step order with the same values: the trajectory does not depend on the
chunk size, only the moment it is written does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from dualtrain.errors import ConfigError

#: Read at least this often (seconds), so progress and a watched child's
#: heartbeat keep moving however slow the steps.
MAX_WAIT = 1.0


class LossReads:
    """Steps whose loss is not read yet, and what happens once it is."""

    def __init__(
        self,
        read_losses: Callable[[list[Any]], list[float]],
        record: Callable[..., None],
        after: Callable[[float], None],
        every: int,
        max_wait: float | None = None,
    ) -> None:
        """`read_losses`: the backend's; `record(step, epoch, lrs, momenta, loss,
        seconds)` writes one step; `after(loss)` is called after each record;
        `every`: the chunk size."""
        self.read_losses, self.record, self.after = read_losses, record, after
        self.every = every
        self.max_wait = MAX_WAIT if max_wait is None else max_wait
        self.pending: list[tuple] = []
        self.last_read = time.perf_counter()

    def add(self, step: int, epoch: int, lrs, momenta, loss: Any, seconds: float) -> None:
        """One more step; read the chunk when it is full or has waited long enough."""
        self.pending.append((step, epoch, lrs, momenta, loss, seconds))
        if len(self.pending) >= self.every or time.perf_counter() - self.last_read > self.max_wait:
            self.read()

    def read(self) -> None:
        """Read every pending loss now and record those steps, in order.

        Raises ConfigError at the first non-finite loss, naming its step; the
        steps before it are recorded, none after it.
        """
        self.last_read = time.perf_counter()
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        values = self.read_losses([entry[4] for entry in pending])
        for (step, epoch, lrs, momenta, _, seconds), loss in zip(pending, values, strict=True):
            if not math.isfinite(loss):
                raise ConfigError(
                    f"the loss at step {step} (epoch {epoch}) is {loss}: training stopped; "
                    "checkpoints written before it are kept"
                )
            self.record(step, epoch, lrs, momenta, loss, seconds)
            self.after(loss)
