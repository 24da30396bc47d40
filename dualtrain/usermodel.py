"""A user's own module as a model description, next to the declarative `ModelSpec`.

The core names the model and never builds it: the file and class of the user's
`torch.nn.Module`, its constructor arguments, the input it takes (shape of one
sample, float or int token ids), the loss, an optional hand-written OneFlow port
to check instead of the automatic one, and how dropout is handled. Building it
is a backend's job; a backend that cannot (NumPy) says so with a capability flag.

The loop asks a model description the same questions whatever its kind: the
names and shapes of its parameters and buffers, its initial weights under a
seed, its loss, whether some data fits it. For a user module those answers come
from building it once on the reference backend (`Backend.describe_module`),
which fills in a `Described`: torch's own initialisation under the run's seed,
read as arrays by state-dict name, and what one dry forward showed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dualtrain.data import Dataset
from dualtrain.errors import ConfigError

LOSSES = ("mse", "cross_entropy")
DROPOUT_MODES = ("shared", "native")
INPUT_KINDS = ("float", "int")


@dataclass(frozen=True)
class ModuleSource:
    """Where a module class lives: a Python file, a name in it, constructor keywords.

    `factory` marks a zero-argument function that returns the module instead
    of a class (then `init` is empty).
    """

    path: str
    name: str
    init: dict[str, Any] = field(default_factory=dict)
    factory: bool = False

    @classmethod
    def parse(cls, ref: str, init: dict[str, Any] | None = None) -> ModuleSource:
        """`"models.py:SmallCNN"` -> a source with an absolute path; a one-line error
        for a malformed reference or a missing file.

        Example:
            >>> ModuleSource.parse("no/such/file.py:Net")
            Traceback (most recent call last):
            ...
            dualtrain.errors.ConfigError: model file 'no/such/file.py' not found
        """
        path, sep, name = str(ref).rpartition(":")
        if not sep or not path or not name.isidentifier():
            raise ConfigError(f"a model is FILE.py:ClassName, got {ref!r}")
        if not Path(path).is_file():
            raise ConfigError(f"model file {path!r} not found")
        return cls(str(Path(path).resolve()), name, dict(init or {}))

    @property
    def label(self) -> str:
        """`cnn.py:SmallCNN(channels=16)`, for messages and reports."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.init.items())
        return f"{Path(self.path).name}:{self.name}({args})"


@dataclass(frozen=True)
class DropoutSite:
    """A dropout module by its `named_modules` name: its p, and the mask's shape rule.

    `kind` "element" draws one keep/drop per element (nn.Dropout); "channel" one
    per (sample, channel), broadcast over the rest (nn.Dropout1d/2d/3d).
    """

    name: str
    p: float
    kind: str = "element"


@dataclass(frozen=True)
class Described:
    """What building the module once on the reference backend found."""

    #: (state-dict name, shape) of every trainable parameter, in module order.
    params: tuple[tuple[str, tuple[int, ...]], ...]
    #: (name, shape) of every buffer (BatchNorm's running statistics, ...).
    buffers: tuple[tuple[str, tuple[int, ...]], ...]
    #: The seed `initial` was drawn under.
    seed: int
    dropout_sites: tuple[DropoutSite, ...] = ()
    #: The output of one sample, as the dry forward gave it.
    output_shape: tuple[int, ...] = ()
    #: Parameters whose gradient is zero up to rounding, and the buffers they move.
    quiet: tuple[str, ...] = ()
    #: Whether a batch of one sample cannot train (a BatchNorm1d in the model).
    refuses_batch_of_one: bool = False
    #: Torch's initialisation under `seed`, as float64 arrays (ints kept) by name.
    initial: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class UserModule:
    """A user's `nn.Module`, named by file and class: the second kind of model.

    Args:
        source: the torch module's file, class and constructor arguments.
        loss: "mse" or "cross_entropy" (on (batch, classes) or (batch, seq, classes)).
        input_shape: the shape of one sample of `x`, e.g. (1, 28, 28) or (32,).
        input_kind: "float" (cast to the run's dtype) or "int" (token ids, int64).
        against: a hand-written OneFlow port to check instead of the automatic one.
        dropout: "shared" (the core draws every mask; engines apply it) or "native".
        described: filled in by the reference backend's `describe_module`.
    """

    source: ModuleSource
    loss: str
    input_shape: tuple[int, ...]
    input_kind: str = "float"
    against: ModuleSource | None = None
    dropout: str = "shared"
    described: Described | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.dropout not in DROPOUT_MODES:
            raise ConfigError(
                f"--dropout must be one of {', '.join(DROPOUT_MODES)}, got {self.dropout!r}"
            )
        if self.input_kind not in INPUT_KINDS:
            raise ConfigError(f"input kind must be float or int, got {self.input_kind!r}")

    @property
    def name(self) -> str:
        return self.source.label

    def _described(self) -> Described:
        if self.described is None:
            raise ConfigError(f"{self.name} has not been described by a backend yet")
        return self.described

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """State-dict name -> shape of every trainable parameter."""
        return dict(self._described().params)

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """State-dict name -> shape of every buffer."""
        return dict(self._described().buffers)

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """Torch's own initialisation under `seed`, copied (see `Described.initial`)."""
        described = self._described()
        if seed != described.seed:
            raise ConfigError(
                f"{self.name} was initialised under seed {described.seed}, not {seed}"
            )
        return {name: value.copy() for name, value in described.initial.items()}

    def refuses_batch_of_one(self) -> bool:
        return self._described().refuses_batch_of_one

    def prepare(self, data: Dataset) -> Dataset:
        """`data` as this module takes it: float inputs as float64, int inputs as int64."""
        x = data.x.astype(np.int64 if self.input_kind == "int" else np.float64, copy=False)
        return data if x is data.x else Dataset(x, data.y)

    def check_data(self, data: Dataset) -> None:
        """Refuse data this module was not described for, in one line."""
        kind = "int" if data.x.dtype.kind in "iu" else "float"
        if tuple(data.x.shape[1:]) != tuple(self.input_shape) or kind != self.input_kind:
            raise ConfigError(
                f"{self.name} was described for {self.input_kind} samples of shape "
                f"{tuple(self.input_shape)}, got {kind} samples of shape {data.x.shape[1:]}"
            )
        if self.described is not None:
            self.check_targets(data)

    def check_targets(self, data: Dataset) -> None:
        """Refuse targets the loss cannot compare with the module's output, in one line."""
        out = self._described().output_shape
        y = data.y
        if self.loss == "cross_entropy":
            if y.dtype.kind not in "iu" or len(out) not in (1, 2) or y.shape[1:] != out[:-1]:
                want = "(samples,)" if len(out) == 1 else f"(samples, {out[0]})"
                raise ConfigError(
                    f"{self.name}: cross_entropy on outputs of shape (batch, "
                    f"{', '.join(map(str, out))}) needs integer class ids of shape {want}, "
                    f"got {y.dtype} {y.shape}"
                )
            if y.min() < 0 or y.max() >= out[-1]:
                raise ConfigError(
                    f"{self.name}: class ids must be in [0, {out[-1]}) for {out[-1]} output "
                    f"classes, got {int(y.min())}..{int(y.max())}"
                )
        elif y.dtype.kind != "f" or tuple(y.shape[1:]) != tuple(out):
            raise ConfigError(
                f"{self.name}: mse on outputs of shape (batch, {', '.join(map(str, out))}) "
                f"needs float targets of shape (samples, {', '.join(map(str, out))}), got "
                f"{y.dtype} {y.shape}"
            )

    def fit_targets(self, data: Dataset) -> Dataset:
        """Float targets reshaped to one sample's output where only the shape differs
        ((n,) or (n, 1) against outputs of shape (batch,)), for mse."""
        out = self._described().output_shape
        y = data.y
        if self.loss == "mse" and y.dtype.kind == "f" and y.shape[1:] != out:
            if int(np.prod(y.shape[1:])) == int(np.prod(out)):
                return Dataset(data.x, y.reshape((len(y), *out)))
        return data

    def with_description(self, described: Described) -> UserModule:
        return replace(self, described=described)


def input_kind_of(x: np.ndarray) -> str:
    """Say "int" for integer arrays (token ids), "float" for floating ones; else an error."""
    if x.dtype.kind in "iu":
        return "int"
    if x.dtype.kind == "f":
        return "float"
    raise ConfigError(f"data x must hold numbers, got dtype {x.dtype}")
