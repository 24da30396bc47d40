"""Before any training: what in a user's torch model code OneFlow cannot run, or runs differently.

The user's file and its own sibling modules are read with `ast`, never run
(the file may not build on OneFlow at all), and torch is never imported. Each
torch name the code uses is looked up in the INSTALLED OneFlow itself:
`nn.X` as `oneflow.nn.X`, `F.x` as `oneflow.nn.functional.x`, `torch.x` as
`oneflow.x`, whatever the import style (`import torch.nn as nn`, `from torch
import nn`, `from torch.nn import functional as F`, `from torch.nn import X`).
Keyword arguments of a call are checked against the OneFlow signature where it
has one (`nn.LayerNorm(..., bias=False)`, `nn.Conv2d(..., device=...)`).

Tensor and Module methods cannot be resolved without running the code, so a
heuristic guards them, tuned to stay silent rather than stop a good run
(a "missing" finding stops it with exit 2):
- only names torch has (`torch_names.py`) and the installed `oneflow.Tensor` /
  `oneflow.nn.Module` lack;
- not names of plain Python or NumPy objects (`str`, `dict`, `ndarray`,
  `numpy.random.Generator`, ...), nor names the user's code defines or assigns
  itself (`self.layout = ...`, `def select(...)`, keyword `name=`), nor a few
  words users give their own attributes (`name`, `mode`, `layout`, ...);
- methods count only where called (`x.unflatten(...)`), properties on any read
  (`x.mT`); attributes of an imported non-torch module (`np.diff`) never.

Known differences (PORTING.md) are found where they are written: `padding_mode`
other than zeros and `BatchNorm(momentum=None)` fail in OneFlow 0.9.0 (kind
"missing"); `padding="same"` with an even kernel gives a smaller output, a
`zero_grad()` call defaults to `set_to_none=False`, and in float64 the
optimizers' hyperparameters and BatchNorm's eps are applied as float32 (kind
"difference": a note); in float32 OneFlow's BatchNorm batch variance is less
precise than torch's when a channel's mean is large against its std (measured in
tests/test_preflight.py). Whether a parameter goes without a gradient on some steps
(where the zero_grad default matters) cannot be seen in the source; the
pipeline's own zero_grad is the pipeline's business.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import random
import tokenize
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from dualtrain.errors import ConfigError
from dualtrain.usersource import read_source, user_module_files
from dualtrain_oneflow import torch_names

#: Words users give their own attributes that are also torch.Tensor names.
_TOO_COMMON = frozenset("name names mode layout indices new select storage data".split())
_CONV = frozenset(f"{k}{d}d" for k in ("Conv", "ConvTranspose", "LazyConv") for d in (1, 2, 3))
_BATCHNORM = frozenset({"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"})


@dataclass(frozen=True)
class Finding:
    """One thing the preflight found, at `file:line`.

    kind: "missing" (OneFlow cannot build or run it: the run stops) or
    "difference" (it runs, differently from torch: a note in the report).
    """

    file: str
    line: int
    name: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def preflight(path: str | os.PathLike, *, dtype: str | None = None) -> list[Finding]:
    """Every name OneFlow lacks and every known difference in the user's model code.

    Args:
        path: the user's torch model file; the user modules it imports are read too.
        dtype: the run's dtype; "float64" adds the float32-hyperparameter and BatchNorm
            eps notes, "float32" the BatchNorm variance note.

    Returns:
        Findings sorted by file and line ("missing" ones stop a port run).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.py"
    >>> _ = f.write_text("from torch import nn\\nlayer = nn.MultiheadAttention(8, 2)\\n")
    >>> [(x.line, x.name, x.kind) for x in preflight(f)]
    [(2, 'torch.nn.MultiheadAttention', 'missing')]
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"model file {str(path)!r} not found")
    import oneflow  # lazily: reading this module stays cheap

    files = user_module_files(file)
    trees = {f: _parse(f) for f in files if f.is_file()}
    own_names = set().union(*(_defined_names(tree) for tree in trees.values()))
    findings: set[Finding] = set()
    for source, tree in trees.items():
        findings |= _Scan(str(source), tree, oneflow, own_names).run()
    if dtype == "float64":
        findings |= _float64_notes(str(file), trees)
    elif dtype == "float32":
        findings |= _batchnorm_notes(trees, _FLOAT32_BATCHNORM)
    return sorted(findings, key=lambda f: (f.file != str(file), f.file, f.line, f.name))


def _parse(file: Path) -> ast.Module:
    try:
        return ast.parse(read_source(file), str(file))
    except SyntaxError as e:
        raise ConfigError(f"{e.filename}:{e.lineno}: {type(e).__name__}: {e.msg}") from None
    except (ValueError, tokenize.TokenError) as e:
        raise ConfigError(f"{file}: cannot read it as Python: {e}") from None


def _defined_names(tree: ast.Module) -> set[str]:
    """Attribute, function, class and keyword names the user's own code defines."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)  # dataclass fields
    return names


def _common_names() -> frozenset[str]:
    objects = (object, str, bytes, int, float, complex, list, tuple, dict, set, frozenset)
    objects += (np.ndarray, np.generic, np.random.Generator, random.Random, ModuleType)
    return frozenset(n for o in objects for n in dir(o))


class _Scan:
    """One file: its torch aliases, then every use of them and of tensor methods."""

    def __init__(self, file: str, tree: ast.Module, oneflow, own_names: set[str]) -> None:
        self.file, self.tree, self.oneflow = file, tree, oneflow
        self.version = oneflow.__version__
        self.aliases: dict[str, str] = {}  # local name -> torch path ("nn" -> "torch.nn")
        self.other_modules: set[str] = set()  # names bound by non-torch imports
        self.found: set[Finding] = set()
        common = _common_names() | own_names | _TOO_COMMON
        flow_tensor, flow_module = set(dir(oneflow.Tensor)), set(dir(oneflow.nn.Module))
        self.lacking_properties = torch_names.TENSOR_PROPERTIES - flow_tensor - common
        self.lacking_methods = (
            (
                (torch_names.TENSOR_METHODS - flow_tensor)
                | (torch_names.MODULE_METHODS - flow_module)
            )
            - flow_tensor
            - flow_module
            - common
        )

    def run(self) -> set[Finding]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                self._imports(node)
        parents = {id(c): p for p in ast.walk(self.tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute):
                self._attribute(node, parents.get(id(node)))
            elif isinstance(node, ast.Call):
                self._call(node)
        return self.found

    def add(self, node, name: str, kind: str, message: str) -> None:
        self.found.add(Finding(self.file, node.lineno, name, kind, message))

    # --- imports --------------------------------------------------------------------------

    def _imports(self, node) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.partition(".")[0]
                if top == "torch":
                    self._check_path(node, alias.name)
                    self.aliases[alias.asname or "torch"] = alias.name if alias.asname else "torch"
                else:
                    self._torch_package(node, top)
                    self.other_modules.add(alias.asname or top)
            return
        module = node.module or ""
        top = module.partition(".")[0]
        if node.level or top != "torch":
            if not node.level:
                self._torch_package(node, top)
            self.other_modules.update(a.asname or a.name for a in node.names)
            return
        if not self._check_path(node, module):
            return
        for alias in node.names:
            if alias.name == "*":
                continue
            path = f"{module}.{alias.name}"
            if self._check_path(node, path):
                self.aliases[alias.asname or alias.name] = path

    def _torch_package(self, node, top: str) -> None:
        if top.startswith("torch") and top != "torch":
            message = (
                f"imports {top}, a package of torch's own: the port renames only `torch` "
                f"(OneFlow's counterparts, such as flowvision, are not swapped in)"
            )
            self.add(node, top, "missing", message)

    # --- names -----------------------------------------------------------------------------

    def _resolve(self, path: str):
        """The OneFlow object for the torch path `path`, or the first missing prefix."""
        parts = path.split(".")
        target = self.oneflow
        for i, part in enumerate(parts[1:], start=1):
            try:
                target = getattr(target, part)
                continue
            except Exception:  # noqa: BLE001 (OneFlow's lazy modules raise what they like)
                pass
            if isinstance(target, ModuleType):
                try:
                    target = __import__(f"oneflow.{'.'.join(parts[1 : i + 1])}", fromlist=["_"])
                    continue
                except Exception:  # noqa: BLE001
                    pass
            return None, ".".join(parts[: i + 1])
        return target, None

    def _check_path(self, node, path: str, chain: list[str] | None = None) -> bool:
        """Whether OneFlow has `path`; if not, a finding (with the user's spelling `chain`)."""
        target, missing = self._resolve(path)
        if missing is None:
            return True
        shown = missing
        if chain is not None:
            written = ".".join(chain[: len(chain) - (path.count(".") - missing.count("."))])
            shown = missing if written == missing else f"{written} ({missing})"
        self.add(node, missing, "missing", f"{shown} does not exist in OneFlow {self.version}")
        return False

    def _chain(self, node: ast.Attribute) -> list[str] | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            return [node.id, *reversed(parts)]
        return None

    def _attribute(self, node: ast.Attribute, parent) -> None:
        chain = self._chain(node)
        if chain and chain[0] in self.aliases:
            # Only the whole chain: `nn.functional.relu` once, not `nn.functional` again.
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                self._check_path(node, ".".join([self.aliases[chain[0]], *chain[1:]]), chain)
            return
        if chain and chain[0] in self.other_modules:
            return
        called = isinstance(parent, ast.Call) and parent.func is node
        if node.attr in self.lacking_properties or (called and node.attr in self.lacking_methods):
            owner = "Module" if node.attr in torch_names.MODULE_METHODS else "Tensor"
            kind = "method" if called else "attribute"
            message = (
                f".{node.attr} (a torch {owner} {kind}) does not exist on OneFlow "
                f"{self.version}'s Tensor or nn.Module"
            )
            self.add(node, f"{owner}.{node.attr}", "missing", message)

    # --- calls: signatures and known differences ------------------------------------------

    def _torch_callee(self, call: ast.Call) -> str | None:
        func = call.func
        if isinstance(func, ast.Name) and func.id in self.aliases:
            return self.aliases[func.id]
        chain = self._chain(func) if isinstance(func, ast.Attribute) else None
        if chain and chain[0] in self.aliases:
            return ".".join([self.aliases[chain[0]], *chain[1:]])
        return None

    def _call(self, call: ast.Call) -> None:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "zero_grad":
            self._zero_grad(call)
        path = self._torch_callee(call)
        if path is None:
            return
        target, missing = self._resolve(path)
        if missing is not None:
            return  # reported as a missing name already
        arguments = self._arguments(call, path, target)
        leaf = path.rpartition(".")[2]
        if leaf in _CONV:
            self._conv(call, path, arguments)
        elif leaf in _BATCHNORM:
            value = arguments.get("momentum")
            if isinstance(value, ast.Constant) and value.value is None:
                message = (
                    f"{leaf}(momentum=None) (a cumulative average): OneFlow {self.version} "
                    f"accepts it but its forward raises"
                )
                self.add(call, f"{path}(momentum=None)", "missing", message)

    def _arguments(self, call: ast.Call, path: str, target) -> dict[str, ast.expr]:
        """The call's arguments by OneFlow parameter name; unknown keywords are findings."""
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            return {k.arg: k.value for k in call.keywords if k.arg}
        parameters = signature.parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return {k.arg: k.value for k in call.keywords if k.arg}
        named = {p.name for p in parameters if p.kind is not p.VAR_POSITIONAL}
        for keyword in call.keywords:
            if keyword.arg and keyword.arg not in named:
                leaf = path.rpartition(".")[2]
                message = (
                    f"{leaf}(..., {keyword.arg}=...): OneFlow {self.version}'s {leaf} "
                    f"takes no {keyword.arg!r} argument"
                )
                self.add(call, f"{path}({keyword.arg}=)", "missing", message)
        positional = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if positional and positional[0] == "self":
            positional = positional[1:]
        values = dict(zip(positional, call.args, strict=False))
        values.update({k.arg: k.value for k in call.keywords if k.arg})
        return values

    def _conv(self, call: ast.Call, path: str, arguments: dict[str, ast.expr]) -> None:
        leaf = path.rpartition(".")[2]
        mode = arguments.get("padding_mode")
        if mode is not None and not (isinstance(mode, ast.Constant) and mode.value == "zeros"):
            shown = ast.unparse(mode)
            message = f"{leaf}(padding_mode={shown}): OneFlow {self.version} supports only 'zeros'"
            self.add(call, f"{path}(padding_mode=)", "missing", message)
        padding = arguments.get("padding")
        if isinstance(padding, ast.Constant) and padding.value == "same":
            kernels = _ints(arguments.get("kernel_size"))
            dilations = _ints(arguments.get("dilation")) or [1]
            if len(dilations) == 1 and kernels:
                dilations = dilations * len(kernels)
            if any((k - 1) * d % 2 for k, d in zip(kernels, dilations, strict=False)):
                message = (
                    f"{leaf}(padding='same') with an even kernel "
                    f"({ast.unparse(arguments['kernel_size'])}): OneFlow {self.version} "
                    f"gives a smaller output than torch"
                )
                self.add(call, f"{path}(padding='same')", "difference", message)

    def _zero_grad(self, call: ast.Call) -> None:
        explicit = {k.arg: k.value for k in call.keywords if k.arg}
        value = explicit.get("set_to_none", call.args[0] if call.args else None)
        if isinstance(value, ast.Constant) and value.value is True:
            return
        message = (
            "zero_grad() defaults to set_to_none=False in OneFlow (torch: True): a parameter "
            "without a gradient on a step keeps moving under momentum or Adam"
        )
        self.add(call, "zero_grad", "difference", message)


def _ints(node) -> list[int]:
    """The integers of a literal `3` or `(3, 4)`, else []."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return values if all(isinstance(v, int) for v in values) else []
    return []


def _float64_notes(main: str, trees: dict[Path, ast.Module]) -> set[Finding]:
    notes = {
        Finding(
            main,
            0,
            "optimizer hyperparameters",
            "difference",
            "OneFlow's optimizers apply lr, momentum, betas, eps and Adam's bias corrections "
            "as float32 even for float64 parameters (losses agree to ~2e-8 SGD, ~2e-6 Adam)",
        )
    }
    return notes | _batchnorm_notes(trees, _FLOAT64_BATCHNORM)


_FLOAT64_BATCHNORM = ("eps", "OneFlow applies eps as float32 in float64 runs (1e-12 relative)")
_FLOAT32_BATCHNORM = (
    "variance",
    "OneFlow's float32 batch variance loses digits when a channel's mean is large against its "
    "std (measured error 3.4e-5 at mean/std 3, 3.5e-4 at 10; torch 5.7e-7, 1.3e-6)",
)


def _batchnorm_notes(trees: dict[Path, ast.Module], note: tuple[str, str]) -> set[Finding]:
    """One note per file, at its first BatchNorm."""
    notes = set()
    for file, tree in trees.items():
        for node in ast.walk(tree):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if name in _BATCHNORM:
                finding = Finding(str(file), node.lineno, f"{name} {note[0]}", "difference", "")
                notes.add(dataclasses.replace(finding, message=f"{name}: {note[1]}"))
                break
    return notes
