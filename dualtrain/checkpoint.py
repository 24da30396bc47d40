"""Checkpoints: everything a run needs to go on as if it had never stopped.

A checkpoint is a folder `step-<n>` holding `meta.json` (format version, the
run's config, counters, schedule state, the trajectory so far, a checksum of
the arrays) and `arrays.npz` (parameters, buffers and optimizer state under the
core's stable names, so any backend can load it). It is read with
`allow_pickle=False`: loading never runs code from the file.

Writing is atomic: the folder is written under a temporary name, every file
and the folder are fsynced, then it is renamed into place. A process killed in
the middle leaves the earlier checkpoints as they were; a leftover temporary
folder is ignored and cleaned up by the next save.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dualtrain.errors import ConfigError

FORMAT_VERSION = 1
PREFIX, TEMPORARY = "step-", ".incomplete-"


@dataclass
class Checkpoint:
    """The state of a run after `step` training steps."""

    step: int
    #: Steps done in the current epoch (0 at an epoch boundary), and that epoch.
    epoch: int
    position: int
    config: dict[str, Any]
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    #: ReduceLROnPlateau's state, or None for schedules that are functions of the step.
    schedule: dict[str, Any] | None
    trajectory: dict[str, Any]
    #: Losses of the epoch in progress (its mean is recorded when it ends).
    epoch_losses: list[float] = field(default_factory=list)
    #: What the command line knew of the run (problem or data, ...), to resume it.
    run: dict[str, Any] = field(default_factory=dict)


def save(
    folder: str | Path, checkpoint: Checkpoint, keep: int | None = None, durable: bool = True
) -> Path:
    """Write `checkpoint` atomically into `folder`; keep the `keep` newest. Returns its path.

    `durable=False` skips the fsyncs (the write is still atomic): for checkpoints
    that need to outlive a killed process only, never a crash of the machine.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{checkpoint.step:08d}"
    temporary = folder / f"{TEMPORARY}{checkpoint.step:08d}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    arrays = _npz_bytes(checkpoint)
    meta = {
        "format_version": FORMAT_VERSION,
        "step": checkpoint.step,
        "epoch": checkpoint.epoch,
        "position": checkpoint.position,
        "config": checkpoint.config,
        "schedule": checkpoint.schedule,
        "trajectory": checkpoint.trajectory,
        "epoch_losses": checkpoint.epoch_losses,
        "run": checkpoint.run,
        "arrays_sha256": hashlib.sha256(arrays).hexdigest(),
    }
    _write(temporary / "arrays.npz", arrays, durable)
    _write(temporary / "meta.json", json.dumps(_finite(meta)).encode(), durable)
    if durable:
        _fsync_folder(temporary)
    if final.exists():
        shutil.rmtree(final)
    os.replace(temporary, final)
    if durable:
        _fsync_folder(folder)
    _prune(folder, keep)
    return final


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder, or the newest one in a folder of checkpoints."""
    path = latest(path)
    meta = _read_meta(path)
    raw = _read_bytes(path / "arrays.npz")
    if hashlib.sha256(raw).hexdigest() != meta["arrays_sha256"]:
        raise ConfigError(f"checkpoint {str(path)!r}: arrays.npz does not match its checksum")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"checkpoint {str(path)!r}: unreadable arrays.npz ({exc})") from None
    model = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer = {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
    return Checkpoint(
        meta["step"],
        meta["epoch"],
        meta["position"],
        meta["config"],
        model,
        optimizer,
        meta["schedule"],
        meta["trajectory"],
        meta["epoch_losses"],
        meta.get("run") or {},
    )


def latest(path: str | Path) -> Path:
    """`path` if it is a checkpoint, else the newest complete checkpoint in it or in
    its `checkpoints` folder (where `dualtrain train --save-every` writes them)."""
    path = Path(path)
    if (path / "meta.json").exists():
        return path
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not path.is_dir():
        raise ConfigError(f"checkpoint {str(path)!r}: no such folder")
    found = complete(path)
    if not found:
        raise ConfigError(f"checkpoint {str(path)!r}: holds no {PREFIX}<n> checkpoint")
    return found[-1]


def complete(folder: Path) -> list[Path]:
    """The complete checkpoints in `folder`, oldest first (the names sort by step)."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and p.is_dir())


_REQUIRED = {
    "format_version": int,
    "step": int,
    "epoch": int,
    "position": int,
    "config": dict,
    "trajectory": dict,
    "epoch_losses": list,
    "arrays_sha256": str,
}


def newest_step(folder: str | Path) -> int | None:
    """The step of the newest complete checkpoint in `folder`, or None."""
    found = complete(Path(folder))
    return int(found[-1].name[len(PREFIX) :]) if found else None


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(_read_bytes(path / "meta.json"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"checkpoint {str(path)!r}: meta.json is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"checkpoint {str(path)!r}: meta.json must hold an object")
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ConfigError(
            f"checkpoint {str(path)!r}: format version {version} is newer than this "
            f"dualtrain reads ({FORMAT_VERSION}); upgrade dualtrain"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ConfigError(
                f"checkpoint {str(path)!r}: meta.json needs {key!r} as {kind.__name__}, "
                f"got {meta.get(key)!r}"
            )
    if "schedule" not in meta:
        raise ConfigError(f"checkpoint {str(path)!r}: meta.json has no 'schedule'")
    return meta


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {str(path.parent)!r}: missing {path.name}") from None


def _npz_bytes(checkpoint: Checkpoint) -> bytes:
    arrays = {f"model/{k}": np.asarray(v) for k, v in checkpoint.model.items()}
    arrays |= {f"optim/{k}": np.asarray(v) for k, v in checkpoint.optimizer.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write(path: Path, data: bytes, durable: bool = True) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())


def _fsync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(folder: Path, keep: int | None) -> None:
    for leftover in folder.glob(f"{TEMPORARY}*"):
        if not leftover.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(leftover, ignore_errors=True)
    if keep is None:
        return
    done = complete(folder)
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings, as `json` would not."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
