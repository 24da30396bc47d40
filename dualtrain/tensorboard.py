"""Runs as TensorBoard scalars (`--tensorboard DIR`), written with tensorboardX.

tensorboardX (the `tensorboard` extra) needs no framework, and is imported only
here, only when asked. Each engine's run goes to a folder of its own under DIR
(`DIR/torch-graph`, or `DIR/torch-graph-lr0.01` in a sweep), with the same tags
in every run, so TensorBoard overlays the engines:

- `train/loss` per step; `train/lr/group_G` and `train/momentum/group_G` per step;
- `epoch/train_loss`, `epoch/val_loss`, `epoch/val_accuracy` at the step the
  epoch ended, so they line up with the per-step curves.

TensorBoard keeps scalars as float32: a value read back is the trajectory's
rounded to float32. The runs are written from the finished trajectories (wall
times rebuilt from the steps' own durations), so a crashed and retried run
shows only the steps that count.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError
from dualtrain.trajectory import Trajectory

INSTALL = "pip install 'dualtrain[tensorboard]'"
#: Our event files end in this, so a rerun replaces only what dualtrain wrote.
SUFFIX = ".dualtrain"


def require() -> None:
    """Raise the one-line `ConfigError` when tensorboardX is not installed.

    Checked before any training, without importing it (tensorboardX imports torch
    when torch is installed, which takes seconds)."""
    if importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(f"--tensorboard needs tensorboardX: {INSTALL}")


def run_name(engine: str, lr: float | None = None) -> str:
    """The run's folder name: `torch-graph`, or `torch-graph-lr0.01` in a sweep."""
    return engine.replace("/", "-") + ("" if lr is None else f"-lr{lr:g}")


def write_runs(directory: str | Path, runs: Mapping[str, Trajectory]) -> list[Path]:
    """Write each trajectory as the TensorBoard run `directory/<name>`.

    Args:
        directory: the log directory to point `tensorboard --logdir` at.
        runs: run name (see `run_name`) to its trajectory.

    Returns:
        The run folders written.
    """
    require()
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:  # found but broken (a missing protobuf, ...)
        raise ConfigError(
            f"--tensorboard: tensorboardX does not import ({exc}): {INSTALL}"
        ) from None
    folders = []
    for name, trajectory in runs.items():
        folder = Path(directory) / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"events.out.tfevents.*{SUFFIX}"):
            old.unlink()  # our own earlier run of the same name: TensorBoard would merge them
        writer = SummaryWriter(str(folder), filename_suffix=SUFFIX, flush_secs=3600)
        try:
            _write(writer, trajectory)
        finally:
            writer.close()
        folders.append(folder)
    return folders


def _write(writer: Any, trajectory: Trajectory) -> None:
    total = sum(s["time"] for s in trajectory.steps)
    clock = time.time() - total
    end_of_epoch: dict[int, tuple[int, float]] = {}
    for s in trajectory.steps:
        clock += s["time"]
        step = s["step"]
        writer.add_scalar("train/loss", s["loss"], step, walltime=clock)
        for g, lr in enumerate(s["lr"]):
            writer.add_scalar(f"train/lr/group_{g}", lr, step, walltime=clock)
        for g, momentum in enumerate(s["momentum"] or []):
            writer.add_scalar(f"train/momentum/group_{g}", momentum, step, walltime=clock)
        end_of_epoch[s["epoch"]] = (step, clock)
    for e in trajectory.epochs:
        step, clock = end_of_epoch.get(e["epoch"], (0, time.time()))
        for key in ("train_loss", "val_loss", "val_accuracy"):
            if e.get(key) is not None:
                writer.add_scalar(f"epoch/{key}", e[key], step, walltime=clock)


def comparison_runs(comparison: Any) -> dict[str, Trajectory]:
    """A comparison's (or port check's) runs by run name; skipped engines left out."""
    return {run_name(r.engine): r.run.trajectory for r in comparison.results if r.run is not None}
