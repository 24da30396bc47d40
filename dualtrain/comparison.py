"""Running one training on several engines and judging whether they agree.

An engine is a backend and a mode ("torch/graph"). Every engine gets the same
initial weights, batches and schedule; the first engine (NumPy eager, float64,
by default) is the reference the others are measured against: identical lrs,
per-step losses and final parameters within rtol 1e-4 / atol 1e-6.

An engine that can only run in a lower precision than the reference (OneFlow's
graph trains float32 only) cannot meet that: rounding alone drifts further.
So the reference is also run in that precision, and its own drift sets the
floor: such an engine passes when it stays within the tolerance or within
twice the distance of the reference's lower-precision run, tensor by tensor.
The report says which tolerance judged each engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualtrain.backend import get_backend
from dualtrain.data import Dataset
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.loop import Run, RunConfig, train_engine, with_overrides
from dualtrain.model import ModelSpec
from dualtrain.usermodel import UserModule

#: Per-step losses and final parameters must agree this closely with the reference.
RTOL, ATOL = 1e-4, 1e-6


@dataclass
class EngineResult:
    engine: str
    run: Run | None = None
    skipped: str | None = None  # why the engine did not run
    lr_max_diff: float = math.nan
    loss_max_rel_diff: float = math.nan
    param_max_rel_diff: float = math.nan
    passed: bool | None = None
    notes: list[str] = field(default_factory=list)
    tolerance: str = ""
    #: The first step whose loss is outside the tolerance; None when none is.
    first_divergence: int | None = None
    #: The absolute loss difference allowed on top of rtol / atol (the floor).
    loss_slack: float = 0.0


@dataclass
class Setup:
    """What the engines of a comparison were run from, so that a step can be rerun
    (`dualtrain.diagnose`): the base config, the model, the data, the initial
    state, and the reference's config."""

    config: RunConfig
    model: ModelSpec | UserModule
    train: Dataset
    val: Dataset | None
    start: dict[str, np.ndarray]
    reference: RunConfig


@dataclass
class Comparison:
    reference: str
    results: list[EngineResult]
    rtol: float = RTOL
    atol: float = ATOL
    #: Notes on the whole comparison (a port's preflight differences, ...).
    notes: list[str] = field(default_factory=list)
    #: State names left out of the final-weight verdict, for the report.
    excluded: tuple[str, ...] = ()
    #: How to rerun the engines (`dualtrain.diagnose`); not saved.
    setup: Setup | None = field(default=None, repr=False)
    #: The localisation of the divergence (`dualtrain.diagnose.Diagnosis`), if run.
    diagnosis: Any = None

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.results)

    @property
    def first_divergence(self) -> dict | None:
        """{engine, step} of the earliest step at which an engine's loss parted from
        the reference's; step None when only final parameters differ; None if all agree.
        Once diagnosed (`dualtrain.diagnose`), the diagnosis's {engine, step, phase,
        module, value, tolerance, ...}: the step where the engine's own computation
        first parts, which can be earlier than the loss shows it."""
        found = self.diagnosis.first if self.diagnosis is not None else None
        if found is not None:
            return found.summary()
        return self.loss_divergence

    @property
    def loss_divergence(self) -> dict | None:
        """{engine, step} of the first step whose loss parted (see `first_divergence`)."""
        failed = [r for r in self.results if r.passed is False]
        parted = [r for r in failed if r.first_divergence is not None]
        if parted:
            first = min(parted, key=lambda r: r.first_divergence)
            return {"engine": first.engine, "step": first.first_divergence}
        return {"engine": failed[0].engine, "step": None} if failed else None


#: A planned engine: (backend, mode, reason to skip or None).
Planned = tuple[str, str, str | None]


def engines(backends: list[str], modes: list[str]) -> list[Planned]:
    """(backend, mode, reason to skip or None) for every pair, in order."""
    out = []
    for name in backends:
        backend = get_backend(name)
        for mode in modes:
            skip = None
            if mode == "graph" and not backend.supports_graph:
                skip = backend.graph_unsupported_reason
            out.append((name, mode, skip))
    return out


def compare(
    config: RunConfig,
    model: ModelSpec,
    train: Dataset,
    val: Dataset | None,
    backends: list[str],
    modes: list[str],
    weights: dict[str, np.ndarray] | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Comparison:
    """Run every engine from identical weights and batches; compare with the first.

    Example:
        >>> from dualtrain.problems import get_problem
        >>> p = get_problem("linear")
        >>> c = compare(RunConfig(lr=0.001, epochs=2, batch_size=4), p.model, p.data, None,
        ...             ["numpy"], ["eager", "graph"], weights=p.weights)
        >>> [(r.engine, r.skipped is not None) for r in c.results]
        [('numpy/eager', False), ('numpy/graph', True)]
    """
    if not backends or not modes:
        raise ConfigError("compare needs at least one backend and one mode")
    start = model.initial_weights(config.seed)
    start.update({k: np.asarray(v) for k, v in (weights or {}).items()})
    return compare_engines(config, model, train, val, engines(backends, modes), start, rtol, atol)


def compare_engines(
    config: RunConfig,
    model: ModelSpec | UserModule,
    train: Dataset,
    val: Dataset | None,
    planned: list[Planned],
    start: dict[str, np.ndarray],
    rtol: float = RTOL,
    atol: float = ATOL,
    reference: RunConfig | None = None,
    excluded: tuple[str, ...] = (),
    own_floor: bool = False,
    graph_errors_skip: bool = False,
) -> Comparison:
    """Run the `planned` engines from `start`; judge each against the reference.

    The reference is the first engine that runs, or `reference` when given (a
    run of its own, listed first, e.g. torch eager in float64 for engines that
    train in float32). `excluded` state names are left out of the final-weight
    verdict (parameters whose gradient is zero up to rounding). With `own_floor`,
    an engine in a lower precision may also drift twice as far as it drifts
    itself between the two precisions (its eager sibling where its graph has
    only the lower one): float32 kernels less exact than the reference's
    (OneFlow's and inductor's BatchNorm variance) are no error; a real
    difference shows in both precisions and is not covered. With
    `graph_errors_skip`, a graph engine that cannot run the model (an error its
    framework raises while building or running the graph) is skipped with the
    reason, as a graph its backend lacks is.
    """
    results = []
    if reference is not None:
        label = f"{reference.engine}-{reference.dtype}"
        run = train_engine(reference, model, train, val, weights=start)
        results.append(EngineResult(label, run=run, notes=list(run.notes)))
    for backend, mode, skip in planned:
        engine_config, notes = _engine_config(config, backend, mode)
        if skip:
            results.append(EngineResult(engine_config.engine, skipped=skip))
            continue
        try:
            run = train_engine(engine_config, model, train, val, weights=start)
        except CapabilityError as exc:
            if not results or all(r.run is None for r in results):
                raise  # the reference itself cannot run: nothing to compare with
            results.append(EngineResult(engine_config.engine, skipped=str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever a framework's graph raises
            if not (graph_errors_skip and mode == "graph") or isinstance(exc, ConfigError):
                raise
            text = (str(exc).strip().splitlines() or [""])[0]
            reason = f"the graph cannot run this model: {type(exc).__name__}: {text}"
            results.append(EngineResult(engine_config.engine, skipped=reason))
            continue
        results.append(EngineResult(engine_config.engine, run=run, notes=notes + run.notes))
    ran = [r for r in results if r.run is not None]
    reference_result = ran[0]
    ref_config = reference or with_overrides(config, backend=planned[0][0], mode="eager")
    runs: dict[tuple[str, str, str], Run] = {}

    def run_of(backend: str, mode: str, dtype: str) -> Run:
        """This engine's run in `dtype`: one of the engines when it ran, else a run
        of its own (kept for the next engine that needs it)."""
        key = (backend, mode, dtype)
        for result in ran:
            cfg = result.run.trajectory.meta["config"]
            if (cfg["backend"], cfg["mode"], cfg["dtype"]) == key:
                return result.run
        if key not in runs:
            other = with_overrides(ref_config, backend=backend, mode=mode, dtype=dtype)
            runs[key] = train_engine(other, model, train, val, weights=start)
        return runs[key]

    for result in ran[1:] if reference is not None else ran:
        cfg = result.run.trajectory.meta["config"]
        backend, mode, dtype = cfg["backend"], cfg["mode"], cfg["dtype"]
        floors = []
        if dtype != ref_config.dtype:
            floors.append((run_of(ref_config.backend, "eager", dtype), reference_result.run))
            if own_floor and (backend, mode) != (ref_config.backend, "eager"):
                # The engine itself in both precisions where it has both, else its
                # backend's eager engine (OneFlow's graph trains float32 only).
                if mode == "graph" and ref_config.dtype not in get_backend(backend).graph_dtypes:
                    mode = "eager"
                high = run_of(backend, mode, ref_config.dtype)
                floors.append((run_of(backend, mode, dtype), high))
        _judge(reference_result, result, rtol, atol, floors, excluded)
    comparison = Comparison(reference_result.engine, results, rtol, atol, excluded=excluded)
    comparison.setup = Setup(config, model, train, val, start, ref_config)
    return comparison


def _engine_config(config: RunConfig, backend: str, mode: str) -> tuple[RunConfig, list[str]]:
    """The config for one engine: a graph that lacks the dtype runs in one it has."""
    engine = with_overrides(config, backend=backend, mode=mode)
    found = get_backend(backend)
    notes = []
    if config.nproc > 1 and not found.supports_data_parallel:  # the NumPy reference
        engine = with_overrides(engine, nproc=1)
        notes.append(f"ran the same global batches in one process ({found.data_parallel_reason})")
    dtypes = found.graph_dtypes
    if mode != "graph" or config.dtype in dtypes:
        return engine, notes
    note = f"ran in {dtypes[0]}: this backend's graphs train in {', '.join(dtypes)} only"
    return with_overrides(engine, dtype=dtypes[0]), [*notes, note]


def _judge(
    ref: EngineResult,
    other: EngineResult,
    rtol: float,
    atol: float,
    floors: list[tuple[Run, Run]] | Run | None = None,
    excluded: tuple[str, ...] = (),
) -> None:
    """Set `other`'s differences and verdict against the reference.

    `floors` are pairs (a run in `other`'s lower precision, the same framework's
    run in the reference's precision): twice the largest distance within a pair
    is allowed on top of the tolerance. A single run is the reference backend's
    run in the lower precision, paired with the reference.
    """
    if isinstance(floors, Run):
        floors = [(floors, ref.run)]
    floors = floors or []
    a, b = ref.run.trajectory, other.run.trajectory
    other.tolerance = f"rtol {rtol:g} / atol {atol:g}"
    if len(a.steps) != len(b.steps):
        other.passed = False
        other.first_divergence = min(len(a.steps), len(b.steps))
        other.notes.append(f"{len(b.steps)} steps against the reference's {len(a.steps)}")
        return
    lrs_a = np.array([s["lr"] for s in a.steps])
    lrs_b = np.array([s["lr"] for s in b.steps])
    other.lr_max_diff = float(np.max(np.abs(lrs_a - lrs_b))) if lrs_a.size else 0.0
    other.loss_max_rel_diff = _max_rel(np.array(a.losses), np.array(b.losses))
    params = [
        n for n in ref.run.state if not n.endswith("num_batches_tracked") and n not in excluded
    ]
    other.param_max_rel_diff = max(
        (_max_rel(ref.run.state[n], other.run.state[n]) for n in params), default=0.0
    )
    pairs = [(np.array(b.losses), np.array(a.losses), "loss")]
    pairs += [(other.run.state[n], ref.run.state[n], n) for n in params]
    slack = {name: 0.0 for _, _, name in pairs}
    for low, high in floors:
        drift = 2 * _max_abs(np.array(low.trajectory.losses), np.array(high.trajectory.losses))
        slack["loss"] = max(slack["loss"], drift)
        for n in params:
            slack[n] = max(slack[n], 2 * _max_abs(low.state[n], high.state[n]))
    if floors:
        dtype = floors[0][0].trajectory.meta["config"]["dtype"]
        whose = "the reference's" if len(floors) == 1 else "the larger of its and the reference's"
        other.tolerance += (
            f", plus twice {whose} own {dtype} drift "
            f"(loss {slack['loss']:.2g}, parameters up to {max(slack.values()):.2g})"
        )
    other.loss_slack = slack["loss"]
    # Written as "not within" so that a NaN counts as outside.
    outside = [
        ~(np.abs(got - want) <= atol + slack[name] + rtol * np.abs(want))
        for got, want, name in pairs
    ]
    parted = np.flatnonzero(outside[0])
    other.first_divergence = int(parted[0]) if parted.size else None
    worst = [name for (_, _, name), o in zip(pairs[1:], outside[1:], strict=True) if np.any(o)]
    if worst:
        n = worst[0]
        other.notes.append(
            f"final {', '.join(worst[:3])}{' ...' if len(worst) > 3 else ''} outside the "
            f"tolerance ({n}: max difference {_max_abs(other.run.state[n], ref.run.state[n]):.3g})"
        )
    # lr trajectories must be the very same floats: every engine reads one schedule.
    other.passed = bool(not any(np.any(o) for o in outside) and other.lr_max_diff == 0.0)


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _max_rel(ref: np.ndarray, other: np.ndarray) -> float:
    ref, other = np.asarray(ref, np.float64), np.asarray(other, np.float64)
    if ref.size == 0:
        return 0.0
    scale = np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(other - ref) / scale))
