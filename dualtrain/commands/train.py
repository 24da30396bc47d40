"""`dualtrain train`: one run on one backend and mode; writes its trajectory."""

from __future__ import annotations

import argparse

from dualtrain.commands.training import add_training_options, resolve
from dualtrain.loop import train_engine, with_overrides


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train on one backend and mode")
    p.add_argument("--backend", help="numpy (default), torch, oneflow, or any installed backend")
    p.add_argument("--mode", help="eager (default) or graph")
    add_training_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    job = resolve(args, extra={"backend": str, "mode": str})
    config = with_overrides(
        job.config,
        backend=job.values.get("backend", job.config.backend),
        mode=job.values.get("mode", job.config.mode),
    )
    result = train_engine(config, job.model, job.train, job.val, weights=job.weights)
    for note in result.notes:
        print(f"note: {note}")
    json_path, csv_path = result.trajectory.save(job.out)
    last = result.trajectory.epochs[-1] if result.trajectory.epochs else {}
    val = last.get("val_loss")
    print(
        f"{config.engine}: {len(result.trajectory.steps)} steps, last step loss "
        f"{result.trajectory.final_loss:.6g}"
        + (f", validation loss {val:.6g}" if val is not None else "")
    )
    print(f"trajectory: {csv_path} and {json_path}")
    return 0
