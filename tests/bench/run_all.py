"""Benchmarks, measured side by side in one run; prints ratios, asserts nothing.

    make bench        (or: python tests/bench/run_all.py [--repeats N] [--only a,b])

- numpy loop: a training step through dualtrain's loop (schedule, records,
  progress) against a hand-written NumPy loop over the same network, optimizer
  and batches; the ratio is the loop's overhead (goal <= 1.03).
- torch loop: dualtrain's torch eager step against a hand-written torch loop on
  the same model and batches (goal <= 1.03), and the compiled step against eager.
- oneflow loop: dualtrain's oneflow eager step against a hand-written OneFlow
  loop (goal <= 1.03), nn.Graph against eager, and the graph's step time as its
  lr table grows (every step a new lr: 100 to 10000 entries).
- schedules: the engine's per-step cost against torch's `scheduler.step()`.
- numpy cnn: the NumPy step of the digits CNN against torch eager (goal <= 3),
  and its Conv2d against a hand-written im2col (tests/bench/numpy_conv_bench.py).
- port: `dualtrain port` of the example CNN on the four engines, 200 steps each
  (tests/bench/port_bench.py).
- data parallel: 1 against 2 processes per engine on an MLP whose all-reduce
  matters, and the start-up of 2 ranks (tests/bench/ddp_bench.py).
- instructions: next to the numpy and torch loop ratios, the same loops' instructions
  a step counted under valgrind's callgrind, which load does not change
  (tests/bench/instructions.py; only where valgrind is installed). NumPy's by
  default; torch's with `--count all` (its import alone takes minutes under
  valgrind, most of an hour on a loaded machine); `--count none` skips both.
- loop overhead: what dualtrain's loop adds around a step that does nothing,
  losses read every step and every 32 (tests/bench/loop_overhead.py).
- crossover: eager against torch.compile and nn.Graph for an MLP and the CNN
  and transformer presets at growing width and batch, on one CPU
  (tests/bench/crossover.py; docs/performance.md).

OneFlow graphs run through `train_engine` here, as `fit` runs them: in a
watched child process (OneFlow 0.9.0's nn.Graph crashes now and then on CPU),
a crashed attempt going on from its newest recovery checkpoint, every retry
reported. Graph and float32-eager step times are the median of the step
calls after the first (the first compiles the graph).

Every figure is also written to `runs/bench/bench.json` (tests/bench/figures.py):
the seconds and ratio of each, with the spread over repeats, and each ratio's
change since the previous run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import warnings

import instructions
from crossover import bench_crossover
from crossover import pin as pin_cpus
from ddp_bench import bench_ddp
from figures import FIGURES, spread
from loop_overhead import bench_loop_overhead
from loops import (
    dualtrain_loop,
    hand_written_loop,
    loop_config,
    oneflow_hand_written_loop,
    torch_hand_written_loop,
)
from numpy_conv_bench import bench_numpy_cnn
from port_bench import bench_port_cnn

from dualtrain.loop import ScheduleConfig, train_engine
from dualtrain.problems import get_problem


def instruction_counts(engine: str) -> None:
    """Print (and keep) the loop's instruction-count ratio, where valgrind is."""
    if engine not in COUNTED:
        return
    if not instructions.available():
        print(f"{engine} eager, instructions a step: not counted (valgrind is not installed)")
        return
    print(instructions.record(engine), flush=True)


def bench_numpy_loop(repeats: int) -> None:
    problem = get_problem("regression")
    config = loop_config()
    ours, plain = [], []
    for _ in range(repeats):  # interleaved, so drift on the machine hits both alike
        ours.append(dualtrain_loop(problem, config))
        plain.append(hand_written_loop(problem, config))
    a, b = statistics.median(ours), statistics.median(plain)
    figure = FIGURES.ratio("numpy_eager_loop_vs_hand_written", ours, plain, goal=1.03)
    print(
        f"numpy step, regression MLP, batch {problem.batch_size}: dualtrain loop "
        f"{a * 1e6:.1f} us, hand-written loop {b * 1e6:.1f} us, {spread(figure)} "
        "(goal <= 1.03)"
    )
    instruction_counts("numpy")


def bench_torch_loop(repeats: int) -> None:
    from dataclasses import replace

    problem = get_problem("regression")
    config = loop_config("torch")
    graph = replace(config, mode="graph")
    ours, plain, compiled, each = [], [], [], []
    # Eager first, before anything is compiled in this process: after dynamo had
    # compiled `train_step`, the eager calls of that same function measured 1.054 of the
    # hand-written loop, against 0.918 and 0.950 in processes that compiled nothing (one
    # run of 11 repeats each, 2026-12-02, quiet machine; spreads 0.73-1.49).
    for _ in range(repeats):
        ours.append(dualtrain_loop(problem, config))
        plain.append(torch_hand_written_loop(problem, config))
        each.append(dualtrain_loop(problem, replace(config, loss_read_every=1)))
    dualtrain_loop(problem, graph)  # compile once, outside the timing
    for _ in range(repeats):
        compiled.append(dualtrain_loop(problem, graph))
    a, b, c = (statistics.median(v) for v in (ours, plain, compiled))
    eager = FIGURES.ratio("torch_eager_loop_vs_hand_written", ours, plain, goal=1.03)
    each_figure = FIGURES.ratio("torch_eager_read_every_step_vs_hand_written", each, plain)
    print(f"torch eager, every loss read at once (loss_read_every=1): {spread(each_figure)}")
    graph_figure = FIGURES.ratio("torch_compiled_vs_eager", compiled, ours)
    print(
        f"torch eager step, regression MLP: dualtrain {a * 1e6:.1f} us, hand-written "
        f"{b * 1e6:.1f} us, {spread(eager)} (goal <= 1.03)"
    )
    print(
        f"torch compiled step: {c * 1e6:.1f} us, compiled / eager {spread(graph_figure)} "
        "(per step after warm-up, recompiles excluded)"
    )
    instruction_counts("torch")


def graph_step_time(problem, config) -> tuple[float, list[str]]:
    """(median seconds of a graph step after the first, the retries' notes), through
    `train_engine`: in a watched child, a crashed attempt going on from its newest
    recovery checkpoint as `fit` does."""
    run = train_engine(config, problem.model, problem.data)
    return statistics.median(s["time"] for s in run.trajectory.steps[1:]), run.notes


def bench_oneflow_loop(repeats: int) -> None:
    from dataclasses import replace

    from dualtrain.isolation import EngineCrashed

    problem = get_problem("regression")
    config = loop_config("oneflow")
    ours, plain, each = [], [], []
    for _ in range(repeats):
        ours.append(dualtrain_loop(problem, config))
        plain.append(oneflow_hand_written_loop(problem, config))
        each.append(dualtrain_loop(problem, replace(config, loss_read_every=1)))
    a, b = statistics.median(ours), statistics.median(plain)
    each_figure = FIGURES.ratio("oneflow_eager_read_every_step_vs_hand_written", each, plain)
    print(f"oneflow eager, every loss read at once (loss_read_every=1): {spread(each_figure)}")
    eager32 = [
        statistics.median(s["time"] for s in run.trajectory.steps[1:])
        for run in (
            train_engine(replace(config, dtype="float32"), problem.model, problem.data)
            for _ in range(repeats)
        )
    ]
    graph = replace(config, mode="graph", dtype="float32")
    c, notes = graph_step_time(problem, graph)
    eager = FIGURES.ratio("oneflow_eager_loop_vs_hand_written", ours, plain, goal=1.03)
    graph_figure = FIGURES.ratio(
        "oneflow_graph_vs_eager_float32", [c], [statistics.median(eager32)], retries=notes
    )
    print(
        f"oneflow eager step, regression MLP: dualtrain {a * 1e6:.1f} us, hand-written "
        f"{b * 1e6:.1f} us, {spread(eager)} (goal <= 1.03)"
    )
    print(
        f"oneflow nn.Graph step (float32): {c * 1e6:.1f} us, graph / eager float32 "
        f"{spread(graph_figure)}" + "".join(f"; {n}" for n in notes)
    )
    per_epoch = len(problem.data) // problem.batch_size
    for steps in (100, 1000, 4000):
        step_config = replace(
            graph,
            epochs=steps // per_epoch,
            schedule=ScheduleConfig("CosineAnnealingLR", "torch", {"T_max": steps}, "step"),
        )
        label = (
            f"oneflow nn.Graph step with an lr table of {steps // per_epoch * per_epoch} entries"
        )
        try:
            t, notes = graph_step_time(problem, step_config)
        except EngineCrashed as exc:  # measured, not hidden: OneFlow 0.9.0 crashes on CPU
            print(f"{label}: {exc}")
            continue
        FIGURES.seconds(f"oneflow_graph_step_lr_table_{steps}", [t], retries=notes)
        print(f"{label}: {t * 1e6:.1f} us" + "".join(f"; {n}" for n in notes))


def bench_schedules(repeats: int) -> None:
    import torch

    from dualtrain import lr_scheduler
    from dualtrain.schedules import build_schedule

    # Stepping a scheduler on an optimizer that never stepped is what is timed here.
    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
    steps = 2000
    for name, kwargs in [
        ("StepLR", {"step_size": 30}),
        ("OneCycleLR", {"max_lr": 0.1, "total_steps": steps}),
        ("CosineAnnealingWarmRestarts", {"T_0": 50, "T_mult": 2}),
    ]:
        ours, theirs, pure = [], [], []
        for _ in range(repeats):
            for module, out in ((torch.optim.lr_scheduler, theirs), (lr_scheduler, ours)):
                opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
                sched = getattr(module, name)(opt, **kwargs)
                start = time.perf_counter()
                for _ in range(steps - 1):
                    sched.step()
                out.append((time.perf_counter() - start) / (steps - 1))
            [schedule] = build_schedule(name, "torch", kwargs)
            start = time.perf_counter()
            for k in range(steps):
                schedule.lr(k, 0.1)
            pure.append((time.perf_counter() - start) / steps)
        a, b, c = (statistics.median(v) for v in (ours, theirs, pure))
        figure = FIGURES.ratio(f"schedule_{name}_step_vs_torch", ours, theirs)
        FIGURES.seconds(f"schedule_{name}_pure_lr", pure)
        print(
            f"schedule {name}: dualtrain scheduler.step() {a * 1e6:.2f} us, torch's "
            f"{b * 1e6:.2f} us, {spread(figure)}; pure lr(step) {c * 1e6:.2f} us"
        )


def crossover_on_one_cpu() -> None:
    pin_cpus(1)  # every engine of the crossover on one CPU, as nn.Graph's child is
    bench_crossover("small")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--only", default="", help=f"comma-separated benches to run (of: {', '.join(BENCHES)})"
    )
    parser.add_argument(
        "--count",
        choices=sorted(COUNTS),
        default="numpy",
        help="which eager loops to count in instructions under valgrind (default numpy; "
        "all adds torch, whose import takes minutes there)",
    )
    args = parser.parse_args()
    global COUNTED
    COUNTED = COUNTS[args.count]
    chosen = [name for name in args.only.split(",") if name] or list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    few = max(3, args.repeats // 3)
    runs = {
        "numpy_loop": lambda: bench_numpy_loop(args.repeats),
        "torch_loop": lambda: bench_torch_loop(few),
        "oneflow_loop": lambda: bench_oneflow_loop(few),
        "schedules": lambda: bench_schedules(few),
        "numpy_cnn": lambda: bench_numpy_cnn(few),
        "port": bench_port_cnn,
        "ddp": bench_ddp,
        "loop_overhead": lambda: bench_loop_overhead(args.repeats),
        "crossover": crossover_on_one_cpu,  # last: it pins the process to one CPU
    }
    for name in BENCHES:
        if name in chosen:
            runs[name]()
    FIGURES.save()


#: `--count` -> the engines whose eager loop is counted in instructions under valgrind.
COUNTS = {"none": (), "numpy": ("numpy",), "all": ("numpy", "torch")}
COUNTED = COUNTS["numpy"]

#: Every bench in the order `make bench` runs them.
BENCHES = (
    "numpy_loop",
    "torch_loop",
    "oneflow_loop",
    "schedules",
    "numpy_cnn",
    "port",
    "ddp",
    "loop_overhead",
    "crossover",
)


if __name__ == "__main__":
    main()
