"""The Python API: train on your own arrays, or compare engines, in one call.

`dualtrain train` and `dualtrain compare` are thin layers over the same
`RunConfig` these functions build.

Example:
    >>> import numpy as np
    >>> import dualtrain
    >>> x = np.linspace(-1, 1, 40).reshape(-1, 2)
    >>> y = x @ np.array([[1.0], [-2.0]])
    >>> run = dualtrain.fit(dualtrain.mlp([2, 1]), x, y, lr=0.1, epochs=5, batch_size=10)
    >>> len(run.trajectory.steps), run.trajectory.losses[-1] < run.trajectory.losses[0]
    (10, True)
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dualtrain import comparison as _compare
from dualtrain import loop
from dualtrain import port as _port
from dualtrain.data import Dataset, inputs, targets
from dualtrain.errors import ConfigError
from dualtrain.model import ModelSpec
from dualtrain.optim import GroupSpec
from dualtrain.usermodel import ModuleSource, UserModule, input_kind_of


def fit(
    model: ModelSpec,
    x: Any,
    y: Any,
    *,
    val: tuple[Any, Any] | None = None,
    weights: Mapping[str, Any] | None = None,
    backend: str = "numpy",
    mode: str = "eager",
    tensorboard: str | os.PathLike | None = None,
    **options: Any,
) -> loop.Run:
    """Train `model` on arrays `x`, `y`; returns the run (trajectory and final state).

    Args:
        model: a `ModelSpec`, e.g. `dualtrain.mlp([5, 32, 1], batchnorm=True)`.
        x: inputs, shape (samples, features).
        y: targets: (samples, outputs) floats, or (samples,) class ids for cross-entropy.
        val: optional (x, y) evaluated after every epoch.
        weights: initial parameters and buffers by stable name ("0.weight", ...);
            anything left out is drawn from the seed with PyTorch's default init.
        backend, mode: the engine, e.g. "torch" and "graph".
        **options: the training options of `RunConfig` and `run_config`:
            optimizer, lr, momentum, weight_decay, ..., groups, scheduler,
            scheduler_args, flavor, interval, metric, epochs, batch_size,
            shuffle, drop_last, seed, dtype, device.
        tensorboard: a folder: the run is also written there as TensorBoard scalars
            (run `<backend>-<mode>`; needs `pip install 'dualtrain[tensorboard]'`).
    """
    config = run_config(backend=backend, mode=mode, **options)
    train, validation = _datasets(model, x, y, val)
    _require_tensorboard(tensorboard)
    run = loop.train_engine(config, model, train, validation, weights=_arrays(weights))
    if tensorboard is not None:
        from dualtrain.tensorboard import run_name, write_runs

        write_runs(tensorboard, {run_name(config.engine): run.trajectory})
    return run


def _require_tensorboard(directory: str | os.PathLike | None) -> None:
    if directory is not None:
        from dualtrain.tensorboard import require

        require()


def _tensorboard_comparison(directory, comparison: _compare.Comparison) -> _compare.Comparison:
    if directory is not None:
        from dualtrain.tensorboard import comparison_runs, write_runs

        write_runs(directory, comparison_runs(comparison))
    return comparison


def compare(
    model: ModelSpec,
    x: Any,
    y: Any,
    *,
    backends: Sequence[str] = ("numpy",),
    modes: Sequence[str] = ("eager",),
    val: tuple[Any, Any] | None = None,
    weights: Mapping[str, Any] | None = None,
    rtol: float = _compare.RTOL,
    atol: float = _compare.ATOL,
    tensorboard: str | os.PathLike | None = None,
    diagnose: bool | None = None,
    **options: Any,
) -> _compare.Comparison:
    """Train on every backend x mode from the same weights and batches; judge each
    against the first engine. Same options as `fit` (`tensorboard`: one run per
    engine); `.passed` says whether all agree. `diagnose` as for `port`."""
    config = run_config(**options)
    train, validation = _datasets(model, x, y, val)
    _require_tensorboard(tensorboard)
    result = _compare.compare(
        config, model, train, validation, list(backends), list(modes), _arrays(weights), rtol, atol
    )
    _localise(result, diagnose)
    return _tensorboard_comparison(tensorboard, result)


def port(
    model: Any,
    x: Any,
    y: Any,
    *,
    init: Mapping[str, Any] | None = None,
    against: Any = None,
    engines: Sequence[str] | str = _port.DEFAULT_ENGINES,
    loss: str | None = None,
    dropout: str = "shared",
    val: tuple[Any, Any] | None = None,
    rtol: float = _compare.RTOL,
    atol: float = _compare.ATOL,
    tensorboard: str | os.PathLike | None = None,
    diagnose: bool | None = None,
    **options: Any,
) -> _compare.Comparison:
    """Train your own torch module on every engine; judge each against torch eager.

    Args:
        model: a `torch.nn.Module` subclass defined in a file, a factory function
            defined at the top level of a file (called with `init`, none for a
            zero-argument one), `"file.py:Class"` (or `"file.py:factory"`), or
            `functools.partial(Class, **arguments)`. OneFlow's version is built from
            that file's source, so a class typed into a notebook (no file) is refused.
        x: inputs of shape (samples, ...), float, or int token ids.
        y: targets: float (samples, ...) for mse, int class ids (samples,) or
            (samples, seq) for cross_entropy.
        init: constructor arguments.
        against: your own OneFlow port to check instead of the automatic one (a class
            or `"file.py:Class"`, constructed with `init` too).
        engines: "backend/mode" names; torch eager is the reference.
        loss: "mse" or "cross_entropy"; default from y (int: cross_entropy).
        dropout: "shared" (every engine applies the core's masks) or "native".
        tensorboard: a folder for TensorBoard scalars, one run per engine (as `fit`).
        diagnose: None (default): when an engine parts, localise the step, phase and
            module (`.diagnosis`, `.first_divergence`; what cannot be localised is a
            note); True: always, raising a one-line error if it cannot; False: never.
        **options: the training options of `fit` (optimizer, lr, scheduler, epochs, ...);
            dtype defaults to float32 here (torch eager in float64 is the reference).

    Returns:
        The `Comparison` `compare` returns; `.passed`, `.first_divergence`.
    """
    source = module_source(model, init)
    target = None if against is None else module_source(against, source.init)
    config = run_config(**{"dtype": _port.DEFAULT_DTYPE, **options})
    train = Dataset(_inputs(x), targets(np.asarray(y)))
    validation = None if val is None else Dataset(_inputs(val[0]), targets(np.asarray(val[1])))
    kind = loss or ("cross_entropy" if train.y.dtype.kind in "iu" else "mse")
    described = UserModule(
        source, kind, tuple(train.x.shape[1:]), input_kind_of(train.x), target, dropout
    )
    _require_tensorboard(tensorboard)
    result = _port.port_check(described, config, train, validation, engines, rtol, atol)
    _localise(result, diagnose)
    return _tensorboard_comparison(tensorboard, result)


def _localise(comparison: _compare.Comparison, diagnose: bool | None) -> None:
    if diagnose not in (None, True, False):
        raise ConfigError(f"diagnose must be None, True or False, got {diagnose!r}")
    from dualtrain.diagnose import localise

    localise(comparison, diagnose)


def module_source(model: Any, init: Mapping[str, Any] | None = None) -> ModuleSource:
    """Where `model` (a class or factory, `"file.py:Class"` or a partial of one) is defined."""
    arguments = dict(init or {})
    if isinstance(model, functools.partial) and _importable(model.func) and not model.args:
        return module_source(model.func, {**model.keywords, **arguments})
    if isinstance(model, (str, os.PathLike)):
        return ModuleSource.parse(str(model), arguments)
    if not _importable(model):
        raise ConfigError(
            f"model must be a class, a factory function defined at the top level of a .py "
            f"file, 'file.py:Class' or functools.partial(Class, ...), got {model!r}"
        )
    try:
        path = inspect.getsourcefile(model)
    except TypeError:
        path = None
    if not path or not os.path.isfile(path) or model.__qualname__ != model.__name__:
        raise ConfigError(
            f"{model.__qualname__} has no source file with it at the top level (defined in a "
            "notebook or inside a function?); OneFlow's version is built from the source: "
            "put the class in a .py file"
        )
    return ModuleSource.parse(f"{path}:{model.__name__}", arguments)


def _importable(model: Any) -> bool:
    """A class or a named function: what OneFlow's version can be found by in the source."""
    named_function = inspect.isfunction(model) and model.__name__ != "<lambda>"
    return isinstance(model, type) or named_function


def _inputs(x: Any) -> np.ndarray:
    x = np.asarray(x)
    input_kind_of(x)  # numbers only, one line otherwise
    return inputs(x)


# Optimizer hyperparameters that may be given as keywords of their own.
_OPTIMIZER_KEYWORDS = ("momentum", "dampening", "nesterov", "weight_decay", "betas", "eps")
_OPTIMIZER_KEYWORDS += ("amsgrad", "alpha", "centered")


def run_config(
    *,
    scheduler: str | None = None,
    scheduler_args: Mapping[str, Any] | None = None,
    flavor: str = "torch",
    interval: str = "epoch",
    metric: str = "val_loss",
    groups: Sequence[GroupSpec | Mapping[str, Any]] = (),
    options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> loop.RunConfig:
    """A checked `RunConfig` from keywords (see `fit`); unknown keywords are refused."""
    hyper = dict(options or {})
    for key in _OPTIMIZER_KEYWORDS:
        if key in settings:
            hyper[key] = settings.pop(key)
    known = set(loop.RunConfig.__dataclass_fields__) - {"options", "groups", "schedule"}
    unknown = sorted(set(settings) - known)
    if unknown:
        expected = sorted(known | {"scheduler", "scheduler_args", "flavor", "interval", "metric"})
        raise ConfigError(f"unknown option(s) {unknown} (expected: {', '.join(expected)})")
    schedule = loop.ScheduleConfig(scheduler, flavor, dict(scheduler_args or {}), interval, metric)
    config = loop.RunConfig(
        options=hyper, groups=tuple(map(group_spec, groups)), schedule=schedule, **settings
    )
    config.optimizer_spec()  # refuse a bad optimizer or hyperparameter now, in one line
    return config


def group_spec(entry: GroupSpec | Mapping[str, Any]) -> GroupSpec:
    """A param group from `{"prefixes": [...], "lr": ..., "options": {...}}`."""
    if isinstance(entry, GroupSpec):
        return entry
    if (
        not isinstance(entry, Mapping)
        or "lr" not in entry
        or set(entry)
        - {
            "prefixes",
            "lr",
            "options",
        }
    ):
        raise ConfigError(f"a param group must be {{prefixes, lr[, options]}}, got {entry!r}")
    prefixes = entry.get("prefixes", ())
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    if not prefixes or not all(isinstance(p, str) for p in prefixes):
        raise ConfigError(f"a param group's prefixes must be strings, got {prefixes!r}")
    return GroupSpec(prefixes, entry["lr"], dict(entry.get("options") or {}))


def _datasets(model: ModelSpec, x, y, val) -> tuple[Dataset, Dataset | None]:
    ids = model.input_kind() == "int"  # token ids for a model that starts with an Embedding
    train = dataset(x, y, ids)
    if val is not None and (not isinstance(val, (tuple, list)) or len(val) != 2):
        raise ConfigError(f"val must be a pair (x, y), got {type(val).__name__}")
    validation = None if val is None else dataset(*val, ids)
    return train, validation


def dataset(x: Any, y: Any, ids: bool = False) -> Dataset:
    """A `Dataset` from array-likes: float inputs (int64 token ids with `ids`), float
    targets or int class ids."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind not in "fiu" or y.dtype.kind not in "fiu":
        raise ConfigError(f"data must be numeric arrays, got x {x.dtype} and y {y.dtype}")
    kind = np.int64 if ids and x.dtype.kind in "iu" else np.float64
    return Dataset(x.astype(kind), targets(y))


def _arrays(weights: Mapping[str, Any] | None) -> dict[str, np.ndarray] | None:
    if weights is None:
        return None
    if not isinstance(weights, Mapping):
        raise ConfigError(f"weights must map stable names to arrays, got {type(weights).__name__}")
    return {name: np.asarray(value) for name, value in weights.items()}
