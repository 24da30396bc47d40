"""`dualtrain train`: one run on one backend and mode; writes its trajectory."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualtrain import checkpoint as checkpoints
from dualtrain.commands.training import (
    add_model_option,
    add_nproc_option,
    add_training_options,
    resolve,
)
from dualtrain.distributed import Rank
from dualtrain.errors import ConfigError
from dualtrain.loop import Saving, train_engine


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train on one backend and mode")
    p.add_argument("--backend", help="numpy (default), torch, oneflow, or any installed backend")
    p.add_argument("--mode", help="eager (default) or graph")
    p.add_argument("--save-every", type=int, help="write a checkpoint every N steps")
    p.add_argument("--keep", type=int, help="keep the K newest checkpoints (default: all)")
    p.add_argument("--resume", metavar="DIR", help="go on from the newest checkpoint in DIR")
    add_nproc_option(p)
    add_training_options(p)
    add_model_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    extra = {"backend": str, "mode": str, "nproc": int}
    resume = checkpoints.load(args.resume) if args.resume else None
    job = resolve(args, extra=extra, base=resume.run if resume else None)
    if resume and not resume.run:
        raise ConfigError(f"checkpoint {args.resume!r} holds no command-line run to resume")
    config = job.config
    saving = None
    if job.values.get("save_every") is not None:
        folder = str(Path(job.out) / "checkpoints")
        saving = Saving(folder, job.values["save_every"], job.values.get("keep"), job.run)
    result = train_engine(
        config, job.model, job.train, job.val, job.weights, resume=resume, saving=saving
    )
    rank = Rank.from_env()
    if rank is not None and rank.rank != 0:  # under torchrun: rank 0 writes and reports
        return 0
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
    if job.values.get("tensorboard"):
        from dualtrain.tensorboard import run_name, write_runs

        (folder,) = write_runs(
            job.values["tensorboard"], {run_name(config.engine): result.trajectory}
        )
        print(f"tensorboard: {folder}")
    return 0
