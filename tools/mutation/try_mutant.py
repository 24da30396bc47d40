"""Apply one mutant to a private copy of the code and run tests against it.

To check that a new test kills a survivor the report printed, without waiting for
a mutmut run: the line of `FILE:LINE` (a working-tree path, as the report prints
it) must read BEFORE (stripped); it is replaced by AFTER, in a copy of `dualtrain/`
and `backends/numpy/` (as `dualtrain_numpy/`) under a temporary folder, with a copy of
the tests run from there (pytest puts that folder first on `sys.path`), so the
working tree is never touched. Exits with
pytest's status: 0 means the mutant SURVIVED these tests, 1 that they killed it.

Usage:
    python tools/mutation/try_mutant.py dualtrain/schedules/base.py:94 \\
        'return self.chain_lr(prev, 0, base_lr, initial=False)' \\
        'return self.chain_lr(prev, 1, base_lr, initial=False)' \\
        -- tests/schedules/test_restart.py -q -x
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import report  # noqa: E402  (tools/mutation is not a package)


def staged(path: str) -> str:
    """A working-tree path under its import name (`backends/numpy/` -> `dualtrain_numpy/`)."""
    for import_path, folder in report.STAGED_AS.items():
        if path.startswith(folder):
            return import_path + path[len(folder) :]
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, tests = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("where", help="FILE:LINE as the report prints it")
    parser.add_argument("before", help="the line as it is (stripped)")
    parser.add_argument("after", help="the mutated line (stripped)")
    args = parser.parse_args(ours)
    path, _, number = args.where.rpartition(":")
    if not path or not number.isdigit():
        print(f"try_mutant: {args.where!r} is not FILE:LINE")
        return 2
    lines = (ROOT / path).read_text().splitlines(keepends=True)
    index = int(number) - 1
    if not 0 <= index < len(lines) or lines[index].strip() != args.before.strip():
        found = lines[index].strip() if 0 <= index < len(lines) else "(no such line)"
        print(f"try_mutant: {args.where} reads {found!r}, expected {args.before.strip()!r}")
        return 2
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines[index] = indent + args.after.strip() + "\n"
    with tempfile.TemporaryDirectory(prefix="dualtrain-mutant-") as folder:
        stage = Path(folder)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
        # The tests too, run from the copy: pytest puts the folder above `tests/`
        # first on sys.path, which would import the working tree's code.
        for name in ("dualtrain", "tests", "examples", "pyproject.toml"):
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, stage / name, ignore=ignore)
            else:
                shutil.copy2(source, stage / name)
        for import_path, source in report.STAGED_AS.items():
            shutil.copytree(ROOT / source, stage / import_path.rstrip("/"), ignore=ignore)
        (stage / staged(path)).write_text("".join(lines))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *tests]
        status = subprocess.call(command, cwd=stage, env=env)
    print(
        "try_mutant:",
        "killed" if status == 1 else "SURVIVED" if status == 0 else f"pytest exit {status}",
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
