"""A user's torch model file as a OneFlow class: the automatic port and the hand-ported file.

The automatic port renames every NAME token `torch` to `oneflow` (Python's
`tokenize`, so strings and comments stay as they are) in the user's file and in
every module of the user's own that it imports, and runs them through
`dualtrain.usersource`: private modules, nothing left in `sys.modules`,
the real filename and unchanged line numbers, so a traceback points at the
user's file and line. `torchvision` and friends are other names and stay: the
preflight lists them (OneFlow has flowvision, but a rename would not be honest).

A name after a dot is left alone (`self.torch = ...` is the user's attribute),
and so is the text of f-strings, which are single STRING tokens in Python 3.10:
`f"{torch.__version__}"` would fail at run time in the port.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from pathlib import Path

import oneflow

from dualtrain.errors import ConfigError
from dualtrain.usersource import load_class, read_source, user_module_files

_NOT_IN_A_PORT = "the OneFlow port must not use real torch (a mixed model)"
_NOT_IN_A_HAND_PORT = "a hand-ported model (--against) must import oneflow, not torch"


def rewrite_torch_names(source: str, filename: str = "<source>") -> str:
    """`source` with each NAME token `torch` (not after a dot) renamed to `oneflow`.

    Every other character stays where it was, so line numbers are unchanged.

    >>> rewrite_torch_names("import torch.nn as nn  # torch\\nx = 'torch'\\ny = torch.ones(2)\\n")
    "import oneflow.nn as nn  # torch\\nx = 'torch'\\ny = oneflow.ones(2)\\n"
    """
    where: list[tuple[int, int]] = []
    previous = None
    skipped = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.string == "torch" and previous != ".":
                where.append(token.start)
            if token.type not in skipped:
                previous = token.string
    except (tokenize.TokenError, IndentationError) as e:
        # compile() gives the better message (and the line): let it.
        compile(source, filename, "exec", dont_inherit=True)
        raise ConfigError(f"{filename}: cannot read it as Python: {e}") from None
    lines = source.splitlines(keepends=True)
    for row, col in reversed(where):
        text = lines[row - 1]
        lines[row - 1] = text[:col] + "oneflow" + text[col + len("torch") :]
    return "".join(lines)


def port_module_class(path: str | os.PathLike, class_name: str) -> type:
    """The OneFlow version of the torch `nn.Module` subclass `class_name` in `path`.

    The file is not modified; it and the user's own modules it imports are
    rewritten in memory (see the module docstring). A one-line ConfigError names
    the file (and line) for a missing file, a syntax error, an error while the
    module runs (a name OneFlow lacks: `from oneflow.nn import MultiheadAttention`),
    a missing class, or a class that is not an `nn.Module`.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.py"
    >>> _ = f.write_text("import torch\\nclass M(torch.nn.Module):\\n    pass\\n")
    >>> port_module_class(f, "M").__mro__[1] is oneflow.nn.Module
    True
    """
    return load_class(
        path,
        class_name,
        base=oneflow.nn.Module,
        transform=rewrite_torch_names,
        refuse={"torch": _NOT_IN_A_PORT},
    )


def load_ported_class(path: str | os.PathLike, class_name: str) -> type:
    """A OneFlow model the user ported by hand (`--against`): it must import oneflow.

    A file (or a user module it imports) with an `import torch` anywhere, a function
    body included, is refused in one line naming the file and line, before it runs.
    """
    if Path(path).is_file():
        for file in user_module_files(path):
            _refuse_torch_imports(file)
    return load_class(
        path, class_name, base=oneflow.nn.Module, refuse={"torch": _NOT_IN_A_HAND_PORT}
    )


def _refuse_torch_imports(file: Path) -> None:
    try:
        tree = ast.parse(read_source(file), str(file))
    except (SyntaxError, ValueError, tokenize.TokenError):
        return  # load_class reports it with its line
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            if name.partition(".")[0] == "torch":
                raise ConfigError(f"{file}:{node.lineno}: imports {name}; {_NOT_IN_A_HAND_PORT}")
