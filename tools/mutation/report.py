"""The score of a mutmut run per area, and every survivor as file:line and the mutation.

Reads the results mutmut left in `build/mutation/<area>/mutants/` (`*.py.meta`: an exit
status per mutant) and mutmut's own diff of each surviving mutant's function, maps
the staged path back to the working tree's (`dualtrain_numpy/` -> `backends/numpy/`)
and finds the line in the source. Mutants listed in `equivalent.toml` (file, function,
the exact line before and after, and why no behaviour changes) are left out of the
score; a listed one that no longer survives is reported, as the list is then wrong.

A few mutants no test can catch under mutmut but the suite catches without it: a
warning's stack level, which mutmut's trampoline (one more frame between caller and
callee) shifts. They are listed under `[[outside]]` with the tests that catch them;
each such survivor is applied outside mutmut (`try_mutant.py`: a private copy of the
code, the listed tests run against it) and counts as killed only if those tests fail.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
EQUIVALENT_FILE = HERE / "equivalent.toml"
# Area -> the staged import paths it covers (mutmut names mutants after them).
AREAS = {
    "schedules": ("dualtrain/schedules/", "dualtrain/stateful/", "dualtrain/lr_scheduler.py"),
    "numpy": ("dualtrain_numpy/",),
}
# Staged import name -> folder in the working tree (pyproject's package-dir).
STAGED_AS = {"dualtrain_numpy/": "backends/numpy/"}
DETECTED = {"killed", "timeout"}
FAIL_UNDER = 98.0  # percent of non-equivalent mutants killed, the acceptance line


def area_paths(area: str) -> list[str]:
    """The staged paths an area ("all": every area) mutates."""
    return [p for name, group in AREAS.items() if area in (name, "all") for p in group]


def area_modules(area: str) -> list[str]:
    """Dotted module prefixes of an area, as mutmut names its mutants."""
    return [p.removesuffix("/").removesuffix(".py").replace("/", ".") for p in area_paths(area)]


def mutated_packages() -> set[str]:
    """Staged packages that are mutated and live elsewhere in the tree (`dualtrain_numpy`)."""
    return {staged.rstrip("/") for staged in STAGED_AS}


@dataclass
class Mutant:
    name: str
    staged_path: str  # e.g. dualtrain_numpy/model.py
    status: str
    line: int = 0
    function: str = ""
    before: str = ""
    after: str = ""

    @property
    def path(self) -> str:
        """The file in the working tree."""
        for staged, folder in STAGED_AS.items():
            if self.staged_path.startswith(staged):
                return folder + self.staged_path[len(staged) :]
        return self.staged_path

    @property
    def area(self) -> str:
        return next(a for a, group in AREAS.items() if self.staged_path.startswith(group))


def load_mutants(stage: Path) -> list[Mutant]:
    """Every mutant with mutmut's verdict (mutmut's status names)."""
    from mutmut.stats import status_by_exit_code

    mutants = []
    root = stage / "mutants"
    for meta in sorted(root.rglob("*.py.meta")):
        staged_path = str(meta.relative_to(root))[: -len(".meta")]
        if not staged_path.startswith(tuple(p for g in AREAS.values() for p in g)):
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            mutants.append(Mutant(name, staged_path, status_by_exit_code[code]))
    return mutants


def locate(stage: Path, mutant: Mutant) -> None:
    """Fill in the function, the source line and the line before/after from mutmut's diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, cls = orig_function_and_class_names_from_key(mutant.name)
    mutant.function = f"{cls}.{function}" if cls else function
    cwd = os.getcwd()
    os.chdir(stage)  # mutmut reads mutants/<path> relative to its project root
    try:
        diff = get_diff_for_mutant(mutant.name, path=mutant.staged_path)
    finally:
        os.chdir(cwd)
    offset, removed, added = _first_change(diff)
    mutant.before, mutant.after = " ".join(removed), " ".join(added)
    source = (stage / mutant.staged_path).read_text()
    guess = _function_start(source, function, cls) + offset
    # mutmut's diff numbers the function's lines from a preamble of its own (a blank
    # line or two before the `def`), so the offset alone can be a line or two off:
    # take the line reading as the diff's first removed line nearest the guess.
    lines = [line.strip() for line in source.splitlines()]
    found = [n + 1 for n, text in enumerate(lines) if removed and text == removed[0]]
    mutant.line = min(found, key=lambda n: abs(n - guess)) if found else guess


def _first_change(diff: str) -> tuple[int, list[str], list[str]]:
    """(0-based line of the first change within the function, lines removed, lines added)."""
    removed, added, offset, index = [], [], None, 0
    for line in diff.splitlines():
        hunk = re.match(r"@@ -(\d+)", line)
        if hunk:
            index = int(hunk.group(1)) - 1
        elif line.startswith(("---", "+++")):
            continue
        elif line.startswith("-"):
            offset = index if offset is None else offset
            removed.append(line[1:].strip())
            index += 1
        elif line.startswith("+"):
            offset = index if offset is None else offset
            added.append(line[1:].strip())
        elif offset is not None:
            break  # only the first run of changes
        else:
            index += 1
    return offset or 0, removed, added


def _function_start(source: str, function: str, cls: str | None) -> int:
    """The first line (decorators included, as mutmut's diff shows them) of a function."""
    tree = ast.parse(source)
    scope = tree.body
    if cls:
        owner = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        scope = owner.body
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    node = next(n for n in scope if isinstance(n, kinds) and n.name == function)
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def load_equivalents() -> list[dict]:
    """The equivalent mutants: file, function, before, after, reason."""
    entries = tomllib.loads(EQUIVALENT_FILE.read_text()).get("equivalent", [])
    for entry in entries:
        missing = {"file", "function", "before", "after", "reason"} - entry.keys()
        if missing:
            raise SystemExit(f"{EQUIVALENT_FILE.name}: entry {entry} lacks {sorted(missing)}")
    return entries


def load_outside() -> list[dict]:
    """The mutants caught outside mutmut only: file, function, before, after, tests, reason."""
    entries = tomllib.loads(EQUIVALENT_FILE.read_text()).get("outside", [])
    for entry in entries:
        missing = {"file", "function", "before", "after", "tests", "reason"} - entry.keys()
        if missing:
            raise SystemExit(f"{EQUIVALENT_FILE.name}: entry {entry} lacks {sorted(missing)}")
    return entries


def killed_outside(mutants: list[Mutant], entries: list[dict]) -> set[int]:
    """ids of the survivors listed under [[outside]] whose tests kill them when the
    mutation is applied outside mutmut (two at a time: each is a pytest process)."""
    pairs = [(m, e) for m in mutants for e in entries if _matches(e, m)]

    def killed(pair) -> bool:
        mutant, entry = pair
        command = [
            sys.executable,
            str(HERE / "try_mutant.py"),
            f"{mutant.path}:{mutant.line}",
            mutant.before,
            mutant.after,
            "--",
            *entry["tests"],
            "-q",
            "-x",
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parents[1])
        return done.returncode == 1

    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(killed, pairs))
    return {id(m) for (m, _), caught in zip(pairs, verdicts, strict=True) if caught}


def _matches(entry: dict, mutant: Mutant) -> bool:
    return (entry["file"], entry["function"], entry["before"], entry["after"]) == (
        mutant.path,
        mutant.function,
        mutant.before,
        mutant.after,
    )


def main(stage: Path, area: str, wall_s: float | None) -> int:
    """Print the score per area and the survivors; 1 if an area is under FAIL_UNDER."""
    areas = [a for a in AREAS if area in (a, "all")]
    mutants = [m for m in load_mutants(stage) if m.area in areas]
    equivalents = load_equivalents()
    undetected = [m for m in mutants if m.status not in DETECTED]
    for mutant in (m for m in mutants if m.status not in ("killed", "not checked")):
        locate(stage, mutant)  # survivors and timeouts
    equivalent = {id(m) for m in undetected for e in equivalents if _matches(e, m)}
    used = [e for e in equivalents if any(_matches(e, m) for m in undetected)]
    outside = load_outside()
    caught_outside = killed_outside([m for m in undetected if m.status == "survived"], outside)
    for mutant in undetected:
        if id(mutant) in caught_outside:
            mutant.status = "killed outside mutmut"
    detected = DETECTED | {"killed outside mutmut"}
    status, summary = 0, {"wall_s": wall_s, "areas": {}}
    for name in areas:
        mine = [m for m in mutants if m.area == name]
        if not mine:
            continue
        eq = [m for m in mine if id(m) in equivalent]
        alive = [m for m in mine if m.status not in detected and id(m) not in equivalent]
        counted = len(mine) - len(eq)
        score = 100.0 * (counted - len(alive)) / counted if counted else 100.0
        untested = [m for m in alive if m.status == "not checked"]
        print(
            f"\n{name}: {len(mine)} mutants, {len(eq)} equivalent (left out), "
            f"{counted - len(alive)} of {counted} killed: {score:.2f}%"
        )
        if untested:  # an interrupted run: the score among the mutants it did test
            tested = counted - len(untested)
            among = 100.0 * (counted - len(alive)) / tested if tested else 0.0
            print(f"  not tested yet: {len(untested)}; of the {tested} tested, {among:.2f}% killed")
        outside_killed = [m for m in mine if m.status == "killed outside mutmut"]
        if outside_killed:  # a stack level: applied outside mutmut, the listed tests fail
            print(
                f"  killed outside mutmut ([[outside]] in equivalent.toml): {len(outside_killed)}"
            )
        timeouts = [m for m in mine if m.status == "timeout"]
        if timeouts:  # counted as killed (an endless loop is a wrong formula too): shown
            print(f"  timeouts, counted as killed: {len(timeouts)}")
            for m in sorted(timeouts, key=lambda m: (m.path, m.line)):
                print(f"    {m.path}:{m.line}  {m.function}: {m.before}  ->  {m.after}")
        shown = [m for m in alive if m.status != "not checked"]
        for m in sorted(shown, key=lambda m: (m.path, m.line)):
            print(f"  {m.path}:{m.line}  [{m.status}] {m.function}: {m.before}  ->  {m.after}")
        summary["areas"][name] = {
            "mutants": len(mine),
            "equivalent": len(eq),
            "killed": counted - len(alive),
            "score": round(score, 2),
            "untested": len(untested),
            "timeouts": [f"{m.path}:{m.line} {m.name}" for m in timeouts],
            "killed_outside_mutmut": [f"{m.path}:{m.line} {m.name}" for m in outside_killed],
            "alive": [f"{m.path}:{m.line} {m.name}" for m in shown],
        }
        status |= score < FAIL_UNDER
    stale = [e for e in equivalents if e not in used and _in_areas(e, areas)]
    for entry in outside:  # listed, survived mutmut, and survived the listed tests too
        for m in undetected:
            if _matches(entry, m) and m.status == "survived" and m.area in areas:
                print(f"  listed under [[outside]] but its tests do not kill it: {m.path}:{m.line}")
    for entry in stale:
        print(
            f"  listed as equivalent but not among the survivors: {entry['file']} "
            f"{entry['function']}: {entry['before']} -> {entry['after']}"
        )
    if wall_s is not None:
        print(f"\nwall time: {wall_s / 60:.1f} min")
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return int(status)


def _in_areas(entry: dict, areas: list[str]) -> bool:
    staged = entry["file"]
    for name, folder in STAGED_AS.items():
        staged = staged.replace(folder, name, 1) if staged.startswith(folder) else staged
    return any(staged.startswith(AREAS[a]) for a in areas)


def equivalents_markdown() -> str:
    """The equivalent list as docs/mutation.md's table (one row an entry)."""

    def cell(text: str) -> str:
        return "`" + text.replace("|", "\\|").replace("`", "'") + "`"

    rows = [
        "| file | function | mutation | why no behaviour changes |",
        "| --- | --- | --- | --- |",
    ]
    for e in load_equivalents():
        mutation = f"{cell(e['before'])} -> {cell(e['after'])}"
        reason = e["reason"].replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{e['file']}` | `{e['function']}` | {mutation} | {reason} |")
    return "\n".join(rows)


if __name__ == "__main__":
    # `python tools/mutation/report.py --equivalents`: the table docs/mutation.md shows.
    if sys.argv[1:] != ["--equivalents"]:
        raise SystemExit("usage: report.py --equivalents  (scores: tools/mutation/run.py)")
    print(equivalents_markdown())
