"""Run OneFlow's own graph-scheduler test file with dualtrain's schedulers in the graph.

Not a test module (pytest does not collect it) and it carries no upstream code:
it takes the path of OneFlow v0.9.0's
`python/oneflow/test/graph/test_graph_lr_scheduler.py`, fetched yourself, and
runs each of its tests in its own child process (nn.Graph crashes now and then
on CPU; a crash or a hang is retried, a failure is not), in one of three modes:

- `native`: OneFlow's own scheduler classes, as the file is;
- `swap`: every `oneflow.optim.lr_scheduler` class the file uses replaced by
  dualtrain's with `flavor="oneflow"`, handed to the graph as they are;
- `wrap`: `swap`, and the scheduler given to `nn.Graph.add_optimizer` wrapped
  by `dualtrain_oneflow.graph_scheduler(scheduler, 100)` (the file runs at most
  71 graph steps).

    python tests/frameworks/oneflow_graph_suite.py wrap /tmp/upstream/test_graph_lr_scheduler.py

The eager half of each test steps the dualtrain scheduler itself, which the
wrapper never stepped. Prints one line a test and the count; exit status 0
when every test passed.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SWAPPED = [
    "ConstantLR", "LinearLR", "StepLR", "MultiStepLR", "PolynomialLR", "ExponentialLR",
    "CosineDecayLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "WarmupLR",
]  # fmt: skip
TABLE_STEPS = 100
ATTEMPTS = 4  # per test, crashes and hangs only
TIMEOUT = 240  # seconds a test


def child(mode: str, path: str, test: str) -> None:
    """Run one test of the file in this process, with the mode's classes; print its verdict."""
    import oneflow as flow

    if mode in ("swap", "wrap"):
        from dualtrain import lr_scheduler

        for name in SWAPPED:
            dualtrain_class = getattr(lr_scheduler, name)
            setattr(
                flow.optim.lr_scheduler, name, functools.partial(dualtrain_class, flavor="oneflow")
            )
    if mode == "wrap":
        from dualtrain_oneflow import graph_scheduler

        add_optimizer = flow.nn.Graph.add_optimizer

        def wrapped(self, optim, *, lr_sch=None, is_sparse=False):
            lr_sch = lr_sch if lr_sch is None else graph_scheduler(lr_sch, TABLE_STEPS)
            return add_optimizer(self, optim, lr_sch=lr_sch, is_sparse=is_sparse)

        flow.nn.Graph.add_optimizer = wrapped
    spec = importlib.util.spec_from_file_location("upstream_graph_lr_scheduler", path)
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)
    suite = unittest.defaultTestLoader.loadTestsFromName(test, upstream)
    result = unittest.TextTestRunner(verbosity=0, stream=sys.stderr).run(suite)
    for _, text in result.failures + result.errors:
        print("REASON:", text.strip().splitlines()[-1][:300], flush=True)
    for _, why in result.skipped:
        print("REASON: skipped:", why, flush=True)
    ok = result.wasSuccessful() and not result.skipped
    print("PASS" if ok else "FAIL", flush=True)
    os._exit(0 if ok else 1)  # skip OneFlow's teardown, which can hang


def run_one(mode: str, path: str, test: str) -> tuple[str, list[str], int]:
    """(PASS / FAIL / CRASH, reasons, crashed attempts) for one test."""
    env = {**os.environ}
    env.pop("ONEFLOW_TEST_CPU_ONLY", None)  # the file skips every test under it
    command = [sys.executable, __file__, "--child", mode, path, test]
    crashes, lines = 0, []
    for _ in range(ATTEMPTS):
        # The test reads the graph's lr log from log/ under the working directory.
        with tempfile.TemporaryDirectory(prefix="oneflow-graph-suite-") as cwd:
            try:
                done = subprocess.run(
                    command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
                )
            except subprocess.TimeoutExpired:
                crashes += 1
                continue
        lines = done.stdout.strip().splitlines()
        if lines and lines[-1] in ("PASS", "FAIL"):
            return lines[-1], [ln for ln in lines if ln.startswith("REASON")], crashes
        crashes += 1
    return "CRASH", lines[-3:], crashes


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("native", "swap", "wrap"))
    parser.add_argument("path", help="OneFlow v0.9.0's test_graph_lr_scheduler.py")
    parser.add_argument("tests", nargs="*", help="only these test names")
    args = parser.parse_args()
    text = Path(args.path).read_text()
    names = re.findall(r"^    def (test_\w+)\(self\)", text, flags=re.MULTILINE)
    classes = re.findall(r"^class (\w+)\(flow\.unittest\.TestCase\)", text, flags=re.MULTILINE)
    names = [n for n in names if not args.tests or n in args.tests]
    passed = crashed = 0
    for name in names:
        verdict, reasons, crashes = run_one(args.mode, args.path, f"{classes[0]}.{name}")
        passed += verdict == "PASS"
        crashed += crashes
        print(f"{verdict:5} {name} {' | '.join(reasons)[:400]}", flush=True)
    print(f"{args.mode}: {passed}/{len(names)} passed ({crashed} crashed attempts retried)")
    return 0 if passed == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
