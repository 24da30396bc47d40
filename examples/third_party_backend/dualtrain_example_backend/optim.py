"""SGD as torch.optim.SGD defines it, with lr, momentum and weight_decay.

`param_groups` is a list of dicts like torch's, one per group of the core's
`OptimizerSpec.assign`; the loop writes each group's lr (and momentum) into it.
"""

from __future__ import annotations

import numpy as np
from dualtrain.errors import CapabilityError
from dualtrain.optim import OptimizerSpec

from dualtrain_example_backend.model import Network


class SGD:
    """Updates the network's parameters in place from its accumulated gradients."""

    def __init__(self, network: Network, spec: OptimizerSpec) -> None:
        if spec.name != "sgd":
            raise CapabilityError(f"backend 'example' has no optimizer {spec.name!r}; it has sgd")
        self.param_groups = spec.assign(list(network.params))
        for group in self.param_groups:
            for option in ("dampening", "nesterov"):
                if group[option]:
                    raise CapabilityError(
                        f"backend 'example' has no sgd {option} (got {group[option]!r}); "
                        "it supports lr, momentum, weight_decay"
                    )
        self.params, self.grads = network.params, network.grads
        self.momentum_buffers: dict[str, np.ndarray] = {}

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0)

    def step(self) -> None:
        for group in self.param_groups:
            for name in group["params"]:
                self._update(name, group)

    def _update(self, name: str, group: dict) -> None:
        p, g = self.params[name], self.grads[name]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p
        if group["momentum"]:
            buf = self.momentum_buffers.get(name)
            # torch starts the buffer at the first gradient, not at zero.
            buf = g.copy() if buf is None else group["momentum"] * buf + g
            self.momentum_buffers[name] = g = buf
        p -= group["lr"] * g
