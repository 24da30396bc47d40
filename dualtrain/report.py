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

    The pictures, in the report's order: `divergence.png` (how far each engine is
    from the reference, per step, against its tolerance; when two engines ran),
    `loss.png`, `lr.png`. `machine_readable` adds `report.json` (see `summary`).
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
            images = _plots(comparison, out, title)
        except ConfigError as exc:  # no matplotlib: the report and trajectories still count
            missing = str(exc)
    if comparison.diagnosis is not None:
        from dualtrain.diagnose.output import write as write_diagnosis

        images += write_diagnosis(comparison, out, title, plots and not missing)
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
        if first.get("phase"):
            where += f", phase {first['phase']}, module `{first['module']}`"
        lines += ["", f"First divergence: `{first['engine']}` at {where}."]
    if comparison.diagnosis is not None:
        from dualtrain.diagnose.output import markdown

        lines += markdown(comparison.diagnosis)
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", *(f"![{name}]({name})" for name in images)]
    return "\n".join(lines) + "\n"


def _plots(comparison: Comparison, out: Path, title: str) -> list[str]:
    """Draw the report's pictures into `out`; their file names, most telling first."""
    from dualtrain.plots import save

    drawn = figures(comparison, title)
    for name, figure in drawn.items():
        save(figure, out / name)
    return list(drawn)


def figures(comparison: Comparison, title: str) -> dict:
    """The report's matplotlib Figures by file name, in the report's order:
    divergence.png (when two engines ran), loss.png, lr.png."""
    from dualtrain.plots import divergence_figure, loss_figure, lr_figure

    ran = [r for r in comparison.results if r.run is not None]
    drawn = {}
    series = divergences(comparison)
    if series:
        what = f"relative loss difference per step, against {comparison.reference}: {title}"
        drawn["divergence.png"] = divergence_figure({"": series}, what)
    losses = {r.engine: (_steps(r), r.run.trajectory.losses) for r in ran}
    drawn["loss.png"] = loss_figure(losses, f"train loss per step: {title}")
    trajectories = {r.engine: r.run.trajectory for r in ran}
    lrs = {e: [t.lrs(g) for g in range(t.n_groups)] for e, t in trajectories.items()}
    drawn["lr.png"] = lr_figure(_steps(ran[0]), lrs, f"lr per param group: {title}")
    return drawn


def _steps(result: EngineResult) -> list[int]:
    return [s["step"] for s in result.run.trajectory.steps]


def relative_divergence(
    reference: list[float], losses: list[float], rtol: float, atol: float, slack: float = 0.0
) -> tuple[list[float], list[float]]:
    """Per step, |loss - reference| / |reference| and the same ratio for the
    difference the comparison allows there (atol + slack + rtol * |reference|,
    the rule of `comparison._judge`)."""
    ref = np.asarray(reference, np.float64)
    scale = np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    differences = np.abs(np.asarray(losses, np.float64) - ref) / scale
    limits = (atol + slack + rtol * np.abs(ref)) / scale
    return differences.tolist(), limits.tolist()


def divergences(comparison: Comparison) -> list:
    """Each engine's `plots.Divergence` from the reference (engines whose step
    count differs from the reference's are left out: they failed on that)."""
    from dualtrain.plots import Divergence

    ran = [r for r in comparison.results if r.run is not None]
    if not ran:
        return []
    reference = ran[0].run.trajectory.losses
    out = []
    for r in ran[1:]:
        losses = r.run.trajectory.losses
        if len(losses) != len(reference):
            continue
        differences, limits = relative_divergence(
            reference, losses, comparison.rtol, comparison.atol, r.loss_slack
        )
        steps = _steps(r)
        first = None if r.first_divergence is None else steps[r.first_divergence]
        out.append(Divergence(r.engine, steps, differences, limits, first))
    return out


def result_word(comparison: Comparison, r: EngineResult) -> str:
    """ "reference", "pass", "fail" or "skipped"."""
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
        **({} if comparison.diagnosis is None else {"diagnosis": _diagnosis(comparison)}),
    }


def _diagnosis(comparison: Comparison) -> list[dict]:
    from dualtrain.diagnose.output import as_json

    return as_json(comparison.diagnosis)
