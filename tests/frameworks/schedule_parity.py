"""What the framework tests share: cases, the frameworks' own trajectories, dualtrain's.

A case is one scheduler config, as `dualtrain schedule` takes it. The framework's
trajectory comes from its own scheduler class stepping a real optimizer (torch
or OneFlow, passed in as a module: both spell `fw.optim.lr_scheduler.X`
alike), recorded in the test itself; dualtrain's comes from `dualtrain schedule
--format json` and from `build_schedule`. Entry i is the lr in effect during
training step i, 0 being right after construction.

The test modules import this file by name: pytest puts `tests/frameworks` on
sys.path, as the folder is not a package (like the rest of `tests/`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dualtrain.cli import main as dualtrain_main
from dualtrain.schedules import ReduceLROnPlateau, build_schedule

REL = 1e-12
_CASE_OPTIONS = ("momentum", "metrics", "optimizer", "raises")

# Names an expression lambda may use, as dualtrain's evaluator documents them.
_EXPR_NAMES = {k: v for k, v in vars(math).items() if not k.startswith("_")}
_EXPR_NAMES.update(min=min, max=max, abs=abs, round=round)


@dataclass(frozen=True)
class Case:
    """One scheduler config, and how to drive it.

    `momentum` is the optimizer's momentum (SGD) or beta1 (Adam) before the
    scheduler is built; `metrics` feeds ReduceLROnPlateau, one value per
    `step()`; `raises` is what the framework raises for a config it refuses.
    """

    name: str
    flavor: str
    lrs: tuple[float, ...]
    steps: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    momentum: float = 0.0
    metrics: tuple[float, ...] | None = None
    optimizer: str = "sgd"
    raises: type[BaseException] | None = None
    tag: str = ""


@dataclass
class Trajectory:
    """lrs[g][i], and momentum[g][i] where the schedule cycles momentum."""

    lrs: list[list[float]]
    momentum: list[list[float]] | None = None


def case(flavor: str, name: str, lrs: Sequence[float], steps: int, tag: str = "", **kwargs):
    """A Case; `momentum`, `metrics`, `optimizer` and `raises` are options, the rest
    the scheduler's arguments."""
    options = {k: kwargs.pop(k) for k in _CASE_OPTIONS if k in kwargs}
    if options.get("metrics") is not None:
        options["metrics"] = tuple(options["metrics"])
    return Case(name, flavor, tuple(lrs), steps, kwargs, tag=tag, **options)


def member(name: str, **kwargs) -> dict[str, Any]:
    """A member of SequentialLR, ChainedScheduler or WarmupLR, as configs write it."""
    return {"name": name, "kwargs": kwargs}


def params(cases: Sequence[Case]) -> list:
    """pytest params with readable ids: the name, its count, and the case's tag."""
    seen: Counter[str] = Counter()
    out = []
    for c in cases:
        seen[c.name] += 1
        label = f"{c.name}-{seen[c.name]}" + (f"-{c.tag}" if c.tag else "")
        out.append(pytest.param(c, id=label))
    return out


def cycles_momentum(name: str, kwargs: dict[str, Any]) -> bool:
    """Whether the schedule, or one of its members, cycles momentum (as torch decides)."""
    if name in ("CyclicLR", "OneCycleLR"):
        return kwargs.get("cycle_momentum", True)
    members = list(kwargs.get("schedulers") or [])
    if kwargs.get("scheduler"):
        members.append(kwargs["scheduler"])
    return any(cycles_momentum(m["name"], m["kwargs"]) for m in members)


# --- the framework's own scheduler -------------------------------------------------------


def as_function(expr: str | list[str]):
    """A Python function of an expression lambda (`"0.95 ** epoch"`), by Python's own eval.

    The expressions are literals of this test suite; evaluating them with Python
    keeps dualtrain's evaluator out of the reference.
    """
    if isinstance(expr, list):
        return [as_function(e) for e in expr]
    code = compile(expr, f"<lambda {expr!r}>", "eval")

    def function(x):
        return eval(code, {"__builtins__": {}, **_EXPR_NAMES}, {"epoch": x, "step": x, "x": x})

    return function


def framework_scheduler(fw: ModuleType, name: str, kwargs: dict[str, Any], optimizer):
    """`fw.optim.lr_scheduler.<name>` on `optimizer`; members are built first, as users do."""
    module = fw.optim.lr_scheduler
    kwargs = dict(kwargs)
    for key in ("lr_lambda", "scale_fn"):
        if isinstance(kwargs.get(key), (str, list)):
            kwargs[key] = as_function(kwargs[key])
    if "schedulers" in kwargs:
        kwargs["schedulers"] = [
            framework_scheduler(fw, m["name"], m["kwargs"], optimizer) for m in kwargs["schedulers"]
        ]
    if name == "ChainedScheduler":  # takes the optimizer from its members
        return module.ChainedScheduler(**kwargs)
    if name == "WarmupLR":  # wraps a scheduler, or the optimizer when there is none
        inner = kwargs.pop("scheduler", None)
        if inner is None:
            return module.WarmupLR(optimizer, **kwargs)
        return module.WarmupLR(framework_scheduler(fw, **inner, optimizer=optimizer), **kwargs)
    return getattr(module, name)(optimizer, **kwargs)


def framework_optimizer(fw: ModuleType, case: Case):
    """One dummy parameter per param group; SGD with `momentum`, or Adam with beta1."""
    groups = [{"params": [fw.nn.Parameter(fw.zeros(2))], "lr": lr} for lr in case.lrs]
    if case.optimizer == "adam":
        return fw.optim.Adam(groups, lr=case.lrs[0], betas=(case.momentum, 0.999))
    return fw.optim.SGD(groups, lr=case.lrs[0], momentum=case.momentum)


def framework_trajectory(fw: ModuleType, case: Case) -> Trajectory:
    """The trajectory of the framework's own scheduler; raises what the framework raises."""
    optimizer = framework_optimizer(fw, case)
    scheduler = framework_scheduler(fw, case.name, case.kwargs, optimizer)
    key = "betas" if case.optimizer == "adam" else "momentum"
    lrs: list[list[float]] = [[] for _ in case.lrs]
    momenta: list[list[float]] = [[] for _ in case.lrs]
    for step in range(case.steps):
        if step:
            optimizer.step()  # torch warns when a scheduler steps first
            if case.metrics is None:
                scheduler.step()
            else:
                scheduler.step(case.metrics[step - 1])
        for g, group in enumerate(optimizer.param_groups):
            lrs[g].append(float(group["lr"]))
            value = group[key][0] if key == "betas" else group[key]
            momenta[g].append(float(value))
    return Trajectory(lrs, momenta if cycles_momentum(case.name, case.kwargs) else None)


# --- dualtrain ---------------------------------------------------------------------------


def command_args(case: Case, config: Path) -> list[str]:
    """`dualtrain schedule` arguments: the config file for name, flavour and kwargs, flags
    for the rest."""
    args = ["schedule", "--config", str(config), "--format", "json", f"--steps={case.steps}"]
    args += [f"--lr={lr!r}" for lr in case.lrs]
    if case.momentum:
        args.append(f"--momentum={case.momentum!r}")
    if case.metrics is not None:
        args.append("--metrics=" + ",".join(repr(v) for v in case.metrics))
    return args


def write_config(case: Case, folder: Path) -> Path:
    path = folder / "schedule.json"
    path.write_text(json.dumps({"name": case.name, "flavor": case.flavor, "kwargs": case.kwargs}))
    return path


def run_command(case: Case, capsys, folder: Path) -> tuple[int, str, str]:
    """`dualtrain schedule` in-process: (exit code, stdout, stderr)."""
    code = dualtrain_main(command_args(case, write_config(case, folder)))
    out, err = capsys.readouterr()
    return code, out, err


def command_trajectory(case: Case, stdout: str) -> Trajectory:
    """The trajectory in `--format json` output, checked for its header fields."""
    data = json.loads(stdout)
    assert {k: data[k] for k in ("name", "flavor", "steps")} == {
        "name": case.name,
        "flavor": case.flavor,
        "steps": case.steps,
    }
    assert set(data) <= {"name", "flavor", "steps", "lrs", "momentum"}, sorted(data)
    return Trajectory(data["lrs"], data.get("momentum"))


def engine_trajectory(case: Case) -> Trajectory:
    """The trajectory from the pure schedules: `lr(step, base_lr)` for each group."""
    built = build_schedule(case.name, case.flavor, case.kwargs, len(case.lrs))
    if isinstance(built, ReduceLROnPlateau):
        return Trajectory(plateau_lrs(built, case))
    steps = range(case.steps)
    lrs = [[s.lr(t, base) for t in steps] for s, base in zip(built, case.lrs, strict=True)]
    if not any(s.cycles_momentum for s in built):
        return Trajectory(lrs)
    return Trajectory(lrs, [[s.momentum(t) for t in steps] for s in built])


def plateau_lrs(rule: ReduceLROnPlateau, case: Case) -> list[list[float]]:
    """ReduceLROnPlateau's pure transition folded over the case's metrics."""
    state = rule.initial_state(case.lrs)
    rows = [state.lrs]
    for metric in case.metrics[: case.steps - 1]:
        state = rule.step(state, metric)
        rows.append(state.lrs)
    return [list(column) for column in zip(*rows, strict=True)]


# --- comparing ---------------------------------------------------------------------------


def assert_series_close(got, want, what: str) -> None:
    """got[g][i] equals want[g][i] within REL, relative; the first steps that differ shown."""
    assert len(got) == len(want), f"{what}: {len(got)} groups, expected {len(want)}"
    for g, (gs, ws) in enumerate(zip(got, want, strict=True)):
        assert len(gs) == len(ws), f"{what}[{g}]: {len(gs)} steps, expected {len(ws)}"
        bad = [
            f"step {i}: dualtrain {a!r}, framework {b!r}"
            for i, (a, b) in enumerate(zip(gs, ws, strict=True))
            if not math.isclose(a, b, rel_tol=REL, abs_tol=0.0)
        ]
        assert not bad, f"{what}[{g}] differs at {len(bad)} steps; " + "; ".join(bad[:4])


def assert_same_trajectory(got: Trajectory, want: Trajectory) -> None:
    """Same lrs; momentum reported exactly where the framework cycles it, and the same."""
    assert_series_close(got.lrs, want.lrs, "lr")
    assert (got.momentum is None) == (want.momentum is None), (
        f"dualtrain momentum {got.momentum!r}, framework cycles momentum: "
        f"{want.momentum is not None}"
    )
    if want.momentum is not None:
        assert_series_close(got.momentum, want.momentum, "momentum")


def assert_one_line_refusal(code: int, out: str, err: str) -> None:
    """Exit status 2, nothing on stdout, one `dualtrain: error:` line on stderr."""
    assert (code, out) == (2, ""), (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dualtrain: error: "), err
