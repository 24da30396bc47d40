"""OneFlow 0.9.0's data parallel for one rank of a dualtrain run.

OneFlow sets up its multi-process environment while `import oneflow` runs, from
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, so a rank's variables must be set
before this process imports it (`dualtrain.launch` starts every rank with them).
Two engines, as DISTRIBUTED.md measured them:

- eager float32: `oneflow.nn.parallel.DistributedDataParallel`, which hooks the
  module in place (float32 only: float64 fails its first line, a bare assert);
  each rank's shard loss is then all-reduced in float64 and averaged;
- eager float64 and nn.Graph: global tensors. The model is made global on all
  ranks with `broadcast` parameters; each rank's shard becomes its part of one
  global batch split along rows (`split(0)`), so the loss OneFlow computes is the
  global batch's mean already, the same on every rank.

OneFlow's collectives have no timeout: a rank waiting for a peer that hung
waits for ever, so `dualtrain.launch` watches the steps and ends such a run.
"""

from __future__ import annotations

import numpy as np
import oneflow as flow

from dualtrain.backend import Backend, LrPlan, StepFn
from dualtrain.distributed import Rank, Replica, Replicas
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain_oneflow import model as models


def replicas(rank: Rank, mode: str, dtype: str) -> Replicas:
    """DDP for eager float32, global tensors for eager float64 and graphs."""
    if flow.env.get_world_size() != rank.world:
        raise ConfigError(
            f"OneFlow started with WORLD_SIZE {flow.env.get_world_size()}, the run has "
            f"{rank.world} ranks: set the variables before oneflow is imported"
        )
    if mode == "eager" and dtype == "float32":
        return DdpReplicas(rank)
    return GlobalReplicas(rank)


class DdpReplicas(Replicas):
    """OneFlow's DistributedDataParallel; shard losses averaged over ranks."""

    def __init__(self, rank: Rank) -> None:
        self.rank = rank

    def replicate(self, model: flow.nn.Module) -> flow.nn.Module:
        # It hooks `model` in place (and returns it): gradients are all-reduced
        # and scaled by 1 / world in backward; rank 0's parameters broadcast now.
        return flow.nn.parallel.DistributedDataParallel(model)

    def eager_step(self, backend: Backend, replica: Replica, optimizer) -> StepFn:
        """The backend's eager step but for zero_grad: DDP's gradients are views
        into its buckets, which `set_to_none=True` would drop (measured: the
        second update then misses the all-reduce, 30% off by step 3)."""
        model, world = replica.replica, self.rank.world
        loss_fn, dtype = models.Loss(model.dualtrain_loss), model.dualtrain_dtype

        def averaged(x, y) -> float:
            optimizer.zero_grad(set_to_none=False)
            loss = loss_fn(model(_tensor(x, dtype)), _tensor(y, dtype))
            loss.backward()
            optimizer.step()
            total = flow.tensor([float(loss.numpy())], dtype=flow.float64)
            flow.comm.all_reduce(total)
            return float(total.numpy()[0]) / world

        return averaged

    def compile_step(self, backend: Backend, replica: Replica, optimizer, plan: LrPlan) -> StepFn:
        raise CapabilityError("oneflow: a graph trains data-parallel with global tensors")


def _tensor(array: np.ndarray, dtype: flow.dtype) -> flow.Tensor:
    """A batch as the model takes it: class ids as int64, features in its dtype."""
    if array.dtype.kind in "iu":
        return flow.from_numpy(array.astype(np.int64, copy=False))
    return flow.from_numpy(array).to(dtype)


class GlobalReplicas(Replicas):
    """The model global (broadcast) on every rank; each shard a part of a split batch."""

    def __init__(self, rank: Rank) -> None:
        self.rank = rank
        self.placement = flow.placement("cpu", ranks=list(range(rank.world)))
        self.split = self._place(flow.sbp.split(0))
        self.whole = self._place(flow.sbp.broadcast)

    def _place(self, sbp):
        placement = self.placement

        def place(tensor: flow.Tensor) -> flow.Tensor:
            return tensor.to_global(placement=placement, sbp=sbp)

        return place

    def replicate(self, model: flow.nn.Module) -> flow.nn.Module:
        model.to_global(placement=self.placement, sbp=flow.sbp.broadcast)
        model.dualtrain_place = self.split
        return model

    def eager_step(self, backend: Backend, replica: Replica, optimizer) -> StepFn:
        return backend.eager_step(replica.replica, optimizer)

    def compile_step(self, backend: Backend, replica: Replica, optimizer, plan: LrPlan) -> StepFn:
        return backend.compile_step(replica.replica, optimizer, plan)

    def evaluate(self, backend: Backend, replica: Replica, x, y):
        model = replica.replica
        model.dualtrain_place = self.whole  # every rank holds the whole validation set
        try:
            return backend.evaluate(model, x, y)
        finally:
            model.dualtrain_place = self.split

    def read_state(self, backend: Backend, replica: Replica) -> dict[str, np.ndarray]:
        """This rank's copy: `numpy()` of a global tensor is a collective, which
        would wait for ever when rank 0 alone reads the weights for a checkpoint."""
        state = replica.local.state_dict()
        return {name: tensor.to_local().numpy().copy() for name, tensor in state.items()}

    def optimizer_state(self, backend: Backend, optimizer) -> dict[str, np.ndarray]:
        return backend.optimizer_state(_LocalView(optimizer))

    def load_optimizer_state(self, backend: Backend, optimizer, state) -> None:
        backend.load_optimizer_state(optimizer, state)
        for key, slots in optimizer._state.items():
            if not isinstance(key, str):  # a parameter's slots, loaded as local tensors
                for slot, value in slots.items():
                    slots[slot] = self.whole(value)


class _LocalView:
    """What `OneFlowBackend.optimizer_state` reads of an optimizer (names, eager
    slots, the graph's state), with every global tensor as this rank's copy."""

    def __init__(self, optimizer) -> None:
        self.dualtrain_names = optimizer.dualtrain_names
        self._state = {
            key: slots if isinstance(key, str) else {s: _mine(t) for s, t in slots.items()}
            for key, slots in optimizer._state.items()
        }
        graph = getattr(optimizer, "dualtrain_graph", None)
        self.dualtrain_graph = None if graph is None else _GraphView(graph)


class _GraphView:
    def __init__(self, graph) -> None:
        self.graph = graph

    def state_dict(self) -> dict:
        return {key: _mine(value) for key, value in self.graph.state_dict().items()}


def _mine(value):
    """A global tensor's copy on this rank (no collective); anything else as it is."""
    return value.to_local() if isinstance(value, flow.Tensor) and value.is_global else value
