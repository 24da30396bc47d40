"""What a diagnosis adds to a comparison's report: a ranked table of modules, a
picture of each module's excess error, and `repro/` for the first diverging module."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from dualtrain.diagnose.noise import Check
from dualtrain.diagnose.phases import Diagnosis, Finding
from dualtrain.errors import CapabilityError

#: Rows of the ranked table (the worst first); the JSON keeps every check.
TABLE_ROWS = 15


def _g(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _where(f: Finding) -> str:
    if f.phase is None:
        return f"`{f.engine}`: every module within its noise at step {f.step}"
    module = f"`{f.module}`" if f.module else "the model itself"
    return (
        f"`{f.engine}` parts at step {f.step}, phase **{f.phase}**, module {module} "
        f"({f.what}): difference {_g(f.value)} against a tolerance of {_g(f.tolerance)}, "
        f"{_g(f.ratio)} times its rounding noise"
    )


def markdown(diagnosis: Diagnosis) -> list[str]:
    """The report's diagnosis section, as lines."""
    lines = ["", "## Where the engines part", ""]
    for f in diagnosis.findings:
        lines.append(f"- {_where(f)} (depth: {f.depth}).")
        if f.referee:
            lines.append(f"  - referee: {f.referee}")
        lines += [f"  - {note}" for note in f.notes]
    for f in diagnosis.findings:
        ranked = ranked_checks(f)[:TABLE_ROWS]
        if not ranked:
            continue
        lines += [
            "",
            f"Modules of `{f.engine}` at step {f.step}, the largest excess first (difference "
            "over tolerance; above 1 parts; tolerance = 16 x the larger rounding noise + 1 "
            "float32 ulp, `docs/diagnose.md`):",
            "",
            "| module | type | phase | what | difference | noise | own noise | tolerance "
            "| x noise | excess |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in ranked:
            lines.append(
                f"| `{c.module}` | {c.kind or '-'} | {c.phase} | {c.what} | {_g(c.value)} | "
                f"{_g(c.noise)} | {_g(c.own)} | {_g(c.tolerance)} | {_g(c.ratio)} | "
                f"{_g(c.excess)} |"
            )
    lines += [f"- {note}" for note in diagnosis.notes]
    return lines


def ranked_checks(f: Finding) -> list[Check]:
    """The module checks (forward, backward, optimizer), the largest excess first."""
    modules = [c for c in f.checks if c.phase in ("forward", "backward", "optimizer", "state")]
    return sorted(modules, key=lambda c: -c.excess if math.isfinite(c.excess) else -math.inf)


def as_json(diagnosis: Diagnosis) -> list[dict[str, Any]]:
    """Every finding with all its checks, for `report.json`."""

    def number(v: float) -> float | None:
        return None if v is None or not math.isfinite(v) else float(v)

    return [
        {
            **f.summary(),
            "notes": list(f.notes),
            "checks": [
                {
                    "phase": c.phase,
                    "module": c.module,
                    "type": c.kind,
                    "what": c.what,
                    "value": number(c.value),
                    "noise": number(c.noise),
                    "own_noise": number(c.own),
                    "tolerance": number(c.tolerance),
                    "excess": number(c.excess),
                }
                for c in f.checks
            ],
        }
        for f in diagnosis.findings
    ]


def figure(diagnosis: Diagnosis, title: str) -> Any:
    """Each module's excess (difference / tolerance) per phase, in forward order, on a
    log scale with the line at 1 above which a module parts; one panel per engine."""
    from dualtrain.plots import ZERO_FLOOR, _new_figure, _style

    shown = [f for f in diagnosis.findings if any(c.phase == "forward" for c in f.checks)]
    fig, axes = _new_figure(max(1, len(shown)), height=4.5)
    for ax, f in zip(axes, shown, strict=False):
        order = list(dict.fromkeys(c.module for c in f.checks if c.phase == "forward"))
        for index, phase in enumerate(("forward", "backward")):
            by_module = {c.module: c.excess for c in f.checks if c.phase == phase}
            xs = [i for i, m in enumerate(order) if m in by_module]
            ys = [max(by_module[order[i]], ZERO_FLOOR) for i in xs]
            ax.plot(xs, ys, label=phase, markersize=4, gid=f"excess:{f.engine}:{phase}",
                    **_style(index))  # fmt: skip
        ax.axhline(1.0, color="0.3", linestyle="--", gid="parts", label="parts above 1")
        ax.set_yscale("log")
        ax.set_ylabel("difference / tolerance")
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([m or "(model)" for m in order], rotation=90, fontsize=6)
        ax.set_title(f"{f.engine}, step {f.step}", fontsize=9, loc="left")
        ax.grid(alpha=0.3, which="major")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_repro(finding: Finding, model: Any, out: Path) -> Path | None:
    """`out/repro/`: the first diverging module's weights, inputs and upstream gradient
    (`module.npz`), what to build (`module.json`) and `repro.py`, which runs it on
    torch and OneFlow in float64 and prints the differences. None when the finding
    is not a module's own computation or the model is not a user's module."""
    source = getattr(model, "source", None)
    if finding.phase not in ("forward", "backward") or source is None or not finding.sides:
        return None
    reference = finding.sides["reference"]
    call = reference.record.calls[finding.module]
    folder = out / "repro"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{call.module}." if call.module else ""
    state = {k[len(prefix) :]: v for k, v in reference.before[0].items() if k.startswith(prefix)}
    arrays = {f"state/{k}": np.asarray(v) for k, v in state.items()}
    for i, x in enumerate(call.inputs):
        if x is not None:
            arrays[f"input/{i}"] = x
    for j, g in enumerate(call.grad_outputs):
        if g is not None:
            arrays[f"grad_output/{j}"] = g
    np.savez(folder / "module.npz", **arrays)
    against = getattr(model, "against", None)
    meta = {
        "module": call.module,
        "type": call.kind,
        "engine": finding.engine,
        "step": finding.step,
        "phase": finding.phase,
        "torch": {"path": source.path, "name": source.name, "init": source.init},
        "oneflow": None if against is None else {"path": against.path, "name": against.name},
    }
    (folder / "module.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    script = folder / "repro.py"
    template = _repro_template().read_text()
    script.write_text(template.replace("{module}", call.module).replace("{kind}", call.kind))
    return script


def _repro_template() -> Path:
    """The repro script's text. It runs torch and OneFlow, so it lives with the OneFlow
    backend (which holds the torch-to-OneFlow port it may call); found with `find_spec`,
    which locates the package without importing it (nor OneFlow)."""
    spec = importlib.util.find_spec("dualtrain_oneflow")
    if spec is None or not spec.submodule_search_locations:
        raise CapabilityError("diagnose: repro/ needs the OneFlow backend, which is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "repro_template.txt"


def write(comparison: Any, out: Path, title: str, plots: bool) -> list[str]:
    """diagnosis.png (when `plots`) and repro/ for `comparison.diagnosis`; the
    picture's file name for the report, when drawn."""
    diagnosis = comparison.diagnosis
    first = diagnosis.first
    if first is not None:
        write_repro(first, comparison.setup.model if comparison.setup else None, out)
    if not plots or not any(c.phase == "forward" for f in diagnosis.findings for c in f.checks):
        return []
    from dualtrain.plots import save

    save(figure(diagnosis, f"excess error per module: {title}"), out / "diagnosis.png")
    return ["diagnosis.png"]
