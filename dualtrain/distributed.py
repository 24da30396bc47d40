"""Data parallel in the core: the rows each rank trains on, and one rank as a backend.

A data-parallel run is N processes ("ranks"), each holding a full replica of
the model and training on its shard of every global batch; the framework's own
engine (torch DistributedDataParallel, OneFlow's DDP or global tensors)
averages the gradients. The core decides everything that must be the same on
every engine and every rank:

- the global batches: the seeded order of `dualtrain.data.batch_indices`, as in
  one process;
- the shards: rank r of N takes the r-th contiguous block of each global batch
  (`shard`), so the shards in rank order are the global batch, row for row
  (what a OneFlow global tensor split along rows holds);
- every batch must split into N equal shards (`check_shards`): each rank's
  loss is its shard's mean, and only equal shards make the mean of the N
  shard means the global batch's mean;
- the loss recorded is the mean over ranks, all-reduced, so every rank records
  the same trajectory and rank 0's is kept; only rank 0 writes.

`RankBackend` wraps a backend for one rank, so the ordinary loop (`fit`) runs
it unchanged. What the framework does (process group, replication, the
all-reduce) sits behind `Replicas`, which each framework's `ddp.py` implements.
Launching and watching the ranks is `dualtrain.launch`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dualtrain.backend import Backend, LrPlan, StepFn
from dualtrain.errors import CapabilityError, ConfigError

#: Seconds a collective waits for a peer before it fails (the process group's
#: timeout, where the framework has one); read from this variable when set.
TIMEOUT_VARIABLE = "DUALTRAIN_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Rank:
    """This process's place in a data-parallel run, as the usual variables say it.

    `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`: what
    `torchrun`, `python -m oneflow.distributed.launch` and `dualtrain.launch`
    all set. `timeout`: seconds a collective waits for a peer.
    """

    rank: int
    world: int
    local_rank: int = 0
    addr: str = "127.0.0.1"
    port: int = 29500
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Rank | None:
        """The rank the environment describes; None outside a multi-process run."""
        env = os.environ if env is None else env
        if int(env.get("WORLD_SIZE", "1") or 1) <= 1:
            return None
        try:
            return cls(
                rank=int(env["RANK"]),
                world=int(env["WORLD_SIZE"]),
                local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
                addr=env.get("MASTER_ADDR", "127.0.0.1"),
                port=int(env.get("MASTER_PORT", "29500")),
                timeout=collective_timeout(env),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"WORLD_SIZE={env.get('WORLD_SIZE')} asks for a data-parallel run, but "
                f"RANK / MASTER_PORT are missing or not numbers ({exc})"
            ) from None

    def env(self) -> dict[str, str]:
        """The variables that describe this rank to a process started for it."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world),
            "LOCAL_RANK": str(self.local_rank),
            "MASTER_ADDR": self.addr,
            "MASTER_PORT": str(self.port),
            TIMEOUT_VARIABLE: repr(self.timeout),
        }


def refuse_external_launch(command: str) -> None:
    """`compare` and `port` start their own ranks, one run per engine; under torchrun
    or OneFlow's launcher only `dualtrain train` runs as a rank."""
    rank = Rank.from_env()
    if rank is not None:
        raise ConfigError(
            f"dualtrain {command} starts its own ranks for each engine (--nproc N); under "
            f"a launcher (WORLD_SIZE={rank.world}) only dualtrain train runs as a rank"
        )


def collective_timeout(env: Mapping[str, str] | None = None) -> float:
    """The collective timeout from `DUALTRAIN_COLLECTIVE_TIMEOUT`, else the default."""
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_VARIABLE)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return value


class PeerLost(ConfigError):
    """A collective failed because another rank stopped: raised in a rank, so the
    launcher blames the rank that stopped, not the one left waiting."""


def shard(rows: int, rank: int, world: int) -> slice:
    """The rows of a batch of `rows` that `rank` of `world` trains on.

    Example:
        >>> shard(8, 0, 2), shard(8, 1, 2)
        (slice(0, 4, None), slice(4, 8, None))
    """
    size = rows // world
    return slice(rank * size, (rank + 1) * size)


def check_shards(rows: int, batch_size: int, drop_last: bool, world: int) -> None:
    """Refuse, in one line, batches that do not split into `world` equal shards."""
    last = 0 if drop_last else rows % batch_size
    for size, which in ((min(batch_size, rows), "a batch"), (last, "the last batch")):
        if size and size % world:
            raise ConfigError(
                f"{which} of {size} rows does not split into {world} equal shards "
                f"({rows} rows in batches of {batch_size}); use a batch size that "
                f"{world} divides" + (", or drop_last" if which == "the last batch" else "")
            )


def check_model(model: Any, world: int) -> None:
    """Refuse models whose training depends on the whole batch being in one process."""
    stats = sorted(n for n in model.buffer_shapes() if n.endswith(("running_mean", "running_var")))
    if stats:
        raise ConfigError(
            f"nproc {world}: the model's BatchNorm {stats[0].rsplit('.', 1)[0]!r} would "
            "normalise each process's shard by the shard's own statistics (no SyncBatchNorm "
            "here), not the global batch's; use nproc 1 or a model without BatchNorm"
        )
    if getattr(model, "loss", None) == "sse":
        raise ConfigError(
            f"nproc {world}: loss 'sse' sums over the batch, but data parallel averages the "
            "processes' gradients (a mean loss's); use loss 'mse' or nproc 1"
        )
    if _shared_dropout(model):
        raise ConfigError(
            f"nproc {world}: shared dropout masks are drawn for a whole batch in one "
            "process; use --dropout native or nproc 1"
        )


def _shared_dropout(model: Any) -> bool:
    """Whether the core draws dropout masks for the model (a spec's Dropout layers,
    or a user's module with dropout="shared")."""
    sites = getattr(model, "dropout_sites", ())
    if callable(sites):  # a spec
        return bool(sites())
    described = getattr(model, "described", None)
    return bool(described and described.dropout_sites and model.dropout == "shared")


class Replicas(ABC):
    """One framework's part of a data-parallel rank (each framework's `ddp.py`).

    Made by `Backend.data_parallel` in the rank's process; the process group (or
    the framework's multi-process environment) is up once it is made.
    """

    @abstractmethod
    def replicate(self, model: Any) -> Any:
        """What the steps run for `model` (a DDP wrapper, or the model made global);
        called once, after its weights are loaded and before its optimizer is made."""

    @abstractmethod
    def eager_step(self, backend: Backend, replica: Any, optimizer: Any) -> StepFn:
        """One eager step on this rank's shard; returns the loss averaged over ranks."""

    def compile_step(self, backend: Backend, replica: Any, optimizer: Any, plan: LrPlan) -> StepFn:
        """The same as a static graph; only where the framework has one for it."""
        raise CapabilityError(f"backend {backend.name!r}: no data-parallel static graph")

    def evaluate(self, backend: Backend, replica: Any, x, y):
        """The whole validation set on this rank's replica (the same on every rank)."""
        return backend.evaluate(replica.local, x, y)

    def load_optimizer_state(self, backend: Backend, optimizer: Any, state) -> None:
        """A checkpoint's optimizer state into the replicated optimizer."""
        backend.load_optimizer_state(optimizer, state)

    def read_state(self, backend: Backend, replica: Any) -> dict[str, np.ndarray]:
        """This rank's copy of the weights, read without a collective: rank 0 alone
        reads them for a checkpoint."""
        return backend.read_state(replica.local)

    def optimizer_state(self, backend: Backend, optimizer: Any) -> dict[str, np.ndarray]:
        """This rank's copy of the optimizer state, read without a collective."""
        return backend.optimizer_state(optimizer)

    def close(self) -> None:
        """Leave the process group; optional."""
        return None


@dataclass
class Replica:
    """The backend's own model (`local`) and what the steps run (`replica`)."""

    local: Any
    replica: Any = None


class RankBackend(Backend):
    """`inner` on one rank of a data-parallel run, for the ordinary loop.

    Every step gets the global batch and trains on this rank's shard; weights,
    states and evaluation go through the backend's own model, which every rank
    holds in full (the replicas stay identical: `dualtrain.launch` checks).
    """

    def __init__(self, inner: Backend, rank: Rank, mode: str, dtype: str) -> None:
        self.inner, self.rank, self.mode, self.dtype = inner, rank, mode, dtype
        self.name = inner.name
        flags = ("supports_graph", "graph_dtypes", "dtypes", "graph_static_shapes")
        for flag in (*flags, "supports_user_modules", "user_modules_reason"):
            setattr(self, flag, getattr(inner, flag))
        self.replicas: Replicas | None = None

    def build(self, spec, dtype: str, device: str) -> Replica:
        if self.replicas is None:  # the process group, once, before any model exists
            self.replicas = self.inner.data_parallel(self.rank, self.mode, self.dtype)
        return Replica(self.inner.build(spec, dtype, device))

    def load_state(self, model: Replica, arrays) -> None:
        self.inner.load_state(model.local, arrays)

    def read_state(self, model: Replica) -> dict[str, np.ndarray]:
        return self.replicas.read_state(self.inner, model)

    def make_optimizer(self, model: Replica, spec):
        model.replica = self.replicas.replicate(model.local)
        return self.inner.make_optimizer(model.local, spec)

    def set_hyperparams(self, optimizer, lrs, momenta) -> None:
        self.inner.set_hyperparams(optimizer, lrs, momenta)

    def forward_backward(self, model: Replica, x, y) -> float:
        """This process alone on the whole batch (the loop uses the steps below)."""
        return self.inner.forward_backward(model.local, x, y)

    def optimizer_step(self, optimizer) -> None:
        self.inner.optimizer_step(optimizer)

    def zero_grad(self, optimizer) -> None:
        self.inner.zero_grad(optimizer)

    def evaluate(self, model: Replica, x, y):
        """The whole validation set on this replica (every rank gets the same)."""
        return self.replicas.evaluate(self.inner, model, x, y)

    def eager_step(self, model: Replica, optimizer) -> StepFn:
        return self._sharded(self.replicas.eager_step(self.inner, model, optimizer))

    def compile_step(self, model: Replica, optimizer, plan: LrPlan) -> StepFn:
        return self._sharded(self.replicas.compile_step(self.inner, model, optimizer, plan))

    def optimizer_state(self, optimizer) -> dict[str, np.ndarray]:
        return self.replicas.optimizer_state(self.inner, optimizer)

    def load_optimizer_state(self, optimizer, state) -> None:
        self.replicas.load_optimizer_state(self.inner, optimizer, state)

    def start_at(self, model: Replica, step: int) -> None:
        self.inner.start_at(model.local, step)

    def running(self):
        return self.inner.running()

    def close(self) -> None:
        if self.replicas is not None:
            self.replicas.close()
        self.inner.close()

    def _sharded(self, step: StepFn) -> StepFn:
        rank, world = self.rank.rank, self.rank.world

        def sharded(x: np.ndarray, y: np.ndarray) -> float:
            rows = shard(len(x), rank, world)
            return step(x[rows], y[rows])

        return sharded


def check_replicas(states: list[dict[str, np.ndarray]]) -> None:
    """Every rank's final parameters and buffers equal rank 0's, bit for bit: a
    data-parallel engine keeps its replicas identical, or it is broken."""
    for rank, state in enumerate(states[1:], start=1):
        for name, value in states[0].items():
            if not np.array_equal(value, state.get(name)):
                raise ConfigError(
                    f"data parallel: rank {rank}'s {name} differs from rank 0's after "
                    "training; the replicas drifted apart"
                )
