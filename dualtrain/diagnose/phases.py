"""Where two engines part: the step, the phase and the module.

1. **The step.** From the comparison's first step whose loss parted (or its last
   step), back to step 0: every engine's step t is rerun from the reference's
   state before t (teacher forcing at the level of the whole state), so each
   step is judged alone, its loss and state after it against their noise. The
   first step that parts is the step (an optimizer or schedule fault parts the
   state one step before it parts a loss).
2. **The phase and the module**, at that step, with probes on every module:
   data (the model's input batch), schedule (the lrs the optimizer holds),
   forward (each module's output on the reference's input), backward (each
   module's input and parameter gradients from the reference's upstream
   gradient), optimizer (the update from the reference's gradients and state).
   The first phase in that order with a module beyond its noise names it.

Four runs of the step take part, each replayed through the loop
(`dualtrain.diagnose.replay`): the reference backend in float64 (the truth,
probes recording only) and in float32 (the noise), the engine under test in its
own dtype and in its other one (its own noise), the last three teacher-forced
by the first. The reference's step is run three times from the same state,
probes off, off, on: the first two must agree (else the state is not all
checkpointable, or the forward has side effects the probe cannot replay) and the
last two bit for bit (probes do not change the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualtrain.backend import get_backend
from dualtrain.diagnose.noise import Check, check, distance
from dualtrain.diagnose.records import StepProbe, owner
from dualtrain.diagnose.replay import Live, replay
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.loop import RunConfig, with_overrides

PHASES = ("data", "schedule", "forward", "backward", "optimizer")
ROLES = ("reference", "noise", "engine", "own")


@dataclass
class Side:
    """What one run of the diagnosed step gave."""

    loss: float = math.nan
    lrs: list[float] = field(default_factory=list)
    record: StepProbe | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    #: Parameters after one optimizer step from the reference's state and gradients.
    update: dict[str, np.ndarray] = field(default_factory=dict)
    #: (state, optimizer state) before the step: the reference's only.
    before: Any = None


@dataclass
class Finding:
    """One engine's diagnosis: where it parts from the reference, and every check made."""

    engine: str
    step: int | None
    phase: str | None
    module: str | None
    value: float
    tolerance: float
    ratio: float
    #: How deep the diagnosis could look: "module" (probes), "step" (state only).
    depth: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The runs of the diagnosed step, by role (for the repro), not saved.
    sides: dict[str, Side] = field(default_factory=dict, repr=False)
    what: str | None = None
    #: What the NumPy float64 computation of that module says (`referee`).
    referee: str | None = None
    #: At step depth (a graph): every parameter and buffer that parts after the step.
    parameters: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """`report.json`'s `first_divergence` for this engine."""
        return {
            "engine": self.engine,
            "step": self.step,
            "phase": self.phase,
            "module": self.module,
            "what": self.what,
            "value": _number(self.value),
            "tolerance": _number(self.tolerance),
            "noise_ratio": _number(self.ratio),
            "depth": self.depth,
            "referee": self.referee,
            "parameters": list(self.parameters),
        }


@dataclass
class Diagnosis:
    """Every engine diagnosed; `first` is the comparison's first divergence."""

    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> Finding | None:
        parted = [f for f in self.findings if f.phase is not None]
        return min(parted, key=lambda f: f.step) if parted else None


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def runs_for(setup: Any, engine: RunConfig) -> dict[str, RunConfig | None]:
    """The four runs of a diagnosis, by role; `own` is None for the reference's own
    backend (its float32 run is the noise) or a backend with one dtype."""
    reference = with_overrides(setup.reference, mode="eager", dtype="float64")
    other = "float64" if engine.dtype == "float32" else "float32"
    own = None
    if engine.backend != reference.backend and other in get_backend(engine.backend).dtypes:
        own = with_overrides(engine, dtype=other)
    return {
        "reference": reference,
        "noise": with_overrides(reference, dtype="float32"),
        "engine": engine,
        "own": own,
    }


def require_probes(configs: dict[str, RunConfig | None]) -> None:
    for config in configs.values():
        if config is not None:
            backend = get_backend(config.backend)
            if not backend.supports_probes:
                raise CapabilityError(f"backend {backend.name!r}: {backend.probes_reason}")


def find_step(setup: Any, configs: dict, last: int, excluded, ref_losses=None) -> tuple:
    """(the first step that parts or None, its checks) over steps 0 .. `last`, each
    step rerun from the reference's state before it."""
    before, reference = {}, {}

    def visit_reference(live: Live) -> float:
        before[live.step] = live.state()
        loss = live.run(live.x, live.y)
        reference[live.step] = (loss, dict(live.backend.read_state(live.net)))
        return loss

    replay(configs["reference"], setup.model, setup.train, setup.val, setup.start, last,
           visit_reference)  # fmt: skip
    if ref_losses is not None:
        for t in range(min(last + 1, len(ref_losses))):
            if reference[t][0] != ref_losses[t]:
                raise ConfigError(
                    f"replaying the reference from the start gives loss {reference[t][0]!r} at "
                    f"step {t}, the run had {ref_losses[t]!r}: the run cannot be replayed (a "
                    "forward with side effects, or state outside the model and optimizer)"
                )
    others = {}
    for role in ("noise", "engine", "own"):
        if configs[role] is None:
            continue
        got: dict[int, tuple] = {}

        def visit(live: Live, got=got) -> float:
            live.load(before[live.step], live.step)
            loss = live.run(live.x, live.y)
            got[live.step] = (loss, dict(live.backend.read_state(live.net)))
            return reference[live.step][0]

        replay(configs[role], setup.model, setup.train, setup.val, setup.start, last, visit)
        others[role] = got
    checks: list[Check] = []
    for t in range(last + 1):
        checks = _step_checks(t, reference, others, before, excluded)
        if any(c.parted for c in checks):
            return t, checks
    return None, checks


def _change(after: np.ndarray, before: dict, name: str) -> np.ndarray | None:
    """What the step changed in `name` (None for an integer buffer)."""
    if name not in before or np.asarray(after).dtype.kind != "f":
        return None
    return np.asarray(after, np.float64) - np.asarray(before[name], np.float64)


def _step_checks(t: int, reference: dict, others: dict, before: dict, excluded) -> list[Check]:
    def of(role: str, i: int, name: str | None = None):
        if role not in others:
            return None
        value = others[role][t][i]
        return np.float64(value) if name is None else value[name]

    ref_loss, ref_state = reference[t]
    start = before[t][0]
    checks = [
        check("step", "", "loss", "", of("engine", 0), np.float64(ref_loss), of("noise", 0),
              of("own", 0))
    ]  # fmt: skip
    for name, value in ref_state.items():
        if name in excluded or name.endswith("num_batches_tracked"):
            continue
        checks.append(
            check("step", owner(name), f"{name} after the step", "", of("engine", 1, name),
                  value, of("noise", 1, name), of("own", 1, name), _change(value, start, name))
        )  # fmt: skip
    return checks


def probe_step(setup: Any, configs: dict, step: int) -> dict[str, Side]:
    """Every run of `step` with probes: the reference recording, the others forced."""
    sides: dict[str, Side] = {}
    reference = Side()

    def visit_reference(live: Live) -> float:
        if live.step < step:
            return live.run(live.x, live.y)
        _reference_step(live, reference)
        return reference.loss

    replay(configs["reference"], setup.model, setup.train, setup.val, setup.start, step,
           visit_reference)  # fmt: skip
    sides["reference"] = reference
    for role in ("noise", "engine", "own"):
        if configs[role] is None:
            continue
        side = Side()

        def visit(live: Live, side=side, engine=configs[role].engine) -> float:
            if live.step < step:
                loss = live.run(live.x, live.y)
                return loss if math.isfinite(loss) else 0.0
            _forced_step(live, reference, side, engine)
            return reference.loss

        replay(configs[role], setup.model, setup.train, setup.val, setup.start, step, visit)
        sides[role] = side
    return sides


def _reference_step(live: Live, side: Side) -> None:
    """Probes off, off, on, from the same state; then the update from its gradients."""
    backend, t = live.backend, live.step
    side.lrs = backend.read_hyperparams(live.optimizer)
    side.before = live.state()
    first = live.run(live.x, live.y)
    live.load(side.before, t)
    off = live.run(live.x, live.y)
    off_state = backend.read_state(live.net)
    if first != off:
        live.load(side.before, t)
        again = live.run(live.x, live.y)
        why = (
            "its forward has side effects the probe cannot replay (state outside "
            "its parameters and buffers)"
            if again != off
            else "the state a checkpoint keeps does not hold all of it (optimizer state the "
            "backend does not save?)"
        )
        raise ConfigError(
            f"step {t} of {live_engine(live)} rerun from its own saved state gives loss "
            f"{off!r}, the run had {first!r}: {why}"
        )
    live.load(side.before, t)
    probe = backend.probe(live.net)
    try:
        side.loss = live.run(live.x, live.y)
    finally:
        probe.remove()
    side.record = probe.record
    on_state = backend.read_state(live.net)
    if side.loss != off or any(not np.array_equal(off_state[k], on_state[k]) for k in off_state):
        raise ConfigError(
            f"step {t} of {live_engine(live)} with probes on differs from the same step with "
            "probes off: the probe changed the run, so nothing it recorded is evidence"
        )
    side.grads = {k: np.array(v, copy=True) for k, v in backend.read_grads(live.net).items()}
    side.update = _update(live, side.before, side.grads)


def _forced_step(live: Live, reference: Side, side: Side, engine: str) -> None:
    backend, t = live.backend, live.step
    side.lrs = backend.read_hyperparams(live.optimizer)
    live.load(reference.before, t)
    missing = sorted(set(reference.before[1]) - set(backend.optimizer_state(live.optimizer)))
    if missing:
        raise ConfigError(
            f"{engine} keeps no checkpointable optimizer state (after loading the reference's, "
            f"it holds no {missing[0]!r}): its step cannot be rerun from the state before it"
        )
    # The update first: at step 0 the reference's optimizer state is empty, and
    # loading it does not clear what a step of this optimizer left (OneFlow's eager
    # optimizer keeps its momentum buffers and step count); the probed step after it
    # reads only values and gradients, which no optimizer state changes.
    side.update = _update(live, reference.before, reference.grads)
    live.load(reference.before, t)
    probe = backend.probe(live.net, forced=reference.record)
    try:
        side.loss = live.run(live.x, live.y)
    finally:
        probe.remove()
    side.record = probe.record
    side.grads = {k: np.array(v, copy=True) for k, v in backend.read_grads(live.net).items()}


def _update(live: Live, before, grads) -> dict[str, np.ndarray]:
    """The parameters after one optimizer step from `before` with `grads`."""
    live.load(before, live.step)
    live.backend.write_grads(live.net, grads)
    live.backend.optimizer_step(live.optimizer)
    state = live.backend.read_state(live.net)
    return {k: np.array(state[k], copy=True) for k in grads}


def live_engine(live: Live) -> str:
    return f"{live.backend.name}/eager"


def classify(sides: dict[str, Side], excluded) -> list[Check]:
    """Every check of the diagnosed step, phase by phase, in each phase's order."""
    r, n = sides["reference"], sides["noise"]
    e, o = sides["engine"], sides.get("own")
    checks = _data(r, n, e) + _schedule(r, e)
    calls = list(r.record.calls)
    for key in calls:
        checks.append(_worst(_outputs(key, r, n, e, o)))
    for key in reversed(calls):
        found = _gradients(key, r, n, e, o)
        if found:
            checks.append(_worst(found))
    for name in r.update:
        if name in excluded:
            continue
        module = r.record.calls.get(owner(name))
        checks.append(
            check("optimizer", owner(name), f"update of {name}", module.kind if module else "",
                  e.update.get(name),
                  r.update[name], n.update.get(name), o.update.get(name) if o else None,
                  _change(r.update[name], r.before[0], name))
        )  # fmt: skip
    return checks


def _data(r: Side, n: Side, e: Side) -> list[Check]:
    root, got = r.record.calls.get(""), e.record.calls.get("")
    if root is None or got is None:
        return []
    low = n.record.calls[""].inputs
    return [
        check("data", "", f"input {i} (the batch)", root.kind, got.inputs[i], ref, low[i])
        for i, ref in enumerate(root.inputs)
        if ref is not None and i < len(got.inputs)
    ]


def _schedule(r: Side, e: Side) -> list[Check]:
    # Every engine reads one schedule: the lrs must be the very same floats.
    return [
        Check("schedule", "", f"lr of group {g}", "", abs(got - want), 0.0, 0.0, 0.0)
        for g, (got, want) in enumerate(zip(e.lrs, r.lrs, strict=False))
    ]


def _outputs(key: str, r: Side, n: Side, e: Side, o: Side | None) -> list[Check]:
    ref = r.record.calls[key]
    got = e.record.calls.get(key)
    low = n.record.calls.get(key)
    mine = o.record.calls.get(key) if o else None
    out = []
    for j, want in enumerate(ref.outputs):
        out.append(
            check("forward", key, "output" if j == 0 else f"output {j}", ref.kind,
                  _at(got, "outputs", j), want, _at(low, "outputs", j), _at(mine, "outputs", j))
        )  # fmt: skip
    return out or [Check("forward", key, "output", ref.kind, 0.0, 0.0, 0.0, 0.0)]


def _gradients(key: str, r: Side, n: Side, e: Side, o: Side | None) -> list[Check]:
    ref = r.record.calls[key]
    got, low = e.record.calls.get(key), n.record.calls.get(key)
    mine = o.record.calls.get(key) if o else None
    out = [
        check("backward", key, f"input gradient {i}", ref.kind, _at(got, "grad_inputs", i),
              want, _at(low, "grad_inputs", i), _at(mine, "grad_inputs", i))
        for i, want in enumerate(ref.grad_inputs)
        if want is not None
    ]  # fmt: skip
    if key == ref.module:  # a module's own parameters, once (its first call)
        for name, want in r.grads.items():
            if owner(name) == key:
                out.append(
                    check("backward", key, f"gradient of {name}", ref.kind, e.grads.get(name),
                          want, n.grads.get(name), o.grads.get(name) if o else None)
                )  # fmt: skip
    return out


def _at(call, field_name: str, index: int):
    if call is None:
        return None
    values = getattr(call, field_name)
    return values[index] if index < len(values) else None


def _worst(checks: list[Check]) -> Check:
    return max(checks, key=lambda c: (c.parted, c.excess))


def first_parted(checks: list[Check]) -> Check | None:
    """The first check beyond its tolerance, in phase order, then each phase's order."""
    for phase in PHASES:
        parted = [c for c in checks if c.phase == phase and c.parted]
        if parted:
            return parted[0]
    return None


def referee(finding: Finding, reference: str) -> str | None:
    """Which framework the float64 NumPy computation of the diverging module agrees
    with, on the reference's input (and upstream gradient); None when the finding is
    not one module's forward or backward, "not refereed: ..." for a type NumPy lacks."""
    if finding.phase not in ("forward", "backward") or not finding.sides:
        return None
    r, e = finding.sides["reference"], finding.sides["engine"]
    call, got = r.record.calls[finding.module], e.record.calls.get(finding.module)
    prefix = f"{call.module}." if call.module else ""
    state = {
        k[len(prefix) :]: v
        for k, v in r.before[0].items()
        if k.startswith(prefix) and "." not in k[len(prefix) :]
    }
    try:
        outs, grads = get_backend("numpy").referee(
            call.kind, call.attributes, state, call.inputs, call.grad_outputs
        )
    except ConfigError as exc:
        return f"not refereed: {exc}"
    if finding.phase == "forward":
        want, mine, theirs = outs[0], call.outputs[0], got.outputs[0] if got else None
    else:
        want, mine, theirs = grads[0], call.grad_inputs[0], got.grad_inputs[0] if got else None
    off_reference, off_engine = distance(mine, want), distance(theirs, want)
    within = finding.tolerance
    said = (
        f"the NumPy float64 {call.kind} is {off_reference:.3g} from {reference} and "
        f"{off_engine:.3g} from {finding.engine}"
    )
    if off_engine > within >= off_reference:
        return f"{said}: {finding.engine} is off"
    if off_reference > within >= off_engine:
        return f"{said}: {reference} is off"
    return f"{said}: neither is within the tolerance {within:.3g} of it"
