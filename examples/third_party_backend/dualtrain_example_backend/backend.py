"""`ExampleBackend`: the model and optimizer of this package behind dualtrain's
`Backend` interface. The loop does the rest: weights, batches, lrs, records."""

from __future__ import annotations

import numpy as np
from dualtrain.backend import Backend
from dualtrain.errors import CapabilityError
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec

from dualtrain_example_backend.model import Network, loss_and_grad
from dualtrain_example_backend.optim import SGD


class ExampleBackend(Backend):
    """Linear, Tanh, ReLU and Sigmoid, mse and sse, and SGD, in NumPy on the CPU."""

    name = "example"
    graph_unsupported_reason = "the example backend runs eagerly only"

    def build(self, spec: ModelSpec, dtype: str, device: str) -> Network:
        if device not in self.devices:
            raise CapabilityError(f"backend 'example' runs on cpu only, got device {device!r}")
        return Network(spec, np.dtype(dtype))

    def load_state(self, model: Network, arrays: dict[str, np.ndarray]) -> None:
        for name, target in model.params.items():
            target[...] = arrays[name]

    def read_state(self, model: Network) -> dict[str, np.ndarray]:
        return {name: p.copy() for name, p in model.params.items()}

    def make_optimizer(self, model: Network, spec: OptimizerSpec) -> SGD:
        return SGD(model, spec)

    def set_hyperparams(self, optimizer: SGD, lrs: list[float], momenta: list | None) -> None:
        for index, group in enumerate(optimizer.param_groups):
            group["lr"] = lrs[index]
            if momenta is not None and momenta[index] is not None:
                group["momentum"] = momenta[index]

    def forward_backward(self, model: Network, x: np.ndarray, y: np.ndarray) -> float:
        values = model.forward(x)
        loss, grad_out = loss_and_grad(model.spec.loss, values[-1], y)
        model.backward(values, grad_out)
        return loss

    def optimizer_step(self, optimizer: SGD) -> None:
        optimizer.step()

    def zero_grad(self, optimizer: SGD) -> None:
        optimizer.zero_grad()

    def evaluate(self, model: Network, x: np.ndarray, y: np.ndarray) -> tuple[float, None]:
        loss, _ = loss_and_grad(model.spec.loss, model.forward(x)[-1], y)
        return loss, None  # no accuracy: there is no classification loss here

    # Named as the NumPy reference names them, so a checkpoint moves between the two.
    def optimizer_state(self, optimizer: SGD) -> dict[str, np.ndarray]:
        buffers = optimizer.momentum_buffers
        return {f"{name}/momentum_buffer": buf.copy() for name, buf in buffers.items()}

    def load_optimizer_state(self, optimizer: SGD, state: dict[str, np.ndarray]) -> None:
        optimizer.momentum_buffers = {}
        for key, value in state.items():
            name, _, slot = key.rpartition("/")
            if slot != "momentum_buffer" or name not in optimizer.params:
                raise CapabilityError(f"backend 'example' has no optimizer state {key!r}")
            buf = np.array(value, dtype=optimizer.params[name].dtype)
            optimizer.momentum_buffers[name] = buf
