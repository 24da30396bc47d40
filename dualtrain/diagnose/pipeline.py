"""The diagnosis of a comparison, engine by engine: the step, then the phase and module."""

from __future__ import annotations

import math

from dualtrain.backend import get_backend
from dualtrain.comparison import Comparison, EngineResult, _engine_config
from dualtrain.diagnose.phases import (
    Diagnosis,
    Finding,
    classify,
    find_step,
    first_parted,
    probe_step,
    referee,
    require_probes,
    runs_for,
)
from dualtrain.errors import CapabilityError, ConfigError


def diagnose(comparison: Comparison, always: bool = False) -> Diagnosis:
    """Localise where each engine that parted from the reference parts (with `always`,
    also look inside every engine that agreed: each module within its noise?).

    Returns the `Diagnosis`, also kept as `comparison.diagnosis` (then
    `comparison.first_divergence` names the phase and module). Raises a one-line
    ConfigError (or CapabilityError) for a run that cannot be diagnosed.
    """
    setup = comparison.setup
    if setup is None:
        raise ConfigError("this comparison keeps no setup to rerun its steps from")
    first = comparison.loss_divergence
    targets = _targets(comparison, first, always)
    diagnosis = Diagnosis([])
    for result in targets:
        diagnosis.findings.append(_diagnose_engine(comparison, result, first))
    comparison.diagnosis = diagnosis
    return diagnosis


def _targets(comparison: Comparison, first: dict | None, always: bool) -> list[EngineResult]:
    ran = [r for r in comparison.results[1:] if r.run is not None]
    if first is not None and not always:
        return [r for r in ran if r.engine == first["engine"]]
    return [r for r in ran if r.passed is False or always]


def _diagnose_engine(comparison: Comparison, result: EngineResult, first) -> Finding:
    setup = comparison.setup
    backend, _, mode = result.engine.partition("/")
    engine, _ = _engine_config(setup.config, backend, mode.split("-")[0])
    steps = len(result.run.trajectory.steps)
    if mode == "graph":
        from dualtrain.diagnose.graphs import graph_finding

        parted = result.first_divergence is not None and result.passed is False
        last = result.first_divergence if parted else steps - 1
        return graph_finding(setup, engine, result.engine, last, comparison.excluded)
    configs = runs_for(setup, engine)
    require_probes(configs)
    parted = result.first_divergence is not None and result.passed is False
    last = result.first_divergence if parted else steps - 1
    notes = []
    if result.passed is False:
        ref_losses = _reference_losses(comparison, configs["reference"])
        step, step_checks = find_step(setup, configs, last, comparison.excluded, ref_losses)
        if step is None:
            step = last
            notes.append(
                f"no single step of 0..{last} parts beyond its noise when rerun from the "
                "reference's state: the difference builds up over steps"
            )
    else:
        step, step_checks = last, []
    sides = probe_step(setup, configs, step)
    checks = classify(sides, comparison.excluded)
    found = first_parted(checks)
    worst = found or max(checks, key=lambda c: c.excess, default=None)
    if found is None and result.passed is False:
        parted_state = [c for c in step_checks if c.parted]
        notes.append(
            f"at step {step} every phase is within its noise"
            + (f"; the step's {parted_state[0].what} parts" if parted_state else "")
        )
    finding = Finding(
        result.engine,
        step,
        None if found is None else found.phase,
        None if found is None else found.module,
        math.nan if worst is None else worst.value,
        math.nan if worst is None else worst.tolerance,
        math.nan if worst is None else worst.ratio,
        "module",
        checks,
        notes,
        sides,
        None if found is None else found.what,
    )
    finding.referee = referee(finding, comparison.reference)
    return finding


def _reference_losses(comparison: Comparison, reference) -> list[float] | None:
    """The run's own reference losses, when the diagnosis's reference is that run."""
    ran = comparison.results[0]
    cfg = ran.run.trajectory.meta["config"]
    same = (cfg["backend"], cfg["mode"], cfg["dtype"]) == (reference.backend, "eager", "float64")
    get_backend(reference.backend)
    return list(ran.run.trajectory.losses) if same else None


def localise(comparison: Comparison, requested: bool | None = None) -> None:
    """The diagnosis a command or the API runs after a comparison.

    `requested` True (`--diagnose`): always, and what cannot be diagnosed raises
    its one-line error; None (the default): only when an engine parted, and what
    cannot be diagnosed becomes a note of the comparison; False: never.
    """
    if requested is False or (requested is None and comparison.passed):
        return
    try:
        diagnose(comparison, always=bool(requested))
    except (ConfigError, CapabilityError) as exc:
        if requested:
            raise
        comparison.notes.append(f"not localised: {exc}")


def localise_or_error(comparison: Comparison, requested: bool) -> ConfigError | None:
    """`localise` for a command: `--diagnose` (`requested`) or automatic; the error
    of a requested diagnosis is returned, to be raised once the report is written."""
    try:
        localise(comparison, True if requested else None)
    except ConfigError as exc:
        return exc
    return None


def where(first: dict) -> str:
    """ ", phase forward, module `blocks.1.norm1`" for a diagnosed divergence, else ""."""
    if not first.get("phase"):
        return ""
    return f", phase {first['phase']}, module {first['module'] or '(the model itself)'}"
