"""The loop's own microseconds: dualtrain's loop around a step that does nothing.

    python tests/bench/loop_overhead.py [--repeats N] [--profile]
    (also run by tests/bench/run_all.py)

A backend whose step returns a constant leaves only what the loop itself does
each step: the batch indexed from the data set, the lr check, the trajectory
record, the loss read (in chunks or each step), the callbacks and progress.
Against it, the plainest loop that still indexes each batch and keeps each
loss. The difference is what dualtrain adds to any engine's step; `--profile`
prints cProfile's calls of one run (counts and structure hold on a busy machine,
where times do not).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from figures import FIGURES

from dualtrain.data import batch_indices
from dualtrain.loop import RunConfig, ScheduleConfig, fit
from dualtrain.problems import get_problem
from dualtrain_numpy.backend import NumpyBackend

EPOCHS, BATCH = 50, 10  # 1000 rows: 100 steps an epoch, 5000 steps a run


class NullStep(NumpyBackend):
    """NumPy's model and optimizer, but a step that computes nothing."""

    def eager_step(self, model, optimizer):
        return lambda x, y: 1.0


def through_fit(problem, every: int) -> float:
    config = RunConfig(
        epochs=EPOCHS,
        batch_size=BATCH,
        loss_read_every=every,
        schedule=ScheduleConfig("StepLR", "torch", {"step_size": 5, "gamma": 0.5}),
    )
    backend = NullStep()
    start = time.perf_counter()
    fit(config, problem.model, problem.data, backend=backend)
    return (time.perf_counter() - start) / (EPOCHS * len(problem.data) // BATCH)


def hand_written(problem) -> float:
    """Index each batch, call the step, keep the loss; the lr set once an epoch."""
    step = NullStep().eager_step(None, None)
    x_all, y_all = problem.data.x, problem.data.y
    losses, steps = [], 0
    start = time.perf_counter()
    for epoch in range(EPOCHS):
        for index in batch_indices(len(x_all), BATCH, epoch, 0):
            losses.append(step(x_all[index], y_all[index]))
            steps += 1
    return (time.perf_counter() - start) / steps


def bench_loop_overhead(repeats: int) -> None:
    problem = get_problem("regression")
    ours, chunked, plain = [], [], []
    for _ in range(repeats):  # interleaved
        ours.append(through_fit(problem, 1))
        chunked.append(through_fit(problem, 32))
        plain.append(hand_written(problem))
    FIGURES.seconds("loop_overhead_read_every_step", ours)
    FIGURES.seconds("loop_overhead_read_every_32", chunked)
    FIGURES.seconds("loop_overhead_hand_written", plain)
    added = [a - b for a, b in zip(ours, plain, strict=True)]
    added32 = [a - b for a, b in zip(chunked, plain, strict=True)]
    FIGURES.seconds("loop_overhead_added_read_every_step", added)
    FIGURES.seconds("loop_overhead_added_read_every_32", added32)
    print(
        f"loop around a null step: dualtrain {statistics.median(ours) * 1e6:.2f} us "
        f"(read every step), {statistics.median(chunked) * 1e6:.2f} us (every 32), "
        f"hand-written {statistics.median(plain) * 1e6:.2f} us; added by dualtrain "
        f"{statistics.median(added) * 1e6:.2f} us (min {min(added) * 1e6:.2f}, max "
        f"{max(added) * 1e6:.2f}) / {statistics.median(added32) * 1e6:.2f} us a step "
        f"over {repeats} repeats"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(through_fit, get_problem("regression"), 32)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        return
    bench_loop_overhead(args.repeats)
    FIGURES.save()


if __name__ == "__main__":
    main()
