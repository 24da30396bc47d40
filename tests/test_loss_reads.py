"""Losses read back in chunks: the trajectory is the same whatever the chunk size.

Each engine trains the same run with `loss_read_every` 1 (every loss read at
once, as before chunks existed), 7 and 64: losses, lrs, momenta, epoch records,
callbacks and final states must be equal bit for bit, a non-finite loss inside
a chunk must be reported at its own step, and ReduceLROnPlateau on the train
loss must see the same losses. A backend whose lazy losses refuse `float()`
shows that the core never reads one itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dualtrain import loss_reads
from dualtrain.backend import HostData, get_backend, lazy_step
from dualtrain.checkpoint import load as load_checkpoint
from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.loop import RunConfig, Saving, ScheduleConfig, fit
from dualtrain.model import mlp
from dualtrain.problems import get_problem
from dualtrain_numpy.backend import NumpyBackend

CHUNKS = (1, 7, 64)
BACKENDS = ("numpy", "torch", "oneflow")


@pytest.fixture(autouse=True)
def no_time_bound(monkeypatch):
    """Chunks cut by size only: a loaded machine must not change what is tested."""
    monkeypatch.setattr(loss_reads, "MAX_WAIT", float("inf"))


def small_regression(rows: int = 230):
    """230 rows in batches of 50: 5 steps an epoch, the last one short (30 rows)."""
    problem = get_problem("regression")
    return problem, Dataset(problem.data.x[:rows], problem.data.y[:rows])


def run(config, problem, data, backend=None, val=None):
    """(fit's run, the records on_step saw)."""
    seen = []
    result = fit(
        config, problem.model, data, val, backend=backend, on_step=lambda r: seen.append(dict(r))
    )
    return result, seen


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def assert_same_run(a, b):
    (run_a, seen_a), (run_b, seen_b) = a, b
    assert without_time(run_a.trajectory.steps) == without_time(run_b.trajectory.steps)
    assert run_a.trajectory.epochs == run_b.trajectory.epochs
    assert without_time(seen_a) == without_time(run_a.trajectory.steps)
    assert without_time(seen_b) == without_time(run_b.trajectory.steps)
    assert run_a.state.keys() == run_b.state.keys()
    for name, value in run_a.state.items():
        assert np.array_equal(value, run_b.state[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_chunk_sizes_give_the_same_trajectory_and_state(backend, dtype):
    problem, data = small_regression()
    val = Dataset(problem.data.x[-100:], problem.data.y[-100:])
    schedule = ScheduleConfig("OneCycleLR", "torch", {"max_lr": 0.05, "total_steps": 15}, "step")
    base = RunConfig(
        backend=backend,
        options={"momentum": 0.9},
        epochs=3,
        batch_size=50,
        dtype=dtype,
        schedule=schedule,
    )
    runs = [run(replace(base, loss_read_every=n), problem, data, val=val) for n in CHUNKS]
    assert len(runs[0][0].trajectory.steps) == 15
    assert len({s["momentum"][0] for s in runs[0][0].trajectory.steps}) > 10  # cycled
    for other in runs[1:]:
        assert_same_run(runs[0], other)


def test_torch_data_kept_as_tensors_trains_as_numpy_batches_do():
    """The device path (the data set as tensors, batches indexed there), on the CPU."""
    problem, data = small_regression()
    config = RunConfig(backend="torch", options={"momentum": 0.9}, epochs=2, dtype="float32")
    resident = get_backend("torch")
    resident.resident_on_cpu = True
    net = resident.build(problem.model, "float32", "cpu")
    handle = resident.put_dataset(net, data.x, data.y)
    assert not isinstance(handle, HostData)
    batch_x, _ = next(handle.batches([np.array([3, 1])]))
    assert np.array_equal(batch_x.numpy(), data.x[[3, 1]].astype(np.float32))
    assert isinstance(get_backend("torch").put_dataset(net, data.x, data.y), HostData)
    for n in (1, 7):
        on_host = run(replace(config, loss_read_every=n), problem, data)
        kept = run(replace(config, loss_read_every=n), problem, data, backend=resident)
        assert_same_run(on_host, kept)


def diverging(backend, every):
    """A linear model at lr 20: its loss grows ~15x a step, to inf at step 92."""
    _, data = small_regression()
    config = RunConfig(backend=backend, lr=20.0, epochs=40, batch_size=50, loss_read_every=every)
    seen = []
    with pytest.raises(ConfigError) as caught:
        fit(config, mlp([5, 1], loss="mse"), data, on_step=seen.append)
    return str(caught.value), [s["loss"] for s in seen]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_finite_loss_inside_a_chunk_is_reported_at_its_own_step(backend):
    message, losses = diverging(backend, 1)
    bad = len(losses)  # with every loss read at once, the loop stops at the first bad one
    assert message.startswith(f"the loss at step {bad} (epoch {bad // 5}) is ")
    assert all(np.isfinite(losses))
    assert bad % 7 != 0 and bad % 64 != 0  # so the step is inside a chunk below
    for every in (7, 64):
        assert diverging(backend, every) == (message, losses)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_plateau_on_the_train_loss_sees_the_same_losses(backend, interval):
    problem, data = small_regression()
    schedule = ScheduleConfig(
        "ReduceLROnPlateau",
        "torch",
        {"patience": 0, "factor": 0.5, "threshold": 0.3},
        interval,
        "train_loss",
    )
    base = RunConfig(backend=backend, lr=0.2, epochs=6, batch_size=50, schedule=schedule)
    runs = [run(replace(base, loss_read_every=n), problem, data) for n in (1, 64)]
    assert len(set(runs[0][0].trajectory.lrs(0))) > 2  # the plateau did cut the lr
    assert_same_run(runs[0], runs[1])


def test_checkpoints_inside_a_chunk_hold_every_step_before_them(tmp_path):
    problem, data = small_regression()
    config = RunConfig(epochs=2, batch_size=50, options={"momentum": 0.9})
    straight, _ = run(replace(config, loss_read_every=1), problem, data)
    saving = Saving(str(tmp_path), every=3, keep=None)
    fit(replace(config, loss_read_every=64), problem.model, data, saving=saving)
    checkpoint = load_checkpoint(str(tmp_path / "step-00000006"))
    assert checkpoint.step == 6
    expected = without_time(straight.trajectory.steps[:6])
    assert without_time(checkpoint.trajectory["steps"]) == expected


class Lazy:
    """A loss the core must hand back unread: float() on it fails the test."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        raise AssertionError("the core read a lazy loss itself")


class LazyNumpy(NumpyBackend):
    """NumPy with lazy losses, counting the chunks it is asked to read."""

    name = "numpy"

    def __init__(self) -> None:
        self.chunks: list[int] = []

    def eager_step(self, model, optimizer):
        step = super().eager_step(model, optimizer)
        return lazy_step(step, lambda x, y: Lazy(step(x, y)))

    def read_losses(self, losses):
        self.chunks.append(len(losses))
        return [loss.value for loss in losses]


def test_the_backend_reads_each_chunk_and_the_core_never_reads_a_loss():
    problem, data = small_regression(rows=1000)  # 20 steps an epoch
    config = RunConfig(epochs=2, batch_size=50, loss_read_every=7)
    backend = LazyNumpy()
    lazy, seen = run(config, problem, data, backend=backend)
    # 20 steps an epoch: two full chunks of 7, then the epoch's end reads the other 6.
    assert backend.chunks == [7, 7, 6, 7, 7, 6]
    plain = run(replace(config, loss_read_every=1), problem, data)
    assert_same_run((lazy, seen), plain)


def test_loss_read_every_must_be_a_positive_int():
    with pytest.raises(ConfigError, match="loss_read_every must be a positive int, got 0"):
        RunConfig(loss_read_every=0)
