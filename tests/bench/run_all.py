"""Benchmarks, measured side by side in one run; prints ratios, asserts nothing.

    make bench        (or: python tests/bench/run_all.py [--repeats N])

numpy loop: one training step through dualtrain's loop (schedule, records,
progress) against a hand-written NumPy loop that calls the same network and
optimizer on the same batches. The ratio is the loop's overhead; the goal is
<= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from dualtrain.backend import get_backend
from dualtrain.data import batch_indices
from dualtrain.loop import RunConfig, ScheduleConfig, fit
from dualtrain.problems import get_problem
from dualtrain_numpy.model import loss_and_grad


def per_step(ends: list[float]) -> float:
    """Seconds per step in steady state: between the first and the last step's end."""
    return (ends[-1] - ends[0]) / (len(ends) - 1)


def dualtrain_loop(problem, config) -> float:
    """Seconds per step through `fit`: schedule, records, progress, the step itself."""
    ends: list[float] = []
    fit(
        config,
        problem.model,
        problem.data,
        None,
        on_step=lambda _: ends.append(time.perf_counter()),
    )
    return per_step(ends)


def hand_written_loop(problem, config) -> float:
    """Seconds per step of the plainest loop over the same network and batches."""
    backend = get_backend("numpy")
    net = backend.build(problem.model, config.dtype, "cpu")
    from dualtrain.model import init_weights

    backend.load_state(net, init_weights(problem.model, config.seed))
    optimizer = backend.make_optimizer(net, config.optimizer_spec())
    x_all, y_all = problem.data.x, problem.data.y
    ends = []
    for epoch in range(config.epochs):
        lr = config.lr * 0.5 ** (epoch // 5)  # StepLR(5, 0.5) by hand
        for group in optimizer.param_groups:
            group["lr"] = lr
        for index in batch_indices(len(x_all), config.batch_size, epoch, config.seed):
            optimizer.zero_grad()
            out = net.forward(x_all[index])
            _, grad = loss_and_grad(problem.model.loss, out, y_all[index])
            net.backward(grad)
            optimizer.step()
            ends.append(time.perf_counter())
    return per_step(ends)


def bench_numpy_loop(repeats: int) -> None:
    problem = get_problem("regression")
    config = RunConfig(
        lr=0.05,
        options={"momentum": 0.9},
        epochs=10,
        batch_size=problem.batch_size,
        schedule=ScheduleConfig("StepLR", "torch", {"step_size": 5, "gamma": 0.5}),
    )
    ours, plain = [], []
    for _ in range(repeats):  # interleaved, so drift on the machine hits both alike
        ours.append(dualtrain_loop(problem, config))
        plain.append(hand_written_loop(problem, config))
    a, b = statistics.median(ours), statistics.median(plain)
    print(
        f"numpy step, regression MLP, batch {problem.batch_size}: dualtrain loop "
        f"{a * 1e6:.1f} us, hand-written loop {b * 1e6:.1f} us, ratio {a / b:.3f} "
        f"(goal <= 1.05; median of {repeats})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    np.seterr(all="raise")
    bench_numpy_loop(args.repeats)


if __name__ == "__main__":
    main()
