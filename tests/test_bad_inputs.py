"""The bad-input corpus: every bad flag, config file, argument, data file or
checkpoint ends with exit code 2 and one line naming it, no traceback, and
leaves what an earlier run saved exactly as it was."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from dualtrain.cli import main

RUN = "--problem regression --epochs 1 --save-every 8"


def _checkpoint_break(change):
    """A copy of the saved run's newest checkpoint, broken by `change(folder)`."""

    def make(tmp: Path) -> str:
        source = sorted((tmp / "saved" / "checkpoints").iterdir())[-1]
        broken = tmp / "broken" / source.name
        shutil.copytree(source, broken)
        change(broken)
        return str(tmp / "broken")

    return make


def _edit_meta(change):
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        change(meta)
        (folder / "meta.json").write_text(json.dumps(meta))

    return _checkpoint_break(edit)


def _npz(folder: Path, arrays: dict) -> None:
    np.savez(folder / "arrays.npz", **arrays)
    raw = (folder / "arrays.npz").read_bytes()
    meta = json.loads((folder / "meta.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(raw).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


FILES = {
    "bad.toml": "epochs = \n",
    "bad.json": '{"epochs": 3,',
    "list.json": "[1, 2]",
    "typo.toml": "epoch = 3\n",
    "wrongtype.toml": 'epochs = "ten"\n',
    "boollr.toml": "lr = true\n",
    "notes.txt": "hello",
    "text.csv": "a,b\n1,x\n",
    "header.csv": "a\n1\n",
    "noy.npz": None,
    "empty.csv": "",
    "sched.json": '{"name": "StepLR", "kwargs": 5}',
}

# (command, words its one line must hold)
CORPUS = [
    # the command line
    ("train --problem mnist", ["mnist", "regression"]),
    ("train --optimizer lamb", ["lamb"]),
    ("train --backend jax", ["jax", "numpy"]),
    ("train --mode jit", ["jit"]),
    ("train --epochs -1", ["epochs", "-1"]),
    ("train --epochs two", ["two"]),
    ("train --batch-size 0", ["batch_size", "0"]),
    ("train --lr -0.1", ["lr", "-0.1"]),
    ("train --dtype float16", ["float16"]),
    ("train --interval batch", ["batch"]),
    ("train --metric acc", ["acc"]),
    ("train --val-fraction 1.5", ["1.5"]),
    ("train --save-every 0", ["save_every", "0"]),
    ("train --frobnicate 1", ["frobnicate"]),
    ("compare --backends numpy,jax", ["jax"]),
    ("compare --modes eager,jit", ["jit"]),
    ("schedule StepLR --lr 0.1 --steps 0 --arg step_size=2", ["steps", "0"]),
    ("schedule Bogus --lr 0.1 --steps 3", ["Bogus"]),
    # config files
    ("train --config {tmp}/bad.toml", ["bad.toml", "TOML"]),
    ("train --config {tmp}/bad.json", ["bad.json", "JSON"]),
    ("train --config {tmp}/list.json", ["list.json"]),
    ("train --config {tmp}/typo.toml", ["epoch"]),
    ("train --config {tmp}/wrongtype.toml", ["epochs", "'ten'"]),
    ("train --config {tmp}/boollr.toml", ["lr", "True"]),
    ("train --config {tmp}/missing.toml", ["missing.toml"]),
    ("schedule --config {tmp}/sched.json --lr 0.1 --steps 3", ["kwargs", "5"]),
    # schedule arguments
    ("train --scheduler StepLR", ["StepLR", "step_size"]),
    ("train --scheduler StepLR --arg step_size=0", ["step_size", "0"]),
    ("train --scheduler StepLR --arg step_size=2 --arg gama=0.5", ["gama"]),
    ("train --scheduler LambdaLR --arg lr_lambda='__import__(1)'", ["lr_lambda"]),
    ("train --scheduler OneCycleLR --arg max_lr=0.1 --arg total_steps=0", ["total_steps"]),
    ("train --arg step_size", ["KEY=VALUE"]),
    # optimizer arguments
    ("train --option betas=(1,2,3) --optimizer adam", ["betas"]),
    ("train --option flux=1", ["flux"]),
    ("train --nesterov", ["nesterov"]),
    ("train --group 9.=0.1", ["9."]),
    ("train --group 0.", ["0."]),
    # data
    ("train --data {tmp}/nothere.csv", ["nothere.csv"]),
    ("train --data {tmp}/notes.txt", ["notes.txt", ".csv"]),
    ("train --data {tmp}/text.csv", ["text.csv"]),
    ("train --data {tmp}/header.csv", ["header.csv"]),
    ("train --data {tmp}/noy.npz", ["noy.npz", "y"]),
    ("train --data {tmp}/empty.csv", ["empty.csv", "empty"]),
    # checkpoints
    ("train --resume {tmp}/nowhere", ["nowhere"]),
]

BROKEN = {
    "truncated": (
        _checkpoint_break(
            lambda f: (f / "arrays.npz").write_bytes((f / "arrays.npz").read_bytes()[:100])
        ),
        ["checksum"],
    ),
    "wrong-checksum": (_edit_meta(lambda m: m.update(arrays_sha256="0" * 64)), ["checksum"]),
    "future-version": (_edit_meta(lambda m: m.update(format_version=7)), ["format version 7"]),
    "missing-key": (_edit_meta(lambda m: m.pop("position")), ["'position'"]),
    "not-json": (
        _checkpoint_break(lambda f: (f / "meta.json").write_text("{")),
        ["meta.json"],
    ),
    "pickle": (
        _checkpoint_break(
            lambda f: _npz(f, {"model/0.weight": np.array([{"code": 1}], dtype=object)})
        ),
        ["arrays.npz"],
    ),
    "another-model": (
        _checkpoint_break(lambda f: _npz(f, {"model/0.weight": np.zeros((3, 3))})),
        ["no array for"],
    ),
}


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    assert main(["train", *RUN.split(), "--out", str(tmp / "saved")]) == 0
    for name, text in FILES.items():
        if text is None:
            np.savez(tmp / name, x=np.zeros((3, 2)))
        else:
            (tmp / name).write_text(text)
    return tmp


def run_bad(capsys, tmp: Path, command: str, words: list[str]) -> None:
    before = snapshot(tmp / "saved")
    argv = shlex.split(command.format(tmp=tmp, broken=tmp / "broken"))
    if argv[0] in ("train", "compare"):
        argv += ["--out", str(tmp / "saved")]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (command, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dualtrain: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert snapshot(tmp / "saved") == before  # nothing saved was touched


@pytest.mark.parametrize(("command", "words"), CORPUS, ids=[c for c, _ in CORPUS])
def test_bad_input(capsys, saved, command, words):
    run_bad(capsys, saved, command, words)


@pytest.mark.parametrize("name", list(BROKEN))
def test_bad_checkpoint(capsys, saved, name):
    shutil.rmtree(saved / "broken", ignore_errors=True)
    breaks, words = BROKEN[name]
    breaks(saved)
    run_bad(capsys, saved, "train --resume {broken}", words)
