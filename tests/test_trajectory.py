"""The trajectory keeps each chunk of steps as the loop hands it over and makes the
step dicts only when they are read: what is read must be what a dict a step,
made at once, would have been, in order, whatever is read when."""

from __future__ import annotations

import pytest

from dualtrain.trajectory import Trajectory


def chunk(first: int, n: int, epoch: int, lrs, momenta=None):
    entries = [(first + i, epoch, lrs, momenta, 0.001 * (first + i)) for i in range(n)]
    losses = [1.0 / (first + i + 1) for i in range(n)]
    return entries, losses


def test_steps_read_between_chunks_are_made_in_order():
    t = Trajectory("numpy/eager", 2)
    t.record_steps(*chunk(0, 3, 0, [0.1, 0.2]))
    assert [s["step"] for s in t.steps] == [0, 1, 2]  # read once here
    t.record_steps(*chunk(3, 2, 1, [0.05, 0.1], [0.9, 0.8]))
    t.record_steps(*chunk(5, 1, 1, [0.05, 0.1], [0.9, 0.8]))
    steps = t.steps
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4, 5]
    assert steps[4] == {
        "step": 4,
        "epoch": 1,
        "lr": [0.05, 0.1],
        "momentum": [0.9, 0.8],
        "loss": 1.0 / 5,
        "time": 0.004,
    }
    assert steps[0]["momentum"] is None
    assert t.losses == [1.0 / (i + 1) for i in range(6)]
    assert t.lrs(1) == [0.2, 0.2, 0.2, 0.1, 0.1, 0.1]
    assert t.final_loss == 1.0 / 6


def test_each_step_has_its_own_lr_list():
    """Steps of an epoch share the loop's lr list: each record gets a copy, so
    changing one record's lrs changes no other."""
    lrs = [0.1]
    t = Trajectory("numpy/eager", 1)
    t.record_steps(*chunk(0, 2, 0, lrs))
    t.steps[0]["lr"][0] = 7.0
    assert t.steps[1]["lr"] == [0.1] and lrs == [0.1]


def test_assigned_steps_replace_unmade_ones():
    t = Trajectory("numpy/eager", 1)
    t.record_steps(*chunk(0, 2, 0, [0.1]))
    t.steps = [{"step": 9}]
    t.record_steps(*chunk(10, 1, 3, [0.1]))
    assert [s["step"] for s in t.steps] == [9, 10]


def test_saved_and_loaded_unmade_steps_are_equal(tmp_path):
    t = Trajectory("numpy/eager", 1, meta={"seed": 3})
    t.record_steps(*chunk(0, 4, 0, [0.1]))
    t.record_epoch(0, 0.5, None, None)
    json_path, csv_path = t.save(tmp_path)
    assert Trajectory.load(json_path) == t
    assert len(csv_path.read_text().splitlines()) == 5


def test_a_chunk_of_unequal_lengths_is_refused():
    t = Trajectory("numpy/eager", 1)
    entries, losses = chunk(0, 3, 0, [0.1])
    with pytest.raises(ValueError, match="3 steps but 2 losses"):
        t.record_steps(entries, losses[:2])
    assert t.steps == []
