"""The PyTorch backend behind the core's interface: eager, and `torch.compile`."""

from __future__ import annotations

import logging
import types

import numpy as np
import torch

from dualtrain.backend import Backend, HostData, LrPlan, StepFn, lazy_step
from dualtrain.data import Dataset
from dualtrain.errors import ConfigError
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec
from dualtrain.usermodel import UserModule
from dualtrain_torch import model as models
from dualtrain_torch import optim, usermodule

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    name = "torch"
    supports_graph = True
    devices = ("cpu", "cuda")
    supports_user_modules = True
    # DistributedDataParallel over gloo, eager or compiled (dualtrain_torch.ddp).
    supports_data_parallel = True

    def build(self, spec: ModelSpec | UserModule, dtype: str, device: str) -> torch.nn.Module:
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device")
        if device not in self.devices:
            raise ConfigError(f"device must be one of {', '.join(self.devices)}, got {device!r}")
        if isinstance(spec, UserModule):
            model = usermodule.build(spec, DTYPES[dtype], torch.device(device))
        else:
            model = models.build(spec, DTYPES[dtype], torch.device(device))
            model.dualtrain_loss = spec.loss  # what the step functions need, kept with the model
            model.dualtrain_dropout = models.shared_dropout(model, spec)
        # Read once here: the step converts every batch to these.
        model.dualtrain_dtype, model.dualtrain_device = DTYPES[dtype], torch.device(device)
        return model

    def data_parallel(self, rank, mode: str, dtype: str):
        from dualtrain_torch.ddp import TorchReplicas

        return TorchReplicas(rank)

    supports_probes = True

    def probe(self, model, forced=None):
        from dualtrain_torch import probes

        return probes.probe(model, forced)

    def read_grads(self, model) -> dict[str, np.ndarray]:
        from dualtrain_torch import probes

        return probes.read_grads(model)

    def write_grads(self, model, grads: dict[str, np.ndarray]) -> None:
        from dualtrain_torch import probes

        probes.write_grads(model, grads)

    def read_hyperparams(self, optimizer) -> list[float]:
        from dualtrain_torch import probes

        return probes.read_hyperparams(optimizer)

    def running(self):
        """torch's global RNG as it was after the run: a user module's own dropout
        still draws from it (its output is then replaced by the shared mask's)."""
        return torch.random.fork_rng(devices=[])

    def describe_module(self, model: UserModule, data: Dataset, seed: int) -> UserModule:
        return usermodule.describe(model, data, seed)

    def start_at(self, model, step: int) -> None:
        if model.dualtrain_dropout is not None:
            model.dualtrain_dropout.next_step = step

    def load_state(self, model, arrays: dict[str, np.ndarray]) -> None:
        state = model.state_dict()
        _check_names(state, arrays)
        with torch.no_grad():
            for name, target in state.items():
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

    #: Keep the data set as tensors on the CPU too (a GPU always does when it fits):
    #: off by default, NumPy indexing is as fast there; tests turn it on.
    resident_on_cpu = False

    def put_dataset(self, model, x: np.ndarray, y: np.ndarray):
        """On a GPU, the data set in the model's dtype on the device when it takes
        at most a quarter of the free memory; batches are indexed there."""
        device = model.dualtrain_device
        if device.type == "cpu" and not self.resident_on_cpu:
            return HostData(x, y)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if _nbytes(model, x) + _nbytes(model, y) > free // 4:
                return HostData(x, y)
        return DeviceData(_input(model, x), _target(model, y))

    def read_losses(self, losses: list) -> list[float]:
        """One sync for the chunk: the losses stacked, then read as Python floats."""
        if losses and all(isinstance(loss, torch.Tensor) for loss in losses):
            with torch.no_grad():
                return torch.stack(losses).tolist()
        return [float(loss) for loss in losses]

    def eager_step(self, model, optimizer) -> StepFn:
        dropout = model.dualtrain_dropout
        if dropout is None:
            lazy = _plain_step(model, optimizer)
        else:
            train_step = _train_step(model, optimizer, detach=False)

            def lazy(x, y) -> torch.Tensor:
                dropout.begin()
                return train_step(_input(model, x), _target(model, y), None)

        return lazy_step(lambda x, y: lazy(x, y).item(), lazy)

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
        train_step = _own_code(_train_step(model, optimizer))
        _own_step_code(optimizer)
        compiled = torch.compile(train_step)
        dropout = model.dualtrain_dropout
        # A resumed run has its optimizer state already: no eager step then, so
        # the resumed run compiles exactly what the uninterrupted one ran.
        warm = [bool(optimizer.state)]
        optim.upcast_step_counters(optimizer)

        def lazy(x, y) -> torch.Tensor:
            inputs, targets = _input(model, x), _target(model, y)
            shape = tuple(x.shape)
            masks = None
            if dropout is not None:
                dropout.begin()
                masks = dropout.inputs_for(shape, inputs.dtype, inputs.device)
            if warm[0] and (dropout is None or masks is not None):
                return compiled(inputs, targets, masks)
            # Eager: the first step, and the first step of each batch shape, whose
            # hooks show the dropout calls the compiled steps then get masks for.
            loss = train_step(inputs, targets, None)
            if dropout is not None:
                dropout.remember(shape)
            if not warm[0]:
                optim.upcast_step_counters(optimizer)
                warm[0] = True
            return loss

        return lazy_step(lambda x, y: lazy(x, y).item(), lazy)

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


def _own_code(function, depth: int = 1):
    """`function` with a code object of its own.

    dynamo keeps its compiled graphs per code object, and every compiled step
    shares `_train_step`'s inner one: each run's new model and optimizer fail the
    last run's guards, and after `recompile_limit` (8) such recompiles dynamo runs
    the step eagerly without a word but a log line (measured with torch 2.14.1:
    the 9th `torch.compile` run in one process, a sweep, say, compiled nothing).
    A copy of the code object starts its own cache; inductor's compiled kernels
    are still cached on disk across them. `depth` > 1: the functions in its
    closure (those a decorator wraps) are copied too, that many levels down.
    """
    closure = function.__closure__
    if depth > 1 and closure:  # the functions a decorator wraps, copied as well
        closure = tuple(
            types.CellType(_own_code(c.cell_contents, depth - 1))
            if isinstance(c.cell_contents, types.FunctionType)
            else c
            for c in closure
        )
    copy = types.FunctionType(
        function.__code__.replace(),
        function.__globals__,
        function.__name__,
        function.__defaults__,
        closure,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


def _own_step_code(optimizer) -> None:
    """This optimizer's `step` with code objects of its own, as `_own_code`.

    dynamo breaks the compiled step's graph at `loss.backward()`, and again inside
    the profiling wrapper torch puts around every optimizer class's `step`: the
    wrapper and the class's own `step` are compiled as frames of their own, each
    one code object for every optimizer of the class. Each run's new optimizer
    then fails the last one's guards there, and from the recompile limit on the
    update runs eagerly without a word (measured with torch 2.14.1: the third run
    at `recompile_limit=2` compiled 2 graphs instead of 3, the update not among
    them). The copy reaches through the decorators' closures to the class's
    `step`; an instance attribute shadows the class's method.
    """
    optimizer.step = types.MethodType(_own_code(type(optimizer).step, depth=3), optimizer)


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


def _train_step(model, optimizer, detach: bool = True):
    """The training step, written once: eager calls it, `torch.compile` wraps it.

    `masks`: the shared dropout masks of this step as tensor inputs (a compiled
    step), or None (the hooks draw them eagerly). `detach=False` (eager) returns
    the loss as backward left it: a detach costs about a microsecond a step, and
    its graph's buffers are freed by backward already.
    """
    kind, dropout = model.dualtrain_loss, model.dualtrain_dropout

    def train_step(x: torch.Tensor, y: torch.Tensor, masks) -> torch.Tensor:
        if dropout is not None:
            dropout.feed(masks)
        optimizer.zero_grad()
        loss = models.loss_fn(kind, model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach() if detach else loss

    return train_step


def _plain_step(model, optimizer):
    """The eager step of a model without shared dropout, as one function: the step a
    user writes, plus turning each NumPy batch into a tensor of the model's dtype.

    It is `_train_step` unrolled: the loop calls it every step, and each Python call
    and attribute lookup taken out of it is a fraction of a percent of a small
    model's step on the CPU (docs/performance.md).
    """
    loss_of = models.loss_function(model.dualtrain_loss)
    to_input, to_target = _converter(model), _converter(model)
    inputs_as_they_are, targets_as_they_are = to_input.cast_free, to_target.cast_free
    from_numpy, ndarray = torch.from_numpy, np.ndarray
    zero_grad, step = optimizer.zero_grad, optimizer.step

    def train_step(x, y) -> torch.Tensor:
        zero_grad()
        # The converters' fast path inline (two calls a step fewer); a dtype not
        # seen yet, a tensor or a cast goes through them.
        if x.__class__ is ndarray and x.dtype in inputs_as_they_are:
            x = from_numpy(x)
        else:
            x = to_input(x)
        if y.__class__ is ndarray and y.dtype in targets_as_they_are:
            y = from_numpy(y)
        else:
            y = to_target(y)
        loss = loss_of(model(x), y)
        loss.backward()
        step()
        return loss  # as backward left it (see _train_step)

    return train_step


def _converter(model):
    """`_input` for a stream of batches, deciding once for each NumPy dtype: an array
    that is already in the model's dtype on the CPU goes through `torch.from_numpy`
    alone (the usual case), anything else through `_input`. The dtypes found to
    need no cast are in its `cast_free` set."""
    from_numpy, ndarray = torch.from_numpy, np.ndarray
    direct: dict[np.dtype, bool] = {}
    cast_free: set[np.dtype] = set()

    def convert(batch) -> torch.Tensor:
        if batch.__class__ is ndarray:  # a tensor (a batch kept on the device) as it is
            dtype = batch.dtype
            ready = direct.get(dtype)
            if ready is None:
                ready = direct[dtype] = _needs_no_cast(model, dtype)
                if ready:
                    cast_free.add(dtype)
            if ready:
                return from_numpy(batch)
        return _input(model, batch)

    convert.cast_free = cast_free  # type: ignore[attr-defined]
    return convert


def _needs_no_cast(model, dtype: np.dtype) -> bool:
    """Whether `_input` would hand an array of `dtype` to the model as
    `torch.from_numpy` makes it."""
    wanted = torch.long if dtype.kind in "iu" else model.dualtrain_dtype
    return (
        model.dualtrain_device.type == "cpu"
        and torch.from_numpy(np.empty(0, dtype=dtype)).dtype == wanted
    )


def _check_names(state: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every state-dict name has an array of its shape, and no array is left over."""
    for name, target in state.items():
        if name not in arrays:
            raise ConfigError(f"initial weights: no array for {name!r} of the torch model")
        if tuple(np.shape(arrays[name])) != tuple(target.shape):
            raise ConfigError(
                f"initial weights: {name} has shape {tuple(np.shape(arrays[name]))}, the torch "
                f"model's is {tuple(target.shape)}"
            )
    extra = sorted(set(arrays) - set(state))
    if extra:
        raise ConfigError(f"initial weights: the torch model has no {extra[0]!r}")


class DeviceData:
    """The data set as tensors on the model's device, in the dtypes its steps take:
    each epoch's row order goes to the device once, its batches are slices of it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def batches(self, order: list[np.ndarray]):
        if not order:
            return
        rows = torch.from_numpy(np.concatenate(order)).to(self.x.device)
        start = 0
        for index in order:
            part = rows[start : start + len(index)]
            start += len(index)
            yield self.x[part], self.y[part]


def _nbytes(model, array: np.ndarray) -> int:
    """Bytes of `array` once in the model's dtype (token and class ids as int64)."""
    size = 8 if array.dtype.kind in "iu" else model.dualtrain_dtype.itemsize
    return array.size * size


def _input(model, x) -> torch.Tensor:
    """A batch as the model takes it: token ids as int64, features in its dtype
    (a batch of `DeviceData` is so already)."""
    if isinstance(x, torch.Tensor):
        return x
    dtype = torch.long if x.dtype.kind in "iu" else model.dualtrain_dtype
    return _on(torch.from_numpy(x), model.dualtrain_device, dtype)


def _target(model, y) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y
    dtype = torch.long if y.dtype.kind in "iu" else model.dualtrain_dtype
    return _on(torch.from_numpy(y), model.dualtrain_device, dtype)


def _named_params(optimizer) -> list[tuple[torch.Tensor, str]]:
    """(parameter, stable name) pairs; the optimizer keeps its names in `dualtrain_names`."""
    return [(p, name) for p, name in optimizer.dualtrain_names]


def _param_names(optimizer) -> dict[int, str]:
    return {id(p): name for p, name in _named_params(optimizer)}
