"""What OneFlow 0.9.0's nn.Graph crash rate on CPU depends on: ways of driving it, side by side.

    python tests/bench/graph_crash_factors.py --rounds 6 --steps 5000 [VARIANT ...]
    python tests/bench/graph_crash_factors.py --rounds 2 --steps 200 \
        --widths 256,1024,1024,1 --batch 256 base onecore       (a larger model's step time)

Each round runs every variant once, in turn (so drift in the machine's load
hits all alike), as a fresh process that trains the regression problem's MLP
(float32, batches of 50, SGD with momentum) for `--steps` graph steps through
the OneFlow backend's own graph. A death by a signal is a crash; no progress
for 20 s is a hang. Prints, per variant: crashes and hangs per 1000 steps
(with the count, so the Poisson noise can be judged: a count of n has a
standard deviation of about sqrt(n)), and the mean steady step time (median over its runs).

Variants: base (the backend's step: the loss read every step), omp1
(OMP_NUM_THREADS=1), onecore (the process pinned to one CPU), chunk16 (the
loss read every 16 steps, the outputs kept alive until then), keep (the last
loss tensor kept alive one step longer), sync (a full VM sync after every
step, on top of reading the loss).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

VARIANTS = ("base", "omp1", "onecore", "chunk16", "keep", "sync")
HANG_SECONDS = 20.0


def worker(variant: str, steps: int, progress: str, widths: str | None, batch: int) -> None:
    if variant == "onecore":
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import numpy as np

    from dualtrain.backend import LrPlan
    from dualtrain.loop import RunConfig, model_and_optimizer
    from dualtrain.problems import get_problem
    from dualtrain_oneflow import OneFlowBackend
    from dualtrain_oneflow.backend import _input, _target

    problem = get_problem("regression")
    spec, x, y = problem.model, problem.data.x, problem.data.y
    if widths:  # a wider MLP on random data, for the step time of a larger model
        import dualtrain

        sizes = [int(w) for w in widths.split(",")]
        spec = dualtrain.mlp(sizes, activation="tanh")
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(16 * batch, sizes[0])), rng.normal(size=(16 * batch, 1))
    backend = OneFlowBackend()
    config = RunConfig(backend="oneflow", mode="graph", dtype="float32", options={"momentum": 0.9})
    net, optimizer = model_and_optimizer(backend, config, spec, None)
    step = backend.compile_step(net, optimizer, LrPlan(steps, 1, lambda s: [0.01], False, None))
    x, y = x.astype(np.float32), y.astype(np.float32)
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, 16 * batch, batch)]
    step(*batches[0])  # compiles the graph
    graph = optimizer.dualtrain_graph
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT)
    pending, kept, ends = [], None, []
    import oneflow as flow

    for k in range(1, steps):
        bx, by = batches[k % 16]
        if variant == "chunk16":
            pending.append(graph(_input(net, bx), _target(net, by)))
            if len(pending) == 16:
                [float(loss.numpy()) for loss in pending]
                pending = []
        elif variant == "keep":
            loss = graph(_input(net, bx), _target(net, by))
            float(loss.numpy())
            kept = loss  # noqa: F841 - alive until the next step's loss replaces it
        elif variant == "sync":
            step(bx, by)
            flow._oneflow_internal.eager.Sync()
        else:
            step(bx, by)
        ends.append(time.perf_counter())
        if k % 100 == 0 or ends[-1] - ends[max(0, len(ends) - 2)] > 0.05:  # slow steps: each
            os.pwrite(fd, f"{k}".ljust(20).encode(), 0)
    mean = (ends[-1] - ends[0]) / (len(ends) - 1)  # chunk16's calls return before the step ends
    os.pwrite(fd, f"{steps} {mean}".ljust(40).encode(), 0)
    os._exit(0)


def one(variant: str, steps: int, extra: list[str]) -> tuple[str, int, float | None]:
    """(outcome, steps done, median step seconds) of one worker process."""
    env = dict(os.environ)
    if variant == "omp1":
        env["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as folder:
        progress = Path(folder) / "progress"
        progress.write_text("0")
        child = subprocess.Popen(
            [sys.executable, __file__, "--worker", variant, "--steps", str(steps),
             "--progress", str(progress), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        seen, changed = None, time.monotonic()
        while child.poll() is None:
            time.sleep(0.2)
            text = progress.read_text()
            if text != seen:
                seen, changed = text, time.monotonic()
            elif time.monotonic() - changed > HANG_SECONDS:
                child.kill()
                child.wait()
                return "hang", int(text.split()[0]), None
        fields = progress.read_text().split()
        if child.returncode < 0:
            return f"signal {-child.returncode}", int(fields[0]), None
        if child.returncode:
            return f"exit {child.returncode}", int(fields[0]), None
        return "ok", int(fields[0]), float(fields[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--worker")
    parser.add_argument("--progress")
    parser.add_argument("--widths", help="an MLP's widths instead of the regression problem's")
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.progress, args.widths, args.batch)
        return
    extra = ["--batch", str(args.batch)] + (["--widths", args.widths] if args.widths else [])
    done, bad, times = defaultdict(int), defaultdict(list), defaultdict(list)
    for r in range(args.rounds):
        for variant in args.variants:
            outcome, steps, seconds = one(variant, args.steps, extra)
            done[variant] += steps
            if outcome != "ok":
                bad[variant].append(f"{outcome}@{steps}")
            else:
                times[variant].append(seconds)
            print(f"round {r + 1} {variant}: {outcome} after {steps} steps", flush=True)
    for variant in args.variants:
        n, steps = len(bad[variant]), done[variant]
        step_us = statistics.median(times[variant]) * 1e6 if times[variant] else float("nan")
        print(
            f"{variant}: {n} crashes or hangs in {steps} steps = {1000 * n / max(steps, 1):.3f} "
            f"per 1000 steps ({', '.join(bad[variant]) or 'none'}); median step {step_us:.0f} us"
        )


if __name__ == "__main__":
    main()
