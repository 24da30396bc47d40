"""Run one engine in a child process, and survive a framework that crashes.

OneFlow 0.9.0's nn.Graph segfaults, aborts or hangs now and then on CPU (a race
in its runtime; it never produced a wrong value when it did not crash). A run
must not be lost to that, and a test suite must not turn flaky over it. So a
backend that sets `isolate_graph` gets its graph runs here: in a fresh child
process, watched for a crash (a signal, a non-zero exit) or a hang (no step
for `stall_seconds`). Only those are retried, a bounded number of times, and
every retry is reported. A Python exception in the child is an error of the
run itself: it is raised in the parent at once, never retried.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError

#: Attempts after the first, for crashes only.
RETRIES = 2
#: Attempts in all, however much each one progressed.
MAX_ATTEMPTS = 50
#: Seconds without a finished step (or the start) before a child counts as hung.
STALL_SECONDS = 300.0


class EngineCrashed(ConfigError):
    """The child crashed on every attempt."""


def run_in_child(
    job: Any,
    label: str,
    retries: int = RETRIES,
    stall: float = STALL_SECONDS,
    progress: Callable[[], Any] | None = None,
):
    """`job()` in a child process; returns (its result, notes on retried crashes).

    `job` must pickle (a dataclass of arrays and configs) and take one argument:
    a callable to call after every step, which the parent uses to tell a slow
    run from a hung one. `progress`, when given, says how far the job got (the
    step of its newest checkpoint, say): a crash after which it moved on does
    not count against `retries`, as the next attempt goes on from there.
    """
    notes: list[str] = []
    context = multiprocessing.get_context("spawn")  # no threads inherited from the parent
    strikes, mark = 0, progress() if progress else None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with tempfile.TemporaryDirectory(prefix="dualtrain-") as folder:
            out, beat = Path(folder) / "result.pickle", Path(folder) / "heartbeat"
            beat.touch()
            child = context.Process(target=_child, args=(job, str(out), str(beat)), daemon=True)
            child.start()
            crash = _watch(child, beat, stall)
            if crash is None and out.exists():
                status, value = pickle.loads(out.read_bytes())
                if status == "error":
                    raise value
                return value, notes
            crash = crash or f"exit code {child.exitcode} without a result"
        now = progress() if progress else None
        strikes = 1 if now != mark else strikes + 1
        mark = now
        notes.append(f"{label}: attempt {attempt} crashed ({crash})")
        if strikes <= retries:
            notes[-1] += ", retrying" + (f" from step {now}" if now else "")
        else:
            break
    raise EngineCrashed(f"{label} crashed on {len(notes)} attempts: {'; '.join(notes)}")


def _watch(child, beat: Path, stall: float) -> str | None:
    """None when the child finished cleanly; else what went wrong."""
    while child.is_alive():
        child.join(0.5)
        if child.is_alive() and time.time() - beat.stat().st_mtime > stall:
            child.kill()
            child.join()
            return f"no step for {stall:g} s: hung"
    if child.exitcode == 0:
        return None
    if child.exitcode < 0:
        return f"killed by {signal.Signals(-child.exitcode).name}"
    return f"exit code {child.exitcode}"


def _child(job: Any, out: str, beat: str) -> None:
    last = [0.0]

    def heartbeat(_record=None) -> None:
        now = time.time()
        if now - last[0] > 1.0:  # a touch a second at most
            os.utime(beat)
            last[0] = now

    try:
        result = ("ok", job(heartbeat))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        result = ("error", _picklable(exc))
    Path(out).write_bytes(pickle.dumps(result))
    # Skip interpreter teardown: OneFlow 0.9.0 sometimes hangs there, after the
    # result is safely written.
    os._exit(0)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        return RuntimeError(f"{type(exc).__name__}: {exc}")
