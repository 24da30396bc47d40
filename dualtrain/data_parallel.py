"""A data-parallel `fit`: the checks every rank must pass, then the ranks.

`config.nproc` ranks are started here (`dualtrain.launch`), or this process is
one rank of a run that `torchrun` or OneFlow's launcher started (`Rank.from_env`).
The job is the loop's picklable `fit` (`dualtrain.loop._FitJob`); rank 0's run is
returned, after every rank's final state is checked equal.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace

from dualtrain import distributed, launch
from dualtrain.backend import Backend
from dualtrain.checkpoint import newest_step
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.isolation import RETRIES


def run(job, backend: Backend, on_step):
    """`job` on `config.nproc` ranks started here (`dualtrain.launch`), or as this
    process's rank of a run that `torchrun` or OneFlow's launcher started."""
    config, train = job.config, job.model.prepare(job.train)
    rank = distributed.Rank.from_env()
    if rank is not None and config.nproc not in (1, rank.world):
        raise ConfigError(f"nproc {config.nproc}, but WORLD_SIZE is {rank.world}")
    job.config = config = replace(config, nproc=rank.world if rank else config.nproc)
    if not backend.supports_data_parallel:
        raise CapabilityError(f"backend {backend.name!r}: {backend.data_parallel_reason}")
    distributed.check_model(job.model, config.nproc)
    distributed.check_shards(len(train), config.batch_size, config.drop_last, config.nproc)
    if rank is not None:
        run = job(on_step or (lambda record: None))
        run.trajectory.meta["nproc"] = config.nproc
        return run
    isolated = config.mode == "graph" and backend.isolate_graph
    with tempfile.TemporaryDirectory(prefix="dualtrain-recovery-") as recovery:
        job.recovery = recovery if isolated else None
        runs, notes, pids = launch.run_ranks(
            job,
            config.nproc,
            config.engine,
            stagger=backend.data_parallel_stagger,
            retries=RETRIES if isolated else 0,
            progress=lambda: newest_step(recovery),
        )
    distributed.check_replicas([r.state for r in runs])
    run = runs[0]
    run.notes = notes
    run.trajectory.meta.update(retries=notes, nproc=config.nproc, pids=pids)
    return run
