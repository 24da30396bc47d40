"""`--tensorboard DIR`: the event files, read back record by record, hold the runs."""

from __future__ import annotations

import shlex
import struct
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dualtrain import api
from dualtrain.cli import main
from dualtrain.errors import ConfigError
from dualtrain.problems import get_problem
from dualtrain.trajectory import Trajectory


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the run folder's event files: tag -> [(step, value)], read
    as TFRecords (length, masked CRC, Event protobuf, masked CRC) with the CRCs checked."""
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    out = defaultdict(list)
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            header = data[at : at + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[at + 8 : at + 12])[0] == masked_crc32c(header)
            body = data[at + 12 : at + 12 + length]
            assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == (
                masked_crc32c(body)
            )
            at += 16 + length
            event = Event.FromString(body)
            for value in event.summary.value:
                out[value.tag].append((event.step, value.simple_value))
    return dict(out)


def f32(values) -> list[float]:
    """TensorBoard keeps scalars as float32."""
    return [float(np.float32(v)) for v in values]


ONECYCLE = (
    "--problem classification --optimizer sgd --momentum 0.9 --lr 0.05 --group 0.=0.01 "
    "--scheduler OneCycleLR --arg max_lr=0.1 --arg total_steps=40 --interval step --epochs 2"
)


def test_train_writes_every_scalar_of_the_trajectory(capsys, tmp_path):
    pytest.importorskip("tensorboardX")
    command = f"train {ONECYCLE} --out {tmp_path / 'out'} --tensorboard {tmp_path / 'tb'}"
    assert main(shlex.split(command)) == 0
    t = Trajectory.load(tmp_path / "out" / "trajectory.json")
    scalars = read_scalars(tmp_path / "tb" / "numpy-eager")
    steps = [s["step"] for s in t.steps]
    assert scalars["train/loss"] == list(zip(steps, f32(t.losses), strict=True))
    assert t.n_groups == 2
    for g in range(2):
        assert scalars[f"train/lr/group_{g}"] == list(zip(steps, f32(t.lrs(g)), strict=True))
        momentum = [s["momentum"][g] for s in t.steps]
        assert scalars[f"train/momentum/group_{g}"] == list(zip(steps, f32(momentum), strict=True))
    ends = [max(s["step"] for s in t.steps if s["epoch"] == e["epoch"]) for e in t.epochs]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        want = list(zip(ends, f32(e[key] for e in t.epochs), strict=True))
        assert scalars[f"epoch/{key}"] == want, key
    # a second run of the same name replaces ours, so TensorBoard does not merge two runs
    assert main(shlex.split(command)) == 0
    assert len(list((tmp_path / "tb" / "numpy-eager").glob("events.out.tfevents.*"))) == 1


def test_compare_and_the_api_write_one_run_per_engine(tmp_path):
    pytest.importorskip("tensorboardX")
    p = get_problem("regression")
    result = api.compare(
        p.model, p.data.x[:64], p.data.y[:64], backends=["numpy", "torch"], weights=p.weights,
        lr=0.05, epochs=2, batch_size=16, tensorboard=tmp_path,
    )  # fmt: skip
    assert sorted(f.name for f in tmp_path.iterdir()) == ["numpy-eager", "torch-eager"]
    for r in result.results:
        scalars = read_scalars(tmp_path / r.engine.replace("/", "-"))
        assert [v for _, v in scalars["train/loss"]] == f32(r.run.trajectory.losses)
        assert "epoch/val_loss" not in scalars  # no validation split given


def test_sweep_writes_one_run_per_engine_and_lr(capsys, tmp_path):
    pytest.importorskip("tensorboardX")
    command = (
        f"sweep --lrs 0.03,0.01 --problem regression --epochs 1 --out {tmp_path / 'out'} "
        f"--tensorboard {tmp_path / 'tb'}"
    )
    assert main(shlex.split(command)) == 0
    assert sorted(f.name for f in (tmp_path / "tb").iterdir()) == [
        "numpy-eager-lr0.01",
        "numpy-eager-lr0.03",
    ]
    t = Trajectory.load(tmp_path / "out" / "numpy-eager-lr0.01.json")
    assert [v for _, v in read_scalars(tmp_path / "tb" / "numpy-eager-lr0.01")["train/loss"]] == (
        f32(t.losses)
    )


def test_port_writes_the_reference_and_each_engine(tmp_path):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("torch")
    data = get_problem("images").data
    check = api.port(
        Path(__file__).parents[1] / "examples/port/cnn.py:SmallCNN", data.x[:64], data.y[:64],
        init={"channels": 4}, engines=["torch/eager"], lr=0.05, epochs=1, batch_size=32,
        tensorboard=tmp_path,
    )  # fmt: skip
    assert sorted(f.name for f in tmp_path.iterdir()) == ["torch-eager", "torch-eager-float64"]
    for r in check.results:
        scalars = read_scalars(tmp_path / r.engine.replace("/", "-"))
        assert [v for _, v in scalars["train/loss"]] == f32(r.run.trajectory.losses)


@pytest.fixture
def no_tensorboardx(monkeypatch):
    """As if tensorboardX were not installed: its import and its spec both fail."""
    monkeypatch.setitem(sys.modules, "tensorboardX", None)


@pytest.mark.parametrize(
    "command", ["train", "compare", "sweep --lrs 0.1,0.01", "port examples/port/cnn.py:SmallCNN"]
)
def test_without_tensorboardx_the_flag_fails_in_one_line_before_training(
    command, capsys, tmp_path, no_tensorboardx
):
    argv = f"{command} --problem regression --out {tmp_path / 'out'} --tensorboard {tmp_path}/tb"
    assert main(shlex.split(argv)) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "pip install 'dualtrain[tensorboard]'" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_without_tensorboardx_the_api_refuses_before_training(tmp_path, no_tensorboardx):
    p = get_problem("regression")
    with pytest.raises(ConfigError, match=r"dualtrain\[tensorboard\]"):
        api.fit(p.model, p.data.x, p.data.y, epochs=1, tensorboard=tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_lr_find_refuses_the_flag(capsys, tmp_path):
    argv = f"lr-find --problem regression --out {tmp_path} --tensorboard {tmp_path}/tb"
    assert main(shlex.split(argv)) == 2
    assert "drop --tensorboard" in capsys.readouterr().err
