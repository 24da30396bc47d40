"""The port check: a user's own torch module trained on every engine, judged against
torch eager, through the same loop and comparison as the declarative models.

In order, and before any training for everything that can be refused:
1. the engines are parsed (an unknown one is a one-line error);
2. every engine's backend runs its preflight on the module's source: a name
   OneFlow lacks stops the check with the list (file:line); a known
   difference becomes a note in the report;
3. the reference backend (torch) builds the module once under the run's seed:
   torch's own initial weights by state-dict name, the dropout modules, one
   dry forward (a constructor or forward that raises, an output the loss
   cannot take: one line each), the parameters whose gradient is zero up to
   rounding;
4. every other backend builds its version (the automatic port, or the hand
   port of `--against`) and loads those weights: names and shapes must match;
5. the engines train from the same weights, batches, schedule and dropout
   masks, and `dualtrain.comparison` judges them against torch eager.

The reference runs in float64 (the most exact run there is). Engines that run
in float32 are also allowed twice the reference's own float32 drift, measured
in the same run (torch eager in float32): `dualtrain.comparison`'s rule.
"""

from __future__ import annotations

from dualtrain.backend import get_backend
from dualtrain.comparison import ATOL, RTOL, Comparison, compare_engines
from dualtrain.data import Dataset
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.loop import MODES, RunConfig, with_overrides
from dualtrain.usermodel import UserModule

#: The engines a port is checked on by default, the reference first.
DEFAULT_ENGINES = ("torch/eager", "torch/graph", "oneflow/eager", "oneflow/graph")
#: The reference: torch eager, the framework the user's module was written for.
REFERENCE = ("torch", "eager")
#: The reference's dtype: float32 engines are judged with its float32 drift as floor.
REFERENCE_DTYPE = "float64"
#: The engines' dtype unless the user asks for another: models train in float32,
#: and OneFlow's optimizers apply their hyperparameters in float32 even for
#: float64 parameters (PORTING.md), so a float64 port is not float64 on OneFlow.
DEFAULT_DTYPE = "float32"

NATIVE_DROPOUT_NOTE = (
    "dropout native: every engine draws its own dropout masks, so with dropout "
    "active the comparison is not meaningful (a difference may be the masks alone)"
)


def parse_engines(engines: str | list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """`"torch/eager,oneflow/graph"` -> [("torch", "eager"), ("oneflow", "graph")].

    Example:
        >>> parse_engines("torch/eager, torch/graph")
        [('torch', 'eager'), ('torch', 'graph')]
    """
    items = engines.split(",") if isinstance(engines, str) else list(engines)
    out = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        backend, sep, mode = item.partition("/")
        if not sep or mode not in MODES:
            raise ConfigError(
                f"an engine is BACKEND/MODE with mode {' or '.join(MODES)}, got {item!r}"
            )
        get_backend(backend)  # an unknown backend: one line listing the known ones
        if (backend, mode) not in out:
            out.append((backend, mode))
    if not out:
        raise ConfigError("--engines names no engine")
    return out


def prepare(
    model: UserModule, config: RunConfig, train: Dataset, val: Dataset | None, engines
) -> tuple[UserModule, Dataset, Dataset | None, list[str]]:
    """Steps 2 to 4 of the module docstring: the described model, the data shaped for
    it, and the notes for the report. Raises a one-line ConfigError for what cannot run."""
    reference = get_backend(REFERENCE[0])
    notes = _preflight(model, engines, config.dtype)
    train = model.prepare(train)
    val = None if val is None else model.prepare(val)
    model.check_data(train)
    model = reference.describe_module(model, train, config.seed)
    train = model.fit_targets(train)
    val = None if val is None else model.fit_targets(val)
    for data in (train, val):
        if data is not None:
            model.check_data(data)
    weights = model.initial_weights(config.seed)
    rows = slice(0, min(len(train), 8))
    for name in dict.fromkeys(backend for backend, _ in engines):
        backend = get_backend(name)
        if backend.supports_user_modules and name != REFERENCE[0]:
            net = backend.build(model, config.dtype, config.device)
            backend.load_state(net, weights)
            try:  # a name the port lacks at run time shows here, before any training
                backend.evaluate(net, train.x[rows], train.y[rows])
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the framework raises
                text = (str(exc).strip().splitlines() or [""])[0]
                raise ConfigError(
                    f"{model.name} on {name}: the forward raised {type(exc).__name__}: {text}"
                ) from None
    described = model._described()
    if model.dropout == "native" and described.dropout_sites:
        notes.append(NATIVE_DROPOUT_NOTE)
    quiet = described.quiet
    if quiet:
        notes.append(
            "left out of the final-weight verdict (their gradient is zero up to rounding, so "
            "Adam or momentum turns rounding noise into drift that changes no loss; the "
            f"losses still judge them): {', '.join(quiet)}"
        )
    return model, train, val, notes


def port_check(
    model: UserModule,
    config: RunConfig,
    train: Dataset,
    val: Dataset | None = None,
    engines=DEFAULT_ENGINES,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Comparison:
    """Train `model` on every engine and judge each against torch eager.

    Args:
        model: the user's module (`UserModule`), not yet described.
        config: the training options (backend and mode are set per engine).
        train, val: the data; validation is evaluated after every epoch.
        engines: "backend/mode" names, e.g. DEFAULT_ENGINES.

    Returns:
        The same `Comparison` `dualtrain.compare` returns, with the port's notes and
        the state names left out of the final-weight verdict.
    """
    planned = parse_engines(engines)
    model, train, val, notes = prepare(model, config, train, val, planned)
    start = model.initial_weights(config.seed)
    reference = with_overrides(
        config, backend=REFERENCE[0], mode=REFERENCE[1], dtype=REFERENCE_DTYPE
    )
    hidden = planned[0] != REFERENCE or config.dtype != REFERENCE_DTYPE
    plan = []
    for backend_name, mode in planned:
        backend = get_backend(backend_name)
        skip = None
        if not backend.supports_user_modules:
            skip = backend.user_modules_reason
        elif mode == "graph" and not backend.supports_graph:
            skip = backend.graph_unsupported_reason
        plan.append((backend_name, mode, skip))
    try:
        comparison = compare_engines(
            config,
            model,
            train,
            val,
            plan,
            start,
            rtol,
            atol,
            reference=reference if hidden else None,
            excluded=model._described().quiet,
            own_floor=True,
            graph_errors_skip=True,
        )
    except CapabilityError as exc:
        raise ConfigError(str(exc)) from None
    comparison.notes = notes + comparison.notes
    return comparison


def _preflight(model: UserModule, engines: list[tuple[str, str]], dtype: str) -> list[str]:
    """Every engine backend's preflight: what is missing stops the check (one line
    listing each name with its file and line); differences become notes."""
    findings = []
    for name in dict.fromkeys(backend for backend, _ in engines):
        backend = get_backend(name)
        if backend.supports_user_modules:
            findings += [(name, f) for f in backend.preflight(model, dtype)]
    missing = [f"{f.file}:{f.line}: {f.message}" for _, f in findings if f.kind == "missing"]
    if missing:
        raise ConfigError(
            f"{model.name} cannot be ported, before any training: {'; '.join(missing)}"
        )
    return [f"preflight ({name}): {f.file}:{f.line}: {f.message}" for name, f in findings]
