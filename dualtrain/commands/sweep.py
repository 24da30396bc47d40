"""`dualtrain sweep`: the same training at several lrs; a table, the best lr, plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualtrain.commands.training import add_training_options, names, resolve
from dualtrain.errors import ConfigError
from dualtrain.sweep import Sweep, parse_lrs, sweep


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sweep", help="train at several lrs and rank them")
    p.add_argument("--lrs", help="comma-separated lrs, e.g. 0.03,0.01,0.005,0.001")
    p.add_argument("--backend", help="one backend (default numpy)")
    p.add_argument("--backends", help="several, comma-separated: the same sweep on each")
    p.add_argument("--modes", help="comma-separated: eager,graph (default: eager)")
    add_training_options(p)
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
    from dualtrain.plots import plot_lines

    def lines(values) -> dict[str, list[float]]:
        return {f"{r.engine} lr={r.lr:g}": values(r.run.trajectory) for r in result.runs}

    try:
        plot_lines(out / "sweep-loss.png", lines(lambda t: t.losses), "step", "train loss",
                   yscale="log")  # fmt: skip
        if any(len({s["lr"][0] for s in r.run.trajectory.steps}) > 1 for r in result.runs):
            plot_lines(out / "sweep-lr.png", lines(lambda t: t.lrs(0)), "step", "learning rate",
                       yscale="log")  # fmt: skip
            return ["sweep-loss.png", "sweep-lr.png"]
    except ConfigError:  # no matplotlib: the table still counts
        return []
    return ["sweep-loss.png"]
