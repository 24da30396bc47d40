"""A user's own torch module as a OneFlow engine: the automatic port of its source (or
the user's hand port, `--against`), its dropout applying the core's masks.

OneFlow's nn.Graph ignores module hooks ("the original nn.Module's __call__ is
ignored", nn/graph/proxy.py), so each dropout module's `forward` itself is
replaced, on the instance: the graph calls `module.forward.__func__`, which is
ours. Eagerly it draws its mask from the core; in a graph the masks are graph
inputs, handed to the modules inside `build` before the forward, for the
dropout calls one eager forward of the same batch shape made.
"""

from __future__ import annotations

import types

import oneflow as flow

from dualtrain.dropout import SharedMasks
from dualtrain.errors import ConfigError
from dualtrain.usermodel import DropoutSite, UserModule
from dualtrain_oneflow import graph as graphs


def module_class(model: UserModule) -> type:
    """The OneFlow class: the automatic port of the torch source, or the hand port."""
    from dualtrain_oneflow.source import load_ported_class, port_module_class

    if model.against is not None:
        return load_ported_class(model.against.path, model.against.name)
    return port_module_class(model.source.path, model.source.name)


def build(model: UserModule, dtype: flow.dtype, device: str) -> flow.nn.Module:
    """The OneFlow module in train mode, in `dtype`, its dropout sharing the core's masks."""
    cls = module_class(model)
    label = model.against.label if model.against is not None else f"{model.name} on OneFlow"
    try:
        module = cls(**model.source.init)
    except Exception as exc:  # noqa: BLE001 - whatever the user's constructor raises
        raise ConfigError(f"{label} raised {_one_line(exc)}") from None
    if not isinstance(module, flow.nn.Module):
        raise ConfigError(f"{label} gave a {type(module).__name__}, not a oneflow.nn.Module")
    module = module.to(device=device, dtype=dtype)
    module.train()
    described = model._described()
    _check_names(module, described, label)
    module.dualtrain_loss = model.loss
    module.dualtrain_dropout = None
    if model.dropout == "shared" and described.dropout_sites:
        module.dualtrain_dropout = OneFlowDropout(module, described.dropout_sites, described.seed)
    return module


def _check_names(module: flow.nn.Module, described, label: str) -> None:
    """The OneFlow model has the torch model's state names and shapes, one line if not."""
    want = dict(described.params + described.buffers)
    have = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    for name, shape in want.items():
        if name not in have:
            raise ConfigError(f"{label} has no {name!r}, which the torch model has")
        if have[name] != shape:
            raise ConfigError(
                f"{label}: {name} has shape {have[name]}, the torch model's is {shape}"
            )
    extra = sorted(set(have) - set(want))
    if extra:
        raise ConfigError(f"{label} has {extra[0]!r}, which the torch model has not")


class OneFlowDropout:
    """Each dropout module's forward, replaced by `input * mask / (1 - p)`."""

    def __init__(self, module: flow.nn.Module, sites: tuple[DropoutSite, ...], seed: int) -> None:
        self.masks = SharedMasks(seed, sites)
        self.next_step = 0
        self.fed: list | None = None
        self.count = 0
        self.recorded: list[tuple[str, tuple[int, ...]]] = []
        modules = dict(module.named_modules())
        for site in sites:
            target = modules[site.name]
            target.forward = types.MethodType(self._forward(site, target), target)

    def begin(self) -> None:
        """Before a training step: that step's masks from now on."""
        self.masks.begin(self.next_step)
        self.next_step += 1
        self.recorded = []

    def feed(self, masks: list | None) -> None:
        """Graph inputs for the next forward (traced once, inside `build`)."""
        self.fed, self.count = masks, 0

    def _forward(self, site: DropoutSite, target: flow.nn.Module):
        keep = 1.0 - site.p

        def forward(_self, x):
            if not target.training:
                return x
            if self.fed is not None:
                mask = self.fed[self.count]
                self.count += 1
            else:
                shape = tuple(x.shape)
                self.recorded.append((site.name, shape))
                mask = flow.tensor(self.masks.next(site.name, shape), dtype=x.dtype)
            return x * mask / keep

        return forward


def dropout_calls(model: UserModule, state: dict, x: flow.Tensor, dtype: flow.dtype) -> list:
    """The (module name, shape) of every dropout call of one training forward on a
    batch like `x`, from a throwaway copy of the module (no state of the run moves)."""
    probe = build(model, dtype, "cpu")
    probe.load_state_dict(state)
    probe.dualtrain_dropout.begin()
    with flow.no_grad():
        probe(x)
    return list(probe.dualtrain_dropout.recorded)


class MaskedTrainGraph(graphs.TrainGraph):
    """The training graph with this step's dropout masks as inputs."""

    def __init__(self, model, loss, optimizer, scheduler, dropout: OneFlowDropout) -> None:
        super().__init__(model, loss, optimizer, scheduler)
        self.dualtrain_dropout = dropout

    def build(self, x, y, *masks):
        self.dualtrain_dropout.feed(list(masks))
        loss = self.loss(self.model(x), y)
        loss.backward()
        return loss


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
