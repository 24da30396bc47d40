"""Schedules that neither framework ships (dualtrain/schedules/modern.py).

Expected values are written out from each schedule's published formula (see
docs/modern_schedules.md), or as literal lists worked out on paper; NoisyLR's
noise is drawn here straight from NumPy's generator seeded by [seed, step]. The
engine is only ever the thing under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualtrain import lr_scheduler
from dualtrain.cli import main
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule

REL = 1e-12
PROPS = settings(max_examples=200, deadline=None)
NEW = (
    "WarmupStableDecayLR",
    "CosineWithMinLR",
    "CosineRestartsLR",
    "InverseSqrtLR",
    "NoisyLR",
    "LinearWarmupLR",
)


def member(name, **kwargs):
    return {"name": name, "kwargs": kwargs}


def run(name, kwargs, steps, base=1.0, n_groups=1, group=0, flavor="torch"):
    schedules = build_schedule(name, flavor, kwargs, n_groups)
    return [schedules[group].lr(t, base) for t in range(steps)]


def lrs(name, kwargs, steps, base=1.0):
    [schedule] = build_schedule(name, "torch", kwargs)
    return [schedule.lr(t, base) for t in range(steps)]


def assert_close(got, want):
    assert len(got) == len(want), (got, want)
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-15), f"step {i}: {a!r} != {b!r}"


def half_cos(progress):
    """(1 + cos(pi * progress)) / 2: 1 at 0, 0 at 1."""
    return (1 + math.cos(math.pi * progress)) / 2


def uniform_noise(seed, step, pct):
    """timm's uniform noise, from NumPy's generator seeded by [seed, step]."""
    return 2 * (np.random.default_rng([seed, step]).random() - 0.5) * pct


def normal_noise(seed, step, pct, std):
    """timm's normal noise: std * N(0, 1), redrawn (16 at a time) until |noise| < pct."""
    rng = np.random.default_rng([seed, step])
    while True:
        for z in rng.standard_normal(16):
            if abs(std * z) < pct:
                return std * z


# --- values derived by hand ---------------------------------------------------------------

s5, s75 = math.sqrt(0.5), math.sqrt(0.75)
VALUES = [
    # WSD: warmup f0 + (1 - f0) t / W, then base, then m + (1 - m) shape((t - W - S) / D), then m.
    pytest.param("WarmupStableDecayLR",
                 {"warmup_steps": 2, "stable_steps": 2, "decay_steps": 4}, 1.0,
                 [0.0, 0.5, 1, 1, 1, 0.75, 0.5, 0.25, 0.0, 0.0], id="WSD-linear"),
    pytest.param("WarmupStableDecayLR",
                 {"total_steps": 10, "warmup_steps": 0.2, "decay_steps": 0.4, "decay": "cosine",
                  "min_lr_ratio": 0.1, "warmup_start_factor": 0.5}, 2.0,
                 [1.0, 1.5, 2, 2, 2, 2] + [2 * (0.1 + 0.9 * half_cos(k / 4)) for k in range(4)]
                 + [0.2, 0.2], id="WSD-fractions-cosine"),
    pytest.param("WarmupStableDecayLR",
                 {"stable_steps": 1, "decay_steps": 4, "decay": "1-sqrt"}, 1.0,
                 [1, 1, 0.5, 1 - s5, 1 - s75, 0.0, 0.0], id="WSD-1-sqrt"),
    pytest.param("WarmupStableDecayLR",
                 {"total_steps": 6, "warmup_steps": 3, "decay_steps": 3, "min_lr_ratio": 0.4}, 1.0,
                 [0, 1 / 3, 2 / 3, 1, 0.8, 0.6, 0.4, 0.4], id="WSD-no-stable"),
    # CosineWithMinLR: warmup as above, then m + (1 - m) half_cos((t - W) / (T - W)), m after T.
    pytest.param("CosineWithMinLR", {"total_steps": 4, "min_lr_ratio": 0.1}, 1.0,
                 [0.1 + 0.9 * half_cos(t / 4) for t in range(5)] + [0.1, 0.1],
                 id="CosineWithMinLR-ratio"),
    pytest.param("CosineWithMinLR", {"total_steps": 6, "warmup_steps": 2, "min_lr": 0.01}, 0.1,
                 [0.0, 0.05] + [0.01 + 0.09 * half_cos((t - 2) / 4) for t in range(2, 7)] + [0.01],
                 id="CosineWithMinLR-absolute-warmup"),
    pytest.param("CosineWithMinLR",
                 {"total_steps": 4, "warmup_steps": 2, "min_lr_ratio": 0.0,
                  "warmup_start_factor": 0.5}, 1.0,
                 [0.5, 0.75, 1.0, 0.5, 0.0, 0.0], id="CosineWithMinLR-start-factor"),
    # timm: lr_min + (lr_max - lr_min) / 2 * (1 + cos(pi t_curr^k / t_i^k)), lr_max = base d^i.
    pytest.param("CosineRestartsLR", {"t_initial": 4, "lr_min": 0.1}, 1.0,
                 [0.1 + 0.9 * half_cos(t / 4) for t in range(4)] + [0.1, 0.1],
                 id="CosineRestartsLR-one-cycle"),
    pytest.param("CosineRestartsLR",
                 {"t_initial": 2, "cycle_mul": 2, "cycle_decay": 0.5, "cycle_limit": 3}, 1.0,
                 [1, 0.5]  # cycle 0: steps 0-1, length 2
                 + [0.5 * half_cos(k / 4) for k in range(4)]  # cycle 1: steps 2-5, length 4
                 + [0.25 * half_cos(k / 8) for k in range(8)]  # cycle 2: steps 6-13, length 8
                 + [0.0, 0.0], id="CosineRestartsLR-mul-decay-limit"),
    pytest.param("CosineRestartsLR",
                 {"t_initial": 4, "cycle_limit": 2, "warmup_t": 2, "warmup_lr_init": 0.1,
                  "warmup_prefix": True, "k_decay": 2.0}, 1.0,
                 [0.1, 0.55] + [half_cos(k * k / 16) for k in range(4)] * 2 + [0.0],
                 id="CosineRestartsLR-prefix-warmup-k"),
    pytest.param("CosineRestartsLR", {"t_initial": 4, "warmup_t": 2}, 2.0,
                 [0.0, 1.0, 2 * half_cos(2 / 4), 2 * half_cos(3 / 4), 0.0],
                 id="CosineRestartsLR-warmup-no-prefix"),
    # fairseq: init + t (base - init) / W during warmup, then base sqrt(W) / sqrt(t).
    pytest.param("InverseSqrtLR", {"warmup_updates": 4}, 1.0,
                 [0, 0.25, 0.5, 0.75, 1.0, math.sqrt(4 / 5), math.sqrt(4 / 6), math.sqrt(4 / 7)],
                 id="InverseSqrtLR-warmup4"),
    pytest.param("InverseSqrtLR", {"warmup_updates": 1, "warmup_init_lr": 0.5}, 2.0,
                 [0.5, 2.0, 2 / math.sqrt(2), 2 / math.sqrt(3), 1.0], id="InverseSqrtLR-init"),
    pytest.param("InverseSqrtLR", {"warmup_updates": 2, "warmup_init_lr": 0.4}, 0.2,
                 [0.4, 0.3, 0.2, 0.2 * math.sqrt(2 / 3)], id="InverseSqrtLR-init-above-base"),
    # LinearWarmupLR: the wrapped schedule's first lr times the warmup factor, then it from 0.
    pytest.param("LinearWarmupLR",
                 {"scheduler": member("StepLR", step_size=2, gamma=0.5), "warmup_steps": 4}, 1.0,
                 [0, 0.25, 0.5, 0.75, 1, 1, 0.5, 0.5, 0.25], id="LinearWarmupLR-StepLR"),
    pytest.param("LinearWarmupLR",
                 {"scheduler": member("ExponentialLR", gamma=0.5), "warmup_steps": 2,
                  "warmup_method": "constant", "warmup_start_factor": 0.1}, 1.0,
                 [0.1, 0.1, 1, 0.5, 0.25], id="LinearWarmupLR-constant"),
    pytest.param("LinearWarmupLR",
                 {"scheduler": member("LinearLR", start_factor=0.5, total_iters=2),
                  "warmup_steps": 2}, 1.0,
                 [0, 0.25, 0.5, 0.75, 1, 1], id="LinearWarmupLR-into-LinearLR"),
    pytest.param("LinearWarmupLR",
                 {"scheduler": member("StepLR", step_size=1, gamma=0.5), "warmup_steps": 0}, 1.0,
                 [1, 0.5, 0.25], id="LinearWarmupLR-none"),
    # NoisyLR without a noise range is the wrapped schedule.
    pytest.param("NoisyLR", {"scheduler": member("CosineAnnealingLR", T_max=4)}, 1.0,
                 [half_cos(t / 4) for t in range(5)], id="NoisyLR-no-range"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "base", "want"), VALUES)
@pytest.mark.parametrize("flavor", ["torch", "oneflow"])
def test_values(name, kwargs, base, want, flavor):
    assert_close(run(name, kwargs, len(want), base, flavor=flavor), want)


def test_per_group_values():
    kwargs = {"warmup_updates": 3, "warmup_init_lr": [0.0, 0.3]}
    assert_close(run("InverseSqrtLR", kwargs, 5, 0.6, 2, 1), [0.3, 0.4, 0.5, 0.6, 0.6 * s75])
    kwargs = {"total_steps": 2, "min_lr": [0.0, 0.1]}
    assert_close(run("CosineWithMinLR", kwargs, 4, 0.5, 2, 1), [0.5, 0.3, 0.1, 0.1])


def test_noisy_uniform_values():
    kwargs = {"scheduler": member("StepLR", step_size=2, gamma=0.5), "noise_range": [2, 5],
              "noise_type": "uniform", "noise_pct": 0.1, "noise_seed": 7}  # fmt: skip
    step_lr = [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]
    want = [lr * (1 + uniform_noise(7, t, 0.1)) if 2 <= t < 5 else lr
            for t, lr in enumerate(step_lr)]  # fmt: skip
    assert_close(lrs("NoisyLR", kwargs, 7), want)
    assert lrs("NoisyLR", kwargs, 2) == [1, 1] and lrs("NoisyLR", kwargs, 7)[5:] == [0.25, 0.125]


def test_noisy_normal_values():
    kwargs = {"scheduler": member("ExponentialLR", gamma=0.9), "noise_range": 3,
              "noise_std": 0.5, "noise_pct": 0.3, "noise_seed": 123}  # fmt: skip
    want = [0.2 * 0.9**t * (1 + (normal_noise(123, t, 0.3, 0.5) if t >= 3 else 0))
            for t in range(12)]  # fmt: skip
    assert_close(lrs("NoisyLR", kwargs, 12, 0.2), want)


def test_noisy_normal_redraws_past_the_clip():
    # std 1 and pct 0.05: most draws fall outside the clip, so redraws happen often.
    kwargs = {"scheduler": member("StepLR", step_size=100), "noise_range": 0, "noise_pct": 0.05}
    want = [1 + normal_noise(42, t, 0.05, 1.0) for t in range(30)]
    got = lrs("NoisyLR", kwargs, 30)
    assert_close(got, want)
    assert all(abs(v - 1) < 0.05 for v in got)


# --- properties ---------------------------------------------------------------------------

EPS = 1e-12


def jumps(values):
    return [abs(b - a) for a, b in zip(values[:-1], values[1:], strict=True)]


unit = st.floats(0.0, 1.0)


@PROPS
@given(st.integers(0, 8), st.integers(0, 8), st.integers(0, 12), unit, unit,
       st.sampled_from(("linear", "cosine", "1-sqrt")), st.floats(1e-3, 10.0))  # fmt: skip
def test_wsd_continuity_and_monotone_decay(warmup, stable, decay, f0, floor, shape, base):
    kwargs = {"warmup_steps": warmup, "stable_steps": stable, "decay_steps": decay,
              "warmup_start_factor": f0, "min_lr_ratio": floor, "decay": shape}  # fmt: skip
    values = lrs("WarmupStableDecayLR", kwargs, warmup + stable + decay + 4, base)
    # The largest per-step change inside each phase: the warmup's slope, and the
    # decay's steepest step (its first for 1-sqrt, pi / 2D for the cosine, 1 / D linear).
    warm = (1 - f0) / warmup if warmup else 0.0
    steepest = {"linear": 1.0, "cosine": math.pi / 2, "1-sqrt": math.sqrt(decay or 1)}[shape]
    cool = (1 - floor) * steepest / decay if decay else 1 - floor
    bound = base * max(warm, cool) * (1 + 1e-9) + EPS
    assert all(j <= bound for j in jumps(values)), (values, bound)
    tail = values[warmup:]
    assert all(b <= a + EPS for a, b in zip(tail[:-1], tail[1:], strict=True))
    assert values[-1] == pytest.approx(base * floor, rel=1e-12, abs=1e-15)


@PROPS
@given(st.integers(1, 30), st.integers(0, 29), unit, unit, st.floats(1e-3, 10.0))
def test_cosine_with_min_monotone_and_continuous(total, warmup, ratio, f0, base):
    warmup = min(warmup, total - 1)
    kwargs = {"total_steps": total, "warmup_steps": warmup, "min_lr_ratio": ratio,
              "warmup_start_factor": f0}  # fmt: skip
    values = lrs("CosineWithMinLR", kwargs, total + 5, base)
    decay = values[warmup : total + 1]
    assert all(b <= a + EPS for a, b in zip(decay[:-1], decay[1:], strict=True))
    assert set(values[total:]) == {values[total]}
    assert values[total] == pytest.approx(base * ratio, rel=1e-12, abs=1e-15)
    warm = (1 - f0) / warmup if warmup else 0.0
    cool = (1 - ratio) * (math.pi / 2) / (total - warmup)
    bound = base * max(warm, cool) * (1 + 1e-9) + EPS
    assert all(j <= bound for j in jumps(values))


@PROPS
@given(st.integers(1, 30), st.floats(0.0, 1.0), st.floats(1e-3, 10.0))
def test_inverse_sqrt_monotone_and_continuous(warmup, init_fraction, base):
    init = base * init_fraction
    values = lrs("InverseSqrtLR", {"warmup_updates": warmup, "warmup_init_lr": init}, 80, base)
    after = values[warmup:]
    assert all(b <= a for a, b in zip(after[:-1], after[1:], strict=True))
    ramp = values[: warmup + 1]
    assert all(b >= a - EPS for a, b in zip(ramp[:-1], ramp[1:], strict=True))
    # At the switch the lr moves by one warmup step; afterwards by at most its first decay step.
    bound = max((base - init) / warmup, base * (1 - math.sqrt(warmup / (warmup + 1))))
    assert all(j <= bound * (1 + 1e-9) + EPS for j in jumps(values))


@PROPS
@given(st.integers(1, 10), st.floats(0.0, 1e-2), st.integers(1, 10), st.floats(1e-3, 10.0))
def test_cosine_restarts_prefix_warmup_is_continuous(warmup, init, t_initial, base):
    kwargs = {"t_initial": t_initial, "warmup_t": warmup, "warmup_lr_init": init,
              "warmup_prefix": True}  # fmt: skip
    values = lrs("CosineRestartsLR", kwargs, warmup + t_initial + 2, base)
    assert values[warmup] == base
    step = abs(base - init) / warmup
    assert abs(values[warmup] - values[warmup - 1]) <= step * (1 + 1e-9) + EPS
    cycle = values[warmup : warmup + t_initial]
    assert all(b <= a + EPS for a, b in zip(cycle[:-1], cycle[1:], strict=True))


@PROPS
@given(st.integers(1, 10), unit, st.sampled_from([member("StepLR", step_size=3),
       member("ExponentialLR", gamma=0.9), member("LinearLR", start_factor=0.25)]))  # fmt: skip
def test_linear_warmup_continuous_into_the_wrapped_schedule(warmup, f0, inner):
    kwargs = {"scheduler": inner, "warmup_steps": warmup, "warmup_start_factor": f0}
    values = lrs("LinearWarmupLR", kwargs, warmup + 1)
    target = lrs(inner["name"], inner["kwargs"], 1)[0]
    assert values[warmup] == target
    assert all(j <= target * (1 - f0) / warmup * (1 + 1e-9) + EPS for j in jumps(values))


noise_kwargs = st.fixed_dictionaries(
    {
        "scheduler": st.just(member("StepLR", step_size=5, gamma=0.5)),
        "noise_range": st.just(0) | st.just([3, 40]),
        "noise_pct": st.floats(0.05, 1.0),
        "noise_std": st.floats(0.01, 1.0),
        "noise_seed": st.integers(0, 2**40),
        "noise_type": st.sampled_from(("normal", "uniform")),
    }
)


@PROPS
@given(noise_kwargs, st.permutations(range(50)))
def test_noise_is_a_pure_function_of_seed_and_step(kwargs, order):
    plain = lrs("StepLR", kwargs["scheduler"]["kwargs"], 50)
    forward = lrs("NoisyLR", kwargs, 50)
    [shuffled] = build_schedule("NoisyLR", "oneflow", kwargs)
    assert [shuffled.lr(t, 1.0) for t in order] == [forward[t] for t in order]
    start, end = (0, 50) if kwargs["noise_range"] == 0 else (3, 40)
    for t, (noisy, lr) in enumerate(zip(forward, plain, strict=True)):
        if start <= t < end:
            assert abs(noisy / lr - 1) < kwargs["noise_pct"]
        else:
            assert noisy == lr
    other = lrs("NoisyLR", {**kwargs, "noise_seed": kwargs["noise_seed"] + 1}, 50)
    assert other != forward


# --- broken configs -----------------------------------------------------------------------

BROKEN = [
    ("WarmupStableDecayLR", {"warmup_steps": -1, "stable_steps": 1}, "warmup_steps"),
    ("WarmupStableDecayLR", {"warmup_steps": 0.5, "stable_steps": 1}, "warmup_steps"),
    ("WarmupStableDecayLR", {"decay_steps": 4}, "stable_steps"),
    ("WarmupStableDecayLR", {"total_steps": 10, "decay": "exp"}, "decay"),
    ("WarmupStableDecayLR", {"total_steps": 10, "decay_steps": 1.5}, "decay_steps"),
    ("WarmupStableDecayLR", {"total_steps": 4, "warmup_steps": 3, "decay_steps": 3},
     "stable_steps"),
    ("WarmupStableDecayLR", {"total_steps": 4, "stable_steps": 5, "decay_steps": 0},
     "total_steps"),
    ("WarmupStableDecayLR", {"total_steps": 4, "min_lr_ratio": 2}, "min_lr_ratio"),
    ("CosineWithMinLR", {"total_steps": 0, "min_lr": 0.0}, "total_steps"),
    ("CosineWithMinLR", {"total_steps": 4}, "min_lr"),
    ("CosineWithMinLR", {"total_steps": 4, "min_lr": 0.1, "min_lr_ratio": 0.1}, "min_lr_ratio"),
    ("CosineWithMinLR", {"total_steps": 4, "min_lr_ratio": 1.5}, "min_lr_ratio"),
    ("CosineWithMinLR", {"total_steps": 4, "warmup_steps": 4, "min_lr": 0.0}, "warmup_steps"),
    ("CosineWithMinLR", {"total_steps": 4, "min_lr": -0.1}, "min_lr"),
    ("CosineRestartsLR", {"t_initial": 0}, "t_initial"),
    ("CosineRestartsLR", {"t_initial": 4, "cycle_mul": 0.5}, "cycle_mul"),
    ("CosineRestartsLR", {"t_initial": 4, "cycle_limit": 0}, "cycle_limit"),
    ("CosineRestartsLR", {"t_initial": 4, "k_decay": 0}, "k_decay"),
    ("CosineRestartsLR", {"t_initial": 4, "warmup_prefix": 1}, "warmup_prefix"),
    ("InverseSqrtLR", {"warmup_updates": 0}, "warmup_updates"),
    ("InverseSqrtLR", {"warmup_updates": 2.5}, "warmup_updates"),
    ("InverseSqrtLR", {"warmup_updates": 4, "warmup_init_lr": -1}, "warmup_init_lr"),
    ("NoisyLR", {"scheduler": None}, "scheduler"),
    ("NoisyLR", {"scheduler": member("StepLR", step_size=0)}, "step_size"),
    ("NoisyLR", {"scheduler": member("StepLR", step_size=2), "noise_range": [5, 2]},
     "noise_range"),
    ("NoisyLR", {"scheduler": member("StepLR", step_size=2), "noise_type": "cauchy"},
     "noise_type"),
    ("NoisyLR", {"scheduler": member("StepLR", step_size=2), "noise_seed": -1}, "noise_seed"),
    ("NoisyLR", {"scheduler": member("StepLR", step_size=2), "noise_pct": 0.01}, "noise_pct"),
    ("LinearWarmupLR", {}, "scheduler"),
    ("LinearWarmupLR", {"scheduler": member("StepLR", step_size=2), "warmup_steps": -2},
     "warmup_steps"),
    ("LinearWarmupLR", {"scheduler": member("StepLR", step_size=2), "warmup_method": "exp"},
     "warmup_method"),
    ("LinearWarmupLR", {"scheduler": member("StepLR", step_size=2), "warmup_start_factor": 2},
     "warmup_start_factor"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "kwargs", "argument"), BROKEN, ids=lambda v: str(v)[:40])
def test_broken_config_names_the_argument(name, kwargs, argument):
    with pytest.raises(ConfigError) as info:
        build_schedule(name, "torch", kwargs)
    message = str(info.value)
    assert "\n" not in message and name in message and argument in message, message


# --- through build_schedule, the PyTorch-API class and the command line ---------------------

CONFIGS = {
    "WarmupStableDecayLR": {"total_steps": 8, "warmup_steps": 2, "decay_steps": 3},
    "CosineWithMinLR": {"total_steps": 6, "warmup_steps": 1, "min_lr": [0.0, 0.01]},
    "CosineRestartsLR": {"t_initial": 3, "cycle_limit": 2, "warmup_t": 1},
    "InverseSqrtLR": {"warmup_updates": 3, "warmup_init_lr": [0.0, 0.05]},
    "NoisyLR": {"scheduler": member("StepLR", step_size=2), "noise_range": 1},
    "LinearWarmupLR": {"scheduler": member("ExponentialLR", gamma=0.8), "warmup_steps": 3},
}


class Opt:
    def __init__(self, lrs):
        self.param_groups = [{"lr": lr} for lr in lrs]


@pytest.mark.parametrize("name", NEW)
def test_two_groups_through_the_pytorch_api(name):
    bases = [0.1, 0.2]
    schedules = build_schedule(name, "torch", CONFIGS[name], 2)
    want = [[s.lr(t, b) for s, b in zip(schedules, bases, strict=True)] for t in range(10)]
    opt = Opt(bases)
    sched = getattr(lr_scheduler, name)(opt, **CONFIGS[name])
    for t in range(10):
        if t:
            sched.step()
        assert [g["lr"] for g in opt.param_groups] == want[t] == sched.get_last_lr()


@pytest.mark.parametrize("name", NEW)
def test_command_line_json(name, capsys):
    args = [f"--arg={k}={v!r}" for k, v in CONFIGS[name].items()]
    code = main(["schedule", name, "--lr", "0.1", "--lr", "0.2", "--steps", "6", *args,
                 "--format", "json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    data = json.loads(out)
    schedules = build_schedule(name, "torch", CONFIGS[name], 2)
    want = [[s.lr(t, b) for t in range(6)] for s, b in zip(schedules, (0.1, 0.2), strict=True)]
    assert data["name"] == name and data["lrs"] == want
