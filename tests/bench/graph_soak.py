"""Soak OneFlow's nn.Graph engine: N runs of S steps, count crashes, hangs, time lost.

    python tests/bench/graph_soak.py --runs 50 --epochs 63      (50 runs of 1008 steps)
    python tests/bench/graph_soak.py --runs 10 --epochs 250     (10 runs of 4000 steps)

Each run is one `dualtrain train --backend oneflow --mode graph --dtype float32
--problem regression --epochs E --batch-size 50` (16 steps an epoch), in its own
process, one after another. The isolation layer prints one `note:` line per
crashed attempt; this script counts them. Rates are per 1000 of the runs'
steps (steps redone after a crash are not counted twice). Time lost is each
run's wall time minus the median wall time of the runs that did not crash.
`--pythonpath` measures another copy of the code (an old commit unpacked
somewhere, with `dualtrain` and `dualtrain_<backend>` folders on that path).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

STEPS_PER_EPOCH = 16  # the regression problem: 800 rows in batches of 50
NOTE = re.compile(r"attempt \d+ crashed \((?P<why>[^)]*)\)")


def one_run(epochs: int, pythonpath: str | None, extra: list[str]) -> tuple[float, int, list[str]]:
    """(wall seconds, exit code, why each crashed attempt crashed) of one run."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="dualtrain-soak-") as out:
        command = [
            sys.executable, "-m", "dualtrain", "train", "--backend", "oneflow",
            "--mode", "graph", "--dtype", "float32", "--problem", "regression",
            "--epochs", str(epochs), "--batch-size", "50", "--out", out, *extra,
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True)
        wall = time.perf_counter() - start
    text = done.stdout + done.stderr
    if done.returncode:
        print(text[-2000:], file=sys.stderr)
    return wall, done.returncode, [m["why"] for m in NOTE.finditer(text)]


def kind(why: str) -> str:
    if "hung" in why:
        return "hang"
    found = re.search(r"SIG[A-Z]+", why)
    return found.group(0) if found else why


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=63, help="16 steps an epoch")
    parser.add_argument("--pythonpath", help="measure the code found on this path")
    parser.add_argument("extra", nargs="*", help="more `dualtrain train` flags, after --")
    args = parser.parse_args()
    steps = args.epochs * STEPS_PER_EPOCH
    walls, lost, crashes, per_run = [], 0, Counter(), []
    for i in range(args.runs):
        wall, code, whys = one_run(args.epochs, args.pythonpath, args.extra)
        walls.append(wall)
        lost += code != 0
        crashes.update(kind(w) for w in whys)
        per_run.append(len(whys))
        print(f"run {i + 1}: {wall:.1f} s, exit {code}, crashes: {whys}", flush=True)
    clean = [w for w, n in zip(walls, per_run, strict=True) if n == 0] or [min(walls)]
    typical = statistics.median(clean)
    wasted = sum(w - typical for w, n in zip(walls, per_run, strict=True) if n)
    total = sum(crashes.values())
    print(
        f"{args.runs} runs of {steps} steps: {lost} lost, {total} crashed attempts "
        f"({dict(crashes)}), {1000 * total / (args.runs * steps):.3f} crashes per 1000 steps, "
        f"{crashes['hang']} hangs; {sum(walls):.0f} s in all, a clean run {typical:.1f} s "
        f"(median of {len(clean)}), {wasted:.0f} s lost to crashes and hangs"
    )


if __name__ == "__main__":
    main()
