"""What a run records: per training step and per epoch, saved as CSV and JSON.

Per step: step, epoch, the lr of every group, momentum of every group when
the schedule sets it, the train loss and the step's wall time. Per epoch:
mean train loss, validation loss and accuracy (for classification).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError


@dataclass
class Trajectory:
    engine: str
    n_groups: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def record_step(self, step, epoch, lrs, momenta, loss, seconds) -> None:
        self.record_steps([(step, epoch, lrs, momenta, seconds)], [loss])

    def record_steps(self, entries, losses) -> list[dict[str, Any]]:
        """One record per (step, epoch, lrs, momenta, seconds) entry and its loss, in
        order; returns the new records. (One call for a chunk of steps: the loop
        records every step, so a call per step is part of its overhead.)"""
        new = [
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
        self.steps.extend(new)
        return new

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
