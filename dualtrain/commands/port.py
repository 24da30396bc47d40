"""`dualtrain port`: your own torch module, trained on torch and OneFlow, eager and graph,
judged against torch eager.

Exit 0 when every engine trains the same, 1 when one differs, 2 for bad input
or a model that cannot be ported (with the reason, before anything is written).
"""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from dualtrain.commands.training import add_nproc_option, add_training_options, resolve
from dualtrain.diagnose.pipeline import localise_or_error, where
from dualtrain.distributed import refuse_external_launch
from dualtrain.errors import ConfigError
from dualtrain.loop import with_overrides
from dualtrain.port import DEFAULT_DTYPE, DEFAULT_ENGINES, port_check
from dualtrain.report import result_word, write_report
from dualtrain.usermodel import ModuleSource, UserModule, input_kind_of

EXIT_DISAGREE = 1

EXAMPLES = """\
examples:
  dualtrain port examples/port/cnn.py:SmallCNN --problem images --loss cross_entropy \\
      --optimizer sgd --momentum 0.9 --lr 0.05 --epochs 2 --out runs/port-cnn
  dualtrain port models.py:Net --init channels=16 --init act=gelu --data mine.npz --loss mse \\
      --optimizer adam --lr 1e-3 --scheduler OneCycleLR --arg max_lr=0.01 --arg total_steps=200 \\
      --interval step --engines torch/eager,oneflow/eager --out runs/port-net
  dualtrain port examples/port/cnn.py:SmallCNN --against examples/port/cnn_oneflow.py:SmallCNN \\
      --problem images --loss cross_entropy --out runs/port-hand
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "port",
        help="check that your own torch module trains the same on OneFlow and in graphs",
        description=__doc__.splitlines()[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="FILE.py:CLASS", help="your torch.nn.Module subclass")
    p.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a constructor argument: a number, string, boolean or list (repeatable)",
    )
    p.add_argument("--loss", help="mse or cross_entropy (default: from the targets)")
    p.add_argument(
        "--engines",
        help=f"comma-separated BACKEND/MODE (default: {','.join(DEFAULT_ENGINES)})",
    )
    p.add_argument(
        "--against",
        metavar="FILE.py:CLASS",
        help="your own OneFlow port of the model, checked instead of the automatic one",
    )
    p.add_argument(
        "--dropout",
        help="shared (default: every engine applies the same masks) or native",
    )
    add_nproc_option(p)
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="localise the step, phase and module where an engine parts (automatic when "
        "one parts), or show every module within its noise (docs/diagnose.md)",
    )
    add_training_options(p)
    p.set_defaults(run=run)


def parse_init(text: str) -> tuple[str, Any]:
    """`KEY=VALUE`: a Python literal, else JSON (true, false, null), else the text.

    Example:
        >>> parse_init("sizes=[8, 16]"), parse_init("bias=true"), parse_init("act=gelu")
        (('sizes', [8, 16]), ('bias', True), ('act', 'gelu'))
    """
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"--init expects KEY=VALUE with KEY a name, got {text!r}")
    for parse in (ast.literal_eval, json.loads):
        try:
            return key, parse(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
    return key, raw


def run(args: argparse.Namespace) -> int:
    refuse_external_launch("port")
    extra = {"engines": str, "against": str, "dropout": str, "loss": str, "nproc": int}
    job = resolve(args, extra=extra, spec_needed=False)
    if not (job.values.get("data") or job.values.get("problem")):
        raise ConfigError("dualtrain port needs data: --data FILE.npz or --problem NAME")
    source = ModuleSource.parse(args.model, dict(parse_init(t) for t in args.init))
    against = job.values.get("against")
    x, y = job.train.x, job.train.y
    loss = job.values.get("loss") or ("cross_entropy" if y.dtype.kind in "iu" else "mse")
    model = UserModule(
        source,
        loss,
        tuple(x.shape[1:]),
        input_kind_of(x),
        against=None if against is None else ModuleSource.parse(against, source.init),
        dropout=job.values.get("dropout", "shared"),
    )
    engines = job.values.get("engines") or ",".join(DEFAULT_ENGINES)
    config = job.config
    if "dtype" not in job.values:  # users train in float32: the port checks that
        config = with_overrides(config, dtype=DEFAULT_DTYPE)
    result = port_check(model, config, job.train, job.val, engines)
    unlocalised = localise_or_error(result, args.diagnose)
    for r in result.results:
        if r.skipped:
            print(f"{r.engine}: skipped ({r.skipped})")
            continue
        word = result_word(result, r)
        shown = (
            ""
            if r.engine == result.reference
            else (f", max relative loss difference {r.loss_max_rel_diff:.3g}")
        )
        print(f"{r.engine}: last step loss {r.run.trajectory.final_loss:.6g}{shown} {word}")
        for note in r.notes:
            print(f"  note: {note}")
    for note in result.notes:
        print(f"note: {note}")
    if result.first_divergence is not None:
        first = result.first_divergence
        print(f"first divergence: {first['engine']} at step {first['step']}{where(first)}")
    title = f"dualtrain port: {source.label}" + (f" against {against}" if against else "")
    report = write_report(result, job.out, title, machine_readable=True)
    print(f"report: {report} (and report.json, divergence.png, loss.png, lr.png)")
    if job.values.get("tensorboard"):
        from dualtrain.tensorboard import comparison_runs, write_runs

        write_runs(job.values["tensorboard"], comparison_runs(result))
        print(f"tensorboard: {job.values['tensorboard']} (one run per engine)")
    if unlocalised is not None:  # after the comparison's own report is on disk
        raise unlocalised
    return 0 if result.passed else EXIT_DISAGREE
