"""Any dualtrain scheduler inside the user's own `nn.Graph`, bit for bit.

OneFlow's nn.Graph computes the lr itself, in C++, from the graph conf of a
scheduler it knows; it refuses LambdaLR and ChainedScheduler and drifts from
the eager lr of others. `graph_scheduler(scheduler, total_steps)` steps a copy
of the scheduler ahead, keeps every group's lr for `total_steps` steps and
hands the graph those tables as `piecewise_constant_conf`s, so the graph
applies float32 of dualtrain's lr at every step:

    >>> scheduler = dualtrain.lr_scheduler.LambdaLR(optimizer, "0.9 ** epoch")  # doctest: +SKIP
    >>> graph.add_optimizer(optimizer, lr_sch=graph_scheduler(scheduler, 1000))  # doctest: +SKIP

Graph step `s` applies the lr the scheduler has after `s - last_epoch` more
steps (its `last_epoch` when wrapped): a fresh graph with a fresh scheduler,
or both restored from one checkpoint, line up. The scheduler itself is never
stepped here. See docs/static_graph_schedules.md for the cost of long tables.

`dualtrain_oneflow.graph_scheduler` is the function; the class is
`dualtrain_oneflow.GraphScheduler` (or `from dualtrain_oneflow.graph_scheduler
import GraphScheduler`).
"""

from __future__ import annotations

import copy
import numbers
import warnings
from typing import Any

import oneflow as flow
from oneflow.nn.optimizer.lr_scheduler import LRScheduler
from oneflow.optim.optimizer import Optimizer

from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.lr_scheduler import ReduceLROnPlateau
from dualtrain_oneflow.graph import write_table

#: The group keys a schedule may move besides the lr; a 0.9.0 graph cannot.
MOMENTUM_KEYS = ("momentum", "betas")


class GraphScheduler(LRScheduler):
    """What nn.Graph reads from a scheduler (`optimizer`, `verbose`, one lr conf a
    param group), over a dualtrain scheduler's lrs tabulated ahead.

    Eagerly it stands for the scheduler it wraps: `step()`, `get_last_lr()`,
    `last_step`, `base_lrs` and the state dict are that scheduler's. The graph
    never steps it (nn.Graph keeps its own step counter).
    """

    def __init__(self, scheduler: Any, total_steps: int) -> None:
        # LRScheduler.__init__ is not called: it would step and reset the lrs
        # that the wrapped scheduler set on the optimizer.
        self.scheduler = _checked(scheduler, total_steps)
        self.optimizer = scheduler.optimizer
        self.total_steps = int(total_steps)
        self.first_step = _steps_taken(scheduler)
        self.tables = lr_tables(scheduler, self.total_steps)
        self._served = 0

    @property
    def verbose(self) -> bool:
        """The wrapped scheduler's wish; the graph then prints its lr every step."""
        return bool(getattr(self.scheduler, "verbose", False))

    @property
    def last_step(self) -> int:
        return _steps_taken(self.scheduler)

    @property
    def base_lrs(self) -> list:
        return self.scheduler.base_lrs

    def lrs_at(self, step: int) -> list[float]:
        """Every group's lr at graph step `step`, as the tables give it."""
        index = min(max(step - self.first_step, 0), self.total_steps - 1)
        return [table[index] for table in self.tables]

    def step(self, *args, **kwargs) -> None:
        """Steps the wrapped scheduler eagerly; the graph's tables stay as taken."""
        self.scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()

    def get_lr(self, base_lr: float, step: int) -> float:
        raise TypeError(
            "GraphScheduler has one lr table a param group, not a formula of base_lr: "
            "use lrs_at(step)"
        )

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state_dict)

    def _generate_conf_for_graph(self, lr_conf) -> None:
        # nn.Graph asks once per param group, in group order (and again for a
        # second graph built on the same optimizer).
        table = self.tables[self._served % len(self.tables)]
        write_table(lr_conf, table, self.first_step)
        self._served += 1

    def __repr__(self) -> str:
        name = type(self.scheduler).__name__
        return f"GraphScheduler({name}, total_steps={self.total_steps})"


def graph_scheduler(scheduler: Any, total_steps: int) -> GraphScheduler:
    """A scheduler for `nn.Graph.add_optimizer(optimizer, lr_sch=...)` that makes
    the graph apply float32 of `scheduler`'s lr at each of `total_steps` steps.

    Args:
        scheduler: a dualtrain scheduler (any class, composites and lambdas
            included) built on a OneFlow optimizer; it is copied, never stepped.
        total_steps: how many graph steps the tables cover; past them the
            last lr holds.

    Returns:
        A OneFlow `LRScheduler` whose `optimizer` is the scheduler's.

    Example:
        >>> lr_sch = graph_scheduler(ChainedScheduler([warmup, cosine]), 500)  # doctest: +SKIP
        >>> graph.add_optimizer(optimizer, lr_sch=lr_sch)  # doctest: +SKIP
    """
    return GraphScheduler(scheduler, total_steps)


def lr_tables(scheduler: Any, total_steps: int) -> list[list[float]]:
    """tables[g][i]: group g's lr after i more steps of `scheduler` (a copy of it).

    A schedule that moves momentum is refused: a 0.9.0 graph cannot schedule it.
    """
    shadow = _copy_on_stand_in(scheduler)
    groups = shadow.optimizer.param_groups
    rows = [[float(group["lr"]) for group in groups]]
    fixed = [_momentum(group) for group in groups]
    with warnings.catch_warnings():
        # Ordering warnings (step before optimizer.step) concern the user's run, not this copy.
        warnings.simplefilter("ignore")
        for _ in range(total_steps - 1):
            shadow.step()
            rows.append([float(group["lr"]) for group in groups])
            if [_momentum(group) for group in groups] != fixed:
                raise CapabilityError(
                    f"graph_scheduler: {type(scheduler).__name__} moves momentum, which "
                    "nn.Graph cannot schedule in OneFlow 0.9.0; set cycle_momentum=False"
                )
    return [list(column) for column in zip(*rows, strict=True)]


def _checked(scheduler: Any, total_steps: Any) -> Any:
    name = type(scheduler).__name__
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral):
        raise ConfigError(
            f"graph_scheduler: total_steps must be a positive int, got {total_steps!r}"
        )
    if total_steps < 1:
        raise ConfigError(f"graph_scheduler: total_steps must be a positive int, got {total_steps}")
    if isinstance(scheduler, (ReduceLROnPlateau, flow.optim.lr_scheduler.ReduceLROnPlateau)):
        raise CapabilityError(
            "graph_scheduler: ReduceLROnPlateau decides its lrs from the run's metrics, "
            "which nn.Graph needs before it compiles; step it eagerly instead"
        )
    if not callable(getattr(scheduler, "step", None)) or not hasattr(scheduler, "optimizer"):
        raise ConfigError(f"graph_scheduler: expected a dualtrain scheduler, got {name}")
    optimizer = scheduler.optimizer
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(
            f"graph_scheduler: the {name} is built on a {type(optimizer).__name__}, "
            "not a OneFlow optimizer that nn.Graph could run"
        )
    return scheduler


class _StandInOptimizer:
    """An optimizer's param groups without their tensors, for a scheduler copy to step.

    OneFlow's optimizers do not deep-copy (they hold compiled ops), and the
    parameters need not be copied to know the lrs.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.param_groups = [_options(group) for group in optimizer.param_groups]
        self.defaults = dict(getattr(optimizer, "defaults", None) or self.param_groups[0])


def _options(group: Any) -> dict:
    """A group's hyperparameters: a OneFlow ParamGroup keeps them in `options`."""
    options = getattr(group, "options", None)
    source = options if isinstance(options, dict) else group
    return {key: value for key, value in source.items() if key != "params"}


def _copy_on_stand_in(scheduler: Any) -> Any:
    """A deep copy of `scheduler` (members included) that steps a stand-in optimizer."""
    optimizer = scheduler.optimizer
    stand_in = _StandInOptimizer(optimizer)
    # The memo points every reference to the optimizer or its groups at the stand-in.
    memo = {id(optimizer): stand_in, id(optimizer.param_groups): stand_in.param_groups}
    memo.update(zip(map(id, optimizer.param_groups), stand_in.param_groups, strict=True))
    try:
        return copy.deepcopy(scheduler, memo)
    except Exception as exc:  # noqa: BLE001 - whatever stops the copy, said in one line
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"graph_scheduler: cannot copy the {type(scheduler).__name__} to tabulate its "
            f"lrs ahead ({reason})"
        ) from None


def _steps_taken(scheduler: Any) -> int:
    """The scheduler's step counter, under torch's name or OneFlow's; torch's
    ChainedScheduler keeps none of its own, only its members do."""
    for name in ("last_epoch", "last_step"):
        if isinstance(getattr(scheduler, name, None), numbers.Integral):
            return int(getattr(scheduler, name))
    members = getattr(scheduler, "_schedulers", None) or [None]
    return _steps_taken(members[0]) if members[0] is not None else 0


def _momentum(group: dict) -> tuple:
    return tuple(group.get(key) for key in MOMENTUM_KEYS)
