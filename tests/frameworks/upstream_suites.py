"""Run a framework's own scheduler test file against dualtrain's drop-in classes.

Not a test module (pytest does not collect it) and it carries no upstream code:
it takes the path of a test file you fetched yourself, e.g. PyTorch's
`test/optim/test_lrscheduler.py` or OneFlow's
`python/oneflow/test/modules/test_lr_scheduler.py`, and runs it twice in child
processes: once as it is, once with the scheduler classes of
`torch.optim.lr_scheduler` (or `oneflow.optim.lr_scheduler`) replaced by
dualtrain's (`flavor="oneflow"` for OneFlow). It prints both counts and every
test that passes with the framework's classes but not with dualtrain's.

    python tests/frameworks/upstream_suites.py torch /tmp/upstream/torch/test_lrscheduler.py
    python tests/frameworks/upstream_suites.py oneflow /tmp/upstream/oneflow/test_lr_scheduler.py

PyTorch's file imports `torch.testing._internal`, which needs the `expecttest`
package on the path. Tests that build torch's SWALR (which dualtrain does not
replace) are counted apart: SWALR stays torch's class in both runs.
Exit status: 0 when every test that passes natively passes with dualtrain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _flavoured(cls: type) -> type:
    """`cls` with OneFlow's behaviour by default, as a OneFlow user would get it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("flavor", "oneflow")
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


def swap_in_dualtrain(framework: str) -> list[str]:
    """Replace the framework's scheduler classes by dualtrain's; the names replaced."""
    import dualtrain.lr_scheduler as ours

    if framework == "torch":
        import torch.optim.lr_scheduler as theirs
        import torch.optim.swa_utils  # noqa: F401  (SWALR keeps torch's own base class)

        names = [*theirs.__all__, "EPOCH_DEPRECATION_WARNING"]
        replace = {n: getattr(ours, n) for n in names if hasattr(ours, n)}
    else:
        import oneflow.optim.lr_scheduler as theirs

        names = [n for n in dir(theirs) if not n.startswith("_")]
        replace = {n: _flavoured(getattr(ours, n)) for n in names if hasattr(ours, n)}
    for name, value in replace.items():
        setattr(theirs, name, value)
    return sorted(replace)


class Recorder:
    """A pytest plugin: each test's outcome, and which tests built torch's SWALR."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.uses_swalr: set[str] = set()
        self.current: str | None = None

    def watch_swalr(self) -> None:
        try:
            from torch.optim.swa_utils import SWALR
        except ImportError:
            return
        original = SWALR.__init__
        recorder = self

        def __init__(self, *args, **kwargs):
            if recorder.current:
                recorder.uses_swalr.add(recorder.current)
            original(self, *args, **kwargs)

        SWALR.__init__ = __init__

    def pytest_runtest_setup(self, item) -> None:
        self.current = item.nodeid

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcomes.get(report.nodeid)
            if previous in (None, "passed"):
                self.outcomes[report.nodeid] = report.outcome


def run_child(framework: str, path: str, impl: str, out: str, extra: list[str]) -> None:
    """Run the test file in this process (`impl` = native or dualtrain); write outcomes."""
    import pytest

    swapped = swap_in_dualtrain(framework) if impl == "dualtrain" else []
    recorder = Recorder()
    recorder.watch_swalr()
    args = [path, "-q", "-p", "no:cacheprovider", *extra]
    pytest.main(args, plugins=[recorder])
    result = {
        "swapped": swapped,
        "outcomes": recorder.outcomes,
        "swalr": sorted(recorder.uses_swalr),
    }
    Path(out).write_text(json.dumps(result, indent=1), encoding="utf-8")


def _run(framework: str, path: str, impl: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "outcomes.json")
        command = [sys.executable, __file__, framework, path, "--impl", impl, "--out", out]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        subprocess.run(
            [*command, "--", *extra],
            env=env,
            cwd=os.path.dirname(path),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not os.path.exists(out):
            raise SystemExit(f"the {impl} run of {path} wrote no outcomes (did the file import?)")
        return json.loads(Path(out).read_text(encoding="utf-8"))


def compare(framework: str, path: str, extra: list[str]) -> int:
    native = _run(framework, path, "native", extra)
    ours = _run(framework, path, "dualtrain", extra)
    swalr = set(native["swalr"]) | set(ours["swalr"])
    relevant = [t for t in native["outcomes"] if t not in swalr]
    passing = [t for t in relevant if native["outcomes"][t] == "passed"]
    broken = [t for t in passing if ours["outcomes"].get(t) != "passed"]
    print(f"{framework}: {os.path.basename(path)}; swapped {', '.join(ours['swapped'])}")
    total = len(native["outcomes"])
    print(f"tests: {total}, of which {len(swalr)} build torch's SWALR (not replaced)")
    print(f"native classes pass {len(passing)} of the other {len(relevant)}")
    print(f"dualtrain's classes pass {len(passing) - len(broken)} of those {len(passing)}")
    for test in broken:
        print(f"  FAILS with dualtrain: {test} ({ours['outcomes'].get(test, 'not run')})")
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=("torch", "oneflow"))
    parser.add_argument("path", help="the framework's own scheduler test file")
    parser.add_argument("--impl", choices=("native", "dualtrain"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = str(Path(args.path).resolve())
    if args.impl:
        run_child(args.framework, path, args.impl, args.out, extra)
        return 0
    return compare(args.framework, path, extra)


if __name__ == "__main__":
    sys.exit(main())
