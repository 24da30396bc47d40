"""`dualtrain compare`: the same training on every engine, judged against the first."""

from __future__ import annotations

import argparse

from dualtrain.commands.training import (
    add_model_option,
    add_nproc_option,
    add_training_options,
    names,
    resolve,
)
from dualtrain.comparison import compare
from dualtrain.diagnose.pipeline import localise_or_error, where
from dualtrain.distributed import refuse_external_launch
from dualtrain.report import write_report

EXIT_DISAGREE = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("compare", help="run every backend x mode and compare")
    p.add_argument("--backends", help="comma-separated, reference first (default: numpy)")
    p.add_argument("--modes", help="comma-separated: eager,graph (default: eager)")
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="localise the step, phase and module where an engine parts (automatic when "
        "one parts), or show every module within its noise (docs/diagnose.md)",
    )
    add_nproc_option(p)
    add_training_options(p)
    add_model_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    refuse_external_launch("compare")
    job = resolve(args, extra={"backends": str, "modes": str, "nproc": int})
    backends = names(job.values.get("backends", "numpy"))
    modes = names(job.values.get("modes", "eager"))
    result = compare(
        job.config, job.model, job.train, job.val, backends, modes, weights=job.weights
    )
    unlocalised = localise_or_error(result, args.diagnose)
    for r in result.results:
        if r.skipped:
            print(f"{r.engine}: skipped ({r.skipped})")
        else:
            verdict = {True: "pass", False: "FAIL", None: ""}[r.passed]
            if r.engine == result.reference:
                verdict = "reference"
            val = r.run.trajectory.final_val_loss
            shown = "" if val is None else f", validation loss {val:.6g}"
            print(f"{r.engine}: last step loss {r.run.trajectory.final_loss:.6g}{shown} {verdict}")
        for note in r.notes:
            print(f"  note: {note}")
    if result.first_divergence is not None:
        first = result.first_divergence
        print(f"first divergence: {first['engine']} at step {first['step']}{where(first)}")
    title = f"dualtrain compare: {job.values.get('problem', 'data')} on {', '.join(backends)}"
    report = write_report(result, job.out, title)
    plots = [report.parent / name for name in ("divergence.png", "loss.png", "lr.png")]
    shown = ", ".join(str(p) for p in plots if p.exists()) or "none: matplotlib is missing"
    print(f"report: {report} (plots: {shown})")
    if job.values.get("tensorboard"):
        from dualtrain.tensorboard import comparison_runs, write_runs

        write_runs(job.values["tensorboard"], comparison_runs(result))
        print(f"tensorboard: {job.values['tensorboard']} (one run per engine)")
    if unlocalised is not None:  # after the comparison's own report is on disk
        raise unlocalised
    return 0 if result.passed else EXIT_DISAGREE
