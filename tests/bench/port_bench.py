"""Benchmark of `dualtrain port` on the example CNN: every engine, 200 steps.

    python tests/bench/port_bench.py       (also run by tests/bench/run_all.py)

Prints, per engine, the seconds of its 200 steps, the first call among them
(torch.compile's compile, nn.Graph's build), and the port's own overhead
(preflight, describing the module on torch, building the OneFlow port) as a
share of the whole check. Asserts nothing; the goal is the four-engine check
under 60 s on a 2-core CPU with a warm compile cache (the cache lives in the
system temp folder, `torchinductor_<user>`: the second run is the warm one).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from figures import FIGURES

from dualtrain.loop import RunConfig, ScheduleConfig
from dualtrain.port import DEFAULT_ENGINES, port_check, prepare
from dualtrain.problems import get_problem
from dualtrain.usermodel import ModuleSource, UserModule

CNN = Path(__file__).resolve().parents[2] / "examples" / "port" / "cnn.py"


def bench_port_cnn() -> None:
    data = get_problem("images").data
    train, val = data.split(0.2, 0)  # 960 rows: 40 batches of 24, 5 epochs = 200 steps
    config = RunConfig(
        optimizer="sgd",
        lr=0.05,
        options={"momentum": 0.9},
        schedule=ScheduleConfig("CosineAnnealingLR", "torch", {"T_max": 200}, "step"),
        epochs=5,
        batch_size=24,
        dtype="float32",
    )
    model = UserModule(ModuleSource.parse(f"{CNN}:SmallCNN"), "cross_entropy", (1, 12, 12))
    start = time.perf_counter()
    planned = [tuple(e.split("/")) for e in DEFAULT_ENGINES]
    prepare(model, config, train, val, planned)
    overhead = time.perf_counter() - start
    start = time.perf_counter()
    check = port_check(model, config, train, val, DEFAULT_ENGINES)
    total = time.perf_counter() - start
    FIGURES.seconds("port_check_cnn_four_engines", [total], verdict=check.passed)
    print(f"port check, example CNN, 200 steps a engine: {total:.1f} s, verdict "
          f"{'pass' if check.passed else 'FAIL'}")  # fmt: skip
    for result in check.results:
        if result.run is None:
            print(f"  {result.engine}: skipped ({result.skipped})")
            continue
        times = [s["time"] for s in result.run.trajectory.steps]
        # torch/graph's first step runs eagerly and the second compiles: the first
        # call's cost is the slower of the two; the steady state is the median.
        first = max(times[:2])
        FIGURES.seconds(
            f"port_cnn_{result.engine.replace('/', '_')}_step", times[2:], first_call=first
        )
        print(
            f"  {result.engine}: {sum(times):.2f} s for {len(times)} steps, first call "
            f"{first:.2f} s, then {1e3 * statistics.median(times[2:]):.2f} ms a step (median)"
        )
    FIGURES.seconds("port_check_overhead", [overhead], share=overhead / total)
    print(
        f"  port overhead (preflight, describe on torch, build the OneFlow port): "
        f"{overhead:.2f} s, {100 * overhead / total:.1f}% of the check (which includes it)"
    )


if __name__ == "__main__":
    bench_port_cnn()
    FIGURES.save()
