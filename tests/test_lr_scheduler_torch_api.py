"""dualtrain.lr_scheduler as a drop-in for torch.optim.lr_scheduler, against torch itself.

Each test drives torch's own class and dualtrain's the same way, on two real
torch optimizers, and compares what the optimizers hold. Where the claim is
"bit for bit" the comparison is `==` on the floats: dualtrain's chainable
updates are torch's own expressions in torch's order, so any other tolerance
would hide a real difference.
"""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError
from dualtrain.schedules import build_schedule

T = torch.optim.lr_scheduler


def make_opt(lrs=(0.1, 0.02), tensor_lr=False, optimizer=torch.optim.SGD, **options):
    """A torch optimizer with one param group per lr (a 0-dim tensor lr if asked)."""
    groups = [
        {
            "params": [torch.nn.Parameter(torch.zeros(2))],
            "lr": torch.tensor(lr) if tensor_lr else lr,
        }
        for lr in lrs
    ]
    return optimizer(groups, lr=lrs[0], **options)


def lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def run(build, steps, stepping=None, **opt_kwargs):
    """(lrs per step) for the schedulers `build(opt)` returns, stepped in torch's order."""
    opt = make_opt(**opt_kwargs)
    scheds = build(opt)
    scheds = scheds if isinstance(scheds, (list, tuple)) else [scheds]
    out = [lrs(opt)]
    for _ in range(steps):
        opt.step()
        for s in scheds:
            (stepping or (lambda s: s.step()))(s)
        out.append(lrs(opt))
    return out


def both(build, steps=20, **kw):
    """The same run with torch's classes (M=T) and dualtrain's (M=D)."""
    return run(lambda o: build(T, o), steps, **kw), run(lambda o: build(D, o), steps, **kw)


# --- two schedulers on one optimizer compose, as torch's chainable forms do -------------------

PAIRS = {
    "warmup-then-cosine": lambda M, o: [
        M.LinearLR(o, start_factor=0.1, total_iters=5),
        M.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
    ],
    "step-and-exponential": lambda M, o: [M.StepLR(o, 4, 0.5), M.ExponentialLR(o, 0.93)],
    "milestones-and-constant": lambda M, o: [
        M.MultiStepLR(o, [3, 3, 8]),
        M.ConstantLR(o, factor=0.25, total_iters=6),
    ],
    "polynomial-and-multiplicative": lambda M, o: [
        M.PolynomialLR(o, total_iters=9, power=1.5),
        M.MultiplicativeLR(o, lambda e: 0.97),
    ],
}


@pytest.mark.parametrize("name", PAIRS)
def test_two_schedulers_on_one_optimizer_compose_bit_for_bit(name):
    want, got = both(PAIRS[name], steps=24)
    assert got == want


def test_the_warmup_is_not_lost_when_a_cosine_steps_too():
    _, got = both(PAIRS["warmup-then-cosine"], steps=6, lrs=(1.0,))
    # by hand: the warmup's factor 0.1 at step 0, 0.28 at step 1, times the cosine's
    # decay (0.98 at step 1); the last scheduler stepped alone would set 0.98
    assert got[0] == [0.1]
    assert 0.25 < got[1][0] < 0.3


def test_tensor_lrs_compose_bit_for_bit_and_stay_the_same_tensor():
    want, got = both(PAIRS["warmup-then-cosine"], steps=15, tensor_lr=True)
    assert got == want  # float32 arithmetic, as torch's, at every step
    opt = make_opt(tensor_lr=True)
    held = [g["lr"] for g in opt.param_groups]
    sched = D.ExponentialLR(opt, 0.5)
    opt.step()
    sched.step()
    assert all(g["lr"] is t for g, t in zip(opt.param_groups, held, strict=True))  # in place
    assert float(held[0]) == float(torch.tensor(0.1) * 0.5)


# --- ChainedScheduler and SequentialLR step their members ------------------------------------


def test_chained_scheduler_composes_at_construction_and_steps_its_members():
    def build(M, o):
        first, second = M.LinearLR(o, 0.5, total_iters=3), M.StepLR(o, 2, 0.1)
        return M.ChainedScheduler([first, second]), first, second

    runs = {}
    for M in (T, D):
        opt = make_opt()
        chain, first, second = build(M, opt)
        assert chain.get_last_lr() == second.get_last_lr() == [0.05, 0.01]
        seen = []
        for _ in range(7):
            opt.step()
            chain.step()
            seen.append((lrs(opt), first.last_epoch, second.get_last_lr()))
        runs[M] = seen
    assert runs[D] == runs[T]
    assert runs[D][-1][1] == 7  # the members' counters moved


def test_sequential_lr_with_a_chained_member_and_a_nested_sequence():
    # torch restarts a later member with _update_lr(0), which a composite lacks: so the
    # composites sit first, where torch runs them
    def build(M, o):
        chain = M.ChainedScheduler([M.ExponentialLR(o, 0.9), M.ConstantLR(o, 0.5, 2)])
        inner = M.SequentialLR(o, [chain, M.LinearLR(o, 0.2)], milestones=[3])
        return M.SequentialLR(o, [inner, M.StepLR(o, 2, 0.5)], milestones=[9])

    runs = []
    for M in (T, D):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs.append((run(lambda o, M=M: build(M, o), 16), len(caught)))
    assert runs[1] == runs[0]  # torch's quirks (a nested member's first step is not
    # initial) and its step-order warnings for the nested members included


# --- step(epoch): deprecated, closed form, torch's warning ------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda M, o: M.LinearLR(o, start_factor=0.3, end_factor=0.9, total_iters=7),
        lambda M, o: M.ConstantLR(o, factor=0.3, total_iters=0),
        lambda M, o: M.CosineAnnealingLR(o, T_max=6, eta_min=0.01),
        lambda M, o: M.MultiStepLR(o, [2, 5, 5]),
    ],
    ids=["linear", "constant-0-iters", "cosine", "multistep"],
)
def test_step_with_an_epoch_jumps_through_the_closed_form(make):
    epochs = [0, 3, 3, 9, 1, 6, 2]

    def with_epoch(s):
        s.step(with_epoch.epochs.pop(0))

    runs = []
    for M in (T, D):
        with_epoch.epochs = list(epochs[1:])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs.append(run(lambda o, M=M: make(M, o), len(epochs) - 1, stepping=with_epoch))
        messages = [str(w.message) for w in caught]
        assert len(messages) == len(epochs) - 1 and all("deprecated" in m for m in messages)
    assert runs[1] == runs[0]


def test_cosine_warm_restarts_take_fractional_epochs_and_a_settable_t_cur():
    fractions = [0.25 * k for k in range(1, 60)]
    runs, states = [], []
    for M in (T, D):
        opt = make_opt()
        sched = M.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.001)
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in fractions:
                sched.step(epoch)
                seen.append((lrs(opt), sched.T_cur, sched.T_i, sched.last_epoch))
        sched.T_cur = 8  # torch lets a user move the cycle position
        sched.step()
        seen.append((lrs(opt), sched.T_cur, sched.T_i))
        runs.append(seen)
        states.append((sched.T_0, sched.T_mult, sched.eta_min))
    assert runs[1] == runs[0]
    assert states[1] == states[0] == (3, 2, 0.001)


# --- ReduceLROnPlateau ---------------------------------------------------------------------------

METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.9, 0.99, 0.99, 0.99, 0.99, 0.99]


@pytest.mark.parametrize("min_lr", [0.0, [1e-4, 1e-3]], ids=["scalar", "list"])
def test_plateau_reduces_a_param_group_added_later(min_lr):
    runs = []
    for M in (T, D):
        opt = make_opt()
        sched = M.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=min_lr)
        seen = []
        for i, metric in enumerate(METRICS):
            if i == 3:
                opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.3})
                if isinstance(min_lr, list):
                    sched.min_lrs.append(0.01)
            opt.step()
            sched.step(metric)
            seen.append(lrs(opt))
        runs.append(seen)
    assert runs[1] == runs[0]
    assert runs[1][-1][2] < 0.3  # the added group was reduced too


def test_plateau_with_a_list_refuses_a_new_group_as_torch_does():
    opt = make_opt()
    sched = D.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.3})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match="param groups") as caught:
        sched.step(2.0)
    assert isinstance(caught.value, ConfigError)


def test_plateau_public_attributes_and_state_match_torch():
    kwargs = dict(mode="max", factor=0.3, patience=2, threshold=0.01, cooldown=1, min_lr=1e-3)
    ours, theirs = (
        D.ReduceLROnPlateau(make_opt(), **kwargs),
        T.ReduceLROnPlateau(make_opt(), **kwargs),
    )
    for metric in [0.1, 0.2, 0.2, 0.2, 0.2, 0.3]:
        ours.step(metric)
        theirs.step(metric)
    names = [
        "mode",
        "factor",
        "patience",
        "threshold",
        "threshold_mode",
        "cooldown",
        "eps",
        "min_lrs",
        "default_min_lr",
        "best",
        "num_bad_epochs",
        "cooldown_counter",
        "last_epoch",
        "mode_worse",
    ]
    assert {n: getattr(ours, n) for n in names} == {n: getattr(theirs, n) for n in names}
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert ours.get_last_lr() == theirs.get_last_lr()


# --- tensor lrs: the bases never alias ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda M, o: M.StepLR(o, 3),
        lambda M, o: M.LambdaLR(o, lambda e: 0.5),
        lambda M, o: M.PolynomialLR(o),
    ],
    ids=["step", "lambda", "polynomial"],
)
def test_base_lrs_and_initial_lr_do_not_alias_a_tensor_lr(make):
    opt = make_opt(lrs=(0.1,), tensor_lr=True)
    sched = make(D, opt)
    group = opt.param_groups[0]
    assert sched.base_lrs[0] is not group["lr"] and group["initial_lr"] is not group["lr"]
    group["lr"].mul_(0.01)  # the user moves the lr tensor in place
    assert float(sched.base_lrs[0]) == float(group["initial_lr"]) == float(torch.tensor(0.1))


def test_cyclic_and_one_cycle_take_0_dim_tensors():
    def cyclic(M, o):
        return M.CyclicLR(o, base_lr=torch.tensor(0.01), max_lr=torch.tensor(0.1), step_size_up=3)

    def one_cycle(M, o):
        return M.OneCycleLR(o, max_lr=torch.tensor(0.2), total_steps=12)

    for build in (cyclic, one_cycle):
        want, got = both(build, steps=11, lrs=(0.05,), momentum=0.9)
        flat = [x for row in want for x in row]
        # torch computes in float32 from the tensors: 1e-6 relative is float32's floor
        assert [x for row in got for x in row] == pytest.approx(flat, rel=1e-6)


# --- state_dict carries the hyperparameters ------------------------------------------------------


def test_a_state_loaded_into_other_arguments_continues_the_saved_schedule():
    def resumed(M):
        opt = make_opt()
        first = M.CosineAnnealingLR(opt, T_max=10, eta_min=0.005)
        for _ in range(4):
            opt.step()
            first.step()
        second = M.CosineAnnealingLR(opt, T_max=3)
        second.load_state_dict(first.state_dict())
        out = []
        for _ in range(6):
            opt.step()
            second.step()
            out.append(lrs(opt))
        return out, (second.T_max, second.eta_min)

    assert resumed(D) == resumed(T)
    state = D.StepLR(make_opt(), 2).state_dict()
    assert json.loads(json.dumps(state)) == state  # plain values only


class Halving:
    """A callable lr_lambda with state, as torch's state_dict saves it."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate**epoch


def test_lambda_state_saves_a_callable_objects_dict_and_not_a_function():
    sched = D.LambdaLR(make_opt(), [Halving(0.5), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    other = D.LambdaLR(make_opt(), [Halving(0.9), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.5


def test_cyclic_state_saves_a_scale_fn_objects_dict_and_restores_the_mode():
    class Scale:
        def __init__(self):
            self.k = 0.5

        def __call__(self, x):
            return self.k

    fn = Scale()
    sched = D.CyclicLR(make_opt(), 0.01, 0.1, scale_fn=fn, cycle_momentum=False)
    fn.k = 0.25
    state = sched.state_dict()
    assert state["_scale_fn_custom"] == {"k": 0.25} and "_scale_fn_ref" not in state
    built_in = D.CyclicLR(make_opt(), 0.01, 0.1, mode="triangular2", cycle_momentum=False)
    plain = D.CyclicLR(make_opt(), 0.01, 0.1, cycle_momentum=False)
    plain.load_state_dict(built_in.state_dict())
    assert plain.mode == "triangular2" and plain.scale_fn(2) == 0.5


# --- warnings, exception types, attributes -------------------------------------------------


def test_stepping_the_scheduler_first_warns_as_torch_does():
    opt = make_opt()
    sched = D.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="how-to-adjust-learning-rate"):
        sched.step()
        opt.step()
    opt = make_opt()
    sched = D.StepLR(opt, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()  # the right order: silent


def test_an_overridden_optimizer_step_warns():
    opt = make_opt()
    sched = D.ExponentialLR(opt, 0.9)
    opt.step = lambda *a, **k: None  # replaced after the scheduler wrapped it
    with pytest.warns(UserWarning, match=r"`optimizer.step\(\)` has been overridden"):
        opt.step()
        sched.step()


def test_torch_exception_types_that_are_also_one_line_config_errors():
    with pytest.raises(TypeError, match="lr_lambda should be a function") as caught:
        D.MultiplicativeLR(make_opt(), 0.95)
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(KeyError) as caught:
        D.StepLR(make_opt(), 3, last_epoch=4)
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith("param 'initial_lr' is not specified in param_groups[0]")
    with pytest.raises(ValueError):
        D.LinearLR(make_opt(), start_factor=0.0)


def test_public_attributes_are_torchs():
    opt = make_opt()
    assert (D.StepLR(opt, 5, 0.3).step_size, D.StepLR(opt, 5, 0.3).gamma) == (5, 0.3)
    cos = D.CosineAnnealingLR(opt, 7)
    assert (cos.T_max, cos.eta_min) == (7, 0.0)
    linear = D.LinearLR(opt, 0.5, 0.9, 4)
    assert (linear.start_factor, linear.end_factor, linear.total_iters) == (0.5, 0.9, 4)
    assert D.MultiStepLR(opt, [4, 2]).milestones == [4, 2]
    assert D.ConstantLR(opt).factor == pytest.approx(1 / 3)
    restarts = D.CosineAnnealingWarmRestarts(opt, 4, 2)
    assert (restarts.T_0, restarts.T_i, restarts.T_cur, restarts.T_mult) == (4, 4, 0, 2)


def test_a_scheduler_deep_copies_and_a_torch_style_subclass_works():
    opt = make_opt(lrs=(1.0,))
    sched = D.StepLR(opt, 1, 0.5)
    twin = copy.deepcopy(sched)
    assert twin.get_last_lr() == [1.0] and twin.step_size == 1

    class Halve(D.LRScheduler):  # torch's subclassing protocol: get_lr() from last_epoch
        def get_lr(self):
            return [b * 0.5**self.last_epoch for b in self.base_lrs]

    opt = make_opt(lrs=(1.0,))
    halve = Halve(opt)
    opt.step()
    halve.step()
    assert lrs(opt) == [0.5] and math.isclose(halve.get_last_lr()[0], 0.5)


# --- the pure schedule of the torch flavour is torch's trajectory, bit for bit ----------------


TRAJECTORIES = {
    "ExponentialLR": ({"gamma": 0.93}, lambda o: T.ExponentialLR(o, 0.93)),
    "LinearLR": (
        {"start_factor": 0.13, "end_factor": 0.77, "total_iters": 9},
        lambda o: T.LinearLR(o, 0.13, 0.77, 9),
    ),
    "PolynomialLR": ({"total_iters": 11, "power": 1.7}, lambda o: T.PolynomialLR(o, 11, 1.7)),
    "CosineAnnealingLR": (
        {"T_max": 7, "eta_min": 0.003},
        lambda o: T.CosineAnnealingLR(o, 7, 0.003),
    ),
    "MultiplicativeLR": (
        {"lr_lambda": "0.97 if epoch % 2 else 0.91"},
        lambda o: T.MultiplicativeLR(o, lambda e: 0.97 if e % 2 else 0.91),
    ),
    "ChainedScheduler": (
        {"schedulers": [{"name": "ExponentialLR", "kwargs": {"gamma": 0.9}},
                        {"name": "StepLR", "kwargs": {"step_size": 3, "gamma": 0.5}}]},
        lambda o: T.ChainedScheduler([T.ExponentialLR(o, 0.9), T.StepLR(o, 3, 0.5)]),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_the_pure_torch_schedule_is_torchs_own_trajectory(name):
    kwargs, make = TRAJECTORIES[name]
    want = run(make, 39, lrs=(0.123,))
    [schedule] = build_schedule(name, "torch", kwargs)
    assert [[schedule.lr(t, 0.123)] for t in range(40)] == want


def test_the_fold_is_not_the_closed_form():
    # by hand: torch multiplies the lr it holds, 0.01 * 0.8 * 0.8 = 0.0064 in floats,
    # while the closed form 0.01 * 0.8 ** 2 rounds to 0.006400000000000001
    [schedule] = build_schedule("ExponentialLR", "torch", {"gamma": 0.8})
    assert schedule.lr(2, 0.01) == 0.01 * 0.8 * 0.8 == 0.0064
    assert schedule.closed_form_lr(2, 0.01) == 0.01 * 0.8**2 != 0.0064
    [oneflow] = build_schedule("ExponentialLR", "oneflow", {"gamma": 0.8})
    assert oneflow.lr(2, 0.01) == 0.01 * 0.8**2  # OneFlow computes the closed form
