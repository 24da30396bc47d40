"""The NumPy reference optimizers against update sequences worked out by hand.

Each case takes the parameter P0 through three steps with the fixed gradients
G1, G2, G3. The expected values are PyTorch's documented update rules (the
pseudo-code of torch.optim.SGD, Adam, AdamW and RMSprop) unrolled step by
step, or plain numbers where they are easy to do on paper. Nothing here
imports a framework: this backend is the reference the others are held to.
"""

from __future__ import annotations

import numpy as np
import pytest

from dualtrain.lr_scheduler import StepLR
from dualtrain.model import init_weights, mlp
from dualtrain.optim import GroupSpec, OptimizerSpec
from dualtrain_numpy import NumpyBackend
from dualtrain_numpy.model import Network
from dualtrain_numpy.optim import Optimizer

P0 = np.array([1.0, -0.5])
G1, G2, G3 = GRADS = (np.array([0.5, -1.0]), np.array([-0.25, 2.0]), np.array([1.5, 0.75]))


def make(spec: OptimizerSpec, names=("w",)) -> tuple[Optimizer, dict, dict]:
    params = {name: P0.copy() for name in names}
    grads = {name: np.zeros_like(P0) for name in names}
    return Optimizer(spec.name, spec.assign(list(names)), params, grads), params, grads


def trajectory(spec: OptimizerSpec, names=("w",), lrs=None) -> dict[str, list[np.ndarray]]:
    """Every parameter after each step with GRADS; `lrs[t]` set on every group before step t."""
    optimizer, params, grads = make(spec, names)
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for t, grad in enumerate(GRADS):
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = lrs[t]
        for name in names:
            grads[name][...] = grad
        optimizer.step()
        for name in names:
            out[name].append(params[name].copy())
    return out


def assert_steps(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected) == 3
    for t, (a, e) in enumerate(zip(actual, expected, strict=True), 1):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15, err_msg=f"after step {t}")


# SGD. torch: g += wd * p; b_1 = g (the first step is not dampened),
# b_t = momentum * b_(t-1) + (1 - dampening) * g; g = g + momentum * b if nesterov
# else b; p -= lr * g.


def expect_sgd_plain():
    # p_t = p_(t-1) - 0.1 * G_t
    return [np.array([0.95, -0.4]), np.array([0.975, -0.6]), np.array([0.825, -0.675])]


def expect_sgd_momentum():
    # b1 = G1 = [0.5, -1], b2 = 0.9 b1 + G2 = [0.2, 1.1], b3 = 0.9 b2 + G3 = [1.68, 1.74]
    return [np.array([0.95, -0.4]), np.array([0.93, -0.51]), np.array([0.762, -0.684])]


def expect_sgd_dampening():
    # b1 = G1, b2 = 0.9 b1 + 0.5 G2 = [0.325, 0.1], b3 = 0.9 b2 + 0.5 G3 = [1.0425, 0.465]
    return [np.array([0.95, -0.4]), np.array([0.9175, -0.41]), np.array([0.81325, -0.4565])]


def expect_sgd_nesterov():
    # b as with momentum; the step is G_t + 0.9 b_t: [0.95, -1.9], [-0.07, 2.99], [3.012, 2.316]
    return [np.array([0.905, -0.31]), np.array([0.912, -0.609]), np.array([0.6108, -0.8406])]


def expect_sgd_weight_decay():
    # p_t = p_(t-1) - 0.1 * (G_t + 0.1 p_(t-1)) = 0.99 p_(t-1) - 0.1 G_t
    p1 = 0.99 * P0 - 0.1 * G1
    p2 = 0.99 * p1 - 0.1 * G2
    p3 = 0.99 * p2 - 0.1 * G3
    return [p1, p2, p3]


def expect_sgd_all():
    # momentum 0.9, nesterov, weight_decay 0.01, lr 0.1
    g1 = G1 + 0.01 * P0
    b1 = g1
    p1 = P0 - 0.1 * (g1 + 0.9 * b1)
    g2 = G2 + 0.01 * p1
    b2 = 0.9 * b1 + g2
    p2 = p1 - 0.1 * (g2 + 0.9 * b2)
    g3 = G3 + 0.01 * p2
    b3 = 0.9 * b2 + g3
    p3 = p2 - 0.1 * (g3 + 0.9 * b3)
    return [p1, p2, p3]


# Adam. torch: g += wd * p (Adam) or p *= 1 - lr * wd (AdamW);
# m_t = b1 m + (1 - b1) g; v_t = b2 v + (1 - b2) g^2; amsgrad: v_max = max(v_max, v_t),
# used for v_t below; p -= lr * m_hat / (sqrt(v_hat) + eps), m_hat = m_t / (1 - b1^t),
# v_hat = v_t / (1 - b2^t).


def adam_step(m, v, t, lr=0.1, betas=(0.9, 0.999), eps=1e-8):
    m_hat = m / (1 - betas[0] ** t)
    v_hat = v / (1 - betas[1] ** t)
    return lr * m_hat / (np.sqrt(v_hat) + eps)


def expect_adam():
    m1, v1 = 0.1 * G1, 0.001 * G1**2
    m2, v2 = 0.9 * m1 + 0.1 * G2, 0.999 * v1 + 0.001 * G2**2
    m3, v3 = 0.9 * m2 + 0.1 * G3, 0.999 * v2 + 0.001 * G3**2
    p1 = P0 - adam_step(m1, v1, 1)
    p2 = p1 - adam_step(m2, v2, 2)
    p3 = p2 - adam_step(m3, v3, 3)
    # The first step is lr * sign(G1), up to eps.
    np.testing.assert_allclose(p1, [0.9, -0.4], atol=1e-8)
    return [p1, p2, p3]


def expect_adam_amsgrad():
    # betas (0.9, 0.5) so that v falls on some steps and v_max differs from v
    betas = (0.9, 0.5)
    m1, v1 = 0.1 * G1, 0.5 * G1**2
    m2, v2 = 0.9 * m1 + 0.1 * G2, 0.5 * v1 + 0.5 * G2**2
    m3, v3 = 0.9 * m2 + 0.1 * G3, 0.5 * v2 + 0.5 * G3**2
    vmax1 = v1
    vmax2 = np.maximum(vmax1, v2)
    vmax3 = np.maximum(vmax2, v3)
    assert (vmax2 != v2).any() and (vmax3 != v3).any(), "the case must exercise amsgrad"
    p1 = P0 - adam_step(m1, vmax1, 1, betas=betas)
    p2 = p1 - adam_step(m2, vmax2, 2, betas=betas)
    p3 = p2 - adam_step(m3, vmax3, 3, betas=betas)
    return [p1, p2, p3]


def expect_adam_weight_decay():
    # weight_decay 0.1 folded into the gradient
    g1 = G1 + 0.1 * P0
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    p1 = P0 - adam_step(m1, v1, 1)
    g2 = G2 + 0.1 * p1
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2**2
    p2 = p1 - adam_step(m2, v2, 2)
    g3 = G3 + 0.1 * p2
    m3, v3 = 0.9 * m2 + 0.1 * g3, 0.999 * v2 + 0.001 * g3**2
    p3 = p2 - adam_step(m3, v3, 3)
    return [p1, p2, p3]


def expect_adamw(wd=0.01):
    # decoupled: the parameter shrinks by 1 - lr * wd, the moments see the raw gradient
    m1, v1 = 0.1 * G1, 0.001 * G1**2
    m2, v2 = 0.9 * m1 + 0.1 * G2, 0.999 * v1 + 0.001 * G2**2
    m3, v3 = 0.9 * m2 + 0.1 * G3, 0.999 * v2 + 0.001 * G3**2
    p1 = P0 * (1 - 0.1 * wd) - adam_step(m1, v1, 1)
    p2 = p1 * (1 - 0.1 * wd) - adam_step(m2, v2, 2)
    p3 = p2 * (1 - 0.1 * wd) - adam_step(m3, v3, 3)
    return [p1, p2, p3]


def expect_adamw_amsgrad():
    # weight_decay 0.5, betas (0.9, 0.5)
    betas = (0.9, 0.5)
    m1, v1 = 0.1 * G1, 0.5 * G1**2
    m2, v2 = 0.9 * m1 + 0.1 * G2, 0.5 * v1 + 0.5 * G2**2
    m3, v3 = 0.9 * m2 + 0.1 * G3, 0.5 * v2 + 0.5 * G3**2
    vmax2 = np.maximum(v1, v2)
    vmax3 = np.maximum(vmax2, v3)
    p1 = P0 * 0.95 - adam_step(m1, v1, 1, betas=betas)
    p2 = p1 * 0.95 - adam_step(m2, vmax2, 2, betas=betas)
    p3 = p2 * 0.95 - adam_step(m3, vmax3, 3, betas=betas)
    return [p1, p2, p3]


# RMSprop. torch: g += wd * p; s_t = alpha s + (1 - alpha) g^2; centered:
# a_t = alpha a + (1 - alpha) g, denominator sqrt(s_t - a_t^2) + eps, else sqrt(s_t) + eps;
# momentum: b_t = momentum b + g / denominator, p -= lr b_t; else p -= lr g / denominator.


def expect_rmsprop_plain():
    # torch's defaults: alpha 0.99, eps 1e-8; lr 0.01
    s1 = 0.01 * G1**2
    s2 = 0.99 * s1 + 0.01 * G2**2
    s3 = 0.99 * s2 + 0.01 * G3**2
    p1 = P0 - 0.01 * G1 / (np.sqrt(s1) + 1e-8)
    p2 = p1 - 0.01 * G2 / (np.sqrt(s2) + 1e-8)
    p3 = p2 - 0.01 * G3 / (np.sqrt(s3) + 1e-8)
    # The first step divides by sqrt(0.01) |G1|: it is lr * sign(G1) / 0.1.
    np.testing.assert_allclose(p1, [0.9, -0.4], atol=1e-8)
    return [p1, p2, p3]


def expect_rmsprop_centered():
    # alpha 0.9
    s1, a1 = 0.1 * G1**2, 0.1 * G1
    s2, a2 = 0.9 * s1 + 0.1 * G2**2, 0.9 * a1 + 0.1 * G2
    s3, a3 = 0.9 * s2 + 0.1 * G3**2, 0.9 * a2 + 0.1 * G3
    p1 = P0 - 0.01 * G1 / (np.sqrt(s1 - a1**2) + 1e-8)
    p2 = p1 - 0.01 * G2 / (np.sqrt(s2 - a2**2) + 1e-8)
    p3 = p2 - 0.01 * G3 / (np.sqrt(s3 - a3**2) + 1e-8)
    # First step: sqrt(0.1 G1^2 - 0.01 G1^2) = 0.3 |G1|.
    np.testing.assert_allclose(p1, [1 - 0.01 / 0.3, -0.5 + 0.01 / 0.3], atol=1e-8)
    return [p1, p2, p3]


def expect_rmsprop_momentum():
    # alpha 0.9, momentum 0.5
    s1 = 0.1 * G1**2
    s2 = 0.9 * s1 + 0.1 * G2**2
    s3 = 0.9 * s2 + 0.1 * G3**2
    b1 = G1 / (np.sqrt(s1) + 1e-8)
    b2 = 0.5 * b1 + G2 / (np.sqrt(s2) + 1e-8)
    b3 = 0.5 * b2 + G3 / (np.sqrt(s3) + 1e-8)
    return [P0 - 0.01 * b1, P0 - 0.01 * (b1 + b2), P0 - 0.01 * (b1 + b2 + b3)]


def expect_rmsprop_weight_decay():
    # alpha 0.9, weight_decay 0.1
    g1 = G1 + 0.1 * P0
    s1 = 0.1 * g1**2
    p1 = P0 - 0.01 * g1 / (np.sqrt(s1) + 1e-8)
    g2 = G2 + 0.1 * p1
    s2 = 0.9 * s1 + 0.1 * g2**2
    p2 = p1 - 0.01 * g2 / (np.sqrt(s2) + 1e-8)
    g3 = G3 + 0.1 * p2
    s3 = 0.9 * s2 + 0.1 * g3**2
    p3 = p2 - 0.01 * g3 / (np.sqrt(s3) + 1e-8)
    return [p1, p2, p3]


def expect_rmsprop_all():
    # alpha 0.9, centered, momentum 0.5, weight_decay 0.1
    g1 = G1 + 0.1 * P0
    s1, a1 = 0.1 * g1**2, 0.1 * g1
    b1 = g1 / (np.sqrt(s1 - a1**2) + 1e-8)
    p1 = P0 - 0.01 * b1
    g2 = G2 + 0.1 * p1
    s2, a2 = 0.9 * s1 + 0.1 * g2**2, 0.9 * a1 + 0.1 * g2
    b2 = 0.5 * b1 + g2 / (np.sqrt(s2 - a2**2) + 1e-8)
    p2 = p1 - 0.01 * b2
    g3 = G3 + 0.1 * p2
    s3, a3 = 0.9 * s2 + 0.1 * g3**2, 0.9 * a2 + 0.1 * g3
    b3 = 0.5 * b2 + g3 / (np.sqrt(s3 - a3**2) + 1e-8)
    p3 = p2 - 0.01 * b3
    return [p1, p2, p3]


# name: (optimizer, lr, options, expected trajectory)
CASES = {
    "sgd": ("sgd", 0.1, {}, expect_sgd_plain),
    "sgd-momentum": ("sgd", 0.1, {"momentum": 0.9}, expect_sgd_momentum),
    "sgd-dampening": ("sgd", 0.1, {"momentum": 0.9, "dampening": 0.5}, expect_sgd_dampening),
    "sgd-nesterov": ("sgd", 0.1, {"momentum": 0.9, "nesterov": True}, expect_sgd_nesterov),
    "sgd-weight-decay": ("sgd", 0.1, {"weight_decay": 0.1}, expect_sgd_weight_decay),
    "sgd-all": (
        "sgd",
        0.1,
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        expect_sgd_all,
    ),
    "adam": ("adam", 0.1, {}, expect_adam),
    "adam-amsgrad": ("adam", 0.1, {"amsgrad": True, "betas": (0.9, 0.5)}, expect_adam_amsgrad),
    "adam-weight-decay": ("adam", 0.1, {"weight_decay": 0.1}, expect_adam_weight_decay),
    "adamw": ("adamw", 0.1, {}, expect_adamw),
    "adamw-amsgrad": (
        "adamw",
        0.1,
        {"amsgrad": True, "betas": (0.9, 0.5), "weight_decay": 0.5},
        expect_adamw_amsgrad,
    ),
    "rmsprop": ("rmsprop", 0.01, {}, expect_rmsprop_plain),
    "rmsprop-centered": (
        "rmsprop",
        0.01,
        {"alpha": 0.9, "centered": True},
        expect_rmsprop_centered,
    ),
    "rmsprop-momentum": ("rmsprop", 0.01, {"alpha": 0.9, "momentum": 0.5}, expect_rmsprop_momentum),
    "rmsprop-weight-decay": (
        "rmsprop",
        0.01,
        {"alpha": 0.9, "weight_decay": 0.1},
        expect_rmsprop_weight_decay,
    ),
    "rmsprop-all": (
        "rmsprop",
        0.01,
        {"alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.1},
        expect_rmsprop_all,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_updates_follow_the_hand_derived_sequence(case):
    name, lr, options, expected = CASES[case]
    assert_steps(trajectory(OptimizerSpec(name, lr, options))["w"], expected())


def test_amsgrad_and_decoupled_decay_change_the_result():
    # Guards the cases above against testing a switch that does nothing.
    plain = trajectory(OptimizerSpec("adam", 0.1, {"betas": (0.9, 0.5)}))["w"]
    amsgrad = trajectory(OptimizerSpec("adam", 0.1, {"betas": (0.9, 0.5), "amsgrad": True}))["w"]
    assert np.abs(plain[2] - amsgrad[2]).max() > 1e-3
    coupled = trajectory(OptimizerSpec("adam", 0.1, {"weight_decay": 0.5}))["w"]
    decoupled = trajectory(OptimizerSpec("adamw", 0.1, {"weight_decay": 0.5}))["w"]
    assert np.abs(coupled[2] - decoupled[2]).max() > 1e-3


def test_two_param_groups_follow_their_own_hyperparameters():
    group = GroupSpec(("b",), lr=0.01, options={"momentum": 0.0, "weight_decay": 0.5})
    spec = OptimizerSpec("sgd", 0.1, {"momentum": 0.9}, groups=(group,))
    optimizer, _, _ = make(spec, ("a", "b"))
    assert [g["params"] for g in optimizer.param_groups] == [["a"], ["b"]]
    assert [(g["lr"], g["momentum"]) for g in optimizer.param_groups] == [(0.1, 0.9), (0.01, 0.0)]
    out = trajectory(spec, ("a", "b"))
    assert_steps(out["a"], expect_sgd_momentum())
    # b: p_t = p_(t-1) - 0.01 * (G_t + 0.5 p_(t-1)) = 0.995 p_(t-1) - 0.01 G_t
    p1 = 0.995 * P0 - 0.01 * G1
    p2 = 0.995 * p1 - 0.01 * G2
    p3 = 0.995 * p2 - 0.01 * G3
    assert_steps(out["b"], [p1, p2, p3])


@pytest.mark.parametrize("case", ["adam-amsgrad", "rmsprop-all", "sgd-all"])
def test_a_param_group_updates_as_if_it_were_alone(case):
    name, lr, options, expected = CASES[case]
    group = GroupSpec(("b",), lr=lr, options=options)
    spec = OptimizerSpec(name, lr=0.5 * lr, groups=(group,))  # "a" keeps the defaults
    out = trajectory(spec, ("a", "b"))
    assert_steps(out["b"], expected())
    assert_steps(out["a"], trajectory(OptimizerSpec(name, 0.5 * lr))["w"])


def test_an_lr_set_between_steps_takes_effect():
    # SGD momentum 0.9, buffers as in expect_sgd_momentum: [0.5, -1], [0.2, 1.1], [1.68, 1.74]
    out = trajectory(OptimizerSpec("sgd", 0.1, {"momentum": 0.9}), lrs=[0.1, 0.05, 0.2])
    assert_steps(out["w"], [np.array([0.95, -0.4]), np.array([0.94, -0.455]), [0.604, -0.803]])
    # Adam: the moments do not depend on lr, only the step does.
    out = trajectory(OptimizerSpec("adam", 0.1), lrs=[0.1, 0.02, 0.3])
    p1, p2, p3 = expect_adam()
    q2 = p1 + 0.2 * (p2 - p1)  # lr 0.02 instead of 0.1
    assert_steps(out["w"], [p1, q2, q2 + 3.0 * (p3 - p2)])  # lr 0.3 instead of 0.1


def test_step_lr_drives_the_numpy_optimizer():
    group = GroupSpec(("b",), lr=0.01)
    optimizer, params, grads = make(OptimizerSpec("sgd", 0.1, groups=(group,)), ("a", "b"))
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    seen_lrs, steps = [], []
    for grad in GRADS:
        seen_lrs.append([g["lr"] for g in optimizer.param_groups])
        grads["a"][...] = grads["b"][...] = grad
        optimizer.step()
        scheduler.step()
        steps.append(params["a"].copy())
    assert seen_lrs == [[0.1, 0.01], [0.05, 0.005], [0.025, 0.0025]]
    assert scheduler.get_last_lr() == [0.0125, 0.00125]
    # p_t = p_(t-1) - lr_t G_t with lr 0.1, 0.05, 0.025
    assert_steps(steps, [np.array([0.95, -0.4]), np.array([0.9625, -0.5]), [0.925, -0.51875]])
    p1 = P0 - 0.01 * G1
    p2 = p1 - 0.005 * G2
    np.testing.assert_allclose(params["b"], p2 - 0.0025 * G3, rtol=1e-15)


def test_backend_sets_lr_and_momentum_per_group():
    spec = mlp([2, 1])  # "0.weight", "0.bias"
    backend = NumpyBackend()
    net = backend.build(spec, "float64", "cpu")
    groups = (GroupSpec(("0.bias",), lr=0.01),)
    adam = backend.make_optimizer(net, OptimizerSpec("adam", 0.1, groups=groups))
    backend.set_hyperparams(adam, [0.2, 0.02], [0.8, None])
    assert [(g["lr"], g["betas"]) for g in adam.param_groups] == [
        (0.2, (0.8, 0.999)),
        (0.02, (0.9, 0.999)),
    ]
    sgd = backend.make_optimizer(net, OptimizerSpec("sgd", 0.1, {"momentum": 0.9}, groups))
    backend.set_hyperparams(sgd, [0.3, 0.03], [0.5, 0.6])
    assert [(g["lr"], g["momentum"]) for g in sgd.param_groups] == [(0.3, 0.5), (0.03, 0.6)]


@pytest.mark.parametrize("case", ["sgd-all", "adam-amsgrad", "adamw", "rmsprop-all"])
def test_a_resumed_optimizer_continues_the_same_sequence(case):
    name, lr, options, expected = CASES[case]
    spec = OptimizerSpec(name, lr, options)
    backend = NumpyBackend()
    optimizer, params, grads = make(spec)
    for grad in GRADS[:2]:
        grads["w"][...] = grad
        optimizer.step()
    saved = backend.optimizer_state(optimizer)
    resumed, new_params, new_grads = make(spec)
    new_params["w"][...] = params["w"]
    backend.load_optimizer_state(resumed, saved)
    new_grads["w"][...] = G3
    resumed.step()
    np.testing.assert_allclose(new_params["w"], expected()[2], rtol=1e-12, atol=1e-15)


def test_the_optimizer_updates_the_network_arrays_in_place():
    spec = mlp([3, 2])
    backend = NumpyBackend()
    net = Network(spec, np.dtype(np.float32))
    backend.load_state(net, init_weights(spec, 0, np.float32))
    before = {n: p.copy() for n, p in net.params.items()}
    optimizer = backend.make_optimizer(net, OptimizerSpec("sgd", 0.5))
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    backend.forward_backward(net, x, y)
    backend.optimizer_step(optimizer)
    for name, param in net.params.items():
        assert param.dtype == np.float32
        np.testing.assert_allclose(param, before[name] - 0.5 * net.grads[name], rtol=1e-6)
