"""A data-parallel run whose rank raises, exits or hangs ends whole, soon, and tidy.

The fault is injected by a torch backend defined here (importable by the ranks,
as this module is on the path they are handed) at one step of one rank, named
by DUALTRAIN_TEST_FAULT=kind:rank:step. Each test checks the one-line error
naming the rank and the cause, that the checkpoints written before the fault
are intact and equal those of a run without it, and that no process of the run
(the ranks, and anything they started in their sessions) is left alive.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from dualtrain import checkpoint as checkpoints
from dualtrain.backend import register_backend, unregister_backend
from dualtrain.data import Dataset
from dualtrain.distributed import TIMEOUT_VARIABLE
from dualtrain.launch import RankFailed
from dualtrain.loop import RunConfig, Saving, train_engine, with_overrides
from dualtrain.model import mlp

pytest.importorskip("torch")
from dualtrain_torch.backend import TorchBackend  # noqa: E402

FAULT = "DUALTRAIN_TEST_FAULT"
MODEL = mlp([4, 8, 2], activation="tanh", loss="cross_entropy")
CONFIG = RunConfig(
    backend="faulty-torch", lr=0.1, options={"momentum": 0.9}, epochs=2, batch_size=8, nproc=2
)


class FaultyTorch(TorchBackend):
    """torch, with the fault DUALTRAIN_TEST_FAULT names at one step of one rank."""

    name = "faulty-torch"

    def eager_step(self, model, optimizer):
        step = super().eager_step(model, optimizer)
        kind, rank, at = (os.environ.get(FAULT) or "none:-1:-1").split(":")
        mine = os.environ.get("RANK") == rank
        done = [0]

        def faulty(x, y):
            if mine and done[0] == int(at):
                if kind == "raise":
                    raise ValueError(f"injected fault at step {at}")
                if kind == "exit":
                    os._exit(3)
                if kind == "hang":
                    time.sleep(3600)
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
            done[0] += 1
            return step(x, y)

        return faulty


@pytest.fixture(scope="module", autouse=True)
def faulty_backend():
    register_backend(FaultyTorch)
    yield
    unregister_backend(FaultyTorch.name)


def data() -> Dataset:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 4))
    return Dataset(x, (x[:, 0] > 0).astype(np.int64))


def run(folder: Path, config: RunConfig = CONFIG):
    return train_engine(config, MODEL, data(), saving=Saving(str(folder), every=2))


def session_members(leaders) -> list[int]:
    """Processes alive in the sessions the ranks led (what they started, too)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in leaders and fields[0] != "Z":  # fields[3]: the session id
                alive.append(int(entry.name))
    return alive


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The same run without a fault (one process: equal to 2 within rounding, and
    checkpoints at steps 2 and 4 to hold the faulty runs' against)."""
    folder = tmp_path_factory.mktemp("clean")
    config = with_overrides(CONFIG, backend="torch", nproc=1)
    train_engine(config, MODEL, data(), saving=Saving(str(folder), 2))
    return folder


@pytest.mark.parametrize(
    "fault, words",
    [
        ("raise:1:5", "rank 1 of 2 raised ValueError: injected fault at step 5"),
        # "~N steps": the heartbeat is written at most every 10 ms, so N lags behind 5.
        ("exit:1:5", "rank 1 of 2 exit code 3 without a result after ~"),
        ("hang:1:5", "rank 1 of 2 hung (rank 0 timed out waiting)"),
    ],
)
def test_a_failing_rank_ends_the_run_naming_it(fault, words, clean, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT, fault)
    monkeypatch.setenv(TIMEOUT_VARIABLE, "4")  # gloo's wait for a hung peer, in seconds
    began = time.monotonic()
    with pytest.raises(RankFailed) as info:
        run(tmp_path)
    seconds = time.monotonic() - began
    message = str(info.value)
    assert words in message and "every rank was stopped" in message
    assert "\n" not in message and info.value.rank == int(fault.split(":")[1])
    # Not a timing claim: a run that waited for the hung rank would take an hour.
    assert seconds < 300
    assert len(info.value.pids) == 2
    assert all(gone(pid) for pid in info.value.pids)
    assert session_members(set(info.value.pids)) == []
    # Rank 0 wrote the checkpoints of steps 2 and 4 before rank 1 failed at step 5.
    written = checkpoints.complete(tmp_path)
    assert [p.name for p in written][:2] == ["step-00000002", "step-00000004"]
    for path in written[:2]:
        got, want = checkpoints.load(path), checkpoints.load(clean / path.name)
        assert got.step == want.step
        for name, value in want.model.items():
            # One process against two: the same within rounding (float64, measured
            # 1e-16 in test_distributed); an injected fault would change everything.
            assert np.allclose(got.model[name], value, rtol=1e-12, atol=1e-15), name
