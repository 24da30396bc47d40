"""The comparison report: `report.md`, each engine's trajectory, and PNG plots."""

from __future__ import annotations

import math
from pathlib import Path

from dualtrain.comparison import Comparison
from dualtrain.errors import ConfigError


def write_report(comparison: Comparison, out: str | Path, title: str, plots: bool = True) -> Path:
    """Write trajectories, plots and `report.md` into `out`; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for result in comparison.results:
        if result.run is not None:
            result.run.trajectory.save(out, stem=result.engine.replace("/", "-"))
    images: list[str] = []
    missing = None
    if plots:
        try:
            images = _plots(comparison, out)
        except ConfigError as exc:  # no matplotlib: the report and trajectories still count
            missing = str(exc)
    path = out / "report.md"
    text = render(comparison, title, images)
    if missing:
        text += f"\nNo plots: {missing}\n"
    path.write_text(text)
    return path


def _fmt(value: float) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"
    )


def render(comparison: Comparison, title: str, images: list[str]) -> str:
    """The Markdown text of the report."""
    verdict = "PASS" if comparison.passed else "FAIL"
    lines = [
        f"# {title}",
        "",
        f"Verdict: **{verdict}**. Reference engine: `{comparison.reference}`. Tolerance: "
        f"per-step losses and final parameters within rtol {comparison.rtol:g} / atol "
        f"{comparison.atol:g} of the reference; lr trajectories identical (difference 0). "
        "An engine that runs in a lower precision than the reference may also drift twice "
        "as far as the reference's own run in that precision (column tolerance).",
        "",
        "| engine | last step loss | final validation loss | max lr difference "
        "| max relative loss difference | max relative parameter difference | tolerance "
        "| result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in comparison.results:
        if r.run is None:
            lines.append(f"| {r.engine} | - | - | - | - | - | - | skipped: {r.skipped} |")
            continue
        result = {True: "pass", False: "FAIL", None: "-"}[r.passed]
        if r.engine == comparison.reference:
            result = "reference"
        lines.append(
            f"| {r.engine} | {r.run.trajectory.final_loss:.6g} | "
            f"{_fmt(r.run.trajectory.final_val_loss)} | {_fmt(r.lr_max_diff)} | "
            f"{_fmt(r.loss_max_rel_diff)} | {_fmt(r.param_max_rel_diff)} | "
            f"{r.tolerance or '-'} | {result} |"
        )
    notes = [f"- {r.engine}: {note}" for r in comparison.results for note in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", *(f"![{name}]({name})" for name in images)]
    return "\n".join(lines) + "\n"


def _plots(comparison: Comparison, out: Path) -> list[str]:
    from dualtrain.plots import plot_lines

    ran = [r for r in comparison.results if r.run is not None]
    lrs = {
        f"{r.engine} group {g}": r.run.trajectory.lrs(g)
        for g in range(ran[0].run.trajectory.n_groups)
        for r in ran
    }
    plot_lines(out / "lr.png", lrs, "step", "learning rate", "lr per group")
    losses = {r.engine: r.run.trajectory.losses for r in ran}
    plot_lines(out / "loss.png", losses, "step", "train loss", "loss per step", "log")
    return ["lr.png", "loss.png"]
