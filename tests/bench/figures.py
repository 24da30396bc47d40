"""Benchmark figures as data: every figure a benchmark prints is also kept, under
one key, in `runs/bench/bench.json`, so a change can be compared with the last run.

A figure holds the measured seconds (the median over repeats, and every repeat),
and for a comparison the ratio with its spread: the ratio of each repeat's pair
(the two sides are measured interleaved, so drift on the machine hits both
alike), its median, min and max. `save` keeps the previous file as
`bench.previous.json` and prints each ratio's change against it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path("runs") / "bench"


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "repeats": len(values),
    }


class Figures:
    """The figures of one benchmark run, by key."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}

    def seconds(self, key: str, values: list[float], **extra: Any) -> dict[str, Any]:
        """A time alone (e.g. a start-up cost): its median and spread over repeats."""
        figure = {
            "seconds": _summary(list(values)),
            "samples": list(values),
            "load_average": load_average(),
            **extra,
        }
        self.figures[key] = figure
        return figure

    def ratio(
        self,
        key: str,
        ours: list[float],
        theirs: list[float],
        goal: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """`ours` against `theirs`, repeat by repeat (lists of equal length, measured
        interleaved): both sides' seconds and the ratio's median, min and max."""
        if len(ours) != len(theirs) or not ours:
            raise ValueError(f"{key}: {len(ours)} and {len(theirs)} repeats do not pair")
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        figure = {
            "seconds": _summary(list(ours)),
            "baseline_seconds": _summary(list(theirs)),
            "ratio": _summary(ratios),
            "goal": goal,
            "load_average": load_average(),
            **extra,
        }
        self.figures[key] = figure
        return figure

    def save(self, folder: Path = OUT) -> Path:
        """Write `bench.json` atomically (the previous one kept as
        `bench.previous.json`), and print every ratio's change against it."""
        folder.mkdir(parents=True, exist_ok=True)
        path, previous_path = folder / "bench.json", folder / "bench.previous.json"
        previous = json.loads(path.read_text()) if path.exists() else None
        document = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "figures": self.figures,
        }
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=1, sort_keys=True)
        if previous is not None:
            path.replace(previous_path)
        os.replace(tmp, path)
        print(f"figures: {path} ({len(self.figures)} keys)")
        if previous is not None:
            for line in changes(previous.get("figures", {}), self.figures):
                print(f"  {line}")
        return path


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per ratio present in both runs: its median then and now."""
    lines = []
    for key in sorted(set(before) & set(after)):
        old, new = before[key].get("ratio"), after[key].get("ratio")
        if old and new:
            lines.append(f"{key}: ratio {old['median']:.3f} -> {new['median']:.3f}")
    return lines


def load_average() -> list[float] | None:
    """The machine's load average (1, 5, 15 minutes) when a figure is kept: timings
    taken under load say so."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def spread(figure: dict[str, Any]) -> str:
    """A figure's ratio as printed: median, then min-max over the repeats, and the
    load average (1 minute) when it was kept."""
    r, load = figure["ratio"], figure.get("load_average")
    at = f", load {load[0]:.1f}" if load else ""
    if r["repeats"] == 1:
        return f"ratio {r['median']:.3f} (one measurement{at})"
    return (
        f"ratio {r['median']:.3f} (min {r['min']:.3f}, max {r['max']:.3f} over {r['repeats']}{at})"
    )


#: The run's figures; every benchmark module records into this one.
FIGURES = Figures()
