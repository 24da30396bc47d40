"""torch's DistributedDataParallel for one rank of a dualtrain data-parallel run.

gloo on CPU: the process group rendezvous over TCP at MASTER_ADDR:MASTER_PORT,
with the run's collective timeout, so a peer that hangs turns into an error here
after that many seconds (gloo's own default is 30 minutes). The model is
wrapped in `DistributedDataParallel` once its weights are loaded; the backend's
own step (eager, or `torch.compile` of the whole step) runs the wrapper, whose
backward all-reduces and averages the gradients. The loss of each rank's shard
is then all-reduced in float64 and averaged, so every rank records the same.
"""

from __future__ import annotations

import datetime

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dualtrain.backend import Backend, LrPlan, StepFn
from dualtrain.distributed import PeerLost, Rank, Replica, Replicas

#: Seconds the ranks have to meet at the start.
RENDEZVOUS_SECONDS = 300.0

# What gloo says when the rank at the other end went away or never answered.
_PEER_WORDS = ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out")


class TorchReplicas(Replicas):
    """A gloo process group for this rank; DDP replicas; averaged losses."""

    def __init__(self, rank: Rank) -> None:
        self.rank = rank
        # The rendezvous waits for ranks still importing torch (1 to 11 s each
        # here, more on a busy machine); the steps' collectives get the run's
        # timeout, in a group of their own.
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://{rank.addr}:{rank.port}",
            rank=rank.rank,
            world_size=rank.world,
            timeout=datetime.timedelta(seconds=max(rank.timeout, RENDEZVOUS_SECONDS)),
        )
        self.group = dist.new_group(timeout=datetime.timedelta(seconds=rank.timeout))

    def replicate(self, model: torch.nn.Module) -> DistributedDataParallel:
        # Building the first wrapper took 6.8 s here on a busy machine, and its own
        # collectives have the run's (short) timeout: the ranks meet before and
        # after it with the rendezvous's.
        dist.barrier()
        wrapped = DistributedDataParallel(model, process_group=self.group)
        dist.barrier()
        # The backend's steps read what it keeps on its model (loss, dtype, dropout).
        for key, value in vars(model).items():
            if key.startswith("dualtrain_"):
                setattr(wrapped, key, value)
        return wrapped

    def eager_step(self, backend: Backend, replica: Replica, optimizer) -> StepFn:
        return self._averaged(backend.eager_step(replica.replica, optimizer))

    def compile_step(self, backend: Backend, replica: Replica, optimizer, plan: LrPlan) -> StepFn:
        return self._averaged(backend.compile_step(replica.replica, optimizer, plan))

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def _averaged(self, step: StepFn) -> StepFn:
        world = self.rank.world

        def averaged(x, y) -> float:
            try:
                total = torch.tensor([step(x, y)], dtype=torch.float64)
                dist.all_reduce(total, group=self.group)
            except (RuntimeError, dist.DistError) as exc:
                raise _peer_lost(exc, self.rank) from exc
            return float(total[0]) / world

        return averaged


def _peer_lost(exc: BaseException, rank: Rank) -> BaseException:
    """`exc` as `PeerLost` when gloo raised it for a peer that went away or hung."""
    text = str(exc)
    if isinstance(exc, dist.DistError) or any(word in text for word in _PEER_WORDS):
        first = (text.strip().splitlines() or [""])[0]
        return PeerLost(f"rank {rank.rank} of {rank.world}: a collective failed ({first[:200]})")
    return exc
