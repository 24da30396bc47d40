"""Run one engine in a child process, and survive a framework that crashes.

OneFlow 0.9.0's nn.Graph segfaults, aborts or hangs now and then on CPU (a race
in its runtime; it never produced a wrong value when it did not crash). A run
must not be lost to that, and a test suite must not turn flaky over it. So a
backend that sets `isolate_graph` gets its graph runs here, in a fresh child
process that never runs the user's code.

How the child starts: `python -m dualtrain.child FOLDER` (this interpreter),
where FOLDER is a private temporary folder (mode 0700) holding the job as a
pickle that this run wrote and only the child reads. The job is the project's
own (a `_FitJob` of configs, specs and arrays); one that names something
defined in the user's `__main__` is refused here, in one line, because the
child does not run the user's script to find it. The child's stdout and
stderr are this process's, so what the framework prints (filtered of
OneFlow's CUDA notices by its backend) reaches the user; the user's script is
never imported there, so nothing of it prints twice.

Error or crash, the rule:

- An error is a Python exception anywhere in the child (unpickling the job,
  importing a backend, a bad argument, a model that cannot be built, a wrong
  value in training). The child pickles it back; it is raised here at once,
  the same type where it pickles (else a RuntimeError naming it), with the
  child's traceback as its cause. Never retried.
- A child that exits with no result and no pickled error *before the job
  started* (the child writes a `started` marker just before calling the job)
  failed to start at all (an interpreter or bootstrap failure): `ChildFailed`,
  at once, never retried.
- A crash is a death by a signal, a hang, or an exit with no result *after*
  the job started. Only crashes are retried (a bounded number of times; a
  crash after which the job got further does not count, see `run_in_child`),
  and every retry is reported.

A hang is noticed from the run's own pace (see `HangRule`): the child reports
each finished step, and the parent kills it when no step has finished for
far longer than the slowest step so far.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError

#: Attempts after the first, for crashes only.
RETRIES = 2
#: Attempts in all, however much each one progressed.
MAX_ATTEMPTS = 50
#: How often the parent looks at the child's heartbeat, in seconds.
POLL_SECONDS = 0.2

# The files of the private folder the parent and the child share.
JOB, RESULT, STARTED, BEAT = "job.pickle", "result.pickle", "started", "heartbeat"


@dataclass(frozen=True)
class HangRule:
    """When a child that is alive but makes no progress counts as hung.

    Until its first step has finished the child has `startup` seconds: an
    interpreter, OneFlow's import, building the model and compiling the graph
    (measured: 3 to 6 s on a 2-core machine shared with other work; the margin
    is for a machine far busier than that). After that, a stall is no step for
    `multiple` times the slowest step so far, and never less than `floor`
    seconds. "A step" is the time between two finished steps as the child
    measured it, so checkpoints and validation between steps are in it. The
    floor is there for contention: a 1 ms step that a busy machine stretches
    to 50 ms or a stop of the whole process by the kernel for a second must
    not look like a hang. See docs/oneflow.md for the measured step times and
    hangs.
    """

    startup: float = 120.0
    floor: float = 10.0
    multiple: float = 50.0

    def limit(self, slowest_step: float | None) -> float:
        """Seconds without a step before a kill, given the slowest step so far
        (None before the first step has finished)."""
        if slowest_step is None:
            return self.startup
        return max(self.floor, self.multiple * slowest_step)


class EngineCrashed(ConfigError):
    """The child crashed on every attempt."""


class ChildFailed(ConfigError):
    """The child exited before starting the job, without a Python error to show."""


class _ChildTraceback(Exception):
    """The child's traceback, as text, attached as the cause of its error."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


def run_in_child(
    job: Any,
    label: str,
    retries: int = RETRIES,
    progress: Callable[[], Any] | None = None,
    hang: HangRule | None = None,
    env: dict[str, str] | None = None,
    cpus: int | None = None,
):
    """`job(heartbeat)` in a child process; returns (its result, notes on retried crashes).

    Args:
        job: picklable by reference to importable modules (a dataclass of
            arrays and configs); called with one argument, a callable to call
            after every step, which tells a slow run from a hung one.
        label: names the run in notes and errors ("oneflow/graph").
        retries: crashes in a row tolerated before giving up.
        progress: says how far the job got (the step of its newest checkpoint,
            say): a crash after which it moved on does not count against
            `retries`, as the next attempt goes on from there.
        hang: when a stalled child is killed; default `HangRule()`.
        env: variables set for the child on top of this process's.
        cpus: pin the child to this many of the CPUs this process may use
            (before it imports anything of the job); None leaves it free.

    Example:
        >>> from dualtrain.isolation import run_in_child
        >>> result, notes = run_in_child(my_job, "oneflow/graph")  # doctest: +SKIP
    """
    payload = _pickled(job, label)
    notes: list[str] = []
    strikes, mark = 0, progress() if progress else None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome = _attempt(payload, label, hang or HangRule(), env or {}, cpus)
        if not isinstance(outcome, _Crash):
            return outcome[0], notes
        now = progress() if progress else None
        strikes = 1 if now != mark else strikes + 1
        mark = now
        notes.append(f"{label}: attempt {attempt} crashed ({outcome.why}){outcome.where}")
        if strikes <= retries:
            notes[-1] += ", retrying" + (f" from step {now}" if now else "")
        else:
            break
    raise EngineCrashed(f"{label} crashed on {len(notes)} attempts: {'; '.join(notes)}")


@dataclass
class _Crash:
    why: str
    steps: int
    seconds: float

    @property
    def where(self) -> str:
        return f" after ~{self.steps} steps, {self.seconds:.1f} s in"


def _pickled(job: Any, label: str) -> bytes:
    """The job, as the job file holds it after the parent's sys.path and the CPUs."""
    buffer = io.BytesIO()
    try:
        _NoMainPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(job)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{label}: the child process's job does not pickle: {exc}") from None
    return buffer.getvalue()


def _cpus_for_child(count: int | None) -> set[int] | None:
    """The `count` least busy of the CPUs this process may use, over the last
    50 ms (a pinned child cannot move off a CPU that other work keeps busy);
    None for no pinning."""
    if not count or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    before = _idle_ticks()
    time.sleep(0.05)
    after = _idle_ticks()
    idle = {cpu: after.get(cpu, 0) - before.get(cpu, 0) for cpu in allowed}
    return set(sorted(allowed, key=lambda cpu: -idle[cpu])[:count])


def _idle_ticks() -> dict[int, int]:
    """Idle time so far per CPU, in clock ticks, from /proc/stat ({} where there is none)."""
    ticks = {}
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    ticks[int(name[3:])] = int(fields[3]) + int(fields[4])  # idle + iowait
    except (OSError, ValueError, IndexError):
        return {}
    return ticks


class _NoMainPickler(pickle.Pickler):
    """Refuses what only the user's running script defines: the child cannot import it."""

    def reducer_override(self, obj):
        if getattr(obj, "__module__", None) == "__main__" and (
            isinstance(obj, type) or callable(obj)
        ):
            name = getattr(obj, "__qualname__", repr(obj))
            raise ConfigError(
                f"{name} is defined in the running script (__main__), which the graph's "
                "child process never runs; define it in a module it can import"
            )
        return NotImplemented


def _attempt(payload: bytes, label: str, hang: HangRule, env: dict[str, str], cpus: int | None):
    """(result,) when the child finished; a _Crash when it crashed; raises its error."""
    folder = Path(tempfile.mkdtemp(prefix="dualtrain-child-"))  # mode 0700
    child = None
    try:
        header = pickle.dumps(list(sys.path)) + pickle.dumps(_cpus_for_child(cpus))
        (folder / JOB).write_bytes(header + payload)
        began = time.monotonic()
        child = _start_child(folder, env)
        crash = _watch(child, folder, hang)
        seconds = time.monotonic() - began
        result = folder / RESULT
        if result.exists():
            status, value, text = pickle.loads(result.read_bytes())
            if status == "error":
                raise value from _ChildTraceback(text)
            return (value,)
        if crash is None and not (folder / STARTED).exists():
            raise ChildFailed(
                f"{label}: the child process exited with code {child.returncode} before "
                "starting the job (its stderr says why); not retried"
            )
        steps, _ = _read_beat(folder)
        return _Crash(crash or f"exit code {child.returncode} without a result", steps, seconds)
    finally:
        if child is not None and child.poll() is None:  # an exception here, or Ctrl-C
            child.kill()
            child.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _start_child(folder: Path, env: dict[str, str], session: bool = False) -> subprocess.Popen:
    """`python -m dualtrain.child FOLDER`, finding this very dualtrain first; with
    `session`, in a session of its own, so that killing its process group also ends
    what it started (`dualtrain.launch`'s ranks)."""
    here = str(Path(__file__).resolve().parent.parent)
    variables = {**os.environ, **env}
    variables["PYTHONPATH"] = os.pathsep.join(p for p in (here, variables.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "dualtrain.child", str(folder)],
        env=variables,
        stdin=subprocess.DEVNULL,
        start_new_session=session,
    )


def _watch(child: subprocess.Popen, folder: Path, hang: HangRule) -> str | None:
    """None when the child exited by itself with code >= 0; else why it crashed."""
    last_change = time.monotonic()
    seen = None
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(POLL_SECONDS)
        if child.returncode is not None:
            break
        now, beat = time.monotonic(), _read_beat(folder)
        if beat != seen:
            seen, last_change = beat, now
        steps, slowest = seen
        limit = hang.limit(slowest or 0.0 if steps else None)
        if now - last_change > limit:
            child.kill()
            child.wait()
            where = f"no step for {limit:.3g} s" if steps else f"no first step in {limit:.3g} s"
            return f"{where}: hung"
    if child.returncode < 0:
        return f"killed by {signal.Signals(-child.returncode).name}"
    return None


def _read_beat(folder: Path) -> tuple[int, float | None]:
    """(steps finished, slowest step in seconds) from the child's heartbeat file."""
    try:
        steps, slowest = (folder / BEAT).read_text().split()
        return int(steps), float(slowest) if int(steps) > 1 else None
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return 0, None


def child_main(folder: str) -> None:
    """The child's side: read the job, run it, write what came of it, leave.

    Called by `python -m dualtrain.child FOLDER`; not for direct use.
    """
    base = Path(folder)
    with open(base / JOB, "rb") as file:
        sys.path[:] = pickle.load(file)
        _pin(pickle.load(file))
        try:
            job = pickle.load(file)
            result = ("ok", _run(job, base), "")
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            result = ("error", _picklable(exc), traceback.format_exc())
    partial = base / (RESULT + ".partial")
    partial.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(partial, base / RESULT)  # the parent sees all of it or nothing
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: OneFlow 0.9.0 sometimes hangs there, after the
    # result is safely written.
    os._exit(0)


def _pin(cpus: set[int] | None) -> None:
    """Every thread of this process, and those it starts later, onto `cpus`."""
    if not cpus:
        return
    for thread in os.listdir("/proc/self/task"):  # numpy's BLAS may have started some
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(thread), cpus)


def _run(job: Any, base: Path) -> Any:
    beat = _Heartbeat(base / BEAT)
    (base / STARTED).touch()
    try:
        return job(beat)
    finally:
        beat.close()


class _Heartbeat:
    """Called after every step: writes "<steps done> <slowest step in s>"."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.steps, self.slowest = 0, 0.0
        self.last = self.written = time.monotonic()

    def __call__(self, _record: Any = None) -> None:
        now = time.monotonic()
        if self.steps:  # the first "step" holds start-up and the graph's compilation
            self.slowest = max(self.slowest, now - self.last)
        self.steps += 1
        self.last = now
        # A pwrite costs about 9 us here: at most one every 10 ms (under 0.1% of
        # the time), so the count the parent sees lags by up to 10 ms of steps.
        if self.steps <= 2 or now - self.written >= 0.01:
            os.pwrite(self.fd, f"{self.steps} {self.slowest:.6f}".ljust(40).encode(), 0)
            self.written = now

    def close(self) -> None:
        os.close(self.fd)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception that does not pickle
        return RuntimeError(f"{type(exc).__name__}: {exc}")
