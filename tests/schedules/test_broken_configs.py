"""Broken schedule configs: each must raise a one-line ConfigError naming the
scheduler and the argument at fault.

`VALID` holds a config that builds for every schedule and flavour; each case is
a copy of it with one thing broken (wrong type, out of range, missing, unknown,
or a per-group list of the wrong length).
"""

from __future__ import annotations

import copy
import math

import pytest

from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule, schedule_names

DROP = object()  # marks an argument to remove from the valid config


def member(name, **kwargs):
    return {"name": name, "kwargs": kwargs}


TWO = [member("StepLR", step_size=2), member("ExponentialLR", gamma=0.9)]

SHARED = {  # one class, so one valid config, for both flavours
    "LambdaLR": {"lr_lambda": "0.95 ** epoch"},
    "MultiplicativeLR": {"lr_lambda": "0.95"},
    "StepLR": {"step_size": 2, "gamma": 0.5},
    "ExponentialLR": {"gamma": 0.9},
    "CosineAnnealingLR": {"T_max": 4, "eta_min": 0.0},
    "CosineDecayLR": {"decay_steps": 4, "alpha": 0.1},
    "CyclicLR": {"base_lr": 0.1, "max_lr": 1.0, "step_size_up": 2, "step_size_down": 3,
                 "mode": "triangular", "gamma": 1.0, "scale_mode": "cycle",
                 "cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9},
    "OneCycleLR": {"max_lr": 1.0, "total_steps": 10, "pct_start": 0.3, "anneal_strategy": "cos",
                   "cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95,
                   "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False},
    "WarmupLR": {"scheduler": member("StepLR", step_size=2), "warmup_factor": 0.5,
                 "warmup_iters": 2, "warmup_method": "linear", "warmup_prefix": False},
    "ReduceLROnPlateau": {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 1e-4,
                          "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0, "eps": 1e-8},
    "WarmupStableDecayLR": {"total_steps": 10, "warmup_steps": 2, "decay_steps": 4},
    "CosineWithMinLR": {"total_steps": 6, "min_lr_ratio": 0.1},
    "CosineRestartsLR": {"t_initial": 4},
    "InverseSqrtLR": {"warmup_updates": 3},
    "NoisyLR": {"scheduler": member("StepLR", step_size=2), "noise_range": 1},
    "LinearWarmupLR": {"scheduler": member("StepLR", step_size=2), "warmup_steps": 2},
}  # fmt: skip
DISTINCT = {  # name: (torch config, OneFlow config)
    "MultiStepLR": ({"milestones": [2, 5], "gamma": 0.5},) * 2,
    "ConstantLR": ({"factor": 0.5, "total_iters": 3},) * 2,
    "LinearLR": ({"start_factor": 0.5, "end_factor": 1.0, "total_iters": 3},) * 2,
    "PolynomialLR": ({"total_iters": 4, "power": 1.0},
                     {"decay_batch": 4, "end_learning_rate": 1e-4, "power": 1.0, "cycle": False}),
    "CosineAnnealingWarmRestarts": ({"T_0": 2, "T_mult": 2, "eta_min": 0.0},
                                    {"T_0": 2, "T_mult": 2, "eta_min": 0.0, "decay_rate": 0.5,
                                     "restart_limit": 2}),
    "SequentialLR": ({"schedulers": TWO, "milestones": [2]},
                     {"schedulers": TWO, "milestones": [2], "interval_rescaling": False}),
    "ChainedScheduler": ({"schedulers": TWO},) * 2,
}  # fmt: skip
VALID = {(name, f): kw for name, kw in SHARED.items() for f in ("torch", "oneflow")}
for _name, (_torch, _oneflow) in DISTINCT.items():
    VALID[(_name, "torch")], VALID[(_name, "oneflow")] = _torch, _oneflow


def valid(name, flavor="torch"):
    return copy.deepcopy(VALID[(name, flavor)])


def evaluate(built, steps):
    """Every group's lr and momentum for steps 0 .. steps - 1 (nothing for the plateau rule)."""
    for schedule in built if isinstance(built, list) else []:
        for t in range(steps):
            schedule.lr(t, 1.0)
            schedule.momentum(t)


CASES = []


def case(name, arg, *changes, flavors=("torch",), n_groups=1, steps=0, expect=None, id=None):
    """A broken copy of the valid config; `changes` are (key, value) pairs, DROP removes."""
    for flavor in flavors:
        kwargs = valid(name, flavor)
        for key, value in changes:
            if value is DROP:
                kwargs.pop(key)
            else:
                kwargs[key] = value
        label = id or "-".join(f"{k}={v!r}" if v is not DROP else f"no-{k}" for k, v in changes)
        words = expect or (name, arg)
        CASES.append(pytest.param(name, flavor, kwargs, n_groups, steps, words,
                                  id=f"{flavor}-{name}-{label}"))  # fmt: skip


BOTH = ("torch", "oneflow")
NAN, INF = math.nan, math.inf

for _name in ("LambdaLR", "MultiplicativeLR"):
    case(_name, "lr_lambda", ("lr_lambda", 5))
    case(_name, "lr_lambda", ("lr_lambda", None))
    case(_name, "lr_lambda", ("lr_lambda", "__import__('os')"), id="import")
    case(_name, "lr_lambda", ("lr_lambda", "open('x').read()"), id="open")
    case(_name, "lr_lambda", ("lr_lambda", "0.5 ** ("), id="syntax")
    case(_name, "lr_lambda", ("lr_lambda", "foo * epoch"), id="unknown-name")
    case(_name, "lr_lambda", ("lr_lambda", DROP))
    case(_name, "gamma", ("gamma", 0.5))
    case(_name, "lr_lambda", ("lr_lambda", ["1.0"] * 3), n_groups=2, id="list-3-for-2")

case("StepLR", "step_size", ("step_size", 0))
case("StepLR", "step_size", ("step_size", -2))
case("StepLR", "step_size", ("step_size", 2.5))
case("StepLR", "step_size", ("step_size", "2"))
case("StepLR", "step_size", ("step_size", True))
case("StepLR", "gamma", ("gamma", -1))
case("StepLR", "gamma", ("gamma", 0))
case("StepLR", "gamma", ("gamma", NAN))
case("StepLR", "gamma", ("gamma", "0.1"))
case("StepLR", "gamma", ("gamma", [0.1, 0.2]), n_groups=2, id="not-per-group")
case("StepLR", "step_size", ("step_size", DROP))
case("StepLR", "milestones", ("milestones", [2]))

case("MultiStepLR", "milestones", ("milestones", "x"), flavors=BOTH)
case("MultiStepLR", "milestones", ("milestones", 5), flavors=BOTH)
case("MultiStepLR", "milestones", ("milestones", [1, -2]), flavors=BOTH)
case("MultiStepLR", "milestones", ("milestones", [1.5, 3]), flavors=BOTH)
case("MultiStepLR", "milestones", ("milestones", DROP), flavors=BOTH)
case("MultiStepLR", "gamma", ("gamma", 0), flavors=BOTH)
case("MultiStepLR", "step_size", ("step_size", 2), flavors=BOTH)
case("MultiStepLR", "milestones", ("milestones", [5, 2]), flavors=("oneflow",))
case("MultiStepLR", "milestones", ("milestones", [2, 2]), flavors=("oneflow",))

case("ConstantLR", "factor", ("factor", 1.5), flavors=BOTH)
case("ConstantLR", "factor", ("factor", -0.1), flavors=BOTH)
case("ConstantLR", "factor", ("factor", "0.5"), flavors=BOTH)
case("ConstantLR", "total_iters", ("total_iters", -1), flavors=BOTH)
case("ConstantLR", "total_iters", ("total_iters", 2.0), flavors=BOTH)
case("ConstantLR", "gamma", ("gamma", 0.5), flavors=BOTH)
case("ConstantLR", "factor", ("factor", 0), ("total_iters", 3))  # torch divides by it

case("LinearLR", "start_factor", ("start_factor", 1.5), flavors=BOTH)
case("LinearLR", "start_factor", ("start_factor", -0.1), flavors=BOTH)
case("LinearLR", "end_factor", ("end_factor", -0.5), flavors=BOTH)
case("LinearLR", "end_factor", ("end_factor", 1.5), flavors=BOTH)
case("LinearLR", "total_iters", ("total_iters", -1), flavors=BOTH)
case("LinearLR", "total_iters", ("total_iters", "3"), flavors=BOTH)
case("LinearLR", "factor", ("factor", 0.5), flavors=BOTH)
case("LinearLR", "start_factor", ("start_factor", 0))  # torch refuses 0, OneFlow allows it

case("ExponentialLR", "gamma", ("gamma", 0))
case("ExponentialLR", "gamma", ("gamma", -0.5))
case("ExponentialLR", "gamma", ("gamma", "0.9"))
case("ExponentialLR", "gamma", ("gamma", INF))
case("ExponentialLR", "gamma", ("gamma", DROP))
case("ExponentialLR", "step_size", ("step_size", 1))

case("PolynomialLR", "total_iters", ("total_iters", -1))
case("PolynomialLR", "total_iters", ("total_iters", 2.5))
case("PolynomialLR", "power", ("power", -1))
case("PolynomialLR", "power", ("power", "2"))
case("PolynomialLR", "decay_batch", ("decay_batch", 4))  # OneFlow's argument
OF = ("oneflow",)
case("PolynomialLR", "decay_batch", ("decay_batch", DROP), flavors=OF)
case("PolynomialLR", "decay_batch", ("decay_batch", 0), flavors=OF)
case("PolynomialLR", "decay_batch", ("decay_batch", 4.0), flavors=OF)
case("PolynomialLR", "end_learning_rate", ("end_learning_rate", "x"), flavors=OF)
case("PolynomialLR", "power", ("power", -1), flavors=OF)
case("PolynomialLR", "cycle", ("cycle", "yes"), flavors=OF)
case("PolynomialLR", "cycle", ("cycle", 1), flavors=OF)
case("PolynomialLR", "total_iters", ("total_iters", 4), flavors=OF)  # torch's argument

case("CosineAnnealingLR", "T_max", ("T_max", DROP))
case("CosineAnnealingLR", "T_max", ("T_max", 0))
case("CosineAnnealingLR", "T_max", ("T_max", 2.5))
case("CosineAnnealingLR", "eta_min", ("eta_min", "0"))
case("CosineAnnealingLR", "eta_min", ("eta_min", NAN))
case("CosineAnnealingLR", "gamma", ("gamma", 0.5))

CAWR = "CosineAnnealingWarmRestarts"
case(CAWR, "T_0", ("T_0", 0), flavors=BOTH)
case(CAWR, "T_0", ("T_0", 2.5), flavors=BOTH)
case(CAWR, "T_0", ("T_0", DROP), flavors=BOTH)
case(CAWR, "T_mult", ("T_mult", 1.5), flavors=BOTH)
case(CAWR, "T_mult", ("T_mult", 0), flavors=BOTH)
case(CAWR, "eta_min", ("eta_min", None), flavors=BOTH)
case(CAWR, "T_max", ("T_max", 4), flavors=BOTH)
case(CAWR, "decay_rate", ("decay_rate", 0.5))  # OneFlow-only arguments
case(CAWR, "restart_limit", ("restart_limit", 2))
case(CAWR, "decay_rate", ("decay_rate", -1), flavors=OF)
case(CAWR, "restart_limit", ("restart_limit", -1), flavors=OF)
case(CAWR, "restart_limit", ("restart_limit", 1.5), flavors=OF)

case("CosineDecayLR", "decay_steps", ("decay_steps", DROP), flavors=BOTH)
case("CosineDecayLR", "decay_steps", ("decay_steps", 0), flavors=BOTH)
case("CosineDecayLR", "decay_steps", ("decay_steps", 2.5), flavors=BOTH)
case("CosineDecayLR", "alpha", ("alpha", "x"), flavors=BOTH)
case("CosineDecayLR", "T_max", ("T_max", 4), flavors=BOTH)

case("CyclicLR", "mode", ("mode", "bogus"))
case("CyclicLR", "max_lr", ("max_lr", DROP))
case("CyclicLR", "base_lr", ("base_lr", DROP))
case("CyclicLR", "base_lr", ("base_lr", "0.1"))
case("CyclicLR", "step_size_up", ("step_size_up", 0))
case("CyclicLR", "step_size_down", ("step_size_down", -1))
case("CyclicLR", "gamma", ("gamma", 0), ("mode", "exp_range"))
case("CyclicLR", "scale_fn", ("scale_fn", 3))
case("CyclicLR", "scale_fn", ("scale_fn", "__import__('os')"), id="scale_fn-import")
case("CyclicLR", "scale_mode", ("scale_fn", "1.0"), ("scale_mode", "bogus"))
case("CyclicLR", "cycle_momentum", ("cycle_momentum", "yes"))
case("CyclicLR", "base_momentum", ("base_momentum", "x"))
case("CyclicLR", "base_lr", ("base_lr", [0.1]), n_groups=2)
case("CyclicLR", "max_lr", ("max_lr", [1.0, 2.0, 3.0]), n_groups=2)
case("CyclicLR", "max_momentum", ("max_momentum", [0.9] * 3), n_groups=2)
case("CyclicLR", "max_lr", ("max_lr", [[1.0], [2.0]]), n_groups=2, id="nested-list")
case("CyclicLR", "T_max", ("T_max", 4))

case("OneCycleLR", "pct_start", ("pct_start", 1.5))
case("OneCycleLR", "pct_start", ("pct_start", -0.1))
case("OneCycleLR", "total_steps", ("total_steps", DROP))
case("OneCycleLR", "total_steps", ("total_steps", 0))
case("OneCycleLR", "total_steps", ("total_steps", 10.0))
case("OneCycleLR", "epochs", ("total_steps", DROP), ("epochs", 0), ("steps_per_epoch", 5))
case("OneCycleLR", "steps_per_epoch", ("total_steps", DROP), ("epochs", 2), ("steps_per_epoch", 0))
case("OneCycleLR", "anneal_strategy", ("anneal_strategy", "bogus"))
case("OneCycleLR", "div_factor", ("div_factor", 0))
case("OneCycleLR", "final_div_factor", ("final_div_factor", -1))
case("OneCycleLR", "three_phase", ("three_phase", "no"))
case("OneCycleLR", "cycle_momentum", ("cycle_momentum", 1))
case("OneCycleLR", "max_lr", ("max_lr", [1.0, 2.0, 3.0]), n_groups=2)
case("OneCycleLR", "base_momentum", ("base_momentum", [0.85]), n_groups=2)
case("OneCycleLR", "max_lr", ("max_lr", DROP))
case("OneCycleLR", "step_size_up", ("step_size_up", 2))
case("OneCycleLR", "total_steps", steps=12, id="stepped-past-total_steps")

for _name in ("SequentialLR", "ChainedScheduler"):
    case(_name, "schedulers", ("schedulers", "x"), flavors=BOTH)
    case(_name, "schedulers", ("schedulers", 5), flavors=BOTH)
    case(_name, "schedulers", ("schedulers", []), flavors=BOTH)
    case(_name, "schedulers", ("schedulers", DROP), flavors=BOTH)
    case(_name, "schedulers", ("schedulers", ["StepLR"]), flavors=BOTH, id="entry-not-a-mapping")
    case(_name, "schedulers", ("schedulers", [{"name": "StepLR", "kwarg": {}}]), flavors=BOTH,
         id="entry-unknown-key")  # fmt: skip
    case(_name, "step_size", ("schedulers", [member("StepLR", step_size=0)] * 2), flavors=BOTH,
         expect=("StepLR", "step_size"), id="member-bad-argument")  # fmt: skip

# Errors inside a member's entry must still name the composite and its argument
# (`schedulers`), and be ConfigErrors even where the entry has the wrong shape.
SEQ, CHAIN = "SequentialLR", "ChainedScheduler"
case(SEQ, "schedulers", ("schedulers", [member("Bogus"), TWO[1]]), flavors=BOTH,
     expect=(SEQ, "schedulers", "Bogus"), id="member-unknown-name")  # fmt: skip
case(CHAIN, "schedulers", ("schedulers", [member("Bogus"), TWO[1]]),
     expect=(CHAIN, "schedulers", "Bogus"), id="member-unknown-name")  # fmt: skip
case(SEQ, "schedulers", ("schedulers", [{"name": 5}, TWO[1]]), id="member-name-not-str")
case(SEQ, "schedulers", ("schedulers", [member("ReduceLROnPlateau"), TWO[1]]),
     expect=(SEQ, "schedulers", "ReduceLROnPlateau"), id="member-plateau")  # fmt: skip
case(SEQ, "schedulers", ("schedulers", [{**TWO[0], "flavor": "jax"}, TWO[1]]),
     id="member-flavor")  # fmt: skip
case(SEQ, "schedulers", ("schedulers", [{"name": "StepLR", "kwargs": 5}, TWO[1]]),
     flavors=BOTH, id="member-kwargs-int")  # fmt: skip
case(CHAIN, "schedulers", ("schedulers", [{"name": "StepLR", "kwargs": "ab"}, TWO[1]]),
     flavors=OF, id="member-kwargs-str")  # fmt: skip

case("SequentialLR", "milestones", ("milestones", [2, 4]), flavors=BOTH, id="count-mismatch")
case("SequentialLR", "milestones", ("milestones", []), flavors=BOTH, id="too-few")
case("SequentialLR", "milestones", ("milestones", "x"), flavors=BOTH)
case("SequentialLR", "milestones", ("milestones", [-1]), flavors=BOTH)
case("SequentialLR", "milestones", ("milestones", DROP), flavors=BOTH)
case("SequentialLR", "interval_rescaling", ("interval_rescaling", True))  # OneFlow's argument
case("SequentialLR", "interval_rescaling", ("interval_rescaling", "yes"), flavors=OF)
case("SequentialLR", "interval_rescaling", ("interval_rescaling", [True, False]), flavors=OF)
case("SequentialLR", "interval_rescaling", ("interval_rescaling", [1]), flavors=OF)
case("ChainedScheduler", "milestones", ("milestones", [2]), flavors=BOTH)

case("WarmupLR", "warmup_factor", ("warmup_factor", 1.5), flavors=BOTH)
case("WarmupLR", "warmup_factor", ("warmup_factor", -0.1), flavors=BOTH)
case("WarmupLR", "warmup_iters", ("warmup_iters", 2.5), flavors=BOTH)
case("WarmupLR", "warmup_iters", ("scheduler", DROP), ("warmup_iters", 0), flavors=BOTH)
case("WarmupLR", "warmup_method", ("warmup_method", "cosine"), flavors=BOTH)
case("WarmupLR", "warmup_prefix", ("warmup_prefix", "no"), flavors=BOTH)
case("WarmupLR", "scheduler", ("scheduler", "StepLR"), flavors=BOTH)
case("WarmupLR", "scheduler", ("scheduler", [TWO[0]]), flavors=BOTH, id="scheduler-list")
case("WarmupLR", "step_size", ("scheduler", member("StepLR", step_size=0)), flavors=BOTH,
     expect=("StepLR", "step_size"))  # fmt: skip
case("WarmupLR", "scheduler", ("scheduler", member("Bogus")), flavors=OF,
     expect=("WarmupLR", "scheduler", "Bogus"), id="scheduler-unknown-name")  # fmt: skip
case("WarmupLR", "scheduler", ("scheduler", {"name": "StepLR", "kwargs": 5}), flavors=OF,
     id="scheduler-kwargs-int")  # fmt: skip
case("WarmupLR", "milestones", ("milestones", [2]), flavors=BOTH)

PLATEAU = "ReduceLROnPlateau"
case(PLATEAU, "mode", ("mode", "avg"))
case(PLATEAU, "factor", ("factor", 1.0))
case(PLATEAU, "factor", ("factor", -0.1))
case(PLATEAU, "factor", ("factor", "0.5"))
case(PLATEAU, "patience", ("patience", -1))
case(PLATEAU, "patience", ("patience", 1.5))
case(PLATEAU, "threshold", ("threshold", -1))
case(PLATEAU, "threshold_mode", ("threshold_mode", "pct"))
case(PLATEAU, "cooldown", ("cooldown", -1))
case(PLATEAU, "min_lr", ("min_lr", [0.0, 0.0, 0.0]), n_groups=2)
case(PLATEAU, "min_lr", ("min_lr", [0.0]), n_groups=2)
case(PLATEAU, "min_lr", ("min_lr", -1))
case(PLATEAU, "min_lr", ("min_lr", [0.1, -1]), n_groups=2)
case(PLATEAU, "eps", ("eps", -1))
case(PLATEAU, "verbose", ("verbose", True))


def check_message(error: ConfigError, words) -> None:
    message = str(error)
    assert "\n" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize(("name", "flavor", "kwargs", "n_groups", "steps", "words"), CASES)
def test_broken_config_raises_one_line_config_error(name, flavor, kwargs, n_groups, steps, words):
    with pytest.raises(ConfigError) as info:
        evaluate(build_schedule(name, flavor, kwargs, n_groups), steps)
    check_message(info.value, words)


@pytest.mark.parametrize(
    ("name", "flavor"), sorted(VALID), ids=[f"{f}-{n}" for n, f in sorted(VALID)]
)
def test_valid_config_builds(name, flavor):
    for n_groups in (1, 2):
        evaluate(build_schedule(name, flavor, valid(name, flavor), n_groups), 11)


@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
def test_every_schedule_has_a_valid_config(flavor):
    assert set(schedule_names(flavor)) | {PLATEAU} <= {n for n, f in VALID if f == flavor}


@pytest.mark.parametrize(
    ("kwargs", "steps"),
    [({"pct_start": 0.1}, 10),  # warmup phase ends at 0.1 * 10 - 1 = 0: zero length
     ({"pct_start": 0.1, "three_phase": True}, 10),
     ({"pct_start": 1.0}, 11)],  # the annealing phase starts at total_steps - 1: zero length
    ids=["warmup-zero-length", "three-phase-zero-length", "anneal-zero-length"],
)  # fmt: skip
def test_one_cycle_zero_length_phase_is_refused_or_works(kwargs, steps):
    # torch divides by zero here; the engine must refuse the config in one line or
    # give an lr for every step 0 .. total_steps, never crash with ZeroDivisionError.
    try:
        built = build_schedule("OneCycleLR", "torch", {**valid("OneCycleLR"), **kwargs})
    except ConfigError as error:
        check_message(error, ("OneCycleLR", "pct_start"))
        return
    evaluate(built, steps)


@pytest.mark.parametrize("kwargs", [5, "step_size", ["step_size", 2]], ids=["int", "str", "list"])
def test_kwargs_must_be_a_mapping(kwargs):
    with pytest.raises(ConfigError) as info:
        build_schedule("StepLR", "torch", kwargs)
    check_message(info.value, ("StepLR", "kwargs"))


def test_unknown_names_and_flavors():
    with pytest.raises(ConfigError) as info:
        build_schedule("StepLr", "torch", {"step_size": 2})
    check_message(info.value, ("StepLr", "StepLR"))  # names the typo and lists the known
    with pytest.raises(ConfigError) as info:
        build_schedule("StepLR", "jax", {"step_size": 2})
    check_message(info.value, ("flavor", "jax"))
    with pytest.raises(ConfigError) as info:
        build_schedule(None, "torch", {})
    check_message(info.value, ("name",))
