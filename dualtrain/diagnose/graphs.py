"""A static-graph engine's divergence, localised to the step and the parameters.

torch.compile and OneFlow's nn.Graph run no module hooks, and a graph cannot be
handed another state between its steps from outside, so neither probes nor
teacher forcing reach inside one. What can be compared is the state after each
step: the graph engine, the reference in float64 and float32, and the engine's
own pair of precisions (its graph in float64 where its graph has float64, else
its eager sibling in both: the port check's own floor) each train the steps up
to the divergence with a checkpoint after every step (the loop's own `Saving`,
through the graph's child process where it has one). The first step after which
a parameter or buffer parts beyond its noise is the step; the ones that part
there are listed. The depth reached is said in the finding: "step".
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from dualtrain.backend import get_backend
from dualtrain.checkpoint import PREFIX, load
from dualtrain.data import batch_indices
from dualtrain.diagnose.noise import check, distance
from dualtrain.diagnose.phases import Finding
from dualtrain.diagnose.records import owner
from dualtrain.loop import RunConfig, Saving, train_engine, with_overrides

DEPTH = "step (a static graph runs no module hooks: the parameters that part, not the module)"


def graph_finding(setup, engine: RunConfig, engine_name: str, last: int, excluded) -> Finding:
    """The first step of 0 .. `last` after which the graph engine's state parts."""
    per_epoch = len(
        batch_indices(len(setup.train), engine.batch_size, 0, 0, False, engine.drop_last)
    )
    epochs = last // per_epoch + 1
    reference = with_overrides(setup.reference, mode="eager", dtype="float64", epochs=epochs)
    graph_has_64 = "float64" in get_backend(engine.backend).graph_dtypes
    own_mode = engine.mode if graph_has_64 else "eager"
    configs = {
        "reference": reference,
        "noise": with_overrides(reference, dtype="float32"),
        "engine": with_overrides(engine, epochs=epochs),
        "own_low": with_overrides(engine, mode=own_mode, dtype="float32", epochs=epochs),
        "own_high": with_overrides(engine, mode=own_mode, dtype="float64", epochs=epochs),
    }
    states = {role: _states(setup, config, last + 1) for role, config in configs.items()}
    checks = []
    for t in range(last + 1):
        checks = _checks(t, states, excluded)
        parted = [c for c in checks if c.parted]
        if parted:
            first = parted[0]
            names = ", ".join(c.what.split(" ")[0] for c in parted[:8])
            more = f" and {len(parted) - 8} more" if len(parted) > 8 else ""
            return Finding(
                engine_name, t, "state", first.module, first.value, first.tolerance,
                first.ratio, DEPTH, checks,
                [f"after step {t}, {len(parted)} parameters and buffers part: {names}{more}"],
                what=first.what, parameters=[c.what.split(" ")[0] for c in parted],
            )  # fmt: skip
    worst = max(checks, key=lambda c: c.excess, default=None)
    return Finding(
        engine_name, None, None, None,
        math.nan if worst is None else worst.value,
        math.nan if worst is None else worst.tolerance,
        math.nan if worst is None else worst.ratio, DEPTH, checks,
        [f"no step of 0..{last} parts beyond its noise in the state after it"],
    )  # fmt: skip


def _states(setup, config: RunConfig, steps: int) -> dict[int, dict[str, np.ndarray]]:
    """The model state after each of the first `steps` steps of `config`'s run."""
    with tempfile.TemporaryDirectory(prefix="dualtrain-diagnose-") as folder:
        saving = Saving(folder, every=1)
        saving.durable = False  # read back at once, never after a crash of the machine
        train_engine(config, setup.model, setup.train, setup.val, weights=setup.start,
                     saving=saving)  # fmt: skip
        out = {}
        for k in range(1, steps + 1):
            path = Path(folder) / f"{PREFIX}{k:08d}"
            if path.exists():
                out[k - 1] = load(path).model
        return out


def _checks(t: int, states: dict, excluded) -> list:
    if t not in states["reference"]:
        return []
    out = []
    for name, want in states["reference"][t].items():
        if name in excluded or name.endswith("num_batches_tracked"):
            continue
        got = states["engine"].get(t, {}).get(name)
        low, high = states["own_low"].get(t, {}), states["own_high"].get(t, {})
        own = distance(low.get(name), high.get(name)) if name in low and name in high else 0.0
        out.append(
            check("state", owner(name), f"{name} after the step", "", got, want,
                  states["noise"].get(t, {}).get(name), own_noise=own)
        )  # fmt: skip
    return out
