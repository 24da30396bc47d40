"""Start the N ranks of a data-parallel run on this machine, watch them, end them together.

Each rank is a child of `dualtrain.isolation`'s kind (`python -m dualtrain.child
FOLDER`: the job pickled into a private folder, the result or the error pickled
back, a heartbeat after every step), started with the variables `torchrun` would
set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT: a free
port chosen for this launch) and in a session of its own, so that killing its
process group ends whatever it started too.

A run on several processes must never hang or leave processes behind, so the
first rank that fails ends them all, and the error names it:

- a rank that raises: its error, at once (a `ConfigError` as it is, the same on
  every rank; anything else as `RankFailed` naming the rank and the error);
- a rank that exits without a result or dies by a signal: `RankFailed` naming
  it and the exit code or signal (retried, for a graph engine that crashes,
  when `retries` allows);
- a rank that hangs: its peers' collectives time out (the process group's
  timeout, `dualtrain.distributed.collective_timeout`) and raise `PeerLost`;
  the ranks still running `GRACE` seconds later are the ones that hung. Where
  the framework has no such timeout, no rank finishing a step for the hang
  rule's time (never less than the timeout) ends the run.

A rank that only lost its peer (`PeerLost`) is never the one blamed, and never
counts as a crash to retry (DISTRIBUTED.md: retrying every death also retries
deterministic failures). Every process started is killed and reaped before
this returns or raises; `RankFailed.pids` lists them, for tests.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualtrain.distributed import PeerLost, Rank, collective_timeout
from dualtrain.errors import ConfigError
from dualtrain.isolation import (
    JOB,
    MAX_ATTEMPTS,
    POLL_SECONDS,
    RESULT,
    STARTED,
    HangRule,
    _ChildTraceback,
    _pickled,
    _read_beat,
    _start_child,
)

#: Seconds the other ranks get, after one lost its peer, to fail on their own.
GRACE = 3.0
#: Seconds the watcher waits, after a rank died, for the others that die of it.
DEATH_WINDOW = 1.0


class RankFailed(ConfigError):
    """A rank of a data-parallel run failed; every rank was stopped."""

    def __init__(self, message: str, rank: int | None = None, pids: tuple[int, ...] = ()):
        super().__init__(message)
        self.rank, self.pids = rank, tuple(pids)


@dataclass
class _Process:
    rank: int
    folder: Path
    popen: subprocess.Popen
    #: None while running; ("ok", value) / ("error", exc, traceback) / ("died", why, started).
    outcome: tuple | None = None
    #: When the rank's process ended, taken by a thread waiting on it: polling
    #: alone cannot order two deaths in one poll, and a OneFlow rank aborts
    #: (SIGABRT, its IO poller's EPOLLERR) milliseconds after a peer dies.
    exited: float | None = None
    ended: float = 0.0
    steps: tuple[int, float | None] = (0, None)
    moved: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    message: str
    rank: int | None
    crash: bool  # a death or a hang of the rank itself: retried where allowed
    error: BaseException | None = None
    text: str = ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(
    job: Any,
    world: int,
    label: str,
    *,
    stagger: float = 0.0,
    retries: int = 0,
    progress: Callable[[], Any] | None = None,
    hang: HangRule | None = None,
    env: dict[str, str] | None = None,
) -> tuple[list[Any], list[str], list[int]]:
    """`job(heartbeat)` on `world` ranks; returns (each rank's result, notes, pids).

    Args:
        job: as for `dualtrain.isolation.run_in_child`; each rank reads its place
            from the environment (`dualtrain.distributed.Rank.from_env`).
        world: the number of ranks.
        label: names the run in notes and errors ("torch/eager").
        stagger: seconds between starting one rank and the next.
        retries: crashes in a row retried (the whole run, every rank anew);
            a crash after which `progress` moved on does not count.
        progress: how far the job got (the step of its newest checkpoint).
        hang: when ranks that finish no step count as hung; default `HangRule()`.
        env: variables for every rank on top of this process's.

    Example:
        >>> results, notes, pids = run_ranks(my_job, 2, "torch/eager")  # doctest: +SKIP
    """
    payload = _pickled(job, label)
    notes: list[str] = []
    pids: list[int] = []
    strikes, mark = 0, progress() if progress else None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome = _attempt(payload, world, stagger, hang or HangRule(), env or {}, pids)
        if not isinstance(outcome, _Failure):
            return outcome, notes, pids
        if not outcome.crash:
            _raise(outcome, label, pids)
        now = progress() if progress else None
        strikes = 1 if now != mark else strikes + 1
        mark = now
        notes.append(f"{label}: attempt {attempt} crashed ({outcome.message})")
        if strikes > retries:
            break
        notes[-1] += ", retrying every rank" + (f" from step {now}" if now else "")
    if not retries:
        _raise(outcome, label, pids)
    raise RankFailed(
        f"{label} crashed on {len(notes)} attempts: {'; '.join(notes)}", outcome.rank, pids
    )


def _raise(failure: _Failure, label: str, pids: list[int]):
    if isinstance(failure.error, ConfigError) and not isinstance(failure.error, PeerLost):
        raise failure.error from _ChildTraceback(failure.text)
    cause = _ChildTraceback(failure.text) if failure.text else None
    message = f"{label}: {failure.message}; every rank was stopped"
    raise RankFailed(message, failure.rank, pids) from cause


def _attempt(payload, world, stagger, hang, env, pids) -> list[Any] | _Failure:
    port = free_port()
    timeout = collective_timeout({**os.environ, **env})
    threads = str(max(1, len(os.sched_getaffinity(0)) // world))
    header = pickle.dumps(list(sys.path)) + pickle.dumps(None)
    ranks: list[_Process] = []
    try:
        for rank in range(world):
            if rank and stagger:
                time.sleep(stagger)
            folder = Path(tempfile.mkdtemp(prefix=f"dualtrain-rank{rank}-"))  # mode 0700
            (folder / JOB).write_bytes(header + payload)
            place = Rank(rank, world, rank, "127.0.0.1", port, timeout).env()
            variables = {"OMP_NUM_THREADS": threads, **env, **place}
            popen = _start_child(folder, variables, session=True)
            pids.append(popen.pid)
            ranks.append(_Process(rank, folder, popen))
            threading.Thread(target=_time_exit, args=(ranks[-1],), daemon=True).start()
        return _watch(ranks, hang, timeout)
    finally:
        for process in ranks:
            _end(process.popen)
        for process in ranks:
            shutil.rmtree(process.folder, ignore_errors=True)


def _time_exit(process: _Process) -> None:
    process.popen.wait()
    process.exited = time.monotonic()


def _end(popen: subprocess.Popen) -> None:
    """Kill the rank's whole process group (what it started too) and reap the rank."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def _watch(ranks: list[_Process], hang: HangRule, timeout: float):
    """Every rank's result, or the first failure (the other ranks still running)."""
    world = len(ranks)
    lost_at = None
    while True:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        ended, own, failed = _settle(ranks)
        if failed:
            if failed[0].outcome[0] == "died":  # who else dies of it, to name them too
                _wait_ends(ranks, now + DEATH_WINDOW)
                ended, own, failed = _settle(ranks)
            return _blame(failed[0], world, failed[1:])
        if len(own) == world:
            return [p.outcome[1] for p in ranks]
        running = [p for p in ranks if p.outcome is None]
        if len(ended) > len(own):  # a rank lost its peer: one that failed or hung
            lost_at = lost_at or now
            if not running:
                return _Failure("every rank lost its peers", None, crash=False)
            if now - lost_at > GRACE:
                return _hung(running, world, f"rank {ended[-1].rank} timed out waiting")
            continue
        stalled = []
        for process in running:
            beat = _read_beat(process.folder)
            if beat != process.steps:
                process.steps, process.moved = beat, now
            steps, slowest = process.steps
            # Start-up lasts until the second step: torch.compile compiles on the
            # second call (the first creates the optimizer's state eagerly).
            limit = hang.limit(slowest) if steps >= 2 else hang.startup
            limit = max(limit, timeout + GRACE)  # a framework's own timeout speaks first
            if now - process.moved > limit:
                stalled.append(process)
        if stalled and len(stalled) == len(running):
            fewest = min(p.steps[0] for p in stalled)
            behind = [p for p in stalled if p.steps[0] == fewest]
            why = f"no rank finished a step for {now - max(p.moved for p in stalled):.3g} s"
            return _hung(behind, world, why)


def _outcome(process: _Process) -> tuple:
    result = process.folder / RESULT
    if result.exists():
        return pickle.loads(result.read_bytes())
    code = process.popen.returncode
    why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return ("died", why, (process.folder / STARTED).exists())


def _settle(ranks: list[_Process]) -> tuple[list, list, list]:
    """The ranks that ended, by when; those that did not only lose a peer; those that failed."""
    for process in ranks:
        if process.outcome is None and process.exited is not None:
            process.outcome, process.ended = _outcome(process), process.exited
    ended = sorted((p for p in ranks if p.outcome), key=lambda p: p.ended)
    own = [p for p in ended if not _lost_peer(p)]
    return ended, own, [p for p in own if p.outcome[0] != "ok"]


def _wait_ends(ranks: list[_Process], until: float) -> None:
    while time.monotonic() < until and any(p.exited is None for p in ranks):
        time.sleep(POLL_SECONDS / 4)


def _lost_peer(process: _Process) -> bool:
    return process.outcome[0] == "error" and isinstance(process.outcome[1], PeerLost)


def _blame(process: _Process, world: int, after: list[_Process] = ()) -> _Failure:
    who = f"rank {process.rank} of {world}"
    kind, *rest = process.outcome
    if kind == "error":
        error, text = rest
        first = (str(error).strip().splitlines() or [""])[0]
        message = f"{who} raised {type(error).__name__}: {first}"
        return _Failure(message, process.rank, crash=False, error=error, text=text)
    why, started = rest
    if not started:
        message = f"{who} exited ({why}) before starting the job (its stderr says why)"
        return _Failure(message, process.rank, crash=False)
    steps = _read_beat(process.folder)[0]
    message = f"{who} {why} without a result after ~{steps} steps"
    then = [f"rank {p.rank} {p.outcome[1]}" for p in after if p.outcome[0] == "died"]
    if then:
        message += f"; then {' and '.join(then)}"
    return _Failure(message, process.rank, crash=True)


def _hung(processes: list[_Process], world: int, why: str) -> _Failure:
    names = " and ".join(str(p.rank) for p in processes)
    word = "rank" if len(processes) == 1 else "ranks"
    message = f"{word} {names} of {world} hung ({why})"
    return _Failure(message, processes[0].rank, crash=True)
