"""What a run records: per training step and per epoch, saved as CSV and JSON.

Per step: step, epoch, the lr of every group, momentum of every group when
the schedule sets it, the train loss and the step's wall time. Per epoch:
mean train loss, validation loss and accuracy (for classification).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError


class Trajectory:
    """A run's records: `steps` (a dict a step) and `epochs` (a dict an epoch)."""

    def __init__(
        self,
        engine: str,
        n_groups: int,
        steps: list[dict[str, Any]] | None = None,
        epochs: list[dict[str, Any]] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.engine, self.n_groups = engine, n_groups
        self._steps: list[dict[str, Any]] = [] if steps is None else steps
        #: Chunks of steps recorded but not yet made into dicts: (entries, losses).
        self._unmade: list[tuple[list[tuple], list[float]]] = []
        self.epochs: list[dict[str, Any]] = [] if epochs is None else epochs
        self.meta: dict[str, Any] = {} if meta is None else meta

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One dict a step: step, epoch, lr (a list, a group each), momentum (a list,
        or None), loss, time. Made on first read from what `record_steps` kept."""
        if self._unmade:
            for entries, losses in self._unmade:
                self._steps.extend(_records(entries, losses))
            self._unmade.clear()
        return self._steps

    @steps.setter
    def steps(self, steps: list[dict[str, Any]]) -> None:
        self._unmade.clear()
        self._steps = steps

    def record_steps(self, entries: list[tuple], losses: list[float]) -> None:
        """Record a chunk of steps: each (step, epoch, lrs, momenta, seconds) entry
        with its loss, in order. The lists are kept as they are (the caller hands
        them over) and made into dicts only when `steps` is read: the loop records
        every step, and a dict a step, made while it trains, is a measurable part of
        its overhead between two steps (docs/performance.md)."""
        if len(entries) != len(losses):
            raise ValueError(f"{len(entries)} steps but {len(losses)} losses")
        self._unmade.append((entries, losses))

    def record_epoch(self, epoch, train_loss, val_loss, val_accuracy) -> None:
        self.epochs.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
        )

    @property
    def losses(self) -> list[float]:
        return [s["loss"] for s in self.steps]

    def lrs(self, group: int) -> list[float]:
        return [s["lr"][group] for s in self.steps]

    @property
    def final_loss(self) -> float:
        return self.steps[-1]["loss"] if self.steps else math.nan

    @property
    def final_val_loss(self) -> float | None:
        """The last epoch's validation loss, or None without a validation split."""
        return self.epochs[-1]["val_loss"] if self.epochs else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trajectory):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Trajectory({self.engine!r}, {len(self.steps)} steps, {len(self.epochs)} epochs)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "n_groups": self.n_groups,
            "steps": self.steps,
            "epochs": self.epochs,
            "meta": self.meta,
        }

    def save(self, directory: str | Path, stem: str = "trajectory") -> tuple[Path, Path]:
        """Write `<stem>.json` (everything) and `<stem>.csv` (one row per step)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = directory / f"{stem}.json", directory / f"{stem}.csv"
        json_path.write_text(json.dumps(self.to_dict(), indent=1))
        with csv_path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self._csv_header())
            writer.writerows(self._csv_row(s) for s in self.steps)
        return json_path, csv_path

    def _csv_header(self) -> list[str]:
        groups = range(self.n_groups)
        momentum = [f"momentum_{g}" for g in groups] if self._has_momentum() else []
        return ["step", "epoch", *(f"lr_{g}" for g in groups), *momentum, "loss", "time"]

    def _has_momentum(self) -> bool:
        return any(s["momentum"] is not None for s in self.steps)

    def _csv_row(self, s: dict[str, Any]) -> list[Any]:
        momentum = (s["momentum"] or [""] * self.n_groups) if self._has_momentum() else []
        return [s["step"], s["epoch"], *map(repr, s["lr"]), *momentum, repr(s["loss"]), s["time"]]

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        """Read a trajectory saved as JSON."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(
                data["engine"], data["n_groups"], data["steps"], data["epochs"], data["meta"]
            )
        except FileNotFoundError:
            raise ConfigError(f"trajectory {str(path)!r}: no such file") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"trajectory {str(path)!r}: not a dualtrain trajectory ({exc})"
            ) from None


def _records(entries: list[tuple], losses: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "step": step,
            "epoch": epoch,
            "lr": list(lrs),
            "momentum": None if momenta is None else list(momenta),
            "loss": loss,
            "time": seconds,
        }
        for (step, epoch, lrs, momenta, seconds), loss in zip(entries, losses, strict=True)
    ]
