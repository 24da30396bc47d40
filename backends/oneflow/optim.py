"""OneFlow's own optimizers, built from the core's spec, and their hyperparameters.

OneFlow 0.9.0 differs from torch in two places we measured, so those settings
are refused rather than trained differently without a word: SGD's dampening
(OneFlow's buffer starts at zero and applies it from the first step: 9x off
after six steps) and RMSprop's momentum (OneFlow asserts it is 0). Its RMSprop
also adds eps inside the square root, where torch adds it outside; that is
kept, as OneFlow computes it, and shows in comparisons.
"""

from __future__ import annotations

import oneflow as flow

from dualtrain.errors import CapabilityError
from dualtrain.optim import OptimizerSpec

CLASSES = {
    "sgd": flow.optim.SGD,
    "adam": flow.optim.Adam,
    "adamw": flow.optim.AdamW,
    "rmsprop": flow.optim.RMSprop,
}


def make_optimizer(model: flow.nn.Module, spec: OptimizerSpec) -> flow.optim.Optimizer:
    """The spec's optimizer over `model`, one param group per group of the spec."""
    named = dict(model.named_parameters())
    groups = []
    for group in spec.assign(list(named)):
        hyper = {k: tuple(v) if k == "betas" else v for k, v in group.items() if k != "params"}
        refuse_what_oneflow_computes_differently(spec.name, hyper)
        groups.append({**hyper, "params": [named[n] for n in group["params"]]})
    optimizer = CLASSES[spec.name](groups)
    optimizer.dualtrain_names = [
        (named[n], n) for g in spec.assign(list(named)) for n in g["params"]
    ]
    return optimizer


def refuse_what_oneflow_computes_differently(name: str, hyper: dict) -> None:
    if name == "sgd" and hyper.get("dampening", 0):
        raise CapabilityError(
            f"oneflow: SGD dampening={hyper['dampening']!r} is computed differently from "
            "torch's in OneFlow 0.9.0 (its momentum buffer starts at zero); expected 0"
        )
    if name == "rmsprop" and hyper.get("momentum", 0):
        raise CapabilityError(
            f"oneflow: RMSprop momentum={hyper['momentum']!r} is not supported by "
            "OneFlow 0.9.0; expected 0"
        )


def set_hyperparams(optimizer: flow.optim.Optimizer, lrs, momenta) -> None:
    """Each group's lr, and momentum (beta1 for Adam) where the schedule sets it."""
    for index, group in enumerate(optimizer.param_groups):
        group["lr"] = lrs[index]
        if momenta is None or momenta[index] is None:
            continue
        if "betas" in group:
            group["betas"] = (momenta[index], group["betas"][1])
        else:
            group["momentum"] = momenta[index]
