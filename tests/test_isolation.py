"""The isolated child process (`dualtrain.isolation`): it never runs the user's
code, tells a Python error from a crash, retries only crashes, and notices a
hang from the run's own pace.

The OneFlow tests run the real graph engine from a script with no
`__main__` guard, a `python -c` one-liner and a notebook-style `exec` of the
README's example; the others use small jobs defined here (importable by the
child, as this module is on the path it is handed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dualtrain
from dualtrain import isolation
from dualtrain.comparison import ATOL, RTOL
from dualtrain.errors import ConfigError
from dualtrain.isolation import ChildFailed, EngineCrashed, HangRule, run_in_child

ROOT = Path(__file__).resolve().parent.parent

# --- the OneFlow graph engine from any kind of caller ------------------------------------


def readme_example() -> str:
    """The README's Python example up to its `fit`, run on OneFlow's graph in float32."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = block.split("result = dualtrain.compare(")[0]
    assert 'backend="torch",' in code  # the example this test was written against
    return code.replace('backend="torch",', 'backend="oneflow", dtype="float32",')


# Small data the README leaves to the reader: 100 rows, 2 batches of 50 an epoch.
DATA = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.normal(size=(100, 5))
y = np.tanh(x[:, :1] - 0.5 * x[:, 1:2])
print("user code ran")
"""
REPORT = """
import json, os
print("final loss", run.trajectory.final_loss)
with open(os.environ["DUALTRAIN_TEST_OUT"], "w") as f:
    json.dump({"losses": run.trajectory.losses, "notes": run.notes}, f)
"""


def reference_losses() -> list[float]:
    """The same training on the NumPy reference (float64), in this process."""
    namespace: dict = {}
    code = DATA + readme_example().replace('backend="oneflow", dtype="float32",', "")
    exec(code.replace('mode="graph",', 'mode="eager",'), namespace)
    return namespace["run"].trajectory.losses


def run_caller(kind: str, tmp_path: Path) -> tuple[str, str, dict]:
    """Run the example as `kind` of caller; (its stdout, its stderr, what it reported)."""
    code = DATA + readme_example() + REPORT
    script = tmp_path / "user_script.py"
    script.write_text(code)
    if kind == "script":  # no `if __name__ == "__main__":` guard, as most scripts
        command = [sys.executable, str(script)]
    elif kind == "one-liner":
        command = [sys.executable, "-c", code]
    else:  # a notebook: the kernel's own __main__ execs each cell's text
        cell = f"exec(open({str(script)!r}).read())"
        command = [sys.executable, "-c", f"import sys; sys.argv = ['kernel']; {cell}"]
    out = tmp_path / "out.json"
    env = {**os.environ, "DUALTRAIN_TEST_OUT": str(out)}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr, json.loads(out.read_text())


@pytest.mark.parametrize("kind", ["script", "one-liner", "notebook"])
def test_the_oneflow_graph_runs_from_any_caller_once(kind, tmp_path):
    pytest.importorskip("dualtrain_oneflow")
    stdout, stderr, report = run_caller(kind, tmp_path)
    # The child never ran the user's code: its lines are there exactly once.
    assert stdout.count("user code ran") == 1
    assert stdout.count("final loss") == 1
    # OneFlow's expected CUDA notices on a CPU stay filtered in the child too.
    assert "CUDA driver version is insufficient" not in stderr
    losses = np.array(report["losses"])
    want = np.array(reference_losses())
    assert len(losses) == 40  # 20 epochs of 2 batches
    # float32 against the float64 reference over 40 steps: the cross-engine
    # tolerance `dualtrain compare` uses for float32 engines too.
    np.testing.assert_allclose(losses, want, rtol=RTOL, atol=ATOL)
    assert all("attempt" in note for note in report["notes"])  # retries, if any, reported


# --- errors are raised at once, never retried --------------------------------------------


@pytest.fixture
def attempts(monkeypatch) -> list[int]:
    """Counts the child processes started."""
    started: list[int] = []
    real = isolation._start_child

    def counting(folder, env):
        started.append(1)
        return real(folder, env)

    monkeypatch.setattr(isolation, "_start_child", counting)
    return started


def test_a_model_oneflow_cannot_build_is_its_error_with_no_retry(attempts):
    pytest.importorskip("dualtrain_oneflow")
    model = dualtrain.mlp([3, 4, 1])
    x, y = np.zeros((10, 3)), np.zeros((10, 1))
    with pytest.raises(ConfigError, match="runs on cpu here, got device 'cuda'") as info:
        dualtrain.fit(
            model, x, y, backend="oneflow", mode="graph", dtype="float32", device="cuda",
            batch_size=5, epochs=1,
        )  # fmt: skip
    assert len(attempts) == 1
    assert "in build" in str(info.value.__cause__)  # the child's traceback comes along


class _Unpicklable:
    """Pickles here; unpickling it in the child raises, as a module that cannot load would."""

    def __reduce__(self):
        return (_refuse, ("the job names a module the child cannot import",))


def _refuse(message):
    raise ImportError(message)


def _never_called(heartbeat):
    raise AssertionError("the child ran a job it could not read")


def test_an_unpickling_error_in_the_child_is_raised_with_no_retry(attempts):
    job = _Job(_never_called, _Unpicklable())
    with pytest.raises(ImportError, match="the job names a module the child cannot import"):
        run_in_child(job, "probe")
    assert len(attempts) == 1


def test_a_child_that_cannot_start_fails_with_no_retry(attempts):
    # A broken interpreter environment: Python itself fails before any job.
    with pytest.raises(ChildFailed, match=r"probe: the child process exited with code \d+ before"):
        run_in_child(_Job(_never_called), "probe", env={"PYTHONHOME": "/nonexistent"})
    assert len(attempts) == 1


def test_a_job_defined_in_main_is_refused_in_one_line(attempts):
    def job(heartbeat):
        return 1

    job.__module__ = "__main__"  # as a function written in the user's script
    with pytest.raises(ConfigError, match=r"defined in the running script \(__main__\)"):
        run_in_child(job, "probe")
    assert attempts == []


# --- crashes are retried, hangs noticed in seconds ---------------------------------------


class _Job:
    """`function(heartbeat, *args)`, picklable by reference to this module."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __call__(self, heartbeat):
        return self.function(heartbeat, *self.args)


def _steps_then(heartbeat, marker: str, steps: int, then: str):
    """`steps` steps, then on the first attempt `then`: SIGKILL itself, or hang."""
    for _ in range(steps):
        time.sleep(0.001)
        heartbeat()
    if not os.path.exists(marker):
        Path(marker).write_text("done")
        if then == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        while then == "hang":
            time.sleep(1)
    return "finished"


def test_a_crash_after_training_started_is_retried_and_reported(tmp_path, attempts):
    job = _Job(_steps_then, str(tmp_path / "marker"), 5, "sigkill")
    result, notes = run_in_child(job, "probe")
    assert result == "finished"
    assert len(attempts) == 2
    [note] = notes
    assert re.fullmatch(
        r"probe: attempt 1 crashed \(killed by SIGKILL\) after ~\d steps, [\d.]+ s in, retrying",
        note,
    )


def _always_sigkill(heartbeat):
    heartbeat()
    os.kill(os.getpid(), signal.SIGKILL)


def test_crashing_every_time_gives_up_after_the_retries(attempts):
    with pytest.raises(EngineCrashed, match=r"probe crashed on 3 attempts: ") as info:
        run_in_child(_Job(_always_sigkill), "probe", retries=2)
    assert str(info.value).count("SIGKILL") == 3
    assert len(attempts) == 3


def test_a_hang_is_noticed_from_the_run_own_pace(tmp_path, attempts):
    # Steps of about 1 ms, then no step: the floor (3 s) is the limit, as
    # 2 x the slowest step is far below it, even on a loaded machine.
    job = _Job(_steps_then, str(tmp_path / "marker"), 20, "hang")
    result, notes = run_in_child(job, "probe", hang=HangRule(startup=60, floor=3, multiple=2))
    assert result == "finished"
    assert len(attempts) == 2
    [note] = notes
    assert note.startswith("probe: attempt 1 crashed (no step for 3 s: hung) after ~")


def test_a_hang_before_the_first_step_is_noticed_after_the_startup_grace(tmp_path, attempts):
    # 5 s of grace: a child's interpreter and imports took over 1 s at a load
    # average of 9; a retry that the grace cuts short is retried again.
    job = _Job(_steps_then, str(tmp_path / "marker"), 0, "hang")
    rule = HangRule(startup=5, floor=60, multiple=2)
    result, notes = run_in_child(job, "probe", retries=5, hang=rule)
    assert result == "finished"
    assert notes[0].startswith("probe: attempt 1 crashed (no first step in 5 s: hung) after ~0")


def test_the_hang_limit_follows_the_slowest_step_above_a_floor():
    rule = HangRule(startup=120, floor=10, multiple=50)
    assert rule.limit(None) == 120  # before the first step: start-up and compilation
    assert rule.limit(0.001) == 10  # 1 ms steps: the floor
    assert rule.limit(0.5) == 25  # 0.5 s steps: 50 of them


def test_the_child_folder_is_private_and_removed(tmp_path, monkeypatch):
    seen = []
    real = isolation._start_child

    def looking(folder, env):
        seen.append((folder, os.stat(folder).st_mode & 0o777))
        return real(folder, env)

    monkeypatch.setattr(isolation, "_start_child", looking)
    result, _ = run_in_child(_Job(_steps_then, str(tmp_path / "m"), 1, "finish"), "probe")
    assert result == "finished"
    [(folder, mode)] = seen
    assert mode == 0o700
    assert not folder.exists()


def test_the_child_prints_nothing_of_its_own(tmp_path, capfd):
    run_in_child(_Job(_steps_then, str(tmp_path / "m"), 1, "finish"), "probe")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def _affinities(heartbeat):
    import threading

    release = threading.Event()
    later = threading.Thread(target=release.wait)  # a thread started after the pinning
    later.start()
    found = [os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")]
    release.set()
    later.join()
    return found


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_a_child_pinned_to_one_cpu_has_every_thread_there():
    allowed = os.sched_getaffinity(0)
    result, _ = run_in_child(_Job(_affinities), "probe", cpus=1)
    assert len(result) >= 2  # numpy's or our threads besides the main one
    assert all(a == result[0] for a in result) and len(result[0]) == 1
    assert result[0] <= allowed
    free, _ = run_in_child(_Job(_affinities), "probe")
    assert free[0] == allowed
