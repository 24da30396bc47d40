"""The PyTorch backend behind the core's interface: eager, and `torch.compile`."""

from __future__ import annotations

import logging

import numpy as np
import torch

from dualtrain.backend import Backend, LrPlan, StepFn
from dualtrain.errors import ConfigError
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec
from dualtrain_torch import model as models
from dualtrain_torch import optim

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    name = "torch"
    supports_graph = True
    devices = ("cpu", "cuda")

    def build(self, spec: ModelSpec, dtype: str, device: str) -> torch.nn.Sequential:
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
        if device not in self.devices:
            raise ConfigError(f"device must be one of {', '.join(self.devices)}, got {device!r}")
        model = models.build(spec, DTYPES[dtype], torch.device(device))
        model.dualtrain_loss = spec.loss  # what the step functions need, kept with the model
        return model

    def load_state(self, model, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, target in model.state_dict().items():
                target.copy_(torch.from_numpy(np.asarray(arrays[name])))

    def read_state(self, model) -> dict[str, np.ndarray]:
        return {n: t.detach().cpu().numpy().copy() for n, t in model.state_dict().items()}

    def make_optimizer(self, model, spec: OptimizerSpec) -> torch.optim.Optimizer:
        return optim.make_optimizer(model, spec)

    def set_hyperparams(self, optimizer, lrs, momenta) -> None:
        optim.set_hyperparams(optimizer, lrs, momenta)

    def forward_backward(self, model, x, y) -> float:
        loss = models.loss_fn(model.dualtrain_loss, model(_input(model, x)), _target(model, y))
        loss.backward()
        return loss.item()

    def optimizer_step(self, optimizer) -> None:
        optimizer.step()

    def zero_grad(self, optimizer) -> None:
        optimizer.zero_grad()

    def evaluate(self, model, x, y) -> tuple[float, float | None]:
        model.eval()
        try:
            with torch.no_grad():
                out = model(_input(model, x))
                target = _target(model, y)
                loss = models.loss_fn(model.dualtrain_loss, out, target).item()
                return loss, models.accuracy(model.dualtrain_loss, out, target)
        finally:
            model.train()

    def eager_step(self, model, optimizer) -> StepFn:
        kind = model.dualtrain_loss
        weight = model[0].weight
        device, dtype = weight.device, weight.dtype
        target_dtype = torch.long if kind == "cross_entropy" else dtype

        def step(x: np.ndarray, y: np.ndarray) -> float:
            optimizer.zero_grad()
            inputs = _on(torch.from_numpy(x), device, dtype)
            targets = _on(torch.from_numpy(y), device, target_dtype)
            loss = models.loss_fn(kind, model(inputs), targets)
            loss.backward()
            optimizer.step()
            return loss.item()

        return step

    def compile_step(self, model, optimizer, plan: LrPlan) -> StepFn:
        """`torch.compile` of the whole step: forward, loss, backward, optimizer step.

        The first call runs eagerly: it creates the optimizer's state (momentum
        buffers, moments), which dynamo cannot trace reliably (torch 2.14.1
        raises SpeculationLogDivergence there for SGD with momentum). From the
        second call on the compiled graphs run, with lr (and Adam's beta1) as
        tensors, so a schedule never recompiles them.
        """
        optim.use_tensor_hyperparams(optimizer)
        _quiet_compile_notices()
        kind = model.dualtrain_loss

        def train_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            optimizer.zero_grad()
            loss = models.loss_fn(kind, model(x), y)
            loss.backward()
            optimizer.step()
            return loss.detach()

        compiled = torch.compile(train_step)
        # A resumed run has its optimizer state already: no eager step then, so
        # the resumed run compiles exactly what the uninterrupted one ran.
        warm = [bool(optimizer.state)]
        optim.upcast_step_counters(optimizer)

        def step(x: np.ndarray, y: np.ndarray) -> float:
            if warm[0]:
                return compiled(_input(model, x), _target(model, y)).item()
            loss = train_step(_input(model, x), _target(model, y)).item()
            optim.upcast_step_counters(optimizer)
            warm[0] = True
            return loss

        return step

    def optimizer_state(self, optimizer) -> dict[str, np.ndarray]:
        names = _param_names(optimizer)
        return {
            f"{names[id(p)]}/{key}": torch.as_tensor(value).detach().cpu().numpy().copy()
            for p, state in optimizer.state.items()
            for key, value in state.items()
        }

    def load_optimizer_state(self, optimizer, state: dict[str, np.ndarray]) -> None:
        params = {name: p for p, name in _named_params(optimizer)}
        optimizer.state.clear()
        for flat, value in state.items():
            name, key = flat.rsplit("/", 1)
            p = params[name]
            dtype = torch.float32 if key == "step" else p.dtype
            optimizer.state[p][key] = torch.tensor(value, dtype=dtype, device=p.device)


def _quiet_compile_notices() -> None:
    """Hide two notices torch.compile logs as warnings on every CPU-only run.

    "No CUDA runtime is found" (inductor probing for CUDA on a CPU machine) and
    "Profiler record function ... will be ignored" (dynamo tracing torch's own
    optimizer) say nothing about the user's run; real errors still raise.
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    logging.getLogger("torch._dynamo.variables.ctx_manager").setLevel(logging.ERROR)


def _on(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`tensor` on `device` in `dtype`; as it is when it already is (no call to .to)."""
    if tensor.dtype == dtype and device.type == "cpu":
        return tensor
    return tensor.to(device=device, dtype=dtype)


def _input(model, x: np.ndarray) -> torch.Tensor:
    weight = model[0].weight
    return _on(torch.from_numpy(x), weight.device, weight.dtype)


def _target(model, y: np.ndarray) -> torch.Tensor:
    weight = model[0].weight
    dtype = torch.long if y.dtype.kind in "iu" else weight.dtype
    return _on(torch.from_numpy(y), weight.device, dtype)


def _named_params(optimizer) -> list[tuple[torch.Tensor, str]]:
    """(parameter, stable name) pairs; the optimizer keeps its names in `dualtrain_names`."""
    return [(p, name) for p, name in optimizer.dualtrain_names]


def _param_names(optimizer) -> dict[int, str]:
    return {id(p): name for p, name in _named_params(optimizer)}
