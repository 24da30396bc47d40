"""`dualtrain train` and `dualtrain compare` on the NumPy backend."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from dualtrain.backend import get_backend, register_backend, unregister_backend
from dualtrain.cli import main
from dualtrain.progress import Progress
from dualtrain.trajectory import Trajectory
from dualtrain_numpy import NumpyBackend

RECIPE = (
    "--problem regression --optimizer sgd --lr 0.05 --momentum 0.9 --scheduler StepLR "
    "--arg step_size=5 --arg gamma=0.5 --epochs 4 --seed 0"
)


def run(capsys, command: str) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    out, err = capsys.readouterr()
    return code, out, err


def load(directory: Path, stem: str = "trajectory") -> Trajectory:
    return Trajectory.load(directory / f"{stem}.json")


def test_train_writes_a_trajectory(capsys, tmp_path):
    code, out, err = run(capsys, f"train {RECIPE} --out {tmp_path}")
    assert (code, err) == (0, "")
    trajectory = load(tmp_path)
    assert len(trajectory.steps) == 4 * 16  # 800 training rows in batches of 50
    assert [s["lr"][0] for s in trajectory.steps[::16]] == [0.05] * 4  # StepLR(5): no drop yet
    assert (tmp_path / "trajectory.csv").read_text().startswith("step,epoch,lr_0,loss,time")
    assert "numpy/eager: 64 steps" in out


def test_the_loss_read_chunk_changes_no_value_of_the_trajectory(capsys, tmp_path):
    # 16 steps an epoch: chunks of 5 end inside epochs, so reads fall mid-epoch too.
    assert run(capsys, f"train {RECIPE} --out {tmp_path / 'every'} --loss-read-every 1")[0] == 0
    assert run(capsys, f"train {RECIPE} --out {tmp_path / 'five'} --loss-read-every 5")[0] == 0
    every, five = load(tmp_path / "every"), load(tmp_path / "five")
    assert len(every.steps) == 64
    assert every.losses == five.losses
    assert [s["lr"] for s in every.steps] == [s["lr"] for s in five.steps]


def test_a_toml_config_says_what_the_flags_say(capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        """
problem = "regression"
optimizer = "sgd"
lr = 0.05
epochs = 4
seed = 0
scheduler = "StepLR"
options = { momentum = 0.9 }
args = { step_size = 5, gamma = 0.5 }
"""
    )
    assert run(capsys, f"train {RECIPE} --out {tmp_path / 'flags'}")[0] == 0
    assert run(capsys, f"train --config {config} --out {tmp_path / 'file'}")[0] == 0
    assert load(tmp_path / "flags").losses == load(tmp_path / "file").losses
    # a flag overrides the file
    assert run(capsys, f"train --config {config} --epochs 1 --out {tmp_path / 'one'}")[0] == 0
    assert len(load(tmp_path / "one").steps) == 16


def test_param_groups_with_their_own_lr(capsys, tmp_path):
    # group 0: every parameter but the first Linear's; group 1: "0." at 0.01
    code, _, err = run(capsys, f"train {RECIPE} --group 0.=0.01 --out {tmp_path}")
    assert (code, err) == (0, "")
    assert load(tmp_path).steps[0]["lr"] == [0.05, 0.01]


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_train_on_your_own_data(capsys, tmp_path, kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ np.array([1.0, 2.0, -1.0])
    path = tmp_path / f"data.{kind}"
    if kind == "csv":
        rows = np.column_stack([x, y])
        np.savetxt(path, rows, delimiter=",", header="a,b,c,target", comments="")
    else:
        np.savez(path, x=x, y=y)
    code, _, err = run(
        capsys, f"train --data {path} --lr 0.05 --epochs 30 --batch-size 8 --out {tmp_path / 'o'}"
    )
    assert (code, err) == (0, "")
    trajectory = load(tmp_path / "o")
    assert len(trajectory.steps) == 30 * 4  # 32 training rows (20% held out) in batches of 8
    assert trajectory.epochs[-1]["val_loss"] < 0.1 * trajectory.epochs[0]["val_loss"]


def test_compare_writes_report_trajectories_and_plots(capsys, tmp_path):
    code, out, err = run(
        capsys, f"compare --backends numpy --modes eager,graph {RECIPE} --out {tmp_path}"
    )
    assert (code, err) == (0, "")
    assert "numpy/graph: skipped (NumPy runs eagerly only" in out
    report = (tmp_path / "report.md").read_text()
    assert "Verdict: **PASS**" in report
    assert "| numpy/graph | - | - | - | - | - | - | skipped:" in report
    assert (tmp_path / "numpy-eager.json").exists()
    for plot in ("lr.png", "loss.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"


class Perturbed(NumpyBackend):
    """The NumPy backend with a deliberately wrong update: lr x (1 + 1e-3)."""

    name = "perturbed"

    def set_hyperparams(self, optimizer, lrs, momenta):
        super().set_hyperparams(optimizer, [lr * (1 + 1e-3) for lr in lrs], momenta)


class WrongLr(NumpyBackend):
    """Records an lr that differs in the last bit, but trains exactly."""

    name = "wrong-lr"

    def set_hyperparams(self, optimizer, lrs, momenta):
        super().set_hyperparams(optimizer, lrs, momenta)
        lrs[:] = [np.nextafter(lr, 1.0) for lr in lrs]


@pytest.fixture
def registered():
    names = []

    def add(cls):
        register_backend(cls)
        names.append(cls.name)

    yield add
    for name in names:
        unregister_backend(name)


@pytest.mark.parametrize("cls", [Perturbed, WrongLr])
def test_compare_fails_on_a_perturbed_engine(capsys, tmp_path, registered, cls):
    registered(cls)
    code, out, _ = run(capsys, f"compare --backends numpy,{cls.name} {RECIPE} --out {tmp_path}")
    assert code == 1
    assert f"{cls.name}/eager: last step loss" in out and "FAIL" in out
    assert "Verdict: **FAIL**" in (tmp_path / "report.md").read_text()


def test_compare_passes_a_faithful_copy(capsys, tmp_path, registered):
    class Copy(NumpyBackend):
        name = "copy"

    registered(Copy)
    code, _, _ = run(capsys, f"compare --backends numpy,copy {RECIPE} --out {tmp_path}")
    assert code == 0
    assert "| copy/eager |" in (tmp_path / "report.md").read_text()


def test_backend_names_are_unique(registered):
    class Again(NumpyBackend):
        name = "numpy"

    with pytest.raises(Exception, match="'numpy' is already registered"):
        registered(Again)
    with pytest.raises(Exception, match=r"unknown backend 'jax' \(known: .*numpy"):
        get_backend("jax")


BAD = [
    ("train --problem mnist", ["mnist", "regression"]),
    ("train --optimizer lamb", ["lamb", "sgd"]),
    ("train --backend jax", ["jax", "numpy"]),
    ("train --mode jit", ["jit"]),
    ("train --epochs -3", ["epochs", "-3"]),
    ("train --epochs three", ["three"]),
    ("train --batch-size 0", ["batch_size", "0"]),
    ("train --loss-read-every 0", ["loss_read_every", "0"]),
    ("train --lr -1", ["lr", "-1"]),
    ("train --dtype float16", ["float16"]),
    ("train --interval batch", ["batch"]),
    ("train --metric accuracy", ["accuracy"]),
    ("train --scheduler StepLR", ["StepLR", "step_size"]),
    ("train --scheduler Bogus", ["Bogus"]),
    ("train --scheduler StepLR --arg step_size=0", ["step_size", "0"]),
    ("train --arg step_size", ["step_size", "KEY=VALUE"]),
    ("train --group 0.", ["0."]),
    ("train --group 9.=0.1", ["9."]),
    ("train --option betas=(1,2,3) --optimizer adam", ["betas"]),
    ("train --option flux=1", ["flux"]),
    ("train --val-fraction 1.5", ["1.5"]),
    ("train --data {tmp}/missing.csv", ["missing.csv"]),
    ("train --data {tmp}/notes.txt", ["notes.txt", ".csv"]),
    ("train --data {tmp}/bad.csv", ["bad.csv"]),
    ("train --data {tmp}/nox.npz", ["nox.npz", "x"]),
    ("train --data {tmp}/nox.npz --problem linear", ["--problem or --data"]),
    ("train --config {tmp}/missing.toml", ["missing.toml"]),
    ("train --config {tmp}/typo.toml", ["epoch"]),
    ("train --config {tmp}/wrongtype.toml", ["epochs", "'ten'"]),
    ("train --config {tmp}/broken.toml", ["broken.toml", "TOML"]),
    ("compare --backends numpy,jax", ["jax"]),
    ("compare --modes eager,jit", ["jit"]),
    ("compare --backends ,", ["backend"]),
    ("compare --problem linear --scheduler ReduceLROnPlateau", ["validation"]),
]


@pytest.mark.parametrize(("command", "words"), BAD, ids=[c for c, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, command, words):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    (tmp_path / "typo.toml").write_text("epoch = 3\n")
    (tmp_path / "wrongtype.toml").write_text('epochs = "ten"\n')
    (tmp_path / "broken.toml").write_text("epochs = \n")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, command.format(tmp=tmp_path) + f" --out {out_dir}")
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dualtrain: error: "), err
    for word in words:
        assert word in lines[0]
    assert not (out_dir / "trajectory.json").exists()


def test_bad_input_keeps_what_was_saved(capsys, tmp_path):
    assert run(capsys, f"train {RECIPE} --out {tmp_path}")[0] == 0
    saved = (tmp_path / "trajectory.json").read_text()
    assert run(capsys, f"train {RECIPE} --epochs -1 --out {tmp_path}")[0] == 2
    assert (tmp_path / "trajectory.json").read_text() == saved


# --- the progress bar ------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_silent_off_a_terminal():
    stream = io.StringIO()
    bar = Progress(10, "numpy/eager", delay=0.0, stream=stream)
    for _ in range(10):
        bar.update(0.5)
    bar.close()
    assert stream.getvalue() == ""


def test_progress_draws_on_a_terminal_after_the_delay(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # the built-in bar
    quick = Terminal()
    bar = Progress(4, "numpy/eager", delay=60.0, stream=quick)
    for _ in range(4):
        bar.update(0.5)
    bar.close()
    assert quick.getvalue() == ""  # done before the delay: nothing shown
    slow = Terminal()
    bar = Progress(4, "numpy/eager", delay=0.0, stream=slow)
    for _ in range(4):
        bar.update(0.25)
    text = slow.getvalue()
    assert text.startswith("\rnumpy/eager [")
    assert text.endswith("] 4/4 loss 0.25")
    bar.close()
    assert slow.getvalue().endswith("\r\033[K")


def test_json_report_numbers_match_the_trajectories(capsys, tmp_path, registered):
    registered(Perturbed)
    run(capsys, f"compare --backends numpy,perturbed {RECIPE} --out {tmp_path}")
    ref = json.loads((tmp_path / "numpy-eager.json").read_text())
    other = json.loads((tmp_path / "perturbed-eager.json").read_text())
    # the perturbed engine records the schedule's lr but trains with a larger one
    assert [s["lr"] for s in ref["steps"]] == [s["lr"] for s in other["steps"]]
    assert ref["steps"][0]["loss"] == other["steps"][0]["loss"]
    assert ref["steps"][-1]["loss"] != other["steps"][-1]["loss"]


class Float32Graph(NumpyBackend):
    """A graph mode that trains float32 only: the NumPy step, in float32."""

    name = "float32-graph"
    supports_graph = True
    graph_dtypes = ("float32",)
    lr_factor = 1.0

    def compile_step(self, model, optimizer, plan):
        step = self.eager_step(model, optimizer)
        if self.lr_factor == 1.0:
            return step

        def perturbed(x, y):
            for group in optimizer.param_groups:
                group["lr"] *= self.lr_factor
            try:
                return step(x, y)
            finally:
                for group in optimizer.param_groups:
                    group["lr"] /= self.lr_factor

        return perturbed


class PerturbedFloat32Graph(Float32Graph):
    name = "perturbed-float32-graph"
    lr_factor = 1.01


@pytest.mark.parametrize(("cls", "code"), [(Float32Graph, 0), (PerturbedFloat32Graph, 1)])
def test_a_float32_only_graph_is_judged_against_float32_drift(
    capsys, tmp_path, registered, cls, code
):
    # Float32 rounding alone moves final weights past atol 1e-6 of a float64
    # reference; the reference's own float32 run sets how far is rounding. A
    # 1% lr error must still fail.
    registered(cls)
    command = f"compare --backends numpy,{cls.name} --modes eager,graph {RECIPE} --out {tmp_path}"
    got, out, _ = run(capsys, command)
    assert got == code, out
    assert f"{cls.name}/graph" in out and "ran in float32" in out
    report = (tmp_path / "report.md").read_text()
    assert "plus twice the reference's own float32 drift" in report
