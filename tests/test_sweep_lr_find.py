"""`dualtrain sweep` and `dualtrain lr-find`."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from dualtrain.cli import main
from dualtrain.errors import ConfigError
from dualtrain.loop import RunConfig, fit
from dualtrain.lr_find import _valley, lr_find, ramp
from dualtrain.model import init_weights
from dualtrain.problems import get_problem

SWEEP = (
    "sweep --lrs 0.1,0.03,0.01,0.003 --backends numpy,torch --problem regression "
    "--optimizer sgd --momentum 0.9 --epochs 6"
)


def cli(capsys, command):
    code = main(shlex.split(command))
    out, err = capsys.readouterr()
    return code, out, err


def test_sweep_ranks_lrs_alike_on_two_engines(capsys, tmp_path):
    code, out, err = cli(capsys, f"{SWEEP} --out {tmp_path}")
    assert (code, err) == (0, "")
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["rankings_agree"] is True
    assert summary["ranking"]["numpy/eager"] == summary["ranking"]["torch/eager"]
    assert sorted(summary["ranking"]["numpy/eager"]) == [0.003, 0.01, 0.03, 0.1]
    best = summary["best_lr"]["numpy/eager"]
    assert f"best lr on numpy/eager: {best:g}" in out
    assert "every engine ranks the lrs the same way" in out
    # the best lr's final validation loss is the lowest one in the table
    finals = {}
    for lr in (0.1, 0.03, 0.01, 0.003):
        run = json.loads((tmp_path / f"numpy-eager-lr{lr:g}.json").read_text())
        finals[lr] = run["epochs"][-1]["val_loss"]
        assert run["steps"][0]["lr"] == [lr]
    assert min(finals, key=finals.get) == best
    assert (tmp_path / "sweep-loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "| numpy/eager | 0.03 |" in (tmp_path / "sweep.md").read_text()


def test_sweep_with_a_schedule_plots_the_lrs(capsys, tmp_path):
    command = (
        "sweep --lrs 0.03,0.01 --problem regression --epochs 3 --scheduler StepLR "
        f"--arg step_size=1 --out {tmp_path}"
    )
    assert cli(capsys, command)[0] == 0
    assert (tmp_path / "sweep-lr.png").exists()


@pytest.mark.parametrize(
    ("flags", "words"),
    [("--lrs 0.1,x", ["0.1,x"]), ("--lrs 0.1,-1", ["positive"]), ("", ["--lrs"])],
)
def test_sweep_bad_lrs_are_one_line(capsys, tmp_path, flags, words):
    code, _, err = cli(capsys, f"sweep {flags} --out {tmp_path}")
    assert code == 2 and err.count("\n") == 1
    for word in words:
        assert word in err


def test_the_ramp_is_exponential_or_linear():
    lrs = ramp(1e-4, 1.0, 5)
    np.testing.assert_allclose(lrs, [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)
    assert ramp(0.1, 0.5, 5, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ConfigError, match="min_lr < max_lr"):
        ramp(1.0, 0.1, 5)


def test_valley_is_two_thirds_down_the_longest_fall():
    losses = [5.0, 6.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4, 3.0, 9.0]
    # the longest falling run is 5 -> 0.4 (7 points, indices 0..7): 2/3 of the way is 3..4
    assert _valley(losses) in (3, 4)


@pytest.fixture(scope="module")
def regression():
    problem = get_problem("regression")
    train, val = problem.data.split(problem.val_fraction, 0)
    return problem.model, train, val


def test_lr_find_suggests_an_lr_that_trains_and_leaves_the_weights_alone(regression):
    model, train, val = regression
    config = RunConfig(optimizer="sgd", options={"momentum": 0.9})
    weights = init_weights(model, 0)
    copy = {k: v.copy() for k, v in weights.items()}
    test = lr_find(config, model, train, weights, min_lr=1e-5, max_lr=10.0, steps=120)
    assert all(np.array_equal(weights[k], copy[k]) for k in weights)  # untouched
    assert test.stopped_early and len(test.lrs) < 120  # 10 is far past divergence
    assert set(test.suggestions) == {"steepest", "minimum/10", "valley"}
    assert all(1e-5 <= lr <= test.lrs[-1] for lr in test.suggestions.values())
    # The valley lr trains: the loss falls by a factor of 5 within 5 epochs ...
    valley = fit(
        RunConfig(
            optimizer="sgd", options={"momentum": 0.9}, lr=test.suggestions["valley"], epochs=5
        ),
        model,
        train,
        val,
        weights,
    )
    assert valley.trajectory.epochs[-1]["train_loss"] < valley.trajectory.losses[0] / 5
    # ... and ten times the divergence point does not.
    with pytest.raises(ConfigError, match="the loss at step"):
        fit(
            RunConfig(optimizer="sgd", options={"momentum": 0.9}, lr=10 * test.lrs[-1], epochs=5),
            model,
            train,
            val,
            weights,
        )


def test_lr_find_from_the_command_line(capsys, tmp_path):
    command = (
        "lr-find --problem regression --optimizer sgd --momentum 0.9 --min-lr 1e-5 "
        f"--max-lr 10 --steps 120 --out {tmp_path}"
    )
    code, out, err = cli(capsys, command)
    assert (code, err) == (0, "")
    assert "stopped early: the loss diverged" in out and "valley" in out
    result = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(result["lrs"]) == len(result["losses"]) == len(result["smoothed"])
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_lr_find_on_torch_matches_numpy(regression):
    model, train, _ = regression
    args = (model, train, None, 1e-4, 1.0, 40)
    a = lr_find(RunConfig(optimizer="sgd"), *args)
    b = lr_find(RunConfig(backend="torch", optimizer="sgd"), *args)
    np.testing.assert_allclose(b.losses, a.losses, rtol=1e-10)
    assert b.suggestions == pytest.approx(a.suggestions)
