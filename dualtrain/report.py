"""The comparison report: `report.md`, each engine's trajectory, and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dualtrain.comparison import Comparison, EngineResult
from dualtrain.errors import ConfigError


def write_report(
    comparison: Comparison,
    out: str | Path,
    title: str,
    plots: bool = True,
    machine_readable: bool = False,
) -> Path:
    """Write trajectories, plots and `report.md` into `out`; returns the report's path.

    `machine_readable` adds `report.json` (see `summary`) and `divergence.png`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for result in comparison.results:
        if result.run is not None:
            result.run.trajectory.save(out, stem=result.engine.replace("/", "-"))
    if machine_readable:
        (out / "report.json").write_text(json.dumps(summary(comparison), indent=2) + "\n")
    images: list[str] = []
    missing = None
    if plots:
        try:
            images = _plots(comparison, out)
            if machine_readable:
                images.append(_divergence_plot(comparison, out))
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
    notes = [f"- {note}" for note in comparison.notes]
    notes += [f"- {r.engine}: {note}" for r in comparison.results for note in r.notes]
    first = comparison.first_divergence
    if first is not None:
        where = "its final parameters" if first["step"] is None else f"step {first['step']}"
        lines += ["", f"First divergence: `{first['engine']}` at {where}."]
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


def result_word(comparison: Comparison, r: EngineResult) -> str:
    """"reference", "pass", "fail" or "skipped"."""
    if r.run is None:
        return "skipped"
    if r.engine == comparison.reference:
        return "reference"
    return {True: "pass", False: "fail", None: "-"}[r.passed]


def summary(comparison: Comparison) -> dict:
    """The machine-readable verdict: `verdict`, per engine `result`, `max_loss_rel`,
    `max_param_rel`, `first_divergence`, and the comparison's `first_divergence`
    = {engine, step} or null."""

    def number(value: float) -> float | None:
        return None if value is None or math.isnan(value) else float(value)

    engines = {}
    for r in comparison.results:
        engines[r.engine] = {
            "result": result_word(comparison, r),
            "max_loss_rel": number(r.loss_max_rel_diff),
            "max_param_rel": number(r.param_max_rel_diff),
            "max_lr_diff": number(r.lr_max_diff),
            "first_divergence": r.first_divergence,
            "tolerance": r.tolerance or None,
            "skipped": r.skipped,
            "notes": list(r.notes),
        }
    return {
        "verdict": "pass" if comparison.passed else "fail",
        "reference": comparison.reference,
        "rtol": comparison.rtol,
        "atol": comparison.atol,
        "first_divergence": comparison.first_divergence,
        "engines": engines,
        "excluded_from_final_weights": list(comparison.excluded),
        "notes": list(comparison.notes),
    }


def _divergence_plot(comparison: Comparison, out: Path) -> str:
    """Per step, each engine's |loss - reference| / |reference| on a log scale, with
    the tolerance it was judged by as a dashed line of the same colour."""
    from dualtrain.plots import plot_divergence

    ran = [r for r in comparison.results if r.run is not None]
    ref = np.abs(np.asarray(ran[0].run.trajectory.losses, np.float64))
    ref_losses = np.asarray(ran[0].run.trajectory.losses, np.float64)
    scale = np.maximum(ref, np.finfo(np.float64).tiny)
    lines, limits = {}, {}
    for r in ran[1:]:
        losses = np.asarray(r.run.trajectory.losses, np.float64)
        if losses.shape != ref_losses.shape:
            continue
        lines[r.engine] = (np.abs(losses - ref_losses) / scale).tolist()
        allowed = comparison.atol + r.loss_slack + comparison.rtol * ref
        limits[r.engine] = (allowed / scale).tolist()
    plot_divergence(out / "divergence.png", lines, limits, f"against {comparison.reference}")
    return "divergence.png"
