"""Instructions per step of dualtrain's loop and the hand-written one, counted
under valgrind's callgrind: a figure that load on the machine does not move.

    python tests/bench/instructions.py [--engines numpy,torch] [--epochs 2,12] [--repeats N]
    (also run by tests/bench/run_all.py for numpy_loop and torch_loop, where valgrind is)

Each side of `tests/bench/loops.py` (the timed benches' own functions, on
their workload) runs for a short and a long run, each in its own child forked
from one process under `valgrind --tool=callgrind` (imports done once, before
the forks); the difference of the two runs' instruction counts over the
difference of their steps is one step's instructions, with the start-up
(imports, building the model, the first call's warm-up) cancelled. The sides
run interleaved (ours, theirs, ours, theirs), each single-threaded: BLAS and
OpenMP pools at one thread and `torch.set_num_threads(1)` on both torch sides,
so no pool thread spins; hash seeds are fixed.

A proxy, not a time: an instruction of the interpreter's dispatch and one of a
matrix product take different times, and valgrind does not see caches or
branches. What it shows is what each side executes, step for step; a ratio
near 1 with the same kernels on both sides says the loop adds little.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The loops compared per engine: (dualtrain's, the hand-written one) in loops.py.
SIDES = {
    "numpy": ("dualtrain_loop", "hand_written_loop"),
    "torch": ("dualtrain_loop", "torch_hand_written_loop"),
    # loop_overhead.py's null step, chunks of 32, against its hand-written loop.
    "null": ("through_fit", "hand_written"),
}
#: loops.loop_config: 1000 rows in batches of 50; loop_overhead.py: batches of 10.
STEPS_PER_EPOCH = {"numpy": 20, "torch": 20, "null": 100}
#: One thread everywhere, and a fixed hash seed: counts that repeat.
SINGLE = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}


def available() -> bool:
    """Whether valgrind is installed (the count is optional: the benches run without)."""
    return shutil.which("valgrind") is not None


def counts(engine: str, epochs: tuple[int, int], repeats: int) -> list[dict[str, int]]:
    """Per repeat, the instructions of each (side, run length), keyed "side:epochs".

    One process under callgrind imports everything once (torch's import alone
    takes minutes there), then forks a child per run; callgrind writes each
    child's counts to its own file. What the parent did before a fork is in every
    child's count alike, so it cancels in the difference of two run lengths.
    """
    with tempfile.TemporaryDirectory(prefix="dualtrain-callgrind-") as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={folder}/callgrind.%p",
            sys.executable,
            str(Path(__file__).resolve()),
            "--forks",
            engine,
            "--epochs",
            f"{epochs[0]},{epochs[1]}",
            "--repeats",
            str(repeats),
        ]
        done = subprocess.run(command, env={**os.environ, **SINGLE}, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        children = json.loads(done.stdout.strip().splitlines()[-1])
        return [{run: _total(Path(folder) / f"callgrind.{pid}") for run, pid in r.items()}
                for r in children]  # fmt: skip


def _total(path: Path) -> int:
    found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no instruction total in {path}")
    return int(found.group(1))


def per_step(engine: str, epochs: tuple[int, int], repeats: int = 1) -> dict[str, list[float]]:
    """Instructions a step of each side, `repeats` times, sides interleaved."""
    short, long = epochs
    steps = (long - short) * STEPS_PER_EPOCH[engine]
    found: dict[str, list[float]] = {side: [] for side in ("ours", "theirs")}
    for run in counts(engine, epochs, repeats):
        for side in found:
            found[side].append((run[f"{side}:{long}"] - run[f"{side}:{short}"]) / steps)
    return found


def run_forks(engine: str, epochs: tuple[int, int], repeats: int) -> None:
    """The process under valgrind: a forked child per (repeat, length, side),
    ours and theirs interleaved; prints the children's pids as JSON."""
    if engine == "torch":
        import torch

        torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    import loop_overhead  # noqa: F401  (imported before the forks, as loops)
    import loops  # noqa: F401

    from dualtrain.problems import get_problem

    problem = get_problem("regression")
    found = []
    for _ in range(repeats):
        pids = {}
        for length in epochs:
            for side, function in zip(("ours", "theirs"), SIDES[engine], strict=True):
                pid = os.fork()
                if pid == 0:  # the child: one run, then out without Python's teardown
                    _run(engine, function, problem, length)
                    os._exit(0)
                _, status = os.waitpid(pid, 0)
                if status != 0:
                    raise RuntimeError(f"{side} run of {length} epochs failed ({status})")
                pids[f"{side}:{length}"] = pid
        found.append(pids)
    print(json.dumps(found))


def record(engine: str, epochs: tuple[int, int] = (2, 12), repeats: int = 1) -> str:
    """Count `engine`'s two sides, keep the figure in bench.json; the line to print."""
    from figures import FIGURES

    counts = per_step(engine, epochs, repeats)
    ours, theirs = counts["ours"], counts["theirs"]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    FIGURES.figures[f"{engine}_eager_loop_vs_hand_written_instructions"] = {
        "instructions_per_step": statistics.median(ours),
        "baseline_instructions_per_step": statistics.median(theirs),
        "ratio": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "repeats": len(ratios),
        },
        "epochs": list(epochs),
        "note": "valgrind callgrind, whole process, difference of two run lengths; one thread",
    }
    return (
        f"{engine} eager, instructions a step (callgrind, one thread, epochs {epochs[0]} "
        f"and {epochs[1]}): dualtrain {statistics.median(ours):,.0f}, hand-written "
        f"{statistics.median(theirs):,.0f}, ratio {statistics.median(ratios):.4f}"
        + (f" (min {min(ratios):.4f}, max {max(ratios):.4f})" if repeats > 1 else "")
    )


def _run(engine: str, function: str, problem, epochs: int) -> None:
    import loops

    if engine != "null":
        getattr(loops, function)(problem, loops.loop_config(engine, epochs))
        return
    import loop_overhead

    loop_overhead.EPOCHS = epochs
    if function == "through_fit":
        loop_overhead.through_fit(problem, 32)
    else:
        loop_overhead.hand_written(problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="numpy,torch")
    parser.add_argument("--epochs", default="2,12", help="the short and the long run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--forks", help=argparse.SUPPRESS)
    args = parser.parse_args()
    short, long = (int(v) for v in args.epochs.split(","))
    if args.forks:
        run_forks(args.forks, (short, long), args.repeats)
        return
    if not available():
        parser.error("valgrind is not installed (apt-get install valgrind)")
    from figures import FIGURES

    for engine in args.engines.split(","):
        if engine not in SIDES:
            parser.error(f"unknown engine {engine!r} (known: {', '.join(SIDES)})")
        print(record(engine, (short, long), args.repeats), flush=True)
    FIGURES.save()


if __name__ == "__main__":
    main()
