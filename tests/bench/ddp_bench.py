"""Benchmark of data parallel: 1 against 2 processes, per engine, and the launch cost.

    python tests/bench/ddp_bench.py [--steps N]     (also run by tests/bench/run_all.py)

An MLP of 256 -> 1024 -> 1024 -> 10 (1.3 M parameters, 5 MB of float32
gradients to all-reduce every step), global batches of 256 rows. Per engine:
the median seconds per step (of rank 0's steps after the first two: the first
compiles torch.compile's and nn.Graph's graphs) in one process and in two, and
their ratio (below 1: two processes are faster per global batch). Then the
start-up cost of a 2-process run: a run of no step, whose wall time is the two
interpreters, their framework imports, the process group and the replicas.

Every case runs in a fresh interpreter. One process is measured with as many
threads as CPUs (what it gets by default) and with one; each of two ranks gets
half the CPUs (OMP_NUM_THREADS, as dualtrain.launch sets it). The ratios are
2-process time over each 1-process time. On a machine shared with other work,
threads that wait for each other make the many-thread case slow: the load
average is printed with the numbers. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from dualtrain.data import Dataset
from dualtrain.loop import RunConfig, train_engine, with_overrides
from dualtrain.model import mlp

MODEL = mlp([256, 1024, 1024, 10], activation="relu", loss="cross_entropy")
ENGINES = [
    ("torch", "eager", "float32"),
    ("torch", "graph", "float32"),
    ("oneflow", "eager", "float32"),  # OneFlow's DistributedDataParallel
    ("oneflow", "eager", "float64"),  # global tensors
    ("oneflow", "graph", "float32"),  # global tensors in nn.Graph
]


def data(steps: int) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256 * steps, 256))
    return Dataset(x, rng.integers(0, 10, size=len(x)))


def case(backend: str, mode: str, dtype: str, nproc: int, steps: int) -> dict:
    """One measurement, in this process: seconds per step, and the run's wall time."""
    base = RunConfig(lr=0.01, options={"momentum": 0.9}, batch_size=256, shuffle=False)
    config = with_overrides(base, backend=backend, mode=mode, dtype=dtype, nproc=nproc)
    config = with_overrides(config, epochs=1 if steps else 0)
    began = time.perf_counter()
    run = train_engine(config, MODEL, data(max(steps, 1)))
    wall = time.perf_counter() - began
    seconds = [s["time"] for s in run.trajectory.steps[2:]]
    return {"step": statistics.median(seconds) if seconds else None, "wall": wall}


def measured(backend, mode, dtype, nproc, steps, threads) -> dict:
    """`case` in a fresh interpreter with OMP_NUM_THREADS=threads (a parent that
    imported OneFlow or other frameworks would skew it)."""
    command = [sys.executable, __file__, "--case", backend, mode, dtype, str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [*command, "--steps", str(steps)], capture_output=True, text=True, env=env, timeout=900
    )
    if done.returncode:
        lines = (done.stderr.strip() or "no output").splitlines()
        raise RuntimeError(lines[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_ddp(steps: int = 12) -> None:
    cores = len(os.sched_getaffinity(0))
    print(
        f"data parallel, MLP 256-1024-1024-10 (1.3 M parameters), batches of 256, {steps} "
        f"steps, {cores} CPUs, load average {os.getloadavg()[0]:.1f}:"
    )
    for backend, mode, dtype in ENGINES:
        label = f"{backend}/{mode} {dtype}"
        try:
            whole = measured(backend, mode, dtype, 1, steps, cores)["step"]
            single = measured(backend, mode, dtype, 1, steps, 1)["step"]
            two = measured(backend, mode, dtype, 2, steps, max(1, cores // 2))["step"]
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            print(f"  {label}: {type(exc).__name__}: {exc}")
            continue
        print(
            f"  {label}: 1 process {whole * 1e3:.1f} ms/step ({cores} threads), "
            f"{single * 1e3:.1f} ms/step (1 thread); 2 processes {two * 1e3:.1f} ms/step; "
            f"ratio {two / whole:.2f} / {two / single:.2f}"
        )
    for backend in ("torch", "oneflow"):
        wall = measured(backend, "eager", "float32", 2, 0, max(1, cores // 2))["wall"]
        print(f"  start-up of 2 {backend} ranks (a run of no step): {wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--case", nargs=4, metavar=("BACKEND", "MODE", "DTYPE", "NPROC"))
    args = parser.parse_args()
    if args.case:
        backend, mode, dtype, nproc = args.case
        print(json.dumps(case(backend, mode, dtype, int(nproc), args.steps)))
        return
    bench_ddp(args.steps)


if __name__ == "__main__":
    main()
