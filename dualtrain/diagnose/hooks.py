"""Per-module probes written once for every framework with torch-style hooks.

A backend gives the framework's few operations (`Ops`: tensor to array and
back, a tensor hook, module hooks that can be removed); `Probe` does the rest:
on every module, a forward pre-hook and a forward hook record what arrives and
what leaves, and tensor hooks record the gradients.

Recording only (the reference), nothing the step computes changes: the
pre-hook replaces each input that needs a gradient by `x.clone()` and hooks the
clone, which gives that module's own input gradient exactly (hooking `x`
itself sums every use of it, wrong at a residual branch; ../shared/PORTING.md).

Teacher forced (`forced`: the reference's record of the same step), each module
of the engine under test computes on the reference's values: its inputs and
its outputs are replaced by the reference's, written as `ref + (x - x.detach())`
so that the value is exactly the reference's while the gradient still flows
through the engine's own graph; and each gradient arriving at a module's
output or leaving through its input is replaced by the reference's. So every
module is run on the reference's input and its backward on the reference's
upstream gradient, and what differs is what the module computes itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from dualtrain.diagnose.records import Call, StepProbe, plain_attributes
from dualtrain.errors import ConfigError


class Ops(Protocol):
    """What a framework provides for `Probe`."""

    def is_tensor(self, value: Any) -> bool: ...
    def is_floating(self, tensor: Any) -> bool: ...
    def requires_grad(self, tensor: Any) -> bool: ...
    def to_array(self, tensor: Any) -> np.ndarray: ...
    def like(self, array: np.ndarray, tensor: Any) -> Any: ...
    def clone(self, tensor: Any) -> Any: ...
    def straight_through(self, value: Any, tensor: Any) -> Any: ...
    def grad_hook(self, tensor: Any, hook: Callable[[Any], Any]) -> None: ...
    def add_hooks(self, module: Any, pre: Callable, post: Callable) -> Callable[[], None]: ...


def named_modules(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of the model and every submodule, as `named_modules` names them;
    a module reachable under two names is refused in one line (the diagnosis names
    a module by its one name, and its hooks could not tell the two apart)."""
    seen: dict[int, str] = {}
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, module: Any) -> None:
        if id(module) in seen:
            raise ConfigError(
                f"module {prefix!r} is the same module as {seen[id(module)]!r}: the name is "
                "not unique, so the diagnosis cannot tell the calls of one from the other's"
            )
        seen[id(module)] = prefix
        out.append((prefix, module))
        for name, child in module._modules.items():
            if child is not None:
                walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return out


class Probe:
    """Hooks on every module of `model` until `remove`; the step's record in `record`."""

    def __init__(self, ops: Ops, model: Any, forced: StepProbe | None = None) -> None:
        self.ops, self.forced = ops, forced
        self.record = StepProbe()
        self.counts: dict[str, int] = {}
        self.open: dict[int, list[str]] = {}
        self.removers = [
            ops.add_hooks(module, self._pre(name), self._post(name))
            for name, module in named_modules(model)
        ]

    def remove(self) -> None:
        """Take every hook off again (the model is as it was)."""
        for remove in reversed(self.removers):
            remove()
        self.removers = []

    def _reference(self, key: str) -> Call | None:
        return None if self.forced is None else self.forced.call(key)

    def _pre(self, name: str):
        def hook(module: Any, args: tuple) -> tuple | None:
            n = self.counts.get(name, 0)
            self.counts[name] = n + 1
            key = name if n == 0 else f"{name}#{n}"
            self.open.setdefault(id(module), []).append(key)
            call = Call(key, name, type(module).__name__, attributes=plain_attributes(module))
            self.record.calls[key] = call
            ref = self._reference(key)
            new_args, changed = [], False
            for i, arg in enumerate(args):
                if not self.ops.is_tensor(arg):
                    call.inputs.append(None)
                    call.grad_inputs.append(None)
                    new_args.append(arg)
                    continue
                call.inputs.append(self.ops.to_array(arg))
                call.grad_inputs.append(None)
                new = arg
                if ref is not None and ref.inputs[i] is not None:
                    new = self.ops.like(ref.inputs[i], arg)
                    if self.ops.requires_grad(arg):
                        new = self.ops.straight_through(new, arg)
                elif self.ops.requires_grad(arg):
                    new = self.ops.clone(arg)
                if self.ops.is_floating(new) and self.ops.requires_grad(new):
                    self.ops.grad_hook(new, self._input_grad(call, i, ref))
                changed = changed or new is not arg
                new_args.append(new)
            return tuple(new_args) if changed else None

        return hook

    def _post(self, name: str):
        def hook(module: Any, args: tuple, output: Any) -> Any:
            key = self.open[id(module)].pop()
            call = self.record.calls[key]
            ref = self._reference(key)
            index = [0]

            def visit(tensor: Any) -> Any:
                j = index[0]
                index[0] += 1
                call.outputs.append(self.ops.to_array(tensor))
                call.grad_outputs.append(None)
                new = tensor
                if ref is not None and self.ops.is_floating(tensor):
                    if j >= len(ref.outputs):
                        raise ConfigError(
                            f"module {key!r} returns more tensors on the engine under test "
                            "than on the reference"
                        )
                    new = self.ops.like(ref.outputs[j], tensor)
                    if self.ops.requires_grad(tensor):
                        new = self.ops.straight_through(new, tensor)
                if self.ops.is_floating(new) and self.ops.requires_grad(new):
                    self.ops.grad_hook(new, self._output_grad(call, j, ref))
                return new

            rebuilt = _map_tensors(output, visit, self.ops.is_tensor)
            return rebuilt if ref is not None else None

        return hook

    def _input_grad(self, call: Call, i: int, ref: Call | None):
        def hook(grad: Any) -> Any:
            call.grad_inputs[i] = self.ops.to_array(grad)
            if call.key not in self.record.backward_order:
                self.record.backward_order.append(call.key)
            return self._forced_grad(ref.grad_inputs[i] if ref else None, grad)

        return hook

    def _output_grad(self, call: Call, j: int, ref: Call | None):
        def hook(grad: Any) -> Any:
            call.grad_outputs[j] = self.ops.to_array(grad)
            return self._forced_grad(ref.grad_outputs[j] if ref else None, grad)

        return hook

    def _forced_grad(self, value: np.ndarray | None, grad: Any) -> Any:
        return None if value is None else self.ops.like(value, grad)


def _map_tensors(value: Any, fn: Callable[[Any], Any], is_tensor: Callable[[Any], bool]) -> Any:
    """`value` with every tensor inside (tuples and lists, nested) replaced by `fn`'s."""
    if is_tensor(value):
        return fn(value)
    if isinstance(value, (tuple, list)):
        items = [_map_tensors(v, fn, is_tensor) for v in value]
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    return value
