"""Checkpoints: exact resume on every engine and across backends, atomic writes,
and every broken checkpoint refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from dualtrain import checkpoint as checkpoints
from dualtrain.comparison import _engine_config
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.loop import RunConfig, Saving, ScheduleConfig, train_engine, with_overrides
from dualtrain.model import mlp
from dualtrain.problems import get_problem

ENGINES = [
    ("numpy", "eager"),
    ("torch", "eager"),
    ("torch", "graph"),
    ("oneflow", "eager"),
    ("oneflow", "graph"),
]

CASES = {
    # 800 training rows in batches of 50: 16 steps an epoch, 4 epochs
    "sgd-step-schedule": RunConfig(
        optimizer="sgd",
        lr=0.05,
        options={"momentum": 0.9},
        epochs=4,
        schedule=ScheduleConfig(
            "CosineAnnealingWarmRestarts", "torch", {"T_0": 10, "T_mult": 2}, "step"
        ),
    ),
    "adam-plateau": RunConfig(
        optimizer="adam",
        lr=0.01,
        epochs=4,
        schedule=ScheduleConfig(
            "ReduceLROnPlateau", "torch", {"factor": 0.5, "patience": 0, "threshold": 0.2}
        ),
    ),
}


def data():
    problem = get_problem("regression")
    train, val = problem.data.split(problem.val_fraction, 0)
    return problem.model, train, val


@cache
def straight(case: str, backend: str, mode: str, folder: str):
    """The uninterrupted run, saving a checkpoint every 8 steps (16 ends an epoch)."""
    config, _ = _engine_config(CASES[case], backend, mode)
    model, train, val = data()
    return train_engine(config, model, train, val, saving=Saving(folder, every=8))


@pytest.mark.parametrize("engine", ENGINES, ids=["/".join(e) for e in ENGINES])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stop", [16, 24], ids=["epoch-boundary", "mid-epoch"])
def test_a_resumed_run_is_bit_identical(engine, case, stop, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / f"ckpt-{case}-{'-'.join(engine)}"
    try:
        full = straight(case, *engine, str(folder))
    except CapabilityError as exc:
        pytest.skip(str(exc))
    saved = checkpoints.load(folder / f"step-{stop:08d}")
    assert saved.step == stop and (saved.position == 0) == (stop % 16 == 0)
    config, _ = _engine_config(CASES[case], *engine)
    model, train, val = data()
    resumed = train_engine(config, model, train, val, resume=saved)
    a, b = full.trajectory, resumed.trajectory
    assert [s["loss"] for s in b.steps] == [s["loss"] for s in a.steps]
    assert [s["lr"] for s in b.steps] == [s["lr"] for s in a.steps]
    assert b.epochs == a.epochs
    for name, value in full.state.items():
        assert np.array_equal(resumed.state[name], value), name


def test_the_plateau_really_moved_in_the_resumed_part(tmp_path):
    run = straight("adam-plateau", "numpy", "eager", str(tmp_path))
    lrs = [s["lr"][0] for s in run.trajectory.steps]
    assert lrs[0] == 0.01 and lrs[-1] < 0.01


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("torch", "oneflow"), ("torch", "numpy"), ("oneflow", "torch"), ("numpy", "torch")],
)
def test_a_checkpoint_resumes_on_another_backend(writer, reader, tmp_path):
    config = CASES["sgd-step-schedule"]
    model, train, val = data()
    full = train_engine(
        with_overrides(config, backend=writer), model, train, val, saving=Saving(str(tmp_path), 8)
    )
    saved = checkpoints.load(tmp_path / "step-00000024")
    resumed = train_engine(with_overrides(config, backend=reader), model, train, val, resume=saved)
    a = np.array(full.trajectory.losses)
    b = np.array(resumed.trajectory.losses)
    assert np.array_equal(a[:24], b[:24])  # the part before the checkpoint is carried over
    np.testing.assert_allclose(b[24:], a[24:], rtol=1e-4, atol=1e-6)
    for name, value in full.state.items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_allclose(resumed.state[name], value, rtol=1e-4, atol=1e-6)


def test_keep_leaves_the_newest(tmp_path):
    config = with_overrides(CASES["sgd-step-schedule"], epochs=2)
    model, train, val = data()
    train_engine(config, model, train, val, saving=Saving(str(tmp_path), every=4, keep=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000028", "step-00000032"]
    assert checkpoints.latest(tmp_path).name == "step-00000032"


# --- written atomically --------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from dualtrain.checkpoint import Checkpoint, save
    big = {"0.weight": np.random.default_rng(0).normal(size=(4000, 2000))}
    for step in range(1, 1000):
        print(step, flush=True)
        save(sys.argv[1], Checkpoint(step, 0, step, {}, big, {}, None, {"steps": []}), keep=3)
    """
)


def test_a_save_killed_midway_leaves_the_last_checkpoint_loadable(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    for line in child.stdout:  # let a few saves finish, then kill one in flight
        if int(line) == 3:
            break
    time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    newest = checkpoints.load(tmp_path)
    assert newest.step >= 2
    assert newest.model["0.weight"].shape == (4000, 2000)
    names = [p.name for p in tmp_path.iterdir()]
    complete = [n for n in names if n.startswith(checkpoints.PREFIX)]
    # what is left besides complete checkpoints is the killed save's temporary folder
    assert set(names) - set(complete) <= {n for n in names if n.startswith(checkpoints.TEMPORARY)}
    for name in complete:
        checkpoints.load(tmp_path / name)  # every complete one loads


# --- broken checkpoints ----------------------------------------------------------------------


@pytest.fixture
def good(tmp_path) -> Path:
    config = with_overrides(CASES["sgd-step-schedule"], epochs=1)
    model, train, val = data()
    train_engine(config, model, train, val, saving=Saving(str(tmp_path / "run"), every=16))
    return tmp_path / "run" / "step-00000016"


def _truncate(path):
    raw = (path / "arrays.npz").read_bytes()
    (path / "arrays.npz").write_bytes(raw[: len(raw) // 2])


def _flip_a_byte(path):
    raw = bytearray((path / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "arrays.npz").write_bytes(bytes(raw))


def _meta(change):
    def edit(path):
        meta = json.loads((path / "meta.json").read_text())
        change(meta)
        (path / "meta.json").write_text(json.dumps(meta))

    return edit


def _pickled(path):
    import pickle

    raw = pickle.dumps({"a": object})
    (path / "arrays.npz").write_bytes(raw)
    _meta(lambda m: m.update(arrays_sha256=__import__("hashlib").sha256(raw).hexdigest()))(path)


def _object_array(path):
    import hashlib
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **{"model/0.weight": np.array([{"x": 1}], dtype=object)})
    raw = buffer.getvalue()
    (path / "arrays.npz").write_bytes(raw)
    _meta(lambda m: m.update(arrays_sha256=hashlib.sha256(raw).hexdigest()))(path)


BROKEN = {
    "truncated": (_truncate, "checksum"),
    "corrupted-byte": (_flip_a_byte, "checksum"),
    "wrong-checksum": (_meta(lambda m: m.update(arrays_sha256="0" * 64)), "checksum"),
    "future-version": (_meta(lambda m: m.update(format_version=99)), "format version 99"),
    "missing-key": (_meta(lambda m: m.pop("step")), "'step'"),
    "meta-not-json": (lambda p: (p / "meta.json").write_text("{oops"), "not JSON"),
    "missing-arrays": (lambda p: (p / "arrays.npz").unlink(), "missing arrays.npz"),
    "pickle-file": (_pickled, "arrays.npz"),
    "object-array": (_object_array, "arrays.npz"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_checkpoint_is_one_line(good, name):
    breaks, words = BROKEN[name]
    breaks(good)
    with pytest.raises(ConfigError) as info:
        checkpoints.load(good)
    assert "\n" not in str(info.value)
    assert words in str(info.value)


def test_another_models_checkpoint_is_refused(good):
    saved = checkpoints.load(good)
    model, train, val = data()
    other = mlp([5, 32, 32, 1], batchnorm=True)  # more layers than the checkpoint's
    with pytest.raises(ConfigError, match="no array for"):
        train_engine(CASES["sgd-step-schedule"], other, train, val, resume=saved)
    saved.model["0.weight"] = saved.model["0.weight"][:, :3]
    with pytest.raises(ConfigError, match="0.weight has shape"):
        train_engine(CASES["sgd-step-schedule"], model, train, val, resume=saved)


def test_a_nan_loss_stops_the_run_and_keeps_the_checkpoints(tmp_path):
    config = with_overrides(CASES["sgd-step-schedule"], lr=1e6, options={})
    model, train, val = data()
    with pytest.raises(ConfigError, match=r"the loss at step \d+ \(epoch \d\) is (nan|inf)"):
        train_engine(config, model, train, val, saving=Saving(str(tmp_path), every=1))
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept and all(name.startswith("step-") for name in kept)
    assert np.isfinite(checkpoints.load(tmp_path).trajectory["steps"][-1]["loss"])


# --- the command line ------------------------------------------------------------------------

RUN = (
    "train --problem regression --optimizer sgd --lr 0.05 --momentum 0.9 --scheduler StepLR "
    "--arg step_size=2 --epochs 3 --save-every 20"
)


def cli(capsys, command: str):
    from dualtrain.cli import main

    code = main(command.split())
    out, err = capsys.readouterr()
    return code, out, err


def test_resume_from_the_command_line_goes_on_exactly(capsys, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli(capsys, f"{RUN} --out {full}")[0] == 0
    assert cli(capsys, f"{RUN} --epochs 2 --out {part}")[0] == 0  # stops at step 32
    code, out, err = cli(capsys, f"train --resume {part} --epochs 3 --out {part}")
    assert (code, err) == (0, ""), err
    a = json.loads((full / "trajectory.json").read_text())["steps"]
    b = json.loads((part / "trajectory.json").read_text())["steps"]
    assert [s["loss"] for s in b] == [s["loss"] for s in a] and len(b) == 48


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ("--lr 0.1", ["--lr 0.1", "0.05", "--epochs"]),
        ("--optimizer adam", ["--optimizer 'adam'", "'sgd'"]),
        ("--momentum 0.5", ["--momentum", "--resume"]),
        ("--arg step_size=3", ["--arg", "--resume"]),
    ],
)
def test_resume_refuses_flags_that_contradict_the_checkpoint(capsys, tmp_path, flags, words):
    assert cli(capsys, f"{RUN} --out {tmp_path}")[0] == 0
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    code, _, err = cli(capsys, f"train --resume {tmp_path} {flags} --out {tmp_path}")
    assert code == 2 and err.count("\n") == 1
    for word in words:
        assert word in err
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_resume_from_a_broken_checkpoint_is_one_line_and_keeps_files(capsys, tmp_path):
    assert cli(capsys, f"{RUN} --out {tmp_path}")[0] == 0
    newest = checkpoints.latest(tmp_path)
    _flip_a_byte(newest)
    saved = (tmp_path / "trajectory.json").read_bytes()
    code, _, err = cli(capsys, f"train --resume {tmp_path} --out {tmp_path}")
    assert code == 2 and "does not match its checksum" in err and err.count("\n") == 1
    assert (tmp_path / "trajectory.json").read_bytes() == saved
    assert newest.exists()
