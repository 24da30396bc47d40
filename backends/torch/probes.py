"""torch's operations for the core's per-module probes (`dualtrain.diagnose.hooks`),
and the gradients and lrs a diagnosis reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dualtrain.diagnose.hooks import Probe
from dualtrain.diagnose.records import StepProbe


class TorchOps:
    """`dualtrain.diagnose.hooks.Ops` for torch."""

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor)

    def is_floating(self, tensor: torch.Tensor) -> bool:
        return tensor.is_floating_point()

    def requires_grad(self, tensor: torch.Tensor) -> bool:
        return tensor.requires_grad

    def to_array(self, tensor: torch.Tensor) -> np.ndarray:
        value = tensor.detach().cpu()
        value = value.double() if value.is_floating_point() else value.long()
        return value.numpy().copy()

    def like(self, array: np.ndarray, tensor: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(tensor.device, tensor.dtype)

    def clone(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.clone()

    def straight_through(self, value: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
        # The value is exactly `value` (x - x.detach() is 0), the gradient flows to `tensor`.
        return value + (tensor - tensor.detach())

    def grad_hook(self, tensor: torch.Tensor, hook: Callable[[Any], Any]) -> None:
        tensor.register_hook(hook)

    def add_hooks(self, module: torch.nn.Module, pre: Callable, post: Callable):
        handles = [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        return lambda: [h.remove() for h in handles]


def probe(model: torch.nn.Module, forced: StepProbe | None) -> Probe:
    return Probe(TorchOps(), model, forced)


def read_grads(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Each parameter's gradient (zeros where it has none) by state-dict name."""
    return {
        name: (torch.zeros_like(p) if p.grad is None else p.grad).detach().cpu().numpy().copy()
        for name, p in model.named_parameters()
    }


def write_grads(model: torch.nn.Module, grads: dict[str, np.ndarray]) -> None:
    for name, p in model.named_parameters():
        p.grad = torch.from_numpy(np.asarray(grads[name])).to(p.device, p.dtype).clone()


def read_hyperparams(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's lr as the optimizer holds it (a tensor lr read as a float)."""
    return [float(group["lr"]) for group in optimizer.param_groups]
