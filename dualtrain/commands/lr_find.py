"""`dualtrain lr-find`: the LR range test, its suggestions and a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualtrain.commands.training import add_model_option, add_training_options, resolve
from dualtrain.errors import ConfigError
from dualtrain.lr_find import RULES, RangeTest, lr_find


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("lr-find", help="the LR range test: ramp the lr, watch the loss")
    p.add_argument("--backend", help="numpy (default), torch, oneflow, ...")
    p.add_argument("--mode", help="eager (default) or graph")
    p.add_argument("--min-lr", type=float, default=1e-6, help="start of the ramp (1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="end of the ramp (1)")
    p.add_argument("--steps", type=int, default=100, help="steps, one batch each (100)")
    p.add_argument("--ramp", choices=("exp", "linear"), default="exp")
    p.add_argument("--smooth", type=float, default=0.98, help="moving-average factor (0.98)")
    p.add_argument(
        "--diverge", type=float, default=4.0, help="stop when the loss passes N x its minimum"
    )
    add_training_options(p)
    add_model_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    job = resolve(args, extra={"backend": str, "mode": str})
    if job.config.schedule.name:
        raise ConfigError("lr-find sets the lr itself: drop --scheduler")
    if job.values.get("tensorboard"):
        raise ConfigError("lr-find writes no TensorBoard runs: drop --tensorboard")
    config = job.config
    test = lr_find(
        config, job.model, job.train, job.weights, args.min_lr, args.max_lr, args.steps,
        args.ramp, args.smooth, args.diverge,
    )  # fmt: skip
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(test.__dict__, indent=1))
    plot = _plot(test, out / "lr_find.png")
    stop = "stopped early: the loss diverged" if test.stopped_early else "ran every step"
    print(
        f"{config.engine}: {len(test.lrs)} steps from {test.lrs[0]:g} to {test.lrs[-1]:g}, {stop}"
    )
    for name, lr in test.suggestions.items():
        print(f"  {name:>11}: {lr:.3g}  ({RULES[name]})")
    print(f"results: {out / 'lr_find.json'}" + (f", plot: {plot}" if plot else ""))
    return 0


def _plot(test: RangeTest, path: Path) -> Path | None:
    from dualtrain.plots import _pyplot

    try:
        plt = _pyplot()
    except ConfigError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(test.lrs, test.losses, alpha=0.3, label="loss")
    ax.plot(test.lrs, test.smoothed, label="smoothed loss")
    for (name, lr), color in zip(test.suggestions.items(), ("C2", "C3", "C4"), strict=True):
        ax.axvline(lr, color=color, linestyle="--", label=f"{name}: {lr:.3g}")
    # The diverging tail would squash the curve: show up to 1.5x where it started.
    finite = [v for v in test.smoothed if v == v and abs(v) != float("inf")]
    ax.set_ylim(min(finite) * 0.9, max(finite[0], min(finite)) * 1.5)
    ax.set(xscale="log", xlabel="learning rate", ylabel="train loss", title="LR range test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
