"""Training options shared by `dualtrain train` and `dualtrain compare`.

Every flag has a key of the same name in a TOML/JSON `--config` file
(dashes become underscores); flags given on the command line win.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from dualtrain.configfile import load_config, parse_assignment
from dualtrain.data import Dataset, load_data
from dualtrain.errors import ConfigError
from dualtrain.loop import RunConfig, ScheduleConfig
from dualtrain.model import ModelSpec
from dualtrain.optim import GroupSpec
from dualtrain.problems import get_problem

# Config keys and their types; the flags mirror them.
KEYS: dict[str, type | tuple[type, ...]] = {
    "problem": str,
    "model_file": str,
    "data": str,
    "target": str,
    "optimizer": str,
    "lr": (int, float),
    "options": dict,
    "groups": list,
    "scheduler": str,
    "flavor": str,
    "args": dict,
    "interval": str,
    "metric": str,
    "epochs": int,
    "batch_size": int,
    "seed": int,
    "dtype": str,
    "device": str,
    "shuffle": bool,
    "drop_last": bool,
    "val_fraction": (int, float),
    "out": str,
    "save_every": int,
    "keep": int,
    "tensorboard": str,
    "loss_read_every": int,
}


def add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or JSON file with any of the options below")
    p.add_argument(
        "--problem",
        help="built-in problem: regression, linear, classification, digits (CNN), tokens "
        "(transformer-like); images, sequence (data for port)",
    )
    p.add_argument("--data", help="your own data: .npz (arrays x, y) or .csv with a header")
    p.add_argument("--target", help="CSV column holding the target (default: the last)")
    p.add_argument("--optimizer", help="sgd, adam, adamw or rmsprop")
    p.add_argument("--lr", type=float, help="learning rate (of the default param group)")
    p.add_argument("--momentum", type=float, help="SGD/RMSprop momentum")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--nesterov", action="store_true", default=None)
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other optimizer hyperparameter, e.g. betas=(0.9,0.99)",
    )
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="PREFIX[,PREFIX]=LR",
        help="a param group with its own lr, e.g. 0.=0.01 for the first layer",
    )
    p.add_argument("--scheduler", help="lr schedule name, e.g. StepLR or OneCycleLR")
    p.add_argument("--flavor", help="schedule behaviour: torch (default) or oneflow")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="schedule argument (Python literal)",
    )
    p.add_argument("--interval", help="step the schedule every 'epoch' (default) or 'step'")
    p.add_argument("--metric", help="ReduceLROnPlateau watches val_loss (default) or train_loss")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", help="float64 (default) or float32")
    p.add_argument("--device", help="cpu (default) or cuda where the backend has it")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", default=None)
    p.add_argument("--drop-last", action="store_true", default=None)
    p.add_argument("--val-fraction", type=float, help="share of rows held out for validation")
    p.add_argument("--out", help="directory for the trajectory, report and plots")
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write each engine's run as TensorBoard scalars under DIR (needs the "
        "tensorboard extra)",
    )
    p.add_argument(
        "--loss-read-every",
        type=int,
        metavar="N",
        help="read the losses back from the device every N steps (default 32; the "
        "trajectory is the same for any N, docs/performance.md)",
    )


def add_model_option(p: argparse.ArgumentParser) -> None:
    """`--model FILE`: train, compare, sweep and lr-find (docs/layers.md)."""
    p.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE",
        help="a declarative model in a .toml or .json file ([[layer]] tables, a loss; "
        "docs/layers.md), instead of the problem's own; config key model_file",
    )


def add_nproc_option(p: argparse.ArgumentParser) -> None:
    """`--nproc N`: train, compare and port (docs/distributed.md)."""
    p.add_argument(
        "--nproc",
        type=int,
        help="train data-parallel in N processes on this machine, each on its shard of "
        "every batch (torch DDP, OneFlow DDP or global tensors; docs/distributed.md)",
    )


@dataclass
class Training:
    config: RunConfig
    model: ModelSpec
    train: Dataset
    val: Dataset | None
    weights: dict | None
    out: str
    values: dict[str, Any]
    problem: str = "regression"
    #: The values, flags merged in, as a checkpoint keeps them for --resume.
    run: dict[str, Any] = field(default_factory=dict)


def names(text: str) -> list[str]:
    """`--backends numpy,torch` as a list, blanks dropped."""
    return [n.strip() for n in text.split(",") if n.strip()]


# What may differ between a checkpoint's run and the command that resumes it.
MAY_CHANGE_ON_RESUME = ("epochs", "out", "backend", "mode", "device", "save_every", "keep")
MAY_CHANGE_ON_RESUME += ("tensorboard", "nproc", "loss_read_every")


def resolve(
    args: argparse.Namespace,
    extra: dict[str, type] | None = None,
    base: dict | None = None,
    *,
    spec_needed: bool = True,
) -> Training:
    """The run described by --config and the flags (flags win), checked.

    `base` is a checkpoint's run to resume: then a flag may only repeat it, or
    change what `MAY_CHANGE_ON_RESUME` lists. With `spec_needed` (train, compare,
    sweep, lr-find), a problem without a declarative model is refused in one line;
    `dualtrain port`, which brings the user's own module, passes False.
    """
    allowed = {**KEYS, **(extra or {})}
    values: dict[str, Any] = {}
    if base is not None:
        _refuse_contradictions(args, allowed, base)
        values = dict(base)
    elif args.config:
        values = load_config(args.config)
        for key, value in values.items():
            if key not in allowed:
                raise ConfigError(f"config {args.config!r}: unknown key {key!r}")
            if isinstance(value, bool) != (allowed[key] is bool) or not isinstance(
                value, allowed[key]
            ):
                raise ConfigError(f"config {args.config!r}: {key} has the wrong type: {value!r}")
    for key in allowed:
        flag = getattr(args, key, None)
        if flag is not None and key not in ("options", "args", "groups"):
            values[key] = flag
    if values.get("tensorboard"):  # before any data is read or a step trained
        from dualtrain.tensorboard import require

        require()
    options = dict(values.get("options", {}))
    for key, flag in (
        ("momentum", args.momentum),
        ("weight_decay", args.weight_decay),
        ("nesterov", args.nesterov),
    ):
        if flag is not None:
            options[key] = flag
    options.update(parse_assignment(a) for a in args.option)
    sched_kwargs = dict(values.get("args", {}))
    sched_kwargs.update(parse_assignment(a) for a in args.arg)
    groups = [_group(g) for g in values.get("groups", [])] + [_group_flag(g) for g in args.group]
    job = _build(values, options, sched_kwargs, groups, spec_needed)
    # The effective values, defaults included, so that on --resume a flag that
    # repeats a default (--batch-size 50) is no contradiction.
    effective = {**job.values, **({} if values.get("data") else {"problem": job.problem})}
    job.run = {
        **effective,
        "options": options,
        "args": sched_kwargs,
        "groups": [
            {"prefixes": list(g.prefixes), "lr": g.lr, "options": g.options} for g in groups
        ],
    }
    return job


def _refuse_contradictions(args: argparse.Namespace, allowed: dict, base: dict) -> None:
    if args.config:
        raise ConfigError("--config and --resume: the checkpoint holds the run's config")
    for key in allowed:
        flag = getattr(args, key, None)
        if flag is None or key in MAY_CHANGE_ON_RESUME or key in ("options", "args", "groups"):
            continue
        if base.get(key) != flag:
            raise ConfigError(
                f"--{key.replace('_', '-')} {flag!r} contradicts the checkpoint's "
                f"{base.get(key)!r}; on --resume only "
                f"{', '.join('--' + k.replace('_', '-') for k in MAY_CHANGE_ON_RESUME)} may change"
            )
    given = [f for f in ("option", "arg", "group") if getattr(args, f)] + [
        f for f in ("momentum", "weight_decay", "nesterov") if getattr(args, f) is not None
    ]
    if given:
        raise ConfigError(
            f"--{given[0].replace('_', '-')} contradicts --resume: the checkpoint holds the "
            "optimizer and schedule settings"
        )


def _group(entry: Any) -> GroupSpec:
    if (
        not isinstance(entry, dict)
        or set(entry) - {"prefixes", "lr", "options"}
        or "lr" not in entry
    ):
        raise ConfigError(f"each of groups must be {{prefixes, lr[, options]}}, got {entry!r}")
    prefixes = entry.get("prefixes", [])
    prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
    return GroupSpec(tuple(prefixes), entry["lr"], dict(entry.get("options", {})))


def _group_flag(text: str) -> GroupSpec:
    prefixes, sep, lr = text.partition("=")
    try:
        value = float(lr)
    except ValueError:
        value = None
    if not sep or not prefixes or value is None:
        raise ConfigError(f"--group expects PREFIX[,PREFIX]=LR, e.g. 0.=0.01, got {text!r}")
    return GroupSpec(tuple(p.strip() for p in prefixes.split(",")), value)


def _build(values, options, sched_kwargs, groups, spec_needed=True) -> Training:
    if values.get("data") and values.get("problem"):
        raise ConfigError("give --problem or --data, not both")
    problem = get_problem(values.get("problem", "regression"), values.get("seed", 0))
    if problem.model is None and spec_needed and not values.get("model_file"):
        raise ConfigError(
            f"problem {problem.name!r} has no built-in model: train your own module on it "
            f"with `dualtrain port FILE.py:Class --problem {problem.name}`"
        )
    defaults = {
        "batch_size": problem.batch_size,
        "val_fraction": problem.val_fraction,
        **problem.defaults,
    }
    data, weights = problem.data, problem.weights
    if values.get("data"):
        data, weights = load_data(values["data"], values.get("target")), None
        defaults = {"batch_size": 32, "val_fraction": 0.2}
    merged = {**defaults, **values}
    model = problem.model if not values.get("data") else _model_for(data, problem.model)
    if not spec_needed:  # the caller brings its own model (`dualtrain port`)
        model = problem.model if not values.get("data") else None
    elif values.get("model_file"):  # the problem's own weights fit its own model only
        from dualtrain.modelfile import load_model_file

        model, weights = load_model_file(values["model_file"]), None
    schedule = ScheduleConfig(
        name=merged.get("scheduler"),
        flavor=merged.get("flavor", "torch"),
        kwargs=sched_kwargs,
        interval=merged.get("interval", "epoch"),
        metric=merged.get("metric", "val_loss"),
    )
    config = RunConfig(
        backend=merged.get("backend", "numpy"),
        mode=merged.get("mode", "eager"),
        optimizer=merged.get("optimizer", "sgd"),
        lr=merged.get("lr", 0.05),
        options=options,
        groups=tuple(groups),
        schedule=schedule,
        epochs=merged.get("epochs", 20),
        batch_size=merged["batch_size"],
        shuffle=merged.get("shuffle", True),
        drop_last=merged.get("drop_last", False),
        seed=merged.get("seed", 0),
        dtype=merged.get("dtype", "float64"),
        device=merged.get("device", "cpu"),
        nproc=merged.get("nproc", 1),
        loss_read_every=merged.get("loss_read_every", 32),
    )
    config.optimizer_spec()  # checks optimizer name and options now, in one line
    train, val = data.split(merged["val_fraction"], config.seed)
    out = merged.get("out", "runs/latest")
    return Training(config, model, train, val, weights, out, merged, problem.name)


def _model_for(data: Dataset, template: ModelSpec) -> ModelSpec:
    """A tanh MLP sized to the user's data: regression, or classification for int targets."""
    from dualtrain.model import mlp

    features = data.x.shape[1]
    if data.y.dtype.kind in "iu":
        return mlp([features, 32, int(data.y.max()) + 1], activation="relu", loss="cross_entropy")
    return mlp([features, 32, data.y.shape[1]], activation="tanh", loss="mse")
