"""The training loop: counters, schedules, data order and records live here.

A backend only runs steps. The loop decides each group's lr (and momentum)
from the core's schedule before every step, so every engine of a comparison
gets identical hyperparameters, weights and batches.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from dualtrain import data_parallel, distributed
from dualtrain.backend import Backend, LrPlan, get_backend
from dualtrain.checkpoint import Checkpoint, newest_step
from dualtrain.checkpoint import load as load_checkpoint
from dualtrain.data import Dataset, batch_indices
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.isolation import run_in_child
from dualtrain.loop_schedule import Scheduler
from dualtrain.loss_reads import LossReads
from dualtrain.model import ModelSpec
from dualtrain.optim import GroupSpec, OptimizerSpec
from dualtrain.progress import Progress
from dualtrain.recovery import RecoverySaving
from dualtrain.saving import Saving, positive, write_checkpoints
from dualtrain.schedules import ReduceLROnPlateau
from dualtrain.trajectory import Trajectory
from dualtrain.usermodel import UserModule

MODES = ("eager", "graph")
INTERVALS = ("epoch", "step")
METRICS = ("val_loss", "train_loss")


@dataclass(frozen=True)
class ScheduleConfig:
    """Which schedule, how often it steps, and what ReduceLROnPlateau watches."""

    name: str | None = None
    flavor: str = "torch"
    kwargs: dict[str, Any] = field(default_factory=dict)
    interval: str = "epoch"
    metric: str = "val_loss"


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides data and model."""

    backend: str = "numpy"
    mode: str = "eager"
    optimizer: str = "sgd"
    lr: float = 0.05
    options: dict[str, Any] = field(default_factory=dict)
    groups: tuple[GroupSpec, ...] = ()
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 20
    batch_size: int = 50
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    dtype: str = "float64"
    device: str = "cpu"
    #: Processes training data-parallel, each on its shard of every global batch.
    nproc: int = 1
    #: Read the losses back every this many steps (and whenever the loop needs
    #: one now), so a device runs ahead of the host; the trajectory is the same
    #: for any value (`dualtrain.loss_reads`, docs/performance.md).
    loss_read_every: int = 32

    def __post_init__(self) -> None:
        positive("epochs", self.epochs, allow_zero=True)
        positive("nproc", self.nproc)
        positive("loss_read_every", self.loss_read_every)
        positive("batch_size", self.batch_size)
        positive("seed", self.seed, allow_zero=True)
        _one_of("mode", self.mode, MODES)
        _one_of("dtype", self.dtype, ("float32", "float64"))
        _one_of("interval", self.schedule.interval, INTERVALS)
        _one_of("metric", self.schedule.metric, METRICS)

    @property
    def engine(self) -> str:
        return f"{self.backend}/{self.mode}"

    def optimizer_spec(self) -> OptimizerSpec:
        return OptimizerSpec(self.optimizer, self.lr, dict(self.options), tuple(self.groups))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_of(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")


@dataclass
class Run:
    """A finished run: its trajectory and final parameters and buffers."""

    trajectory: Trajectory
    state: dict[str, np.ndarray]
    #: Crashed attempts that were retried (isolated graph runs), for the report.
    notes: list[str] = field(default_factory=list)


@dataclass
class _FitJob:
    """`fit` as a picklable job for a child process."""

    config: RunConfig
    model: ModelSpec | UserModule
    train: Dataset
    val: Dataset | None
    weights: dict[str, np.ndarray] | None
    backend: type[Backend]
    resume: Checkpoint | None = None
    saving: Saving | None = None
    #: A folder of the run's own checkpoints: an attempt after a crash resumes there.
    recovery: str | None = None

    def __call__(self, heartbeat: Callable[[dict[str, Any]], None]) -> Run:
        resume, recovery, saving = self.resume, None, self.saving
        if self.recovery is not None:
            rate = self.backend.graph_crashes_per_step
            recovery = RecoverySaving(self.recovery, crashes_per_step=rate)
            if newest_step(self.recovery) is not None:
                resume = load_checkpoint(self.recovery)
        backend, rank = self.backend(), distributed.Rank.from_env()
        if rank is not None:  # one rank of a data-parallel run: only rank 0 writes
            backend = distributed.RankBackend(backend, rank, self.config.mode, self.config.dtype)
            saving, recovery = (saving, recovery) if rank.rank == 0 else (None, None)
        try:
            return fit(
                self.config,
                self.model,
                self.train,
                self.val,
                self.weights,
                backend,
                heartbeat,
                resume,
                saving,
                recovery,
            )
        finally:
            if rank is not None:
                backend.close()


def train_engine(
    config: RunConfig,
    model: ModelSpec | UserModule,
    train: Dataset,
    val: Dataset | None = None,
    weights: dict[str, np.ndarray] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    resume: Checkpoint | None = None,
    saving: Saving | None = None,
) -> Run:
    """`fit`, in a watched child process where the backend's graphs need it.

    A backend with `isolate_graph` runs its graph engine in a child that is
    retried after a crash (see `dualtrain.isolation`); the retries are in
    `Run.notes` and the trajectory's meta. Everything else runs here.
    """
    backend = get_backend(config.backend)
    if config.nproc > 1 or distributed.Rank.from_env() is not None:
        job = _FitJob(config, model, train, val, weights, type(backend), resume, saving)
        return data_parallel.run(job, backend, on_step)
    if config.mode != "graph" or not backend.isolate_graph:
        return fit(config, model, train, val, weights, backend, on_step, resume, saving)
    with tempfile.TemporaryDirectory(prefix="dualtrain-recovery-") as recovery:
        job = _FitJob(config, model, train, val, weights, type(backend), resume, saving, recovery)
        run, notes = run_in_child(
            job,
            config.engine,
            progress=lambda: newest_step(recovery),
            cpus=backend.graph_child_cpus,
        )
    run.notes = notes
    run.trajectory.meta["retries"] = notes
    return run


def fit(
    config: RunConfig,
    model: ModelSpec | UserModule,
    train: Dataset,
    val: Dataset | None = None,
    weights: dict[str, np.ndarray] | None = None,
    backend: Backend | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    resume: Checkpoint | None = None,
    saving: Saving | None = None,
    recovery: Saving | None = None,
) -> Run:
    """Train `model` on `train` with `config`; returns the trajectory and final state.

    Args:
        config: backend, mode, optimizer, schedule, epochs, seed, ...
        model: the model spec.
        train, val: the data; validation is evaluated after every epoch.
        weights: initial parameters and buffers by stable name; default: from the seed.
        backend: an instance to use instead of looking `config.backend` up.
        on_step: called with each step's record (for progress or tests).
        resume: a checkpoint to go on from, as if the run had never stopped.
        saving: where and how often to write checkpoints.
        recovery: a second saving, private to a crash-isolated run: a retry after a
            crash goes on from its newest checkpoint.

    Example:
        >>> from dualtrain.problems import get_problem
        >>> p = get_problem("linear")
        >>> run = fit(RunConfig(lr=0.001, epochs=3, batch_size=4, shuffle=False),
        ...           p.model, p.data, weights=p.weights)
        >>> round(run.trajectory.steps[0]["loss"], 6)
        324.0
    """
    backend = backend or get_backend(config.backend)
    train, val = model.prepare(train), (val if val is None else model.prepare(val))
    _refuse_what_cannot_run(config, model, train, val, backend)
    start = resume.model if resume else weights
    net, optimizer = model_and_optimizer(backend, config, model, start, exact=resume is not None)
    opt_spec = config.optimizer_spec()
    if resume:
        backend.load_optimizer_state(optimizer, resume.optimizer)
    groups = opt_spec.assign(list(model.param_shapes()))
    scheduler = Scheduler(config.schedule, [g["lr"] for g in groups])
    if resume and resume.schedule is not None:
        scheduler.restore(resume.schedule)
    backend.start_at(net, resume.step if resume else 0)
    if config.mode == "graph":
        plan = scheduler.plan(_steps(config, train), config.schedule.interval == "step")
        plan = replace(plan, first_step=resume.step if resume else 0)
        step_fn = graph_step(config, backend, net, optimizer, train, plan)
    else:
        step_fn = backend.eager_step(net, optimizer)
    trajectory = Trajectory(config.engine, len(groups), meta={"config": config.to_dict()})
    if resume:
        trajectory.steps = list(resume.trajectory["steps"])
        trajectory.epochs = list(resume.trajectory["epochs"])
    savings = [s for s in (saving, recovery) if s is not None]
    engine = _Engine(backend, net, optimizer, step_fn, scheduler, trajectory, savings, config)
    with backend.running():
        _train(config, engine, train, val, on_step, resume)
    return Run(trajectory, backend.read_state(net))


def model_and_optimizer(backend, config, model, weights, exact=False):
    """The backend's model, loaded with `weights` (completed from the seed unless
    `exact`), and its optimizer. The arrays passed in are copied, never changed."""
    if isinstance(model, ModelSpec):  # its dropout masks come from the run's seed
        model = model.for_run(config.seed)
    net = backend.build(model, config.dtype, config.device)
    backend.load_state(net, _complete(model, weights, config.seed, exact))
    return net, backend.make_optimizer(net, config.optimizer_spec())


def graph_step(config, backend, net, optimizer, train, plan: LrPlan):
    """The backend's static-graph step for `plan`, after the checks its graphs need."""
    if config.dtype not in backend.graph_dtypes:
        raise CapabilityError(
            f"backend {backend.name!r} trains graphs in {', '.join(backend.graph_dtypes)} "
            f"only, got dtype {config.dtype!r}"
        )
    short = len(train) % config.batch_size
    if backend.graph_static_shapes and short and not config.drop_last:
        raise CapabilityError(
            f"backend {backend.name!r} compiles its graph for one batch shape, but "
            f"{len(train)} rows in batches of {config.batch_size} leave a last batch of "
            f"{short}; use drop_last or a batch size that divides {len(train)}"
        )
    return backend.compile_step(net, optimizer, plan)


def check_fits(model: ModelSpec | UserModule, data: Dataset) -> None:
    """Refuse data whose shape the model cannot take, in one line (the model says)."""
    model.check_data(data)


def _refuse_what_cannot_run(config, model, train, val, backend) -> None:
    """One-line errors, before anything is built, for runs that cannot work."""
    if isinstance(model, UserModule) and not backend.supports_user_modules:
        raise CapabilityError(f"backend {backend.name!r}: {backend.user_modules_reason}")
    for data in (train, val):
        if data is not None:
            check_fits(model, data)
    if (
        model.refuses_batch_of_one()
        and len(train) % config.batch_size == 1
        and not config.drop_last
    ):
        raise ConfigError(
            f"{len(train)} training rows in batches of {config.batch_size} leave a last batch "
            "of 1 row, on which BatchNorm1d cannot train (torch refuses it); use drop_last "
            "or another batch size"
        )
    if config.dtype not in backend.dtypes:
        raise ConfigError(f"backend {backend.name!r} has no dtype {config.dtype!r}")
    if _uses_plateau(config) and config.schedule.metric == "val_loss":
        if config.schedule.interval == "step":
            raise ConfigError(
                "ReduceLROnPlateau stepping every step can only watch train_loss "
                "(validation runs once an epoch); set metric to train_loss or interval to epoch"
            )
        if val is None:
            raise ConfigError(
                "ReduceLROnPlateau watches val_loss, but there is no validation split"
            )


def _steps(config: RunConfig, train: Dataset) -> tuple[int, int]:
    """(epochs, training steps per epoch)."""
    per_epoch = batch_indices(len(train), config.batch_size, 0, 0, False, config.drop_last)
    return config.epochs, len(per_epoch)


def _uses_plateau(config: RunConfig) -> bool:
    return config.schedule.name == ReduceLROnPlateau.name


def _complete(
    model: ModelSpec | UserModule, weights, seed: int, exact: bool = False
) -> dict[str, np.ndarray]:
    """The user's weights, with anything they left out drawn from the seed (unless
    `exact`: a checkpoint must hold every one)."""
    full = model.initial_weights(seed)
    missing = sorted(full.keys() - (weights or {}).keys())
    if exact and missing:
        raise ConfigError(f"checkpoint: no array for {', '.join(missing)} of this model")
    for name, value in (weights or {}).items():
        if name not in full:
            raise ConfigError(f"initial weights: unknown name {name!r} (expected {list(full)})")
        value = np.asarray(value)
        if value.shape != full[name].shape:
            raise ConfigError(
                f"initial weights: {name} has shape {value.shape}, expected {full[name].shape}"
            )
        full[name] = value.astype(full[name].dtype)
    return full


@dataclass
class _Engine:
    """What the loop drives: the backend's model, optimizer and step, and the records."""

    backend: Backend
    net: Any
    optimizer: Any
    step_fn: Callable[[np.ndarray, np.ndarray], float]
    scheduler: Scheduler
    trajectory: Trajectory
    savings: list[Saving]
    config: RunConfig
    #: The savings `saving_due` found due (asked once a step: RecoverySaving keeps time).
    due: list[Saving] = field(default_factory=list)

    def saving_due(self, step: int, last: bool) -> bool:
        """Whether any saving wants a checkpoint after `step` (asks each once)."""
        self.due = [s for s in self.savings if s.due(step, last)]
        return bool(self.due)

    def save(self, step: int, epoch: int, position: int, epoch_losses: list[float], last: bool):
        """Write a checkpoint to every saving due at `step` (as `saving_due` found)."""
        if not self.due:
            return
        started = time.perf_counter()  # reading the state out is part of a checkpoint's cost
        checkpoint = Checkpoint(
            step,
            epoch,
            position,
            self.config.to_dict(),
            self.backend.read_state(self.net),
            self.backend.optimizer_state(self.optimizer),
            self.scheduler.snapshot(),
            {"steps": self.trajectory.steps, "epochs": self.trajectory.epochs},
            list(epoch_losses),
        )
        write_checkpoints(self.due, checkpoint, started)


def _train(config, engine: _Engine, train, val, on_step, resume) -> None:
    per_epoch = len(
        batch_indices(len(train), config.batch_size, 0, config.seed, False, config.drop_last)
    )
    progress = Progress(config.epochs * per_epoch, label=config.engine)
    per_step = config.schedule.interval == "step"
    saving = bool(engine.savings)
    step, first_epoch, skip = (resume.step, resume.epoch, resume.position) if resume else (0, 0, 0)
    scheduler, backend, applied = engine.scheduler, engine.backend, None
    data = backend.put_dataset(engine.net, train.x, train.y)
    losses: list[float] = []
    # ReduceLROnPlateau stepping on each step's train loss needs it before the next lr.
    watch_steps = per_step and scheduler.plateau is not None
    every = 1 if watch_steps else config.loss_read_every
    reads = LossReads(backend.read_losses, engine.trajectory, losses, progress, on_step, every)
    add_entry, add_loss, unread = reads.pending.append, reads.unread.append, reads.unread
    # Chunks run the lazy step (its loss read later); one step a read runs the step
    # that reads its own, so each step's time includes waiting for it, as before.
    run_step = engine.step_fn if every == 1 else getattr(engine.step_fn, "lazy", engine.step_fn)
    clock = time.perf_counter
    # The steps run back to back, with as little Python between them as the run
    # needs: Python between two framework steps slows the steps themselves by more
    # than its own time (docs/performance.md).
    for epoch in range(first_epoch, config.epochs):
        losses[:] = list(resume.epoch_losses) if resume and epoch == first_epoch else []
        order = batch_indices(
            len(train), config.batch_size, epoch, config.seed, config.shuffle, config.drop_last
        )
        if not per_step and (epoch, scheduler.observed) != applied:  # once an epoch
            lrs, momenta = scheduler.values(epoch)
            backend.set_hyperparams(engine.optimizer, lrs, momenta)
            applied = (epoch, scheduler.observed)
        first = skip if epoch == first_epoch else 0  # done before the checkpoint: same order
        before = step - first  # the step at position 0 of this epoch
        for x, y in data.batches(order[first:]):
            if per_step and (step, scheduler.observed) != applied:  # set what changed, once
                lrs, momenta = scheduler.values(step)
                backend.set_hyperparams(engine.optimizer, lrs, momenta)
                applied = (step, scheduler.observed)
            start = clock()
            loss = run_step(x, y)
            end = clock()
            add_entry((step, epoch, lrs, momenta, end - start))
            add_loss(loss)
            step += 1
            if len(unread) >= every or end > reads.read_by:
                reads.read(end)
            if watch_steps:
                scheduler.observe(losses[-1])
            if saving and step - before < len(order) and engine.saving_due(step, False):
                reads.read()
                engine.save(step, epoch, step - before, losses, last=False)
        reads.read()
        val_loss, val_acc = backend.evaluate(engine.net, val.x, val.y) if val else (None, None)
        train_loss = _mean(losses)
        engine.trajectory.record_epoch(epoch, train_loss, val_loss, val_acc)
        if not per_step:
            scheduler.observe(val_loss if config.schedule.metric == "val_loss" else train_loss)
        if saving and engine.saving_due(step, epoch + 1 == config.epochs):
            engine.save(step, epoch + 1, 0, [], last=epoch + 1 == config.epochs)
    progress.close()


def _mean(values: list[float]) -> float:
    """`float(np.mean(values))`, bit for bit (NumPy's pairwise sum over the count),
    without the Python layers around it: a third of its time, once an epoch."""
    return float(np.add.reduce(np.asarray(values, dtype=np.float64)) / len(values))


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `config` with `changes` (e.g. another backend or mode)."""
    return replace(config, **changes)
