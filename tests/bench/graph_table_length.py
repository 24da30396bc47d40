"""What a long `graph_scheduler` table costs; prints a table, asserts nothing.

    python tests/bench/graph_table_length.py [--lengths 1 1000 100000 300000] [--calls 300]

For each table length N (a LambdaLR with a new lr every step, so N entries):
the seconds `graph_scheduler` takes to step a copy N times, the first graph call
(which compiles the conf in), and the fastest and median step with the graph at
the start of the table and near its end. OneFlow's kernel scans the boundaries from the start
until the first one at or past the graph's step (learning_rate_schedule_kernel.cpp,
PiecewiseConstantLearningRate), so a step's cost grows with how far into the
table the run is; the end is reached by loading the graph's step counter.
Each length runs in a watched child process (nn.Graph crashes now and then on CPU),
whose start-up allowance must cover two tabulations and two compiles: about
300000 entries on a busy 2-core machine (1000000 took 52 s to tabulate and 63 s
to compile, once).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import time
from pathlib import Path

from dualtrain.isolation import run_in_child

CALLS = 300  # timed graph calls at each end of the table


def measure(length: int, calls: int = CALLS, heartbeat=None) -> dict[str, float]:
    """Seconds to tabulate, seconds of the first call, and median us a step with the
    graph's step counter at the start of the table and near its end: two graphs,
    called in turn, so the machine's noise falls on both alike."""
    import oneflow as flow

    from dualtrain import lr_scheduler
    from dualtrain_oneflow import graph_scheduler

    class Probe(flow.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = flow.nn.Parameter(flow.zeros(1))

        def forward(self, x):
            return flow.sum(self.w) + flow.sum(x) * 0

    def graph_at(step: int):
        probe = Probe()
        optimizer = flow.optim.SGD(probe.parameters(), lr=0.1)
        scheduler = lr_scheduler.LambdaLR(optimizer, lambda epoch: 1 / (1 + epoch))
        began = time.perf_counter()
        lr_sch = graph_scheduler(scheduler, length)
        tabulate = time.perf_counter() - began

        class Graph(flow.nn.Graph):
            def __init__(self):
                super().__init__()
                self.probe = probe
                self.add_optimizer(optimizer, lr_sch=lr_sch)

            def build(self, x):
                loss = self.probe(x)
                loss.backward()
                return loss

        graph = Graph()
        if step:
            counter = {"System-Train-TrainStep": flow.tensor([step])}
            graph.load_state_dict({**graph.state_dict(), **counter})
        began = time.perf_counter()
        graph(x).numpy()
        return graph, tabulate, time.perf_counter() - began

    x = flow.zeros(1)
    # No heartbeat until both graphs are built: the watcher's start-up allowance covers them.
    start, tabulate, first_call = graph_at(0)
    end, _, _ = graph_at(max(length - calls, 1))  # loaded for every length, 1 included
    times: dict[str, list[float]] = {"start": [], "end": []}
    for call in range(calls):
        pair = (("start", start), ("end", end))
        for where, graph in pair if call % 2 else pair[::-1]:  # neither always goes first
            began = time.perf_counter()
            graph(x).numpy()
            times[where].append(time.perf_counter() - began)
        if heartbeat:
            heartbeat()
    # The fastest call is the one least disturbed by the rest of the machine.
    fastest = {f"fastest_{k}_us": min(v) * 1e6 for k, v in times.items()}
    medians = {f"median_{k}_us": statistics.median(v) * 1e6 for k, v in times.items()}
    return {"tabulate": tabulate, "first_call": first_call, **fastest, **medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 1000, 100_000, 300_000])
    parser.add_argument("--calls", type=int, default=CALLS, help="timed graph calls a run")
    args = parser.parse_args()
    # The child imports the job; this file runs as __main__, so hand it the module by name.
    this = importlib.import_module(__spec__.name if __spec__ else Path(__file__).stem)
    print(
        "| table entries | tabulate (s) | first call (s) "
        "| fastest step, start / end (us) | median step, start / end (us) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for length in args.lengths:
        job = functools.partial(this.measure, length, args.calls)
        result, notes = run_in_child(job, f"table {length}", retries=5)
        for note in notes:
            print(f"<!-- {note} -->")
        print(
            f"| {length} | {result['tabulate']:.2f} | {result['first_call']:.2f} "
            f"| {result['fastest_start_us']:.0f} / {result['fastest_end_us']:.0f} "
            f"| {result['median_start_us']:.0f} / {result['median_end_us']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
