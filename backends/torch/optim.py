"""torch's own optimizers, built from the core's spec, and their hyperparameters.

In eager mode a group's lr and momentum are plain floats, as in any torch
script. A compiled step reads them as 0-dim tensors instead, filled in place
each step: dynamo bakes a float into the graph and recompiles when it changes,
while a tensor is an input like any other.
"""

from __future__ import annotations

import torch

from dualtrain.optim import OptimizerSpec

CLASSES = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}


def make_optimizer(model: torch.nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The spec's optimizer over `model`, one param group per group of the spec."""
    named = dict(model.named_parameters())
    groups = []
    for group in spec.assign(list(named)):
        hyper = {k: tuple(v) if k == "betas" else v for k, v in group.items() if k != "params"}
        groups.append({**hyper, "params": [named[n] for n in group["params"]]})
    optimizer = CLASSES[spec.name](groups)
    # Stable names for optimizer state in checkpoints, in param-group order.
    optimizer.dualtrain_names = [
        (p, n) for g in spec.assign(list(named)) for n in g["params"] for p in [named[n]]
    ]
    return optimizer


def use_tensor_hyperparams(optimizer: torch.optim.Optimizer) -> None:
    """Turn every group's lr (and Adam's beta1) into a 0-dim tensor on its device.

    A momentum that a schedule moves becomes a tensor too, on its first change
    (`set_hyperparams`). SGD and RMSprop branch on it in Python, so their update
    then runs eagerly between the compiled graphs: measured with torch 2.14.1,
    a float momentum that changes either recompiles every step (dynamo
    guards on it) or, with `dynamic=True`, keeps its first value without a
    word (5e-4 off after three steps). A fixed momentum stays a float.
    """
    optimizer.dualtrain_tensors = True
    for group in optimizer.param_groups:
        group["lr"] = _tensor(group, group["lr"])
        if "betas" in group:
            beta1, beta2 = group["betas"]
            group["betas"] = (_tensor(group, beta1), beta2)
        if group.get("foreach") and not group.get("capturable"):
            group["foreach"] = False  # torch refuses a tensor lr with foreach on CUDA


def set_hyperparams(optimizer: torch.optim.Optimizer, lrs, momenta) -> None:
    """Each group's lr, and momentum (beta1 for Adam) where the schedule sets it."""
    tensors = getattr(optimizer, "dualtrain_tensors", False)
    for index, group in enumerate(optimizer.param_groups):
        _assign(group, "lr", lrs[index])
        if momenta is None or momenta[index] is None:
            continue
        if "betas" in group:
            beta1, beta2 = group["betas"]
            if isinstance(beta1, torch.Tensor):
                beta1.fill_(momenta[index])
            else:
                group["betas"] = (momenta[index], beta2)
            continue
        if tensors and not isinstance(group["momentum"], torch.Tensor):
            group["momentum"] = _tensor(group, group["momentum"])
        _assign(group, "momentum", momenta[index])


def upcast_step_counters(optimizer: torch.optim.Optimizer) -> None:
    """Keep Adam's step counter in float64 for float64 parameters.

    torch keeps `state["step"]` in float32; eager Adam reads it as a Python
    float, but compiled Adam computes `beta ** step` with the tensor, so its
    bias corrections are float32 (measured: 2e-7 off in float64 runs).
    """
    for param, state in optimizer.state.items():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and param.dtype == torch.float64:
            state["step"] = step.to(torch.float64)


def _tensor(group: dict, value) -> torch.Tensor:
    device = group["params"][0].device
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def _assign(group: dict, key: str, value: float) -> None:
    if isinstance(group[key], torch.Tensor):
        group[key].fill_(value)
    else:
        group[key] = value
