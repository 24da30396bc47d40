"""`make mutation`: a full mutmut run of the schedule engine and the NumPy reference.

mutmut writes its mutants into `mutants/` next to the configuration it reads, and
names a mutant after the file's path (`dualtrain_numpy/model.py` ->
`dualtrain_numpy.model`); its trampoline only switches a mutant on when that name is
the module the tests imported. `backends/numpy` is imported as `dualtrain_numpy`
(pyproject's `package-dir`), so the run happens in a staged copy of the tree,
`build/mutation/`, where each mapped package sits under its import name. The working
tree itself is never touched, so the others working in it are not disturbed.

Usage:
    python tools/mutation/run.py [--area schedules|numpy|all] [--max-children N]
    python tools/mutation/run.py --area numpy --retest-survivors  # after adding tests
    python tools/mutation/run.py --area numpy --report-only   # the last run's score again

Then `report.py` prints the score per area and every survivor as file:line and the
mutation, minus the equivalent mutants listed in `tools/mutation/equivalent.toml`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STAGES = ROOT / "build" / "mutation"  # one stage per area: build/mutation/<area>/
sys.path.insert(0, str(HERE))

import report  # noqa: E402  (tools/mutation is not a package)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# mutmut runs each mutant's tests in a child forked from the process that ran them all
# once (its stats run). A parent that ran a torch op large enough for the OpenMP pool
# leaves a child that hangs at its next such op, until mutmut's timeout: measured
# here, a 300x300 matmul in a forked child hung with the pool, ran at once with
# OMP_NUM_THREADS=1. A hang counted as "timeout" would count as killed, so every pool is
# one thread (the workers are one per core anyway).
ONE_THREAD_ENV = (("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"))
ONE_THREAD = [f"{k}={v}" for k, v in ONE_THREAD_ENV]

# Copied into the stage as they are: what the selected tests read besides the code.
ALSO = ("tests", "examples", "tools/mutation", "pyproject.toml")


def package_dirs() -> dict[str, str]:
    """pyproject's `package-dir`: import name -> folder (`dualtrain_numpy` -> `backends/numpy`)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["tool"]["setuptools"].get("package-dir", {}))


def stage_tree(stage: Path, area: str, resume: bool) -> None:
    """Copy the code under its import names, and the tests, into the area's stage."""
    if stage.exists() and not resume:
        shutil.rmtree(stage)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    mapped = {k: v for k, v in package_dirs().items() if k in report.mutated_packages()}
    for import_name, folder in {"dualtrain": "dualtrain", **mapped}.items():
        _sync(ROOT / folder, stage / import_name, ignore)
    for name in ALSO:
        if name == "pyproject.toml" and resume and (stage / name).exists():
            # Keep the configuration the results were made with: mutmut drops them all
            # when its test selection changes (as when another area's tests are added).
            continue
        _sync(ROOT / name, stage / name, ignore)
    narrow_to_area(stage / "pyproject.toml", area)


def narrow_to_area(pyproject: Path, area: str) -> None:
    """The staged [tool.mutmut] mutates only the area's files (pyproject lists both areas)."""
    text = pyproject.read_text()
    patterns = [p + "*" if p.endswith("/") else p for p in report.area_paths(area)]
    line = "only_mutate = [" + ", ".join(f'"{p}"' for p in patterns) + "]"
    text, count = re.subn(r"(?m)^only_mutate = \[.*\]$", line, text)
    if count != 1:
        raise SystemExit("pyproject.toml: [tool.mutmut] needs one `only_mutate = [...]` line")
    pyproject.write_text(text)


def _sync(source: Path, target: Path, ignore) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def run_mutmut(stage: Path, names: list[str], max_children: int) -> int:
    """`mutmut run` in the stage for the named mutants (globs; none: those without a
    result yet); its exit status."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names]
    # mutmut puts mutants/ first on sys.path, so the staged copies win over the editable
    # install of the working tree (whose finder comes after the path entries).
    where = stage.relative_to(ROOT)
    shown = command[1:6] + ([f"... {len(names)} mutants"] if len(names) > 8 else names)
    print(f"$ (cd {where} && {' '.join(ONE_THREAD)} python", " ".join(shown) + ")", flush=True)
    return subprocess.call(command, cwd=stage, env={**os.environ, **dict(ONE_THREAD_ENV)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", choices=("schedules", "numpy", "all"), default="all")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--resume", action="store_true", help="keep the last run's results")
    parser.add_argument(
        "--retest-survivors",
        action="store_true",
        help="keep the last run's results and test its survivors again with today's tests",
    )
    parser.add_argument("--report-only", action="store_true", help="only print the last run")
    args = parser.parse_args(argv)
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is missing: pip install -e '.[mutation]' (make mutation does)")
        return 2
    started = time.monotonic()
    stage = STAGES / args.area
    if not args.report_only:
        keep = args.resume or args.retest_survivors
        stage_tree(stage, args.area, keep)
        if args.retest_survivors:
            names = [
                m.name
                for m in report.load_mutants(stage)
                if m.status not in report.DETECTED and m.status != "not checked"
            ]
        elif args.resume:
            names = []  # mutmut tests what has no result yet (the stage holds one area)
        else:  # named mutants are always rerun, whatever result they have
            names = [f"{module}.*" for module in report.area_modules(args.area)]
        status = run_mutmut(stage, names, args.max_children)
        if status != 0:
            print(f"mutmut run exited with {status}")
            return status
    wall = time.monotonic() - started
    return report.main(stage, args.area, wall if not args.report_only else None)


if __name__ == "__main__":
    sys.exit(main())
