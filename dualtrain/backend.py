"""The backend interface, and the registry that finds backends by entry point.

A backend adapts one framework: it builds the core's model spec, moves
parameters, buffers and optimizer state in and out as NumPy arrays under the
core's stable names, and runs one training step, eagerly or as a static graph.
The loop (`dualtrain.loop`) owns everything else: counters, schedules, data
order, trajectories. A backend never runs its framework's scheduler.

Backends register in the entry-point group `dualtrain.backends`:

    [project.entry-points."dualtrain.backends"]
    mine = "my_package.backend:MyBackend"
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec
from dualtrain.usermodel import UserModule

ENTRY_POINT_GROUP = "dualtrain.backends"

#: One training step: (x, y) as NumPy arrays -> the batch's loss as a float.
#: A step may also carry `lazy` (see `lazy_step`): the same step returning the loss
#: as the framework holds it, unread, for `Backend.read_losses`.
StepFn = Callable[[np.ndarray, np.ndarray], float]


def lazy_step(step: StepFn, lazy: Callable[[Any, Any], Any]) -> StepFn:
    """`step` (returning a float), carrying `lazy`: the same step, whose loss stays
    on the device until `Backend.read_losses` reads a chunk of them in one sync.

    The loop runs `lazy` where a step has it; a wrapper that calls `step` (data
    parallel, the diagnosis's replay) still gets floats.
    """
    step.lazy = lazy  # type: ignore[attr-defined]
    return step


class HostData:
    """A data set in host memory, each batch indexed with NumPy (the default).

    `Backend.put_dataset` may return another object with the same `batches`
    (the data set kept on the device, batches indexed there).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def batches(self, order: list[np.ndarray]):
        """(x, y) of each batch of `order` (the core's row indices), in order."""
        # zip and map iterate in C: no generator frame resumed every step.
        return zip(map(self.x.__getitem__, order), map(self.y.__getitem__, order), strict=True)


@dataclass(frozen=True)
class LrPlan:
    """Every group's lr at every training step, for a graph that must know them ahead.

    The loop still sets each step's lr through `set_hyperparams`; a static graph
    that cannot read it (OneFlow's nn.Graph computes its lr itself) builds its
    schedule from this plan instead.
    """

    steps: int
    n_groups: int
    #: lrs of every group at a training step; None when they depend on the run
    #: (ReduceLROnPlateau).
    lrs_at: Callable[[int], list[float]] | None
    #: True when the schedule also moves momentum (or Adam's beta1).
    momentum_scheduled: bool = False
    schedule_name: str | None = None
    #: The step the run starts at: 0, or the step of the checkpoint it resumes.
    first_step: int = 0

    def table(self, group: int) -> list[float]:
        """Group `group`'s lr at steps 0 .. steps - 1."""
        if self.lrs_at is None:
            raise ConfigError(f"{self.schedule_name} decides its lrs during the run")
        return [self.lrs_at(step)[group] for step in range(self.steps)]


class Backend(ABC):
    """One framework behind the core's interface."""

    name: ClassVar[str] = ""
    #: Whether `compile_step` gives a static-graph training step.
    supports_graph: ClassVar[bool] = False
    #: Why not, shown when a graph run is skipped.
    graph_unsupported_reason: ClassVar[str] = "this backend has no static-graph mode"
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    #: The dtypes a static graph trains in, where fewer than `dtypes`.
    graph_dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64")
    #: Run graph engines in a child process, retrying crashes (a framework whose
    #: graph runtime crashes now and then: the run survives it).
    isolate_graph: ClassVar[bool] = False
    #: With `isolate_graph`: the measured crashes per graph step, from which the
    #: private recovery checkpoints are spaced (`dualtrain.recovery`).
    graph_crashes_per_step: ClassVar[float] = 0.0
    #: With `isolate_graph`: pin the child to this many CPUs (None: leave it free).
    graph_child_cpus: ClassVar[int | None] = None
    #: A graph compiled for one batch shape that cannot take another (the last
    #: short batch of an epoch): the loop refuses such a run before it starts.
    graph_static_shapes: ClassVar[bool] = False
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: Whether `build` takes a user's own module (`UserModule`) besides the spec.
    supports_user_modules: ClassVar[bool] = False
    #: Why not, shown when an engine is skipped or refused.
    user_modules_reason: ClassVar[str] = (
        "this backend builds dualtrain's declarative models only, not a user's own module"
    )
    #: Whether `data_parallel` runs a rank of an N-process run on the framework's engine.
    supports_data_parallel: ClassVar[bool] = False
    #: Why not, shown when a run with nproc > 1 is refused.
    data_parallel_reason: ClassVar[str] = "this backend trains in one process only"
    #: Seconds between starting one rank and the next (ranks that race at start-up).
    data_parallel_stagger: ClassVar[float] = 0.0

    #: Whether `probe` records (and teacher-forces) every module of an eager step,
    #: and `read_grads`, `write_grads`, `read_hyperparams` work (`dualtrain.diagnose`).
    supports_probes: ClassVar[bool] = False
    #: Why not, shown when a diagnosis cannot look inside this backend's steps.
    probes_reason: ClassVar[str] = "this backend has no per-module probes"

    @abstractmethod
    def build(self, spec: ModelSpec | UserModule, dtype: str, device: str) -> Any:
        """A model for `spec` (or a user's module), in train mode, in `dtype` on `device`."""

    @abstractmethod
    def load_state(self, model: Any, arrays: dict[str, np.ndarray]) -> None:
        """Set parameters and buffers from arrays under the spec's stable names."""

    @abstractmethod
    def read_state(self, model: Any) -> dict[str, np.ndarray]:
        """Every parameter and buffer as NumPy arrays under the stable names."""

    @abstractmethod
    def make_optimizer(self, model: Any, spec: OptimizerSpec) -> Any:
        """The framework's optimizer, one param group per group of `spec.assign`."""

    @abstractmethod
    def set_hyperparams(self, optimizer: Any, lrs: list[float], momenta: list | None) -> None:
        """Set each group's lr (and momentum or beta1 when `momenta` is given)."""

    @abstractmethod
    def forward_backward(self, model: Any, x: np.ndarray, y: np.ndarray) -> float:
        """Forward, loss and backward on one batch (gradients accumulate); returns the loss."""

    @abstractmethod
    def optimizer_step(self, optimizer: Any) -> None:
        """Apply one update from the accumulated gradients."""

    @abstractmethod
    def zero_grad(self, optimizer: Any) -> None:
        """Clear the gradients."""

    @abstractmethod
    def evaluate(self, model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
        """(loss, accuracy or None) in eval mode, without touching any state."""

    def eager_step(self, model: Any, optimizer: Any) -> StepFn:
        """zero grad, forward, loss, backward, update: one eager training step."""

        def step(x: np.ndarray, y: np.ndarray) -> float:
            self.zero_grad(optimizer)
            loss = self.forward_backward(model, x, y)
            self.optimizer_step(optimizer)
            return loss

        return step

    def compile_step(self, model: Any, optimizer: Any, plan: LrPlan) -> StepFn:
        """The same step as a static graph; only where `supports_graph`."""
        raise ConfigError(f"backend {self.name!r}: {self.graph_unsupported_reason}")

    def data_parallel(self, rank: Any, mode: str, dtype: str) -> Any:
        """This process's part of a data-parallel run (`dualtrain.distributed.Replicas`)
        for `rank` (`dualtrain.distributed.Rank`); only where `supports_data_parallel`."""
        raise CapabilityError(f"backend {self.name!r}: {self.data_parallel_reason}")

    def put_dataset(self, model: Any, x: np.ndarray, y: np.ndarray) -> HostData:
        """The training data where `model`'s steps read it fastest; its `batches(order)`
        yields what the step takes. Default: in host memory, NumPy batches."""
        return HostData(x, y)

    def read_losses(self, losses: list[Any]) -> list[float]:
        """The losses a chunk of lazy steps returned, as floats (one sync for all)."""
        return [float(loss) for loss in losses]

    def optimizer_state(self, optimizer: Any) -> dict[str, np.ndarray]:
        """Optimizer state (momentum buffers, moments, step counts) as arrays."""
        return {}

    def load_optimizer_state(self, optimizer: Any, state: dict[str, np.ndarray]) -> None:
        """Set the optimizer state read by `optimizer_state`."""
        return None

    def describe_module(self, model: UserModule, data: Dataset, seed: int) -> UserModule:
        """`model` with its `Described` filled in: built once under `seed`, one dry
        forward on `data`; only the reference backend of a port needs this."""
        raise CapabilityError(f"backend {self.name!r}: {self.user_modules_reason}")

    def preflight(self, model: UserModule, dtype: str) -> list[Any]:
        """What this framework lacks or does differently for `model`'s source in
        `dtype`, before any training: findings with file, line, name, kind
        ("missing" or "difference") and message. None by default."""
        return []

    def probe(self, model: Any, forced: Any = None) -> Any:
        """Hooks on every module of `model` (a `dualtrain.diagnose.hooks.Probe`: its
        `record` fills during the next eager step, `remove()` takes them off); with
        `forced` (the reference's record of that step) every module is teacher-forced."""
        raise CapabilityError(f"backend {self.name!r}: {self.probes_reason}")

    def read_grads(self, model: Any) -> dict[str, np.ndarray]:
        """Every parameter's gradient after a backward, by stable name (only with probes)."""
        raise CapabilityError(f"backend {self.name!r}: {self.probes_reason}")

    def write_grads(self, model: Any, grads: dict[str, np.ndarray]) -> None:
        """Set every parameter's gradient, for an optimizer step on given gradients."""
        raise CapabilityError(f"backend {self.name!r}: {self.probes_reason}")

    def read_hyperparams(self, optimizer: Any) -> list[float]:
        """Each group's lr as the optimizer holds it (what `set_hyperparams` applied)."""
        raise CapabilityError(f"backend {self.name!r}: {self.probes_reason}")

    def referee(self, kind: str, attributes: dict, state: dict, inputs: list, grads: list):
        """(outputs, input gradients) of one module of type `kind` (torch's class name)
        with these attributes, own state and inputs, computed exactly by this backend
        (the NumPy reference); a ConfigError for a type it does not implement."""
        raise CapabilityError(f"backend {self.name!r} referees no module")

    def start_at(self, model: Any, step: int) -> None:
        """The run's first step (0, or a checkpoint's), for what a model draws per
        step (shared dropout masks); optional."""
        return None

    def running(self) -> contextlib.AbstractContextManager:
        """A context the loop holds for the whole run (numeric error modes, ...)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release what the backend holds (graphs, devices); optional."""
        return None


# Backends registered in this process (tests, notebooks), next to the entry points.
_REGISTERED: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Make `cls` available under `cls.name` in this process; usable as a decorator.

    Installed backends register through the `dualtrain.backends` entry point
    instead; this is for a backend defined in a script or a test.
    """
    if not (isinstance(cls, type) and issubclass(cls, Backend)) or not cls.name:
        raise ConfigError(f"register_backend needs a named Backend subclass, got {cls!r}")
    if cls.name in _discover() or _REGISTERED.get(cls.name, cls) is not cls:
        raise ConfigError(f"backend name {cls.name!r} is already registered")
    _REGISTERED[cls.name] = cls
    return cls


def unregister_backend(name: str) -> None:
    """Forget a backend registered with `register_backend`."""
    _REGISTERED.pop(name, None)


def _discover() -> dict[str, Any]:
    """Entry points by name; a name registered twice is refused."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise ConfigError(
                f"backend name {ep.name!r} is registered twice: {found[ep.name].value} "
                f"and {ep.value}"
            )
        found[ep.name] = ep
    return found


def backend_names() -> list[str]:
    """Names of every installed or registered backend."""
    return sorted({*_discover(), *_REGISTERED})


def get_backend(name: str) -> Backend:
    """An instance of backend `name`; an unknown name gets the list of known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]()
    found = _discover()
    if name not in found:
        known = ", ".join(backend_names()) or "none installed"
        raise ConfigError(f"unknown backend {name!r} (known: {known})")
    try:
        cls = found[name].load()
    except Exception as exc:  # noqa: BLE001 - a broken third-party package, any way it breaks
        raise ConfigError(
            f"backend {name!r} is registered as {found[name].value} but cannot load: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend {name!r} entry point is not a Backend subclass: {cls!r}")
    return cls()
