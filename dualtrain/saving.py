"""Where and how often a run writes its checkpoints: a user's `Saving` (every N steps
and at the end, the newest K kept, fsynced) and the one call that writes a checkpoint
to every saving due. `RecoverySaving` (dualtrain.recovery) is the other kind: by time,
for a crash-isolated child.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dualtrain.checkpoint import Checkpoint
from dualtrain.checkpoint import save as save_checkpoint
from dualtrain.errors import ConfigError


def positive(name: str, value: Any, allow_zero: bool = False) -> None:
    """Refuse `value` unless it is an int >= 1 (>= 0 with `allow_zero`); bools are no ints."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a non-negative int" if allow_zero else "a positive int"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")


@dataclass
class Saving:
    """Write a checkpoint into `folder` every `every` steps and at the end; keep `keep`."""

    folder: str
    every: int
    keep: int | None = None
    #: Written into each checkpoint as `run` (the command line's view of the run).
    run: dict[str, Any] = field(default_factory=dict)

    #: fsync each checkpoint, so it survives a crash of the machine.
    durable = True

    def __post_init__(self) -> None:
        positive("save_every", self.every)
        if self.keep is not None:
            positive("keep", self.keep)

    def due(self, step: int, last: bool) -> bool:
        """Whether a checkpoint is due after `step` (`last`: the run's end)."""
        return last or step % self.every == 0

    def saved(self, step: int, seconds: float) -> None:
        """Told what the checkpoint due at `step` cost (`RecoverySaving` uses it)."""


def write_checkpoints(due: list, checkpoint: Checkpoint, started: float) -> None:
    """`checkpoint` into each saving of `due`, then each told what it cost since `started`
    (a `time.perf_counter()` taken before the state was read out of the engine)."""
    for saving in due:
        checkpoint.run = saving.run
        save_checkpoint(saving.folder, checkpoint, saving.keep, durable=saving.durable)
    for saving in due:
        saving.saved(checkpoint.step, time.perf_counter() - started)
