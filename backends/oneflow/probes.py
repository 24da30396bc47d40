"""OneFlow's operations for the core's per-module probes (`dualtrain.diagnose.hooks`),
and the gradients and lrs a diagnosis reads and writes.

OneFlow 0.9.0's `register_forward_pre_hook` and `register_forward_hook` return no
handle: a hook is removed by deleting its key from the module's hook dict. The
keys are counts (`len(hooks)` when added), so a probe removes exactly the keys
it added, last first, and adds none in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import oneflow as flow

from dualtrain.diagnose.hooks import Probe
from dualtrain.diagnose.records import StepProbe


class OneFlowOps:
    """`dualtrain.diagnose.hooks.Ops` for OneFlow."""

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, flow.Tensor)

    def is_floating(self, tensor: flow.Tensor) -> bool:
        return tensor.dtype in (flow.float16, flow.float32, flow.float64)

    def requires_grad(self, tensor: flow.Tensor) -> bool:
        return bool(tensor.requires_grad)

    def to_array(self, tensor: flow.Tensor) -> np.ndarray:
        value = tensor.detach().numpy()
        return value.astype(np.float64 if value.dtype.kind == "f" else np.int64, copy=True)

    def like(self, array: np.ndarray, tensor: flow.Tensor) -> flow.Tensor:
        return flow.tensor(np.ascontiguousarray(array), dtype=tensor.dtype, device=tensor.device)

    def clone(self, tensor: flow.Tensor) -> flow.Tensor:
        return tensor.clone()

    def straight_through(self, value: flow.Tensor, tensor: flow.Tensor) -> flow.Tensor:
        return value + (tensor - tensor.detach())

    def grad_hook(self, tensor: flow.Tensor, hook: Callable[[Any], Any]) -> None:
        tensor.register_hook(hook)

    def add_hooks(self, module: flow.nn.Module, pre: Callable, post: Callable):
        pre_key, post_key = len(module._forward_pre_hooks), len(module._forward_hooks)
        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

        def remove() -> None:
            if module._forward_hooks.get(post_key) is post:
                del module._forward_hooks[post_key]
            if module._forward_pre_hooks.get(pre_key) is pre:
                del module._forward_pre_hooks[pre_key]

        return remove


def probe(model: flow.nn.Module, forced: StepProbe | None) -> Probe:
    return Probe(OneFlowOps(), model, forced)


def read_grads(model: flow.nn.Module) -> dict[str, np.ndarray]:
    """Each parameter's gradient (zeros where it has none) by state-dict name."""
    out = {}
    for name, p in model.named_parameters():
        grad = p.grad
        out[name] = np.zeros(tuple(p.shape), p.numpy().dtype) if grad is None else grad.numpy()
    return out


def write_grads(model: flow.nn.Module, grads: dict[str, np.ndarray]) -> None:
    for name, p in model.named_parameters():
        p.grad = flow.tensor(np.ascontiguousarray(grads[name]), dtype=p.dtype, device=p.device)


def read_hyperparams(optimizer: flow.optim.Optimizer) -> list[float]:
    """Each group's lr as the optimizer holds it."""
    return [float(group["lr"]) for group in optimizer.param_groups]
