"""PNG plots with matplotlib (the `plot` extra), drawn off-screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("plotting needs matplotlib: pip install 'dualtrain[plot]'") from None
    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _target(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--plot expects a .png file name, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


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
    plt = _pyplot()
    with_momentum = any(r.momentum is not None for r in runs)
    fig, axes = plt.subplots(
        2 if with_momentum else 1, 1, figsize=(8, 6 if with_momentum else 4), sharex=True
    )
    axes = list(axes) if with_momentum else [axes]
    styles = {"torch": "-", "oneflow": "--"}
    for run in runs:
        label = f"{run.flavor} " if len(runs) > 1 else ""
        for g, values in enumerate(run.lrs):
            axes[0].plot(values, styles.get(run.flavor, "-"), label=f"{label}group {g}")
        for g, values in enumerate(run.momentum or []):
            axes[1].plot(values, styles.get(run.flavor, "-"), label=f"{label}group {g}")
    axes[0].set_ylabel("learning rate")
    axes[0].set_title(name)
    if with_momentum:
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def plot_lines(
    path: str | Path,
    lines: dict[str, list[float]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    yscale: str = "linear",
) -> Path:
    """One chart, one labelled line per entry of `lines`, written to the PNG `path`."""
    target = _target(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, values in lines.items():
        ax.plot(values, label=label, alpha=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale=yscale)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def plot_divergence(
    path: str | Path,
    lines: dict[str, list[float]],
    limits: dict[str, list[float]],
    title: str,
) -> Path:
    """Relative differences per step on a log scale, each with its tolerance dashed.

    Exact agreement (0) is drawn at the bottom of the axis, as log scales
    cannot show zero.
    """
    target = _target(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    positive = [v for values in lines.values() for v in values if v > 0]
    floor = min(positive) / 10 if positive else 1e-17
    for index, (label, values) in enumerate(lines.items()):
        color = f"C{index}"
        ax.plot([max(v, floor) for v in values], color=color, label=label, alpha=0.85)
        if label in limits:
            ax.plot(
                limits[label], color=color, linestyle="--", alpha=0.6, label=f"{label} tolerance"
            )
    ax.set(
        xlabel="step",
        ylabel="|loss - reference| / |reference|",
        title=f"relative loss difference {title}",
        yscale="log",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
