"""PNG plots with matplotlib (the `plot` extra), drawn off-screen.

Each picture is built by a `*_figure` function that returns the matplotlib
`Figure` (no pyplot state, nothing shown), so a test can read back what was
drawn; `save` writes it. Every line that carries data has a `gid` saying what it
is ("difference:torch/eager", "tolerance:torch/eager", "lr:group 0", ...), and
lines differ in style as well as colour, so a picture reads in black and white.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError

#: Exact agreement (0) cannot sit on a log scale: it is drawn at this floor (or a
#: decade under the smallest difference, if one is smaller), and the legend says so.
#: A nonzero relative difference of two float64 numbers is at least 2**-53 ~ 1.1e-16.
ZERO_FLOOR = 1e-17

#: (line style, marker) per engine, so engines differ without colour.
ENGINE_STYLES = [("-", "o"), ("-.", "s"), (":", "^"), ((0, (5, 1, 1, 1)), "D"), ("-", "v")]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'dualtrain[plot]'") from None
    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _new_figure(rows: int = 1, height: float = 4.0, sharey: bool = False) -> tuple[Any, list[Any]]:
    """A pyplot-free Figure with `rows` stacked axes sharing x (and y if asked)."""
    _pyplot()  # the one-line error when matplotlib is missing
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, height if rows == 1 else 1.0 + 2.6 * rows))
    axes = fig.subplots(rows, 1, sharex=True, sharey=sharey, squeeze=False)[:, 0]
    return fig, list(axes)


def _target(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--plot expects a .png file name, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save(fig: Any, path: str | Path) -> Path:
    """Write `fig` to the PNG `path` (its folder made); returns the path."""
    target = _target(path)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    return target


def _style(index: int) -> dict[str, Any]:
    linestyle, marker = ENGINE_STYLES[index % len(ENGINE_STYLES)]
    return {"color": f"C{index % 10}", "linestyle": linestyle, "marker": marker}


def _markevery(n: int) -> int:
    return max(1, n // 12)


def lr_colors(lrs: Sequence[float]) -> dict[float, Any]:
    """One colour per lr, ordered by the lr (viridis, its pale end left out): never
    the same colour for two lrs, however many there are."""
    from matplotlib import colormaps

    ordered = sorted(set(lrs))
    cmap = colormaps["viridis"]
    n = len(ordered)
    return {lr: cmap(0.9 * i / max(n - 1, 1)) for i, lr in enumerate(ordered)}


def plot_schedule(path: str | Path, name: str, runs: list[Any]) -> Path:
    """lr (and momentum, when scheduled) against step, one line per group and flavour.

    Args:
        path: the PNG to write.
        name: the schedule's name, for the title.
        runs: trajectories with `flavor`, `lrs[g][i]` and optional `momentum[g][i]`.

    Returns:
        The path written.
    """
    target = _target(path)
    with_momentum = any(r.momentum is not None for r in runs)
    fig, axes = _new_figure(2 if with_momentum else 1, height=4)
    fig.set_size_inches(8, 6 if with_momentum else 4)
    styles = {"torch": "-", "oneflow": "--"}
    for run in runs:
        label = f"{run.flavor} " if len(runs) > 1 else ""
        for row, series in enumerate((run.lrs, run.momentum or [])):
            for g, values in enumerate(series):
                axes[row].plot(
                    values,
                    styles.get(run.flavor, "-"),
                    label=f"{label}group {g}",
                    marker=ENGINE_STYLES[g % len(ENGINE_STYLES)][1],
                    markevery=_markevery(len(values)),
                    markersize=4,
                )  # groups without colour
    axes[0].set_ylabel("learning rate")
    axes[0].set_title(name)
    if with_momentum:
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, target)


def loss_figure(losses: dict[str, tuple[Sequence[int], Sequence[float]]], title: str) -> Any:
    """Train loss per step, one line per engine (style and colour differ)."""
    fig, (ax,) = _new_figure()
    for index, (engine, (steps, values)) in enumerate(losses.items()):
        style = _style(index)
        ax.plot(
            steps,
            values,
            label=engine,
            alpha=0.85,
            markevery=_markevery(len(values)),
            markersize=4,
            gid=f"loss:{engine}",
            **style,
        )
    positive = all(v > 0 for _, values in losses.values() for v in values)
    ax.set(xlabel="step", ylabel="train loss (per batch)", title=title)
    ax.set_yscale("log" if positive else "linear")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


@dataclass
class Divergence:
    """One engine's per-step relative loss difference from the reference, and the
    relative difference its tolerance allows at each step."""

    engine: str
    steps: list[int]
    differences: list[float]
    limits: list[float]
    #: The first step outside the tolerance, or None.
    first_divergence: int | None = None


def zero_floor(panels: dict[str, list[Divergence]]) -> float:
    """Where an exact 0 is drawn: `ZERO_FLOOR`, or a decade under the smallest
    positive difference or tolerance when one is smaller."""
    positive = [
        v for series in panels.values() for d in series for v in d.differences + d.limits if v > 0
    ]
    smallest = min(positive, default=ZERO_FLOOR)
    return min(ZERO_FLOOR, 10 ** (math.floor(math.log10(smallest)) - 1))


def divergence_figure(panels: dict[str, list[Divergence]], title: str) -> Any:
    """Relative loss differences per step on a log scale, one panel per entry of
    `panels` (one for a comparison, one per lr for a sweep), each engine with its
    tolerance dashed in its colour; exact zeros drawn at the floor the legend names.

    Example:
        >>> d = Divergence("torch/eager", [0, 1], [0.0, 3e-16], [1e-4, 1e-4])
        >>> fig = divergence_figure({"": [d]}, "regression")
        >>> [line.get_gid() for line in fig.axes[0].lines]
        ['floor', 'difference:torch/eager', 'tolerance:torch/eager']
    """
    floor = zero_floor(panels)
    any_zero = any(v == 0 for series in panels.values() for d in series for v in d.differences)
    fig, axes = _new_figure(len(panels), sharey=True)
    engines = list(dict.fromkeys(d.engine for series in panels.values() for d in series))
    for ax, (name, series) in zip(axes, panels.items(), strict=True):
        if any_zero:  # otherwise the floor would only stretch the axis
            ax.axhline(
                floor,
                color="0.5",
                linestyle=":",
                linewidth=1,
                gid="floor",
                label=f"exact 0 (identical), drawn at {floor:.0e}",
            )
        shared = len({tuple(d.limits) for d in series}) == 1 and len(series) > 1
        for d in series:
            style = _style(engines.index(d.engine))
            clipped = [max(v, floor) if v == v else v for v in d.differences]
            ax.plot(
                d.steps,
                clipped,
                label=d.engine,
                alpha=0.85,
                markersize=4,
                markevery=_markevery(len(d.steps)),
                gid=f"difference:{d.engine}",
                **style,
            )
            if not shared or d is series[0]:
                label = "tolerance" if shared else f"{d.engine} tolerance"
                color = "0.3" if shared else style["color"]
                ax.plot(
                    d.steps,
                    [max(v, floor) for v in d.limits],
                    color=color,
                    linestyle="--",
                    alpha=0.7,
                    label=label,
                    gid=f"tolerance:{d.engine}",
                )
            if d.first_divergence is not None:
                ax.axvline(
                    d.first_divergence,
                    color=style["color"],
                    linestyle="--",
                    linewidth=0.8,
                    gid=f"first:{d.engine}",
                    label=f"{d.engine} first outside: step {d.first_divergence}",
                )
        ax.set_yscale("log")
        ax.set_ylabel("|loss - ref| / |ref|")
        if name:
            ax.set_title(name, fontsize=9, loc="left")
        ax.grid(alpha=0.3, which="major")
        if ax is axes[0] or any(d.first_divergence is not None for d in series):
            ax.legend(fontsize=7)  # the styles are the same in every panel
    if len(axes) > 1:
        fig.suptitle(title, fontsize=10)
    else:
        axes[0].set_title(title, fontsize=10)
    axes[-1].set_xlabel("step")
    return fig


def _lr_line(ax, steps, reference, others, label, color, gid) -> None:
    """`reference`'s lrs as one line, and an x at each step where another engine's
    lr is not the same float."""
    ax.plot(steps, reference, color=color, label=label, gid=gid)
    for index, (engine, values) in enumerate(others.items()):
        n = min(len(values), len(reference))
        where = [i for i in range(n) if values[i] != reference[i]] + list(range(n, len(values)))
        if where:
            ax.plot(
                [steps[i] if i < len(steps) else i for i in where],
                [values[i] for i in where],
                linestyle="none",
                marker="xX+"[index % 3],
                color="C3",
                label=f"{engine} differs at {len(where)} steps",
                gid=f"differs:{engine}:{gid}",
            )


def lr_figure(
    steps: Sequence[int],
    lrs: dict[str, list[list[float]]],
    title: str,
    lines: dict[str, dict[str, list[list[float]]]] | None = None,
) -> Any:
    """One panel per param group: the first engine's lr as one line (every engine
    reads one schedule, so the others coincide by construction), an x where another
    engine's lr differs.

    Args:
        steps: the x values.
        lrs: per engine, `lrs[engine][group]` = the lr at each step; the first is drawn.
        title: what was compared.
        lines: instead of `lrs`, several lines per panel (a sweep: one per lr, by label),
            each `{engine: lrs}` as above.

    Returns:
        The Figure; line gids are "lr:group G" (or "lr:LABEL:group G") and
        "differs:ENGINE:...".
    """
    lines = lines if lines is not None else {"": lrs}
    colors = lr_colors([float(k) for k in lines]) if lines.keys() != {""} else None
    groups = len(next(iter(next(iter(lines.values())).values())))
    fig, axes = _new_figure(groups, height=3.5)
    for g, ax in enumerate(axes):
        agree = True
        for label, by_engine in lines.items():
            (first, ref), *others = by_engine.items()
            others = {engine: values[g] for engine, values in others}
            agree &= all(list(v) == list(ref[g]) for v in others.values())  # no x drawn
            color = colors[float(label)] if colors else "C0"
            name = f"lr={label}" if label else f"group {g}: {first}"
            gid = f"lr:{label}:group {g}" if label else f"lr:group {g}"
            _lr_line(ax, steps, ref[g], others, name, color, gid)
        if len(next(iter(lines.values()))) > 1 and agree:
            ax.plot([], [], linestyle="none", label="every engine: the same lrs")
        if colors:  # swept lrs span decades
            ax.set_yscale("log")
        ax.set_ylabel(f"lr, group {g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title(title, fontsize=10)
    axes[-1].set_xlabel("step")
    return fig


@dataclass
class EpochCurve:
    """One sweep run's per-epoch losses (validation None without a split)."""

    lr: float
    engine: str
    train: list[float]
    val: list[float] | None


def sweep_loss_figure(curves: list[EpochCurve], engines_differ: bool, title: str, note: str) -> Any:
    """Per epoch, train loss solid and validation loss dashed, one colour per lr.

    With `engines_differ` every engine is a line of its own (its own marker);
    otherwise only the first engine's, and `note` (e.g. "all engines agree") is
    written on the picture. The legend names each lr once.
    """
    from matplotlib.lines import Line2D

    lrs = list(dict.fromkeys(c.lr for c in curves))
    colors = lr_colors(lrs)
    engines = list(dict.fromkeys(c.engine for c in curves))
    shown = curves if engines_differ else [c for c in curves if c.engine == engines[0]]
    fig, (ax,) = _new_figure(height=4.5)
    markers = {e: ENGINE_STYLES[i % len(ENGINE_STYLES)][1] for i, e in enumerate(engines)}
    for c in shown:
        epochs = list(range(1, len(c.train) + 1))
        marker = markers[c.engine] if engines_differ else None
        for kind, losses, linestyle in (("train", c.train, "-"), ("val", c.val, "--")):
            if losses is None:
                continue
            ax.plot(
                epochs,
                losses,
                color=colors[c.lr],
                linestyle=linestyle,
                marker=marker,
                markersize=4,
                gid=f"{kind}:{c.lr:g}:{c.engine}",
            )
    handles = [Line2D([], [], color=colors[lr], label=f"lr={lr:g}") for lr in sorted(lrs)]
    handles.append(Line2D([], [], color="k", linestyle="-", label="train loss"))
    if any(c.val is not None for c in curves):
        handles.append(Line2D([], [], color="k", linestyle="--", label="validation loss"))
    if engines_differ:
        handles += [
            Line2D([], [], color="k", linestyle="none", marker=markers[e], label=e) for e in engines
        ]
    values = [v for c in shown for v in c.train + (c.val or [])]
    if values and all(v > 0 for v in values if v == v):
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="loss (epoch mean / validation)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7, title=note, title_fontsize=7)
    return fig
