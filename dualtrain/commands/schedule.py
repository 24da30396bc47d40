"""`dualtrain schedule`: print, compare and plot an lr schedule without training.

Runs the PyTorch-API scheduler on a stand-in optimizer, so what it prints is
what a training loop would see: entry i is the lr in effect during step i.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import Any

from dualtrain import lr_scheduler
from dualtrain.configfile import load_config, parse_assignment
from dualtrain.errors import ConfigError
from dualtrain.schedules import FLAVORS, build_schedule, has_distinct_flavors
from dualtrain.schedules.base import native_frameworks

# Argument names OneFlow spells differently, for `--diff` (torch name -> OneFlow name).
ONEFLOW_RENAMES = {"PolynomialLR": {"total_iters": "decay_batch"}}
CONFIG_KEYS = {"name", "flavor", "kwargs", "lr", "steps", "momentum", "metrics"}


@dataclass
class Trajectory:
    """lrs[g][i] (and momentum[g][i] when scheduled) for one flavour."""

    flavor: str
    lrs: list[list[float]]
    momentum: list[list[float]] | None = None


class StandInOptimizer:
    """Just param_groups and defaults: what a scheduler touches."""

    def __init__(self, lrs: list[float], momentum: float) -> None:
        self.defaults = {"lr": lrs[0], "momentum": momentum}
        self.param_groups = [{"lr": lr, "momentum": momentum} for lr in lrs]


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("schedule", help="print, compare or plot an lr schedule")
    p.add_argument("name", nargs="?", help="scheduler name, e.g. StepLR (or from --config)")
    p.add_argument("--flavor", choices=FLAVORS, help="whose behaviour: torch (default) or oneflow")
    p.add_argument("--lr", type=float, action="append", help="base lr; one per param group")
    p.add_argument("--steps", type=int, help="number of training steps to show")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="argument")
    p.add_argument("--momentum", type=float, help="the optimizer's momentum (default 0)")
    p.add_argument("--metrics", help="ReduceLROnPlateau: comma-separated metric per step")
    p.add_argument("--config", help="JSON or TOML file: {name, flavor, kwargs}")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--plot", metavar="FILE.png", help="write a PNG of lr against step")
    p.add_argument("--diff", action="store_true", help="torch and OneFlow flavours side by side")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    flavors = FLAVORS if args.diff else (spec["flavor"],)
    runs = {f: _run_or_error(spec, f, args.diff) for f in flavors}
    print(_render(spec, runs, args.format, args.diff))
    if args.plot:
        from dualtrain.plots import plot_schedule

        plot_schedule(
            args.plot, spec["name"], [r for r in runs.values() if isinstance(r, Trajectory)]
        )
    return 0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    """Merge --config and the flags (flags win) into one checked spec."""
    spec: dict[str, Any] = {"flavor": "torch", "kwargs": {}, "momentum": 0.0}
    if args.config:
        config = load_config(args.config)
        unknown = sorted(config.keys() - CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"config {args.config!r}: unknown key(s) {unknown}")
        spec.update(config)
    if not isinstance(spec["kwargs"], dict):
        raise ConfigError(f"kwargs must be a table of arguments, got {spec['kwargs']!r}")
    for key, value in (parse_assignment(a) for a in args.arg):
        spec["kwargs"][key] = value
    for key in ("name", "flavor", "steps", "momentum"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    if args.lr:
        spec["lr"] = args.lr
    if args.metrics is not None:
        spec["metrics"] = _floats("--metrics", args.metrics)
    return _checked(spec)


def _floats(flag: str, text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated numbers, got {text!r}") from None


def _checked(spec: dict[str, Any]) -> dict[str, Any]:
    if not spec.get("name"):
        raise ConfigError("a scheduler name is required (NAME or 'name' in --config)")
    lrs = spec.get("lr")
    lrs = [lrs] if _is_number(lrs) else lrs
    if not isinstance(lrs, list) or not lrs or not all(_is_number(v) for v in lrs):
        raise ConfigError(f"--lr (or lr) expects one finite number per param group, got {lrs!r}")
    spec["lr"] = [float(v) for v in lrs]
    if not _is_number(spec["momentum"]):
        raise ConfigError(f"momentum must be a finite number, got {spec['momentum']!r}")
    metrics = spec.get("metrics")
    if metrics is not None and (
        not isinstance(metrics, list) or not all(_is_number(v) for v in metrics)
    ):
        raise ConfigError(f"metrics must be a list of finite numbers, got {metrics!r}")
    steps = spec.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"--steps must be a positive int, got {steps!r}")
    if spec["flavor"] not in FLAVORS:
        raise ConfigError(f"flavor must be one of {', '.join(FLAVORS)}, got {spec['flavor']!r}")
    if spec["name"] == "ReduceLROnPlateau":
        metrics = spec.get("metrics") or []
        if len(metrics) < steps - 1:
            raise ConfigError(
                f"ReduceLROnPlateau needs --metrics with at least steps - 1 = {steps - 1} "
                f"values (one per step()), got {len(metrics)}"
            )
    return spec


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _run_or_error(spec: dict[str, Any], flavor: str, keep_errors: bool) -> Trajectory | str:
    """The trajectory; with --diff, a flavour that refuses the config shows its error."""
    try:
        return trajectory(spec, flavor)
    except ConfigError as exc:
        if not keep_errors:
            raise
        return str(exc)


def _kwargs_for(name: str, flavor: str, kwargs: dict[str, Any], translate: bool) -> dict:
    """The arguments for `flavor`, renamed from torch's spelling when translating."""
    renames = ONEFLOW_RENAMES.get(name, {}) if translate and flavor == "oneflow" else {}
    out = {renames.get(k, k): v for k, v in kwargs.items()}
    for key in ("schedulers", "scheduler"):
        members = out.get(key)
        if isinstance(members, list):
            out[key] = [_member_for(m, flavor, translate) for m in members]
        elif isinstance(members, dict):
            out[key] = _member_for(members, flavor, translate)
    return out


def _member_for(member: Any, flavor: str, translate: bool) -> Any:
    if not isinstance(member, dict) or not isinstance(member.get("kwargs", {}), dict):
        return member
    kwargs = _kwargs_for(member.get("name"), flavor, member.get("kwargs", {}), translate)
    return {**member, "kwargs": kwargs}


def trajectory(spec: dict[str, Any], flavor: str) -> Trajectory:
    """Run the stateful scheduler for spec['steps'] entries on a stand-in optimizer."""
    name, lrs, steps = spec["name"], spec["lr"], spec["steps"]
    kwargs = _kwargs_for(name, flavor, spec["kwargs"], translate=flavor != spec["flavor"])
    opt = StandInOptimizer(lrs, spec["momentum"])
    built = build_schedule(name, flavor, kwargs, len(lrs))
    if isinstance(built, list):
        sched = lr_scheduler.LRScheduler(opt, built, flavor=flavor)
        step = sched.step
    else:
        sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        metrics = iter(spec["metrics"])

        def step() -> None:
            sched.step(next(metrics))

    out = Trajectory(flavor, [[] for _ in lrs])
    cycles = isinstance(built, list) and any(s.cycles_momentum for s in built)
    out.momentum = [[] for _ in lrs] if cycles else None
    for i in range(steps):
        if i:
            step()
        for g, group in enumerate(opt.param_groups):
            out.lrs[g].append(group["lr"])
            if out.momentum is not None:
                out.momentum[g].append(group["momentum"])
    return out


def _render(spec, runs: dict[str, Trajectory | str], fmt: str, diff: bool) -> str:
    if fmt == "json":
        return json.dumps(_as_json(spec, runs, diff))
    rows, header = _rows(spec, runs)
    if fmt == "csv":
        return "\n".join(",".join(str(c) for c in row) for row in [header, *rows])
    lines = [_table(header, rows)]
    if diff:
        lines.append(_diff_summary(spec["name"], runs))
    return "\n".join(lines)


def _as_json(spec, runs, diff) -> dict[str, Any]:
    def one(run: Trajectory | str) -> dict[str, Any]:
        if isinstance(run, str):
            return {"error": run}
        body: dict[str, Any] = {"lrs": run.lrs}
        if run.momentum is not None:
            body["momentum"] = run.momentum
        return body

    if not diff:
        [(flavor, run)] = runs.items()
        return {"name": spec["name"], "flavor": flavor, "steps": spec["steps"], **one(run)}
    return {
        "name": spec["name"],
        "steps": spec["steps"],
        **{flavor: one(run) for flavor, run in runs.items()},
        "differ_at": _differing_steps(runs),
    }


def _columns(runs) -> list[tuple[str, list[float]]]:
    columns = []
    for flavor, run in runs.items():
        if isinstance(run, str):
            continue
        prefix = f"{flavor} " if len(runs) > 1 else ""
        for g, values in enumerate(run.lrs):
            columns.append((f"{prefix}lr[{g}]", values))
        for g, values in enumerate(run.momentum or []):
            columns.append((f"{prefix}momentum[{g}]", values))
    return columns


def _rows(spec, runs) -> tuple[list[list[Any]], list[str]]:
    columns = _columns(runs)
    header = ["step", *(name for name, _ in columns)]
    rows = [[i, *(repr(values[i]) for _, values in columns)] for i in range(spec["steps"])]
    if len(runs) > 1:
        differ = set(_differing_steps(runs))
        header.append("differs")
        for row in rows:
            row.append("*" if row[0] in differ else "")
    return rows, header


def _table(header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, *lines])


def _differing_steps(runs) -> list[int]:
    done = [r for r in runs.values() if isinstance(r, Trajectory)]
    if len(done) < 2:
        return []
    a, b = done
    steps = len(a.lrs[0])
    return [
        i
        for i in range(steps)
        if any(
            not math.isclose(x[i], y[i], rel_tol=1e-12) for x, y in zip(a.lrs, b.lrs, strict=True)
        )
    ]


def _diff_summary(name: str, runs) -> str:
    errors = [
        f"{flavor} refuses this config: {run}"
        for flavor, run in runs.items()
        if isinstance(run, str)
    ]
    if errors:
        return "\n".join(errors)
    if not has_distinct_flavors(name):
        native = ", ".join(native_frameworks(name)) or "neither framework"
        return f"{name}: one behaviour for both flavours (native in {native})."
    differ = _differing_steps(runs)
    if not differ:
        return f"{name}: the torch and oneflow flavours agree at every step shown."
    total = len(runs["torch"].lrs[0])
    return (
        f"{name}: the flavours differ at {len(differ)} of {total} steps, first at step {differ[0]}."
    )
