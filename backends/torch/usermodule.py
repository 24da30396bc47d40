"""A user's own torch module as an engine: built from its file, described, and its
dropout modules made to apply the core's masks.

The reference of a port is torch eager; `describe` builds the module once under
the run's seed and reads what every engine needs to know before training:
state-dict names and shapes, torch's own initial weights, the dropout modules,
what one sample's output looks like, and which parameters get a gradient that
is zero up to rounding. Every user error (a constructor or a forward that
raises, an output the loss cannot take) is one line naming the module.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from dualtrain.data import Dataset
from dualtrain.dropout import SharedMasks
from dualtrain.errors import ConfigError
from dualtrain.usermodel import Described, DropoutSite, ModuleSource, UserModule
from dualtrain_torch import model as models

ELEMENT_DROPOUT = (nn.Dropout,)
CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
#: Rows of the dry forward: enough for BatchNorm's batch statistics.
DRY_ROWS = 8
#: Batches the gradient-norm check of `quiet_parameters` averages over.
QUIET_BATCHES = 3
#: A parameter whose gradient RMS is below this share of the largest one's gets
#: no gradient in exact arithmetic. Why the threshold is honest: the check runs
#: in float64, where such a gradient is the rounding residue of sums whose terms
#: are of the largest gradient's size: measured 1e-18 to 1e-16 of it (the conv
#: biases before BatchNorm2d of examples/port/cnn.py), while the smallest real
#: gradient of every example model is above 1e-5 of it. 1e-10 sits six orders
#: of magnitude from both.
QUIET_SHARE = 1e-10


def instantiate(source: ModuleSource, seed: int | None = None) -> nn.Module:
    """The user's module, constructed with its arguments (under `seed` when given);
    torch's global RNG is left as it was."""
    from dualtrain_torch.source import load_module_class

    cls = load_module_class(source.path, source.name)
    try:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            module = cls(**source.init)
    except Exception as exc:  # noqa: BLE001 - whatever the user's constructor raises
        raise ConfigError(f"{source.label} raised {_one_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{source.label} gave a {type(module).__name__}, not a torch.nn.Module")
    return module


def build(model: UserModule, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The module in train mode, in `dtype` on `device`, its dropout sharing the core's masks."""
    module = instantiate(model.source).to(device=device, dtype=dtype).train()
    module.dualtrain_loss = model.loss
    described = model._described()
    module.dualtrain_dropout = None
    if model.dropout == "shared" and described.dropout_sites:
        module.dualtrain_dropout = TorchDropout(module, described.dropout_sites, described.seed)
    return module


class TorchDropout:
    """Forward hooks that replace each dropout's output by `input * mask / (1 - p)`.

    Eagerly each hook draws its mask from the core (`SharedMasks`) and records
    the call; a compiled step is fed the masks as tensor inputs instead
    (`feed`), drawn ahead for the calls an eager step of that batch shape made,
    so the graph never holds a mask as a constant.
    """

    def __init__(self, module: nn.Module, sites: tuple[DropoutSite, ...], seed: int) -> None:
        self.masks = SharedMasks(seed, sites)
        self.next_step = 0
        self.fed: list[torch.Tensor] | None = None
        self.count = [0]
        self.recorded: list[tuple[str, tuple[int, ...]]] = []
        self.calls_by_shape: dict[tuple[int, ...], list[tuple[str, tuple[int, ...]]]] = {}
        modules = dict(module.named_modules())
        for site in sites:
            modules[site.name].register_forward_hook(self._hook(site))

    def begin(self) -> None:
        """Before a training step: that step's masks from now on."""
        self.masks.begin(self.next_step)
        self.next_step += 1
        self.recorded = []

    def feed(self, masks: list[torch.Tensor] | None) -> None:
        """Masks for the next forward, in call order (None: draw them eagerly)."""
        self.fed = masks
        self.count[0] = 0

    def inputs_for(self, shape: tuple[int, ...], dtype: torch.dtype, device) -> list | None:
        """This step's masks as tensors for a compiled step, or None when no eager
        step of this batch shape has shown the calls yet."""
        calls = self.calls_by_shape.get(shape)
        if calls is None:
            return None
        arrays = self.masks.step_masks(calls)
        return [torch.from_numpy(a).to(device=device, dtype=dtype) for a in arrays]

    def remember(self, shape: tuple[int, ...]) -> None:
        """After an eager step: the dropout calls that batch shape makes."""
        self.calls_by_shape.setdefault(shape, list(self.recorded))

    def _hook(self, site: DropoutSite):
        keep = 1.0 - site.p

        def hook(module, args, output):
            if not module.training:
                return None
            x = args[0]
            if self.fed is not None:
                mask = self.fed[self.count[0]]
                self.count[0] += 1
            else:
                shape = tuple(x.shape)
                drawn = self.masks.next(site.name, shape)
                self.recorded.append((site.name, shape))
                mask = torch.from_numpy(drawn).to(device=x.device, dtype=x.dtype)
            return x * mask / keep

        return hook


def describe(model: UserModule, data: Dataset, seed: int) -> UserModule:
    """`model` with its `Described`: torch's init under `seed`, names and shapes,
    dropout sites, one sample's output shape, the quiet parameters. torch's global
    RNG is as it was afterwards (the dry forwards' own dropout draws from it)."""
    with torch.random.fork_rng(devices=[]):
        return _describe(model, data, seed)


def _describe(model: UserModule, data: Dataset, seed: int) -> UserModule:
    module = instantiate(model.source, seed)
    initial = {name: _array(t) for name, t in module.state_dict().items()}
    params = tuple((n, tuple(p.shape)) for n, p in module.named_parameters())
    names = {n for n, _ in params}
    buffers = tuple((n, tuple(t.shape)) for n, t in module.state_dict().items() if n not in names)
    sites = dropout_sites(module, model)
    described = Described(
        params,
        buffers,
        seed,
        sites,
        refuses_batch_of_one=any(isinstance(m, nn.BatchNorm1d) for m in module.modules()),
        initial=initial,
    )
    probe = build(model.with_description(described), torch.float64, torch.device("cpu"))
    output = _dry_forward(probe, model, data)
    shaped = model.with_description(replace(described, output_shape=output))
    data = shaped.fit_targets(data)
    shaped.check_targets(data)
    quiet = quiet_state(probe, shaped, data, initial)
    return model.with_description(replace(described, output_shape=output, quiet=quiet))


def dropout_sites(module: nn.Module, model: UserModule) -> tuple[DropoutSite, ...]:
    """Every dropout module with p > 0; in shared mode, a one-line refusal for
    dropout no mask can reach (inside an RNN, an attention module, AlphaDropout)."""
    sites = []
    for name, sub in module.named_modules():
        if isinstance(sub, ELEMENT_DROPOUT + CHANNEL_DROPOUT):
            if sub.p > 0:
                kind = "channel" if isinstance(sub, CHANNEL_DROPOUT) else "element"
                sites.append(DropoutSite(name, float(sub.p), kind))
            continue
        if model.dropout != "shared":
            continue
        inner = getattr(sub, "dropout", 0)
        hidden = isinstance(inner, float) and inner > 0
        if hidden or isinstance(sub, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
            raise ConfigError(
                f"{model.name}: {name or 'the model'} ({type(sub).__name__}) drops units "
                "inside the framework, where no shared mask reaches; set its dropout to 0, "
                "use nn.Dropout modules, or --dropout native"
            )
    return tuple(sites)


def _dry_forward(probe: nn.Module, model: UserModule, data: Dataset) -> tuple[int, ...]:
    """One forward on the first rows (twice, to catch randomness outside the dropout
    modules); returns one sample's output shape."""
    rows = data.x[: min(len(data), DRY_ROWS)]
    x = _tensor(rows)
    outputs = []
    for _ in range(2):
        if probe.dualtrain_dropout is not None:
            probe.dualtrain_dropout.next_step = 0
            probe.dualtrain_dropout.begin()
        with torch.no_grad():
            try:
                out = probe(x)
            except Exception as exc:  # noqa: BLE001 - whatever the user's forward raises
                raise ConfigError(
                    f"{model.name}: the forward on a batch of shape {tuple(x.shape)} "
                    f"({rows.dtype}) raised {_one_line(exc)}"
                ) from None
        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"{model.name}: the forward returned a {type(out).__name__}; expected one tensor"
            )
        if out.shape[:1] != x.shape[:1]:
            raise ConfigError(
                f"{model.name}: the forward gave shape {tuple(out.shape)} for a batch of "
                f"{len(rows)}; expected the batch first"
            )
        outputs.append(out)
    if model.dropout == "shared" and not torch.equal(outputs[0], outputs[1]):
        raise ConfigError(
            f"{model.name}: the forward draws random numbers outside its nn.Dropout modules "
            "(functional dropout, torch.rand, ...), which the engines cannot share; use "
            "nn.Dropout modules or --dropout native"
        )
    return tuple(outputs[0].shape[1:])


def quiet_state(probe: nn.Module, model: UserModule, data: Dataset, initial) -> tuple[str, ...]:
    """Parameters whose gradient is zero up to rounding (no gradient at all counts),
    and the buffers they move (a BatchNorm's running mean after a biased conv).

    Adam amplifies the rounding noise of such a gradient into a random walk that
    differs between frameworks while changing nothing the model computes: their
    final values cannot be judged, the losses still are.
    """
    sums = {name: torch.zeros_like(p) for name, p in probe.named_parameters()}
    got = dict.fromkeys(sums, False)
    size = min(len(data), 32)
    for b in range(min(QUIET_BATCHES, max(1, len(data) // size))):
        rows = slice(b * size, (b + 1) * size)
        probe.zero_grad(set_to_none=True)
        if probe.dualtrain_dropout is not None:
            probe.dualtrain_dropout.begin()
        try:
            out = probe(_tensor(data.x[rows]))
            loss = models.loss_fn(model.loss, out, _tensor(data.y[rows]))
            loss.backward()
        except Exception as exc:  # noqa: BLE001 - a loss that does not fit the targets
            raise ConfigError(
                f"{model.name}: the {model.loss} loss raised {_one_line(exc)}"
            ) from None
        for name, p in probe.named_parameters():
            if p.grad is not None:
                sums[name] += p.grad.detach() ** 2
                got[name] = True
    # Element by element: the key part of an attention's qkv bias is quiet while its
    # query and value parts are not. An exact zero (an embedding row no batch uses)
    # is no noise: every framework keeps it at zero.
    rms = {name: total.sqrt() for name, total in sums.items()}
    scale = max((float(r.max()) for r in rms.values() if r.numel()), default=0.0)
    quiet = [
        n
        for n, r in rms.items()
        if not got[n] or bool(((r > 0) & (r <= QUIET_SHARE * scale)).any())
    ]
    return tuple(quiet + _buffers_moved_by(probe, quiet, data, initial))


def _buffers_moved_by(probe: nn.Module, quiet: list[str], data: Dataset, initial) -> list[str]:
    """Buffers whose update in one train-mode forward changes when `quiet` changes."""
    if not quiet:
        return []
    x = _tensor(data.x[: min(len(data), DRY_ROWS)])
    params = {n for n, _ in probe.named_parameters()}
    seen = []
    for shift in (0.0, 0.5):
        state = {n: torch.from_numpy(np.asarray(v)) for n, v in initial.items()}
        for name in quiet:
            state[name] = state[name] + shift
        probe.load_state_dict(state)
        if probe.dualtrain_dropout is not None:
            probe.dualtrain_dropout.next_step = 0
            probe.dualtrain_dropout.begin()
        with torch.no_grad():
            probe(x)
        seen.append({n: t.detach().clone() for n, t in probe.state_dict().items()})
    return [
        n
        for n in seen[0]
        if n not in params
        and seen[0][n].is_floating_point()
        and not torch.allclose(seen[0][n], seen[1][n], rtol=1e-9, atol=1e-12)
    ]


def _tensor(array: np.ndarray) -> torch.Tensor:
    if array.dtype.kind in "iu":
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(array.astype(np.float64))


def _array(tensor: torch.Tensor) -> np.ndarray:
    value = tensor.detach().cpu()
    if value.is_floating_point():
        value = value.double()
    return value.numpy().copy()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
