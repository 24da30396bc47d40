"""The OneFlow backend behind the core's interface: eager, and `nn.Graph`."""

from __future__ import annotations

import numpy as np
import oneflow as flow

from dualtrain.backend import Backend, LrPlan, StepFn, lazy_step
from dualtrain.errors import CapabilityError, ConfigError
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec
from dualtrain.usermodel import UserModule
from dualtrain_oneflow import graph as graphs
from dualtrain_oneflow import model as models
from dualtrain_oneflow import optim, quiet, usermodule

DTYPES = {"float32": flow.float32, "float64": flow.float64}


class OneFlowBackend(Backend):
    name = "oneflow"
    supports_graph = True
    # nn.Graph's CPU optimizer kernels take float32 lrs and gradients only.
    graph_dtypes = ("float32",)
    # nn.Graph crashes now and then on CPU in OneFlow 0.9.0 (a race in its VM).
    isolate_graph = True
    # Pinned to one CPU (below), no crash in 160400 graph steps measured
    # (docs/oneflow.md): 2e-5 is that count's 95% upper bound (3 / 160400). It
    # spaces the recovery checkpoints of a graph run (dualtrain/recovery.py).
    graph_crashes_per_step = 2e-5
    # The graph's child on one CPU: OneFlow's race (a lazy job that finishes
    # before the VM has queued it) then crashed far less, at the same speed for
    # small models (measured in docs/oneflow.md).
    graph_child_cpus = 1
    # "nn.Graph ONLY accepts static inputs": one batch shape a graph.
    graph_static_shapes = True

    supports_user_modules = True
    # Eager float32: OneFlow's DistributedDataParallel; eager float64 and nn.Graph:
    # global tensors (dualtrain_oneflow.ddp). Ranks that start together race to
    # connect (DISTRIBUTED.md: 4 of 9 waited 10 s; 0 of 37 half a second apart).
    supports_data_parallel = True
    data_parallel_stagger = 0.5

    def build(self, spec: ModelSpec | UserModule, dtype: str, device: str) -> flow.nn.Module:
        if device != "cpu":
            raise ConfigError(f"the oneflow backend runs on cpu here, got device {device!r}")
        if isinstance(spec, UserModule):
            with quiet.expected_notices_hidden():
                model = usermodule.build(spec, DTYPES[dtype], device)
        else:
            model = models.build(spec, DTYPES[dtype], device)
            # A plain attribute: a Module here would become a layer of the Sequential.
            model.dualtrain_loss = spec.loss
            model.dualtrain_dropout = models.shared_dropout(model, spec)
        model.dualtrain_dtype = DTYPES[dtype]  # read once: module attribute access is slow
        model.dualtrain_spec = spec
        # A global run's steps turn each local batch into its global tensor here.
        model.dualtrain_place = None
        return model

    def data_parallel(self, rank, mode: str, dtype: str):
        from dualtrain_oneflow.ddp import replicas

        return replicas(rank, mode, dtype)

    supports_probes = True

    def probe(self, model, forced=None):
        from dualtrain_oneflow import probes

        return probes.probe(model, forced)

    def read_grads(self, model) -> dict[str, np.ndarray]:
        from dualtrain_oneflow import probes

        return probes.read_grads(model)

    def write_grads(self, model, grads: dict[str, np.ndarray]) -> None:
        from dualtrain_oneflow import probes

        probes.write_grads(model, grads)

    def read_hyperparams(self, optimizer) -> list[float]:
        from dualtrain_oneflow import probes

        return probes.read_hyperparams(optimizer)

    def preflight(self, model: UserModule, dtype: str) -> list:
        """What OneFlow 0.9.0 lacks or does differently in the torch source (none
        for a hand port: that file is the user's OneFlow code already)."""
        if model.against is not None:
            return []
        from dualtrain_oneflow.preflight import preflight

        return list(preflight(model.source.path, dtype=dtype))

    def start_at(self, model, step: int) -> None:
        if model.dualtrain_dropout is not None:
            model.dualtrain_dropout.next_step = step

    def load_state(self, model, arrays: dict[str, np.ndarray]) -> None:
        state = model.state_dict()
        missing = sorted(set(state) - set(arrays))
        if missing:
            raise ConfigError(f"initial weights: no array for {missing[0]!r} of the OneFlow model")
        loaded = {
            name: flow.tensor(np.asarray(arrays[name]), dtype=t.dtype) for name, t in state.items()
        }
        model.load_state_dict(loaded)

    def read_state(self, model) -> dict[str, np.ndarray]:
        return {n: t.detach().numpy().copy() for n, t in model.state_dict().items()}

    def make_optimizer(self, model, spec: OptimizerSpec) -> flow.optim.Optimizer:
        return optim.make_optimizer(model, spec)

    def set_hyperparams(self, optimizer, lrs, momenta) -> None:
        optim.set_hyperparams(optimizer, lrs, momenta)

    def forward_backward(self, model, x, y) -> float:
        loss = models.Loss(model.dualtrain_loss)(model(_input(model, x)), _target(model, y))
        loss.backward()
        return float(loss.numpy())

    def optimizer_step(self, optimizer) -> None:
        optimizer.step()

    def zero_grad(self, optimizer) -> None:
        optimizer.zero_grad()

    def evaluate(self, model, x, y) -> tuple[float, float | None]:
        model.eval()
        try:
            with flow.no_grad():
                out = model(_input(model, x))
                target = _target(model, y)
                loss = float(models.Loss(model.dualtrain_loss)(out, target).numpy())
                return loss, models.accuracy(model.dualtrain_loss, out, target)
        finally:
            model.train()

    def eager_step(self, model, optimizer) -> StepFn:
        loss_fn = models.Loss(model.dualtrain_loss)
        dtype, dropout = model.dualtrain_dtype, model.dualtrain_dropout
        place = model.dualtrain_place or _local

        def lazy(x: np.ndarray, y: np.ndarray) -> flow.Tensor:
            if dropout is not None:
                dropout.begin()
            # torch's default: a parameter without a gradient this step stays put.
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(place(_as(x, dtype))), place(_as(y, dtype)))
            loss.backward()
            optimizer.step()
            return loss

        return lazy_step(lambda x, y: float(lazy(x, y).numpy()), lazy)

    def read_losses(self, losses: list) -> list[float]:
        """One wait on OneFlow's VM for the chunk: the losses stacked, then read."""
        if losses and all(isinstance(loss, flow.Tensor) for loss in losses):
            return flow.stack(losses).reshape(-1).numpy().tolist()  # one op, not one a loss
        return [float(loss) for loss in losses]

    def compile_step(self, model, optimizer, plan: LrPlan) -> StepFn:
        """An nn.Graph of the whole step; its lrs come from the plan's tables."""
        what = plan.schedule_name or "the schedule"
        if plan.lrs_at is None:
            raise CapabilityError(
                f"oneflow graph: {what} decides its lrs from the run's metrics, but nn.Graph "
                "needs them before it compiles; use mode eager for it"
            )
        if plan.momentum_scheduled:
            raise CapabilityError(
                f"oneflow graph: {what} cycles momentum, which nn.Graph cannot schedule in "
                "OneFlow 0.9.0; set cycle_momentum=False or use mode eager"
            )
        tables = [plan.table(group) for group in range(plan.n_groups)]
        dropout = model.dualtrain_dropout
        with quiet.expected_notices_hidden():
            scheduler = graphs.LrTables(optimizer, tables)
            loss = models.Loss(model.dualtrain_loss)
            if dropout is None:
                graph = graphs.TrainGraph(model, loss, optimizer, scheduler)
            else:
                graph = usermodule.MaskedTrainGraph(model, loss, optimizer, scheduler, dropout)
        # The graph keeps the optimizer state (momentum, moments, its step count);
        # optimizer_state reads it there, and state loaded before now goes in.
        optimizer.dualtrain_graph = graph
        pending = getattr(optimizer, "dualtrain_pending_state", None)
        if pending or plan.first_step:
            state = graphs.to_graph_state(pending or {}, plan.first_step)
            graph.load_state_dict({**graph.state_dict(), **state})
        shape: list[tuple[int, ...]] = []
        calls: list[tuple[str, tuple[int, ...]]] = []

        def masks(inputs: flow.Tensor) -> list[flow.Tensor]:
            """This step's dropout masks, graph inputs in the order the forward asks."""
            if dropout is None:
                return []
            dropout.begin()
            if not calls and isinstance(model.dualtrain_spec, ModelSpec):
                calls.extend(model.dualtrain_spec.dropout_calls(tuple(inputs.shape)))
            elif not calls:
                state = model.state_dict()
                calls.extend(usermodule.dropout_calls(model.dualtrain_spec, state, inputs, dtype))
            return [flow.tensor(m, dtype=dtype) for m in dropout.masks.step_masks(calls)]

        dtype = model.dualtrain_dtype

        def lazy(x: np.ndarray, y: np.ndarray) -> flow.Tensor:
            inputs, targets = _input(model, x), _target(model, y)
            if not shape:  # the first call compiles the graph and prints CUDA notices
                with quiet.expected_notices_hidden():
                    shape.append(x.shape)
                    loss = graph(inputs, targets, *masks(inputs))
                    loss.numpy()  # compiled and run while the notices are hidden
                    return loss
            if x.shape != shape[0]:
                raise ConfigError(
                    f"oneflow graph: a batch of {x.shape[0]} rows after batches of "
                    f"{shape[0][0]}: nn.Graph needs one static shape; use drop_last or a "
                    "batch size that divides the training rows"
                )
            return graph(inputs, targets, *masks(inputs))

        return lazy_step(lambda x, y: float(lazy(x, y).numpy()), lazy)

    def optimizer_state(self, optimizer) -> dict[str, np.ndarray]:
        """State by stable name under torch's slot names ("0.weight/momentum_buffer",
        "0.weight/exp_avg", "0.weight/step"), so checkpoints move between backends.

        Eager OneFlow keeps it in the optimizer (one step count for all); an
        nn.Graph in the graph ("model.0.weight-momentum", "System-Train-TrainStep").
        """
        names = [n for _, n in optimizer.dualtrain_names]
        graph = getattr(optimizer, "dualtrain_graph", None)
        if graph is not None:
            return graphs.from_graph_state(graph.state_dict(), names)
        by_id = {id(p): n for p, n in optimizer.dualtrain_names}
        out = {}
        for key, value in optimizer._state.items():
            if isinstance(key, str) and key == "step":
                out.update({f"{name}/step": np.asarray(value, np.int64) for name in names})
            elif not isinstance(key, str):  # a parameter
                for slot, tensor in value.items():
                    canonical = _CANONICAL.get(slot, slot)
                    out[f"{by_id[id(key)]}/{canonical}"] = tensor.numpy().copy()
        return out

    def load_optimizer_state(self, optimizer, state: dict[str, np.ndarray]) -> None:
        """Before training: into the eager optimizer, and kept for a graph to load."""
        optimizer.dualtrain_pending_state = dict(state)
        params = {n: p for p, n in optimizer.dualtrain_names}
        for flat, value in state.items():
            name, slot = flat.rsplit("/", 1)
            if slot == "step":
                optimizer._state["step"] = int(value)
                continue
            param = params[name]
            entry = optimizer._state.setdefault(param, {})
            entry[_ONEFLOW_SLOT.get(slot, slot)] = flow.tensor(value, dtype=param.dtype)


# Eager OneFlow's slot names that differ from torch's.
_CANONICAL = {"momentum_buf": "momentum_buffer"}
_ONEFLOW_SLOT = {v: k for k, v in _CANONICAL.items()}


def _as(array: np.ndarray, dtype: flow.dtype) -> flow.Tensor:
    """A tensor sharing the array's memory where the dtype allows; class ids as int64."""
    if array.dtype.kind in "iu":
        return flow.from_numpy(array.astype(np.int64, copy=False))
    tensor = flow.from_numpy(array)
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _local(tensor: flow.Tensor) -> flow.Tensor:
    return tensor


def _input(model, x: np.ndarray) -> flow.Tensor:
    return (model.dualtrain_place or _local)(_as(x, model.dualtrain_dtype))


def _target(model, y: np.ndarray) -> flow.Tensor:
    return (model.dualtrain_place or _local)(_as(y, model.dualtrain_dtype))
