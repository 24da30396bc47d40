"""Where static graphs win: eager against `torch.compile` and against `nn.Graph`.

    python tests/bench/crossover.py [--grid small|full] [--repeats N] [--cpus N]
    (the small grid also runs from tests/bench/run_all.py)

For an MLP, the CNN preset (digits' shape, its channels scaled) and the
transformer-like preset (tokens', its width scaled), at growing width and batch
size, each engine trains the same run through dualtrain (`train_engine`, float32,
SGD with momentum, one loss read a step so a step's time includes its wait):
torch eager, torch.compile, OneFlow eager and OneFlow nn.Graph (in its watched
child process, as `fit` runs it). The figure is the median step time after the
first `WARM` steps (torch.compile compiles on the second call, nn.Graph on the
first); a ratio below 1 means the graph is faster. Every engine runs on the same
`--cpus` CPUs (default 1: OneFlow's graph child is pinned to one CPU anyway, so
eager gets no more). Prints a table and the crossover per workload; records
each figure in runs/bench/bench.json (tests/bench/figures.py). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import dataclass

import numpy as np
from figures import FIGURES

from dualtrain.data import Dataset
from dualtrain.loop import RunConfig, train_engine
from dualtrain.model import ModelSpec, mlp
from dualtrain.problems import TOKEN_CLASSES, TOKEN_VOCAB, digits_cnn, token_transformer

#: Steps before the timed ones (compiles, first allocations).
WARM = 5
#: Timed steps per run.
TIMED = 25
ENGINES = (("torch", "eager"), ("torch", "graph"), ("oneflow", "eager"), ("oneflow", "graph"))


@dataclass(frozen=True)
class Case:
    """One workload at one size: a model and its data, in batches of `batch`."""

    workload: str
    width: int
    batch: int

    @property
    def key(self) -> str:
        return f"{self.workload}_w{self.width}_b{self.batch}"

    def model(self) -> ModelSpec:
        if self.workload == "mlp":
            return mlp([32, self.width, self.width, 1], activation="relu", loss="mse")
        if self.workload == "cnn":
            return digits_cnn(channels=self.width)
        return token_transformer(dim=self.width, hidden=2 * self.width)

    def data(self, steps: int) -> Dataset:
        rng = np.random.default_rng(0)
        n = steps * self.batch
        if self.workload == "mlp":
            return Dataset(rng.normal(size=(n, 32)), rng.normal(size=(n, 1)))
        if self.workload == "cnn":
            return Dataset(rng.random(size=(n, 1, 8, 8)), rng.integers(0, 10, size=n))
        x = rng.integers(1, TOKEN_VOCAB, size=(n, 12))
        return Dataset(x, rng.integers(0, TOKEN_CLASSES, size=(n, 12)))


GRIDS = {
    "small": [
        Case("mlp", 64, 32),
        Case("mlp", 1024, 256),
        Case("cnn", 8, 32),
        Case("cnn", 32, 256),
        Case("transformer", 16, 32),
        Case("transformer", 128, 256),
    ],
    "full": [
        Case(workload, width, batch)
        for workload, widths in (
            ("mlp", (64, 256, 1024)),
            ("cnn", (8, 16, 32)),
            ("transformer", (16, 64, 128)),
        )
        for width in widths
        for batch in (32, 256)
    ],
}


def step_time(case: Case, backend: str, mode: str) -> tuple[float, list[str]]:
    """(median seconds of a timed step, retried crashes' notes) of one run."""
    steps = WARM + TIMED
    config = RunConfig(
        backend=backend,
        mode=mode,
        lr=0.01,
        options={"momentum": 0.9},
        epochs=1,
        batch_size=case.batch,
        dtype="float32",
        shuffle=True,
        drop_last=True,
        loss_read_every=1,
    )
    run = train_engine(config, case.model(), case.data(steps))
    times = [s["time"] for s in run.trajectory.steps[WARM:]]
    return statistics.median(times), run.notes


def pin(cpus: int) -> None:
    """This process (and the children it starts) on its first `cpus` CPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(allowed[:cpus]))
    import torch

    torch.set_num_threads(cpus)


def bench_crossover(grid: str = "small", repeats: int = 1) -> list[dict]:
    """Every case of `grid` on the four engines; returns the table's rows."""
    rows = []
    for case in GRIDS[grid]:
        times: dict[tuple[str, str], list[float]] = {engine: [] for engine in ENGINES}
        notes: list[str] = []
        for _ in range(repeats):  # interleaved, so drift hits every engine alike
            for engine in ENGINES:
                seconds, retried = step_time(case, *engine)
                times[engine].append(seconds)
                notes += retried
        torch_ratio = FIGURES.ratio(
            f"crossover_{case.key}_torch_compiled_vs_eager",
            times["torch", "graph"],
            times["torch", "eager"],
        )
        flow_ratio = FIGURES.ratio(
            f"crossover_{case.key}_oneflow_graph_vs_eager",
            times["oneflow", "graph"],
            times["oneflow", "eager"],
            retries=notes,
        )
        row = {"case": case, **{e: statistics.median(v) for e, v in times.items()}}
        row["torch_ratio"], row["oneflow_ratio"] = torch_ratio["ratio"], flow_ratio["ratio"]
        rows.append(row)
        print(line(row) + "".join(f"; {n}" for n in notes), flush=True)
    for workload in dict.fromkeys(c.workload for c in GRIDS[grid]):
        print(crossover(workload, [r for r in rows if r["case"].workload == workload]))
    return rows


def line(row: dict) -> str:
    """One row of the table, in microseconds a step."""
    case, us = row["case"], {e: row[e] * 1e6 for e in ENGINES}
    return (
        f"| {case.workload} | {case.width} | {case.batch} "
        f"| {us['torch', 'eager']:.0f} | {us['torch', 'graph']:.0f} | {ratio(row['torch_ratio'])} "
        f"| {us['oneflow', 'eager']:.0f} | {us['oneflow', 'graph']:.0f} "
        f"| {ratio(row['oneflow_ratio'])} |"
    )


def ratio(summary: dict) -> str:
    """A ratio's median, with its min-max over the repeats when there are several."""
    text = f"{summary['median']:.2f}"
    if summary["repeats"] > 1:
        text += f" ({summary['min']:.2f}-{summary['max']:.2f})"
    return text


def crossover(workload: str, rows: list[dict]) -> str:
    """Where each graph beats its eager: the sizes (in the grid's order) at which
    every repeat was faster (the ratio's max under 1), and those where the repeats
    fall on both sides of 1 (a tie)."""
    said = []
    for name, key in (("torch.compile", "torch_ratio"), ("nn.Graph", "oneflow_ratio")):
        wins = [size(r) for r in rows if r[key]["max"] < 1]
        ties = [size(r) for r in rows if r[key]["min"] < 1 <= r[key]["max"]]
        text = f"{name} faster in every repeat at {', '.join(wins) or 'no size measured'}"
        said.append(text + (f" (ties at {', '.join(ties)})" if ties else ""))
    return f"{workload}: " + "; ".join(said)


def size(row: dict) -> str:
    return f"{row['case'].width}/{row['case'].batch}"


HEADER = (
    "| workload | width | batch | torch eager us | torch.compile us | compile/eager "
    "| OneFlow eager us | nn.Graph us | graph/eager |\n| --- | --- | --- | --- | --- | --- "
    "| --- | --- | --- |"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=1)
    args = parser.parse_args()
    pin(args.cpus)
    print(f"on {args.cpus} CPU(s), float32, median of {TIMED} steps after {WARM}")
    print(HEADER)
    bench_crossover(args.grid, args.repeats)
    FIGURES.save()


if __name__ == "__main__":
    main()
