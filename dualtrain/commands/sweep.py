"""`dualtrain sweep`: the same training at several lrs; a table, the best lr, plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualtrain.commands.training import add_model_option, add_training_options, names, resolve
from dualtrain.comparison import ATOL, RTOL
from dualtrain.errors import ConfigError
from dualtrain.sweep import Sweep, engines_agree, judged, parse_lrs, sweep


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sweep", help="train at several lrs and rank them")
    p.add_argument("--lrs", help="comma-separated lrs, e.g. 0.03,0.01,0.005,0.001")
    p.add_argument("--backend", help="one backend (default numpy)")
    p.add_argument("--backends", help="several, comma-separated: the same sweep on each")
    p.add_argument("--modes", help="comma-separated: eager,graph (default: eager)")
    add_training_options(p)
    add_model_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.lrs:
        raise ConfigError("sweep needs --lrs, e.g. --lrs 0.03,0.01,0.005")
    if args.backend and args.backends:
        raise ConfigError("give --backend or --backends, not both")
    lrs = parse_lrs(args.lrs)
    job = resolve(args, extra={"backend": str, "backends": str, "modes": str})
    backends = names(job.values.get("backends") or job.values.get("backend") or "numpy")
    modes = names(job.values.get("modes", "eager"))
    if not backends or not modes:
        raise ConfigError("sweep needs at least one backend and one mode")
    result = sweep(job.config, job.model, job.train, job.val, lrs, backends, modes, job.weights)
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    for r in result.runs:
        r.run.trajectory.save(out, stem=f"{r.engine.replace('/', '-')}-lr{r.lr:g}")
    text = render(result)
    (out / "sweep.md").write_text(text + "".join(f"\n![{p}]({p})\n" for p in _plots(result, out)))
    (out / "sweep.json").write_text(json.dumps(_summary(result), indent=1))
    print(text)
    print(f"report: {out / 'sweep.md'}")
    if job.values.get("tensorboard"):
        from dualtrain.tensorboard import run_name, write_runs

        runs = {run_name(r.engine, r.lr): r.run.trajectory for r in result.runs}
        write_runs(job.values["tensorboard"], runs)
        print(f"tensorboard: {job.values['tensorboard']} (one run per engine and lr)")
    return 0


def render(result: Sweep) -> str:
    key = "validation" if result.runs[0].final_val_loss is not None else "train"
    lines = [
        f"| engine | lr | final train loss | final validation loss | best epoch | rank by {key} |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for engine in result.engines():
        ranking = result.ranking(engine)
        for r in (r for r in result.runs if r.engine == engine):
            val = "-" if r.final_val_loss is None else f"{r.final_val_loss:.6g}"
            lines.append(
                f"| {engine} | {r.lr:g} | {r.final_train_loss:.6g} | {val} | {r.best_epoch} | "
                f"{ranking.index(r.lr) + 1} |"
            )
    lines.append("")
    for engine in result.engines():
        lines.append(f"best lr on {engine}: {result.best_lr(engine):g}")
    for engine, why in result.skipped.items():
        lines.append(f"{engine}: skipped ({why})")
    if len(result.engines()) > 1:
        verdict = (
            "every engine ranks the lrs the same way"
            if result.rankings_agree
            else "the engines rank the lrs differently: "
            + "; ".join(f"{e}: {result.ranking(e)}" for e in result.engines())
        )
        lines.append(verdict)
        lines.append(_agreement_note(result.engines(), engines_agree(judged(result))))
    return "\n".join(lines)


def _summary(result: Sweep) -> dict:
    return {
        "lrs": result.lrs,
        "best_lr": {e: result.best_lr(e) for e in result.engines()},
        "ranking": {e: result.ranking(e) for e in result.engines()},
        "rankings_agree": result.rankings_agree,
        "skipped": result.skipped,
    }


def _plots(result: Sweep, out: Path) -> list[str]:
    from dualtrain.plots import save

    try:
        drawn = figures(result)
    except ConfigError:  # no matplotlib: the table still counts
        return []
    for name, figure in drawn.items():
        save(figure, out / name)
    return list(drawn)


def figures(result: Sweep) -> dict:
    """The sweep's Figures by file name: sweep-divergence.png (several engines),
    sweep-loss.png, sweep-lr.png (when the lr is scheduled)."""
    from dualtrain import plots
    from dualtrain.report import relative_divergence

    verdicts = judged(result)
    agree = engines_agree(verdicts)
    engines = result.engines()
    drawn = {}
    panels = {}
    for lr, results in verdicts.items():
        ref = results[0].run.trajectory
        series = []
        for r in results[1:]:
            t = r.run.trajectory
            if len(t.losses) != len(ref.losses):
                continue
            diffs, limits = relative_divergence(ref.losses, t.losses, RTOL, ATOL)
            steps = [s["step"] for s in t.steps]
            first = None if r.first_divergence is None else steps[r.first_divergence]
            series.append(plots.Divergence(r.engine, steps, diffs, limits, first))
        if series:
            panels[f"lr={lr:g}"] = series
    if panels:
        title = f"relative loss difference per step, against {engines[0]}, per lr"
        drawn["sweep-divergence.png"] = plots.divergence_figure(panels, title)
    curves = [
        plots.EpochCurve(
            r.lr,
            r.engine,
            [e["train_loss"] for e in r.run.trajectory.epochs],
            None if r.final_val_loss is None else [e["val_loss"] for e in r.run.trajectory.epochs],
        )
        for r in result.runs
    ]
    note = _agreement_note(engines, agree)
    title = f"sweep of {len(result.lrs)} lrs on {', '.join(engines)}"
    drawn["sweep-loss.png"] = plots.sweep_loss_figure(curves, not agree, title, note)
    if any(len({s["lr"][0] for s in r.run.trajectory.steps}) > 1 for r in result.runs):
        lines = {
            f"{lr:g}": {
                r.engine: [r.run.trajectory.lrs(g) for g in range(r.run.trajectory.n_groups)]
                for r in result.runs
                if r.lr == lr
            }
            for lr in result.lrs
        }
        steps = [s["step"] for s in result.runs[0].run.trajectory.steps]
        title = "lr per step, one line per swept lr"
        drawn["sweep-lr.png"] = plots.lr_figure(steps, {}, title, lines)
    return drawn


def _agreement_note(engines: list[str], agree: bool) -> str:
    if len(engines) == 1:
        return ""
    rule = f"rtol {RTOL:g} / atol {ATOL:g}"
    if agree:
        return f"all engines agree ({rule}): one line per lr"
    return f"the engines differ ({rule}): one line per engine"
