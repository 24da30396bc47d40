"""The NumPy reference backend behind the core's interface."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from dualtrain.backend import Backend
from dualtrain.model import ModelSpec
from dualtrain.optim import OptimizerSpec
from dualtrain_numpy.model import Network, accuracy, loss_and_grad
from dualtrain_numpy.optim import Optimizer


class NumpyBackend(Backend):
    name = "numpy"
    supports_graph = False
    graph_unsupported_reason = "NumPy runs eagerly only: it has no static graph"

    def build(self, spec: ModelSpec, dtype: str, device: str) -> Network:
        return Network(spec, np.dtype(dtype))

    def load_state(self, model: Network, arrays: dict[str, np.ndarray]) -> None:
        for store in (model.params, model.buffers):
            for name, target in store.items():
                target[...] = arrays[name]

    def read_state(self, model: Network) -> dict[str, np.ndarray]:
        return {n: a.copy() for n, a in {**model.params, **model.buffers}.items()}

    def make_optimizer(self, model: Network, spec: OptimizerSpec) -> Optimizer:
        groups = spec.assign(list(model.params))
        return Optimizer(spec.name, groups, model.params, model.grads)

    def set_hyperparams(self, optimizer: Optimizer, lrs, momenta) -> None:
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = lrs[i]
            if momenta is not None and momenta[i] is not None:
                if "betas" in group:
                    group["betas"] = (momenta[i], group["betas"][1])
                else:
                    group["momentum"] = momenta[i]

    def running(self):
        # A diverging run overflows: the loop stops it at the first non-finite
        # loss with the step named, so NumPy's own overflow warnings add nothing.
        # Silenced as warnings, not with np.errstate: any error mode other than
        # NumPy's default makes every ufunc call look it up (measured with
        # callgrind: ~10,000 instructions a step of the regression MLP, ~1%).
        return _quiet_overflow()

    def start_at(self, model: Network, step: int) -> None:
        model.next_step = step

    def referee(self, kind: str, attributes: dict, state: dict, inputs: list, grads: list):
        from dualtrain_numpy.referee import referee

        return referee(kind, attributes, state, inputs, grads)

    def eager_step(self, model: Network, optimizer: Optimizer):
        """`Backend.eager_step`'s zero grad, forward, loss, backward and update in
        one function: the loop calls it every step, and each call it saves is
        ~1% of the loop's overhead on a small model. (It does not go through
        `forward_backward`: a subclass changing that overrides this too.)"""
        kind, dtype = model.spec.loss, model.dtype

        def step(x: np.ndarray, y: np.ndarray) -> float:
            optimizer.zero_grad()
            model.training = True
            model.begin_step()
            # `_inputs` and `_targets` inline: a batch in the model's dtype (or of
            # token ids) as it is, anything else cast.
            if x.dtype is not dtype and x.dtype.kind not in "iu":
                x = x.astype(dtype)
            if y.dtype is not dtype and y.dtype.kind not in "iu":
                y = y.astype(dtype)
            loss, grad = loss_and_grad(kind, model.forward(x), y)
            model.backward(grad)
            optimizer.step()
            return loss

        return step

    def forward_backward(self, model: Network, x, y) -> float:
        model.training = True
        model.begin_step()
        out = model.forward(_inputs(x, model))
        loss, grad = loss_and_grad(model.spec.loss, out, _targets(y, model))
        model.backward(grad)
        return loss

    def optimizer_step(self, optimizer: Optimizer) -> None:
        optimizer.step()

    def zero_grad(self, optimizer: Optimizer) -> None:
        optimizer.zero_grad()

    def evaluate(self, model: Network, x, y) -> tuple[float, float | None]:
        model.training = False
        try:
            out = model.forward(_inputs(x, model))
        finally:
            model.training = True
        loss, _ = loss_and_grad(model.spec.loss, out, _targets(y, model))
        return loss, accuracy(model.spec.loss, out, y)

    def optimizer_state(self, optimizer: Optimizer) -> dict[str, np.ndarray]:
        return {
            f"{name}/{key}": np.asarray(value)
            for name, state in optimizer.state.items()
            for key, value in state.items()
        }

    def load_optimizer_state(self, optimizer: Optimizer, state: dict[str, np.ndarray]) -> None:
        optimizer.state = {}
        for flat, value in state.items():
            name, key = flat.rsplit("/", 1)
            entry = optimizer.state.setdefault(name, {})
            entry[key] = int(value) if key == "step" else np.array(value, copy=True)


def _inputs(x: np.ndarray, model: Network) -> np.ndarray:
    """Token ids as they are (an Embedding takes them), features in the model's dtype."""
    # `is`: NumPy's built-in dtypes are singletons; a batch already in the model's
    # dtype (the usual case) then costs no call to astype.
    if x.dtype is model.dtype or x.dtype.kind in "iu":
        return x
    return x.astype(model.dtype)


def _targets(y: np.ndarray, model: Network) -> np.ndarray:
    if y.dtype is model.dtype or y.dtype.kind in "iu":
        return y
    return y.astype(model.dtype)


@contextlib.contextmanager
def _quiet_overflow():
    """NumPy's overflow and invalid-value warnings ignored (divide by zero still warns)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "(overflow|invalid value) encountered", category=RuntimeWarning
        )
        yield
