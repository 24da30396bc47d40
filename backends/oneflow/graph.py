"""The training step as a OneFlow `nn.Graph`, with the core's lrs as tables.

nn.Graph computes the lr itself, in C++, from a scheduler's graph conf; it
ignores lrs set from Python once compiled, and OneFlow's own graph schedulers
drift from their eager values (1 float32 ulp; 23% for SequentialLR with mixed
interval_rescaling). Here every param group gets a `piecewise_constant_conf`:
boundaries and absolute values, with one entry per run of equal lrs, taken
from the core's plan. The graph then applies float32(core lr) at every step.
"""

from __future__ import annotations

import oneflow as flow
from oneflow.nn.optimizer.lr_scheduler import LRScheduler


def piecewise(table: list[float]) -> tuple[list[int], list[float]]:
    """(boundaries, values) for OneFlow's piecewise_constant_conf.

    The kernel gives values[i] for the first i with step <= boundaries[i], and
    the last value past every boundary; runs of equal lrs share one entry.

    Example:
        >>> piecewise([0.1, 0.1, 0.01, 0.01, 0.001])
        ([1, 3], [0.1, 0.01, 0.001])
    """
    boundaries, values = [], [table[0]]
    for step in range(1, len(table)):
        if table[step] != values[-1]:
            boundaries.append(step - 1)
            values.append(table[step])
    return boundaries, values


def write_table(lr_conf, table: list[float], first_step: int = 0) -> None:
    """Fill a graph's lr conf so that graph step `first_step + i` applies `table[i]`.

    `lr_conf` is the `learning_rate_decay` conf nn.Graph hands a scheduler;
    steps before `first_step` get `table[0]`, steps past the table its last lr.
    """
    boundaries, values = piecewise(table)
    lr_conf.piecewise_constant_conf.SetInParent()
    conf = lr_conf.piecewise_constant_conf
    conf.boundaries.extend(first_step + boundary for boundary in boundaries)
    conf.values.extend(values)


class LrTables(LRScheduler):
    """A OneFlow scheduler that hands the graph one precomputed lr table a group.

    Eagerly it leaves the lrs alone (the loop sets them); the graph asks for
    one conf per param group, in group order.
    """

    def __init__(self, optimizer: flow.optim.Optimizer, tables: list[list[float]]) -> None:
        self.tables = tables
        self._served = 0
        super().__init__(optimizer)

    def get_lr(self, base_lr: float, step: int) -> float:
        return base_lr

    def _generate_conf_for_graph(self, lr_conf) -> None:
        write_table(lr_conf, self.tables[self._served % len(self.tables)])
        self._served += 1


class TrainGraph(flow.nn.Graph):
    """Forward, loss, backward and the optimizer step, compiled once."""

    def __init__(self, model, loss, optimizer, scheduler: LRScheduler) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.add_optimizer(optimizer, lr_sch=scheduler)

    def build(self, x, y):
        loss = self.loss(self.model(x), y)
        loss.backward()
        return loss


# Graph state keys: "model.<stable name>-<slot>", and the step count. The
# backend speaks torch's names for optimizer state ("<name>/momentum_buffer",
# "<name>/exp_avg", "<name>/step"), so a checkpoint moves between backends.
_PREFIX, _STEP = "model.", "System-Train-TrainStep"
CANONICAL = {"momentum": "momentum_buffer", "m": "exp_avg", "v": "exp_avg_sq"}
GRAPH_SLOT = {canonical: graph for graph, canonical in CANONICAL.items()}


def from_graph_state(state: dict, names: list[str]) -> dict:
    """The optimizer state an nn.Graph holds, under torch's names for it."""
    import numpy as np

    out = {}
    for key, value in state.items():
        if key == _STEP:
            step = np.asarray(value.numpy()).reshape(()).astype(np.int64)
            out.update({f"{name}/step": step for name in names})
        elif key.startswith(_PREFIX) and "-" in key:
            name, slot = key[len(_PREFIX) :].rsplit("-", 1)
            out[f"{name}/{CANONICAL.get(slot, slot)}"] = value.numpy().copy()
    return out


def to_graph_state(state: dict, step: int) -> dict:
    """Optimizer state for `graph.load_state_dict`; the graph's step counter is
    `step`, the run's, which both its lr tables and Adam's bias corrections read."""
    out = {_STEP: flow.tensor([step], dtype=flow.int64)}
    for key, value in state.items():
        name, slot = key.rsplit("/", 1)
        if slot != "step":
            out[f"{_PREFIX}{name}-{GRAPH_SLOT.get(slot, slot)}"] = flow.tensor(value)
    return out
