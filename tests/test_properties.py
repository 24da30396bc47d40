"""Properties of the schedule engine over random valid configs, both flavours.

For every schedule name, (a) the pure function `Schedule.lr(t, base)` equals what
the stateful PyTorch-API scheduler writes into the optimizer after t steps
(momentum too), (b) a scheduler's state_dict survives JSON and a reload mid-run,
and (c) the pure functions keep no hidden state: any evaluation order gives the
same values. ReduceLROnPlateau: the stateful class is the fold of the pure rule.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from dualtrain import lr_scheduler
from dualtrain.errors import ConfigError
from dualtrain.schedules import (
    FLAVORS,
    ReduceLROnPlateau,
    build_schedule,
    schedule_class,
    schedule_names,
)

MAX_STEPS = 60
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMPOSITES = ("SequentialLR", "ChainedScheduler", "WarmupLR")
WRAPPERS = ("NoisyLR", "LinearWarmupLR")  # wrap one schedule, built per group


class Opt:
    """An optimizer stand-in: param_groups and defaults, nothing else."""

    def __init__(self, lrs, momentum=0.9):
        self.defaults = {"lr": lrs[0], "momentum": momentum}
        self.param_groups = [{"lr": lr, "momentum": momentum} for lr in lrs]


def close(a, b):
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


# --- strategies: one valid config per name and flavour -------------------------------

LAMBDAS = [
    "0.95 ** epoch",
    "1 / (epoch + 1)",
    "min(1.0, (step + 1) / 5)",
    "0.5 if epoch < 3 else 0.1",
    "0.5 * (1 + cos(pi * x / 20))",
]
FACTORS = ["0.9", "0.95 ** (epoch % 2)", "1.0 if epoch < 4 else 0.8", "1 - 0.01 * step"]
unit = st.floats(0.0, 1.0)
positive_unit = st.floats(0.05, 1.0)
gammas = st.floats(0.5, 1.2)
small_lr = st.floats(1e-4, 1.0)


def per_group(strategy, n_groups):
    """One shared value, or a list with one value per param group."""
    if n_groups == 1:
        return strategy
    return strategy | st.lists(strategy, min_size=n_groups, max_size=n_groups)


def maybe(draw, kwargs, key, strategy):
    """Set `key` from `strategy` half the time (else the default applies)."""
    if draw(st.booleans()):
        kwargs[key] = draw(strategy)


@st.composite
def simple_kwargs(draw, name, flavor, n_groups, member=False):
    """Valid keyword arguments for non-composite schedule `name` in `flavor`."""
    kw = {}
    torch = flavor == "torch"
    if name == "LambdaLR":
        kw["lr_lambda"] = draw(per_group(st.sampled_from(LAMBDAS), n_groups))
    elif name == "MultiplicativeLR":
        kw["lr_lambda"] = draw(per_group(st.sampled_from(FACTORS), n_groups))
    elif name == "StepLR":
        kw["step_size"] = draw(st.integers(1, 10))
        maybe(draw, kw, "gamma", gammas)
    elif name == "MultiStepLR":
        values = st.integers(0, MAX_STEPS)
        if torch:  # torch takes any order and counts a repeated milestone twice
            kw["milestones"] = draw(st.lists(values, max_size=5))
        else:
            kw["milestones"] = sorted(draw(st.sets(values, max_size=5)))
        maybe(draw, kw, "gamma", gammas)
    elif name == "ConstantLR":
        kw["total_iters"] = draw(st.integers(0, 10))
        low = 0.05 if torch and kw["total_iters"] else 0.0  # torch divides by factor
        kw["factor"] = draw(st.floats(low, 1.0))
    elif name == "LinearLR":
        kw["start_factor"] = draw(positive_unit if torch else unit)
        maybe(draw, kw, "end_factor", unit)
        maybe(draw, kw, "total_iters", st.integers(0, 10))
    elif name == "ExponentialLR":
        kw["gamma"] = draw(gammas)
    elif name == "PolynomialLR" and torch:
        kw["total_iters"] = draw(st.integers(1, 30))
        maybe(draw, kw, "power", st.floats(0.0, 3.0))
    elif name == "PolynomialLR":
        kw["decay_batch"] = draw(st.integers(1, 30))
        maybe(draw, kw, "end_learning_rate", st.floats(0.0, 1e-3))
        maybe(draw, kw, "power", st.floats(0.0, 3.0))
        maybe(draw, kw, "cycle", st.booleans())
    elif name == "CosineAnnealingLR":
        kw["T_max"] = draw(st.integers(1, 20))
        maybe(draw, kw, "eta_min", st.floats(0.0, 1e-3))
    elif name == "CosineAnnealingWarmRestarts":
        kw["T_0"] = draw(st.integers(1, 10))
        maybe(draw, kw, "T_mult", st.integers(1, 3))
        maybe(draw, kw, "eta_min", st.floats(0.0, 1e-3))
        if not torch:
            maybe(draw, kw, "decay_rate", st.floats(0.0, 1.0))
            maybe(draw, kw, "restart_limit", st.integers(0, 4))
    elif name == "CosineDecayLR":
        kw["decay_steps"] = draw(st.integers(1, 30))
        maybe(draw, kw, "alpha", unit)
    elif name == "CyclicLR":
        kw["base_lr"] = draw(per_group(st.floats(1e-4, 0.1), n_groups))
        kw["max_lr"] = draw(per_group(st.floats(0.1, 2.0), n_groups))
        kw["step_size_up"] = draw(st.integers(1, 10))
        maybe(draw, kw, "step_size_down", st.none() | st.integers(1, 10))
        maybe(draw, kw, "mode", st.sampled_from(("triangular", "triangular2", "exp_range")))
        maybe(draw, kw, "gamma", st.floats(0.9, 1.0))
        if draw(st.booleans()):
            kw["scale_fn"] = draw(st.sampled_from(["1 / (2.0 ** (x - 1))", "0.99 ** x"]))
            kw["scale_mode"] = draw(st.sampled_from(("cycle", "iterations")))
        maybe(draw, kw, "cycle_momentum", st.booleans())
        maybe(draw, kw, "base_momentum", per_group(st.floats(0.5, 0.85), n_groups))
        maybe(draw, kw, "max_momentum", per_group(st.floats(0.85, 0.99), n_groups))
    elif name == "OneCycleLR":
        # Members never run past their total_steps; a top-level one is capped by `limit`.
        kw["max_lr"] = draw(per_group(st.floats(0.01, 2.0), n_groups))
        total = draw(st.integers(MAX_STEPS, 100) if member else st.integers(10, 80))
        if draw(st.booleans()):
            kw["total_steps"] = total
        else:
            kw["epochs"], kw["steps_per_epoch"] = total, 1
        # pct_start * total_steps > 1, so no phase is empty (torch divides by zero there).
        maybe(draw, kw, "pct_start", st.sampled_from((0.15, 0.25, 0.3, 0.4, 0.45)))
        maybe(draw, kw, "anneal_strategy", st.sampled_from(("cos", "linear")))
        maybe(draw, kw, "cycle_momentum", st.booleans())
        maybe(draw, kw, "base_momentum", per_group(st.floats(0.5, 0.85), n_groups))
        maybe(draw, kw, "max_momentum", per_group(st.floats(0.85, 0.99), n_groups))
        maybe(draw, kw, "div_factor", st.floats(1.0, 100.0))
        maybe(draw, kw, "final_div_factor", st.floats(1.0, 1e4))
        maybe(draw, kw, "three_phase", st.booleans())
    elif name == "WarmupStableDecayLR":
        kw["total_steps"] = draw(st.integers(1, 40))
        maybe(draw, kw, "warmup_steps", st.integers(0, kw["total_steps"] // 3) | st.just(0.2))
        maybe(draw, kw, "decay_steps", st.integers(0, kw["total_steps"] // 3) | st.just(0.3))
        maybe(draw, kw, "warmup_start_factor", unit)
        maybe(draw, kw, "min_lr_ratio", unit)
        maybe(draw, kw, "decay", st.sampled_from(("linear", "cosine", "1-sqrt")))
    elif name == "CosineWithMinLR":
        kw["total_steps"] = draw(st.integers(1, 40))
        maybe(draw, kw, "warmup_steps", st.integers(0, kw["total_steps"] - 1))
        if draw(st.booleans()):
            kw["min_lr"] = draw(per_group(st.floats(0.0, 1e-3), n_groups))
        else:
            kw["min_lr_ratio"] = draw(unit)
        maybe(draw, kw, "warmup_start_factor", unit)
    elif name == "CosineRestartsLR":
        kw["t_initial"] = draw(st.integers(1, 20))
        maybe(draw, kw, "lr_min", st.floats(0.0, 1e-3))
        maybe(draw, kw, "cycle_mul", st.sampled_from((1.0, 1.5, 2)))
        maybe(draw, kw, "cycle_decay", st.floats(0.1, 1.0))
        maybe(draw, kw, "cycle_limit", st.integers(1, 5))
        maybe(draw, kw, "warmup_t", st.integers(0, 10))
        maybe(draw, kw, "warmup_lr_init", st.floats(0.0, 1e-3))
        maybe(draw, kw, "warmup_prefix", st.booleans())
        maybe(draw, kw, "k_decay", st.floats(0.5, 2.0))
    elif name == "InverseSqrtLR":
        kw["warmup_updates"] = draw(st.integers(1, 20))
        maybe(draw, kw, "warmup_init_lr", per_group(st.floats(0.0, 1e-3), n_groups))
    elif name in WRAPPERS:
        # The wrapped config holds no per-group lists: the PyTorch-API class builds it
        # for one group. Its flavour is named, as that class does not pass its own on.
        inner = draw(st.sampled_from([n for n in SIMPLE if n not in WRAPPERS]))
        inner_kwargs = draw(simple_kwargs(inner, flavor, 1, member=True))
        kw["scheduler"] = {"name": inner, "kwargs": inner_kwargs, "flavor": flavor}
        if name == "NoisyLR":
            start = st.integers(0, MAX_STEPS)
            maybe(
                draw, kw, "noise_range", start | st.lists(start, min_size=2, max_size=2).map(sorted)
            )
            maybe(draw, kw, "noise_pct", st.floats(0.05, 1.0))
            maybe(draw, kw, "noise_std", st.floats(0.01, 1.0))
            maybe(draw, kw, "noise_seed", st.integers(0, 2**32))
            maybe(draw, kw, "noise_type", st.sampled_from(("normal", "uniform")))
        else:
            maybe(draw, kw, "warmup_steps", st.integers(0, 10))
            maybe(draw, kw, "warmup_start_factor", unit)
            maybe(draw, kw, "warmup_method", st.sampled_from(("linear", "constant")))
    else:
        raise AssertionError(f"no strategy for {name}")
    return kw


SIMPLE = [n for n in schedule_names() if n not in COMPOSITES]


@st.composite
def member_spec(draw, flavor, n_groups, depth, closed_form=False):
    names = SIMPLE + (list(COMPOSITES) if depth < 2 else [])
    if flavor == "oneflow" or closed_form:  # OneFlow composes closed forms only
        names = [n for n in names if schedule_class(n, flavor).oneflow_composable]
    name = draw(st.sampled_from(names))
    return {"name": name, "kwargs": draw(kwargs_for(name, flavor, n_groups, depth, True))}


@st.composite
def kwargs_for(draw, name, flavor, n_groups, depth=0, member=False):
    if name not in COMPOSITES:
        return draw(simple_kwargs(name, flavor, n_groups, member))
    members = st.lists(member_spec(flavor, n_groups, depth + 1), min_size=1, max_size=3)
    if name == "ChainedScheduler":
        return {"schedulers": draw(members)}
    if name == "SequentialLR":
        specs = draw(members)
        cuts = draw(st.sets(st.integers(1, 40), min_size=len(specs) - 1, max_size=len(specs) - 1))
        kw = {"schedulers": specs, "milestones": sorted(cuts)}
        if flavor == "oneflow" and draw(st.booleans()):
            rescale = st.booleans() | st.lists(
                st.booleans(), min_size=len(cuts), max_size=len(cuts)
            )
            kw["interval_rescaling"] = draw(rescale)
        return kw
    kw = {"warmup_iters": draw(st.integers(0, 10))}
    kw["scheduler"] = draw(member_spec(flavor, n_groups, depth + 1, closed_form=True))
    if kw["warmup_iters"] and draw(st.booleans()):
        kw["scheduler"] = None
    maybe(draw, kw, "warmup_factor", unit)
    maybe(draw, kw, "warmup_method", st.sampled_from(("linear", "constant")))
    maybe(draw, kw, "warmup_prefix", st.booleans())
    return kw


@st.composite
def configs(draw, names=None):
    """(name, flavor, kwargs, base lrs, number of steps to run)."""
    flavor = draw(st.sampled_from(FLAVORS))
    name = draw(st.sampled_from(names or schedule_names(flavor)))
    bases = draw(st.lists(small_lr, min_size=1, max_size=3))
    kwargs = draw(kwargs_for(name, flavor, len(bases)))
    if "WarmupLR" in json.dumps([name, kwargs]):
        bases = [bases[0]] * len(bases)  # a warmup into a scheduler takes one lr, as OneFlow's
    limit = MAX_STEPS
    if name == "OneCycleLR":
        total = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
        limit = min(limit, total + 1)
    return name, flavor, kwargs, bases, draw(st.integers(1, limit))


def build(name, flavor, kwargs, n_groups):
    schedules = build_schedule(name, flavor, kwargs, n_groups)
    assert isinstance(schedules, list) and len(schedules) == n_groups
    return schedules


def refusing_mixed_warmup(make, *args, **kwargs):
    """make(*args); a WarmupLR that sees groups with different lrs (a OneCycleLR
    member before it may set them) refuses them, as OneFlow's: skip that example."""
    try:
        return make(*args, **kwargs)
    except ConfigError as error:
        assert "WarmupLR" in str(error) and "one lr for all param groups" in str(error)
        reject()


def named_scheduler(opt, name, flavor, kwargs):
    """The named PyTorch-API class, composites built from stateful member schedulers."""
    if name not in COMPOSITES:
        return getattr(lr_scheduler, name)(opt, flavor=flavor, **kwargs)
    if name == "WarmupLR":
        inner = kwargs["scheduler"]
        target = opt if inner is None else member_scheduler(opt, flavor, inner)
        rest = {k: v for k, v in kwargs.items() if k != "scheduler"}
        return lr_scheduler.WarmupLR(target, **rest)
    members = [member_scheduler(opt, flavor, spec) for spec in kwargs["schedulers"]]
    if name == "ChainedScheduler":
        return lr_scheduler.ChainedScheduler(members, flavor=flavor)
    rest = {k: v for k, v in kwargs.items() if k != "schedulers"}
    return lr_scheduler.SequentialLR(opt, members, flavor=flavor, **rest)


def member_scheduler(opt, flavor, spec):
    return named_scheduler(opt, spec["name"], flavor, spec["kwargs"])


def expected_rows(schedules, bases, steps, momentum0):
    """Per step: per group (lr, momentum the group holds), from the pure functions."""
    held = list(momentum0)
    rows = []
    for t in range(steps):
        for g, schedule in enumerate(schedules):
            value = schedule.momentum(t)
            held[g] = held[g] if value is None else value
        rows.append([(s.lr(t, b), m) for s, b, m in zip(schedules, bases, held, strict=True)])
    return rows


def observed(opt):
    return [(g["lr"], g["momentum"]) for g in opt.param_groups]


def assert_rows_equal(got, want, where):
    for g, ((lr, mom), (lr_w, mom_w)) in enumerate(zip(got, want, strict=True)):
        assert close(lr, lr_w), f"{where}: group {g} lr {lr!r} != pure {lr_w!r}"
        assert close(mom, mom_w), f"{where}: group {g} momentum {mom!r} != pure {mom_w!r}"


# --- (a) pure function == stateful scheduler ----------------------------------------


@SETTINGS
@given(configs(), st.booleans())
def test_pure_function_equals_stateful_scheduler(config, named):
    name, flavor, kwargs, bases, steps = config
    opt = Opt(bases)
    if named:
        sched = refusing_mixed_warmup(named_scheduler, opt, name, flavor, kwargs)
        # Member schedulers may set momentum while they are built, as in torch:
        # where the composite sets none at step 0, the group keeps that value.
        start = [g["momentum"] for g in opt.param_groups]
    else:
        sched = refusing_mixed_warmup(
            lr_scheduler.LRScheduler, opt, build(name, flavor, kwargs, len(bases)), flavor=flavor
        )
        start = [0.9] * len(bases)
    # The pure function counts from the group's initial_lr, which CyclicLR and
    # OneCycleLR may have set while being built (as torch's do).
    bases = [g["initial_lr"] for g in opt.param_groups]
    want = expected_rows(build(name, flavor, kwargs, len(bases)), bases, steps, start)
    assert sched.last_epoch == 0
    for t in range(steps):
        if t:
            sched.step()
        assert sched.last_epoch == t
        assert_rows_equal(observed(opt), want[t], f"{name}/{flavor} step {t}")
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]


# --- (b) state_dict round trip mid-run ----------------------------------------------


@SETTINGS
@given(configs(), st.data())
def test_state_dict_round_trip(config, data):
    name, flavor, kwargs, bases, steps = config
    k = data.draw(st.integers(0, steps - 1), label="k")
    opt_a = Opt(bases)
    a = refusing_mixed_warmup(
        lr_scheduler.LRScheduler, opt_a, build(name, flavor, kwargs, len(bases)), flavor=flavor
    )
    for _ in range(k):
        a.step()
    state = a.state_dict()
    restored = json.loads(json.dumps(state))
    assert restored == state
    opt_b = Opt(bases)
    b = lr_scheduler.LRScheduler(opt_b, build(name, flavor, kwargs, len(bases)), flavor=flavor)
    b.load_state_dict(restored)
    for ga, gb in zip(opt_a.param_groups, opt_b.param_groups, strict=True):
        gb["lr"], gb["momentum"] = ga["lr"], ga["momentum"]
    assert b.last_epoch == a.last_epoch == k
    assert b.get_last_lr() == a.get_last_lr()
    assert b.state_dict() == state
    for _ in range(k + 1, steps):
        a.step()
        b.step()
        assert observed(opt_b) == observed(opt_a)
        assert b.get_last_lr() == a.get_last_lr()
        assert b.state_dict() == a.state_dict()


# --- (c) no hidden state in the pure functions --------------------------------------


def table(schedules, bases, order):
    return {
        t: [(s.lr(t, b), s.momentum(t)) for s, b in zip(schedules, bases, strict=True)]
        for t in order
    }


@SETTINGS
@given(configs(), st.data())
def test_evaluation_order_does_not_matter(config, data):
    name, flavor, kwargs, bases, steps = config
    n = len(bases)
    ascending = table(build(name, flavor, kwargs, n), bases, range(steps))
    descending = table(build(name, flavor, kwargs, n), bases, reversed(range(steps)))
    assert descending == ascending
    shuffled = data.draw(st.permutations(range(steps)), label="order")
    assert table(build(name, flavor, kwargs, n), bases, shuffled) == ascending
    # The same objects again, in yet another order, after both passes above.
    reused = build(name, flavor, kwargs, n)
    table(reused, bases, range(steps))
    assert table(reused, bases, shuffled[::-1]) == ascending
    # One schedule asked about another base lr in between keeps both apart.
    other = [b * 3.0 for b in bases]
    mixed = build(name, flavor, kwargs, n)
    alone = table(build(name, flavor, kwargs, n), other, range(steps))
    for t in shuffled:
        assert table(mixed, other, [t]) == {t: alone[t]}
        assert table(mixed, bases, [t]) == {t: ascending[t]}


# --- ReduceLROnPlateau ----------------------------------------------------------------


@st.composite
def plateau_configs(draw):
    bases = draw(st.lists(small_lr, min_size=1, max_size=3))
    kw = {}
    maybe(draw, kw, "mode", st.sampled_from(("min", "max")))
    maybe(draw, kw, "factor", st.floats(0.0, 0.99))
    kw["patience"] = draw(st.integers(0, 3) | st.just(10))
    maybe(draw, kw, "threshold", st.floats(0.0, 0.1))
    maybe(draw, kw, "threshold_mode", st.sampled_from(("rel", "abs")))
    maybe(draw, kw, "cooldown", st.integers(0, 4))
    maybe(draw, kw, "min_lr", per_group(st.floats(0.0, 1e-3), len(bases)))
    maybe(draw, kw, "eps", st.floats(0.0, 1e-6))
    # Few distinct values, so plateaus, ties and improvements all happen.
    metric = st.sampled_from((1.0, 1.0, 1.0, 0.5, 2.0)) | st.floats(-10.0, 10.0)
    metrics = draw(st.lists(metric, max_size=MAX_STEPS))
    return bases, kw, metrics


@settings(SETTINGS, max_examples=300)
@given(plateau_configs(), st.data())
def test_plateau_is_the_fold_of_the_pure_rule(config, data):
    bases, kwargs, metrics = config
    rule = build_schedule("ReduceLROnPlateau", "torch", kwargs, len(bases))
    assert isinstance(rule, ReduceLROnPlateau)
    opt = Opt(bases)
    sched = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    state = rule.initial_state(bases)
    assert sched.get_last_lr() == list(bases)
    k = data.draw(st.integers(0, len(metrics)), label="k")
    resumed = None
    for i, metric in enumerate(metrics):
        if i == k:
            saved = sched.state_dict()
            text = json.dumps(saved)  # inf as the initial best is Python-JSON's Infinity
            opt_b = Opt(bases)
            resumed = lr_scheduler.ReduceLROnPlateau(opt_b, **kwargs)
            resumed.load_state_dict(json.loads(text))
            for ga, gb in zip(opt.param_groups, opt_b.param_groups, strict=True):
                gb["lr"] = ga["lr"]
            assert resumed.state_dict() == saved
        state = rule.step(state, metric)
        sched.step(metric)
        assert [g["lr"] for g in opt.param_groups] == list(state.lrs)
        assert sched.get_last_lr() == list(state.lrs)
        assert sched.last_epoch == state.last_epoch == i + 1
        if resumed is not None:
            resumed.step(metric)
            assert [g["lr"] for g in opt_b.param_groups] == list(state.lrs)
            assert resumed.state_dict() == sched.state_dict()
            assert resumed.state == sched.state
    assert all(lr <= base and lr >= 0 for lr, base in zip(state.lrs, bases, strict=True)), (
        "ReduceLROnPlateau only ever lowers the lr"
    )


@settings(max_examples=5, deadline=None)
@given(st.data())
def test_strategies_cover_every_name(data):
    """Every registered name has a strategy in both flavours, and its configs build."""
    for flavor in FLAVORS:
        for name in schedule_names(flavor):
            kwargs = data.draw(kwargs_for(name, flavor, 2), label=f"{flavor} {name}")
            schedules = build(name, flavor, kwargs, 2)
            assert all(math.isfinite(s.lr(0, 0.1)) for s in schedules)
