"""SGD, Adam, AdamW and RMSprop with PyTorch's exact update formulas.

Parameters are the network's arrays, updated in place; `param_groups` is a
list of dicts with "lr" like torch's, so `dualtrain.lr_scheduler` drives it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Optimizer:
    def __init__(self, name: str, groups: list[dict[str, Any]], params, grads) -> None:
        self.name = name
        self.params, self.grads = params, grads
        self.param_groups = [dict(g) for g in groups]
        self.defaults = {k: v for k, v in groups[0].items() if k != "params"}
        self.state: dict[str, dict[str, Any]] = {}
        self._update = {"sgd": sgd, "adam": adam, "adamw": adam, "rmsprop": rmsprop}[name]

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0)

    def step(self) -> None:
        for group in self.param_groups:
            for name in group["params"]:
                state = self.state.setdefault(name, {})
                self._update(self.params[name], self.grads[name], state, group, self.name)


def sgd(p: np.ndarray, grad: np.ndarray, state: dict, group: dict, name: str) -> None:
    g = grad + group["weight_decay"] * p if group["weight_decay"] else grad
    momentum = group["momentum"]
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= momentum
            buf += (1 - group["dampening"]) * g
        g = g + momentum * buf if group["nesterov"] else buf
    p -= group["lr"] * g


def adam(p: np.ndarray, grad: np.ndarray, state: dict, group: dict, name: str) -> None:
    lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
    if name == "adamw":
        p *= 1 - lr * wd
    elif wd:
        grad = grad + wd * p
    if not state:
        state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    m, v, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
    m += (1 - beta1) * (grad - m)  # torch's lerp_: m + (1 - beta1) * (grad - m)
    v *= beta2
    v += (1 - beta2) * grad * grad
    if group["amsgrad"]:
        np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        v = state["max_exp_avg_sq"]
    bias1, bias2_sqrt = 1 - beta1**step, (1 - beta2**step) ** 0.5
    denom = np.sqrt(v) / bias2_sqrt + group["eps"]
    p -= (lr / bias1) * m / denom


def rmsprop(p: np.ndarray, grad: np.ndarray, state: dict, group: dict, name: str) -> None:
    alpha, wd, momentum = group["alpha"], group["weight_decay"], group["momentum"]
    g = grad + wd * p if wd else grad
    if not state:
        state.update(step=0, square_avg=np.zeros_like(p))
        if momentum:
            state["momentum_buffer"] = np.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p)
    state["step"] += 1
    sq = state["square_avg"]
    sq *= alpha
    sq += (1 - alpha) * g * g
    if group["centered"]:
        ga = state["grad_avg"]
        ga += (1 - alpha) * (g - ga)
        avg = np.sqrt(sq - ga * ga) + group["eps"]
    else:
        avg = np.sqrt(sq) + group["eps"]
    if momentum:
        buf = state["momentum_buffer"]
        buf *= momentum
        buf += g / avg
        p -= group["lr"] * buf
    else:
        p -= group["lr"] * g / avg
