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
        boundaries, values = piecewise(self.tables[self._served % len(self.tables)])
        self._served += 1
        lr_conf.piecewise_constant_conf.SetInParent()
        conf = lr_conf.piecewise_constant_conf
        conf.boundaries.extend(boundaries)
        conf.values.extend(values)


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


# Graph state keys: "model.<stable name>-<slot>", and the step count. The slots
# have other names than in eager OneFlow; the backend uses the eager names.
_PREFIX, _STEP = "model.", "System-Train-TrainStep"
_EAGER_SLOT = {"momentum": "momentum_buf", "m": "exp_avg", "v": "exp_avg_sq"}
_GRAPH_SLOT = {eager: graph for graph, eager in _EAGER_SLOT.items()}


def from_graph_state(state: dict) -> dict:
    """The optimizer state an nn.Graph holds, under the backend's stable keys."""
    import numpy as np

    out = {}
    for key, value in state.items():
        if key == _STEP:
            out["step"] = np.asarray(value.numpy()).reshape(()).astype(np.int64)
        elif key.startswith(_PREFIX) and "-" in key:
            name, slot = key[len(_PREFIX) :].rsplit("-", 1)
            out[f"{name}/{_EAGER_SLOT.get(slot, slot)}"] = value.numpy().copy()
    return out


def to_graph_state(state: dict) -> dict:
    """The inverse of `from_graph_state`, for `graph.load_state_dict`."""
    out = {}
    for key, value in state.items():
        if key == "step":
            out[_STEP] = flow.tensor([int(value)], dtype=flow.int64)
        elif "/" in key:
            name, slot = key.rsplit("/", 1)
            out[f"{_PREFIX}{name}-{_GRAPH_SLOT.get(slot, slot)}"] = flow.tensor(value)
    return out
