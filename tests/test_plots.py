"""The pictures: what each figure draws, read back from the matplotlib objects."""

from __future__ import annotations

import copy
import shlex

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgba  # noqa: E402

from dualtrain import api, plots  # noqa: E402
from dualtrain.cli import main  # noqa: E402
from dualtrain.commands.sweep import figures as sweep_figures  # noqa: E402
from dualtrain.comparison import ATOL, RTOL  # noqa: E402
from dualtrain.loop import RunConfig  # noqa: E402
from dualtrain.problems import get_problem  # noqa: E402
from dualtrain.report import divergences, figures  # noqa: E402
from dualtrain.sweep import engines_agree, judged, sweep  # noqa: E402


def by_gid(fig, prefix: str) -> list:
    return [
        line for ax in fig.axes for line in ax.lines if (line.get_gid() or "").startswith(prefix)
    ]


@pytest.fixture(scope="module")
def comparison():
    """numpy against torch eager, two param groups, a StepLR: small and real."""
    p = get_problem("regression")
    return api.compare(
        p.model, p.data.x[:64], p.data.y[:64], backends=["numpy", "torch"], weights=p.weights,
        optimizer="sgd", lr=0.05, momentum=0.9, groups=[{"prefixes": ["0."], "lr": 0.01}],
        scheduler="StepLR", scheduler_args={"step_size": 1, "gamma": 0.5}, epochs=3, batch_size=16,
    )  # fmt: skip


def test_divergence_is_relative_loss_difference_on_a_log_scale_with_its_tolerance(comparison):
    fig = figures(comparison, "test")["divergence.png"]
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    ref = np.array(comparison.results[0].run.trajectory.losses)
    got = np.array(comparison.results[1].run.trajectory.losses)
    want = np.abs(got - ref) / np.abs(ref)  # by hand, from the two trajectories
    floor = plots.zero_floor({"": divergences(comparison)})
    (line,) = by_gid(fig, "difference:torch/eager")
    np.testing.assert_array_equal(line.get_ydata(), np.maximum(want, floor))
    (tolerance,) = by_gid(fig, "tolerance:torch/eager")
    np.testing.assert_allclose(tolerance.get_ydata(), (ATOL + RTOL * np.abs(ref)) / np.abs(ref))
    if (want == 0).any():  # torch often matches numpy bit for bit at some steps
        assert "exact 0" in by_gid(fig, "floor")[0].get_label()


def test_an_exact_zero_is_drawn_at_the_floor_the_legend_names():
    d = plots.Divergence(
        "b", [0, 1, 2], [0.0, 2e-16, 0.0], [1e-4, 1e-4, 1e-4], first_divergence=None
    )
    fig = plots.divergence_figure({"": [d]}, "t")
    (floor,) = by_gid(fig, "floor")
    level = floor.get_ydata()[0]
    assert level == plots.ZERO_FLOOR and f"{level:.0e}" in floor.get_label()
    ydata = by_gid(fig, "difference:b")[0].get_ydata()
    assert list(ydata) == [level, 2e-16, level]
    # a difference smaller than the floor moves the floor a decade under it
    small = plots.Divergence("b", [0, 1], [0.0, 3e-19], [1e-4, 1e-4])
    assert plots.zero_floor({"": [small]}) == 1e-20


def test_a_parted_engine_gets_a_mark_at_its_first_step_outside():
    d = plots.Divergence("b", [0, 1, 2], [1e-9, 1e-3, 1e-2], [1e-4] * 3, first_divergence=1)
    fig = plots.divergence_figure({"": [d]}, "t")
    (mark,) = by_gid(fig, "first:b")
    assert list(mark.get_xdata()) == [1, 1]
    assert by_gid(fig, "floor") == []  # no exact zero: no floor line stretching the axis


def test_lr_picture_has_one_panel_per_group_and_one_line_each(comparison):
    fig = figures(comparison, "test")["lr.png"]
    assert len(fig.axes) == 2  # two param groups
    t = comparison.results[1].run.trajectory
    for g in range(2):
        (line,) = by_gid(fig, f"lr:group {g}")
        assert list(line.get_ydata()) == t.lrs(g)
    assert by_gid(fig, "differs:") == []  # identical by construction: no mark


def test_lr_picture_marks_the_steps_where_an_engine_differs():
    lrs = {"a": [[0.1, 0.1, 0.05], [0.01] * 3], "b": [[0.1, 0.1, 0.04], [0.01] * 3]}
    fig = plots.lr_figure([0, 1, 2], lrs, "t")
    (mark,) = by_gid(fig, "differs:b")
    assert (list(mark.get_xdata()), list(mark.get_ydata())) == ([2], [0.04])
    assert mark.get_gid().endswith("group 0")


def test_compare_report_puts_the_divergence_first(capsys, tmp_path):
    command = "compare --problem regression --epochs 2 --backends numpy,torch"
    assert main(shlex.split(f"{command} --out {tmp_path}")) == 0
    images = [line for line in (tmp_path / "report.md").read_text().splitlines() if "![" in line]
    assert images == ["![divergence.png](divergence.png)", "![loss.png](loss.png)",
                      "![lr.png](lr.png)"]  # fmt: skip
    assert (tmp_path / "divergence.png").read_bytes()[:4] == b"\x89PNG"


LRS = [0.1, 0.03, 0.01, 0.003]


@pytest.fixture(scope="module")
def swept():
    p = get_problem("regression")
    config = RunConfig(optimizer="sgd", lr=0.01, epochs=3, batch_size=100)
    train, val = p.data.split(0.2, 0)
    return sweep(config, p.model, train, val, LRS, ["numpy", "torch"], ["eager"], p.weights)


def test_sweep_loss_is_per_epoch_one_colour_per_lr_and_one_line_when_engines_agree(swept):
    assert engines_agree(judged(swept))
    fig = sweep_figures(swept)["sweep-loss.png"]
    (ax,) = fig.axes
    train = by_gid(fig, "train:")
    assert len(train) == len(LRS) and len(by_gid(fig, "val:")) == len(LRS)
    assert {line.get_linestyle() for line in by_gid(fig, "val:")} == {"--"}
    colours = {tuple(to_rgba(line.get_color())) for line in train}
    assert len(colours) == len(LRS)
    for r in (r for r in swept.runs if r.engine == "numpy/eager"):
        (line,) = by_gid(fig, f"train:{r.lr:g}:")
        assert list(line.get_ydata()) == [e["train_loss"] for e in r.run.trajectory.epochs]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(label for label in labels if label.startswith("lr=")) == sorted(
        f"lr={lr:g}" for lr in LRS
    )
    assert "all engines agree" in ax.get_legend().get_title().get_text()
    panels = sweep_figures(swept)["sweep-divergence.png"].axes
    assert len(panels) == len(LRS) and all(ax.get_yscale() == "log" for ax in panels)


def test_sweep_engines_differ_by_the_comparisons_rule(swept):
    apart = copy.deepcopy(swept)
    run = next(r for r in apart.runs if r.engine == "torch/eager" and r.lr == 0.01)
    step = run.run.trajectory.steps[3]
    step["loss"] *= 1 + 1e-9  # inside rtol 1e-4: still the same
    assert engines_agree(judged(apart))
    step["loss"] *= 1 + 1e-3  # outside: the engines differ
    assert not engines_agree(judged(apart))
    fig = sweep_figures(apart)["sweep-loss.png"]
    assert len(by_gid(fig, "train:")) == 2 * len(LRS)  # every engine a line of its own
    markers = {line.get_marker() for line in by_gid(fig, "train:0.01:")}
    assert len(markers) == 2


def test_many_lrs_never_share_a_colour():
    colours = plots.lr_colors([10.0**-k for k in range(12)])
    assert len(set(colours.values())) == 12
