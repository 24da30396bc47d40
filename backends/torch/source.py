"""A user's torch model file, loaded privately: the class, and nothing left in `sys.modules`.

See `dualtrain.usersource` for how the file and the user's own modules it
imports are executed under private names.
"""

from __future__ import annotations

import os

import torch

from dualtrain.usersource import load_class

_NO_ONEFLOW = "the torch model must not use oneflow (give a OneFlow port with --against instead)"


def load_module_class(path: str | os.PathLike, class_name: str) -> type:
    """The `torch.nn.Module` subclass `class_name` defined in the user's file `path`.

    Bad input is a one-line ConfigError naming the file (and line): a missing
    file, a syntax error, an error while the module runs, a missing class, a
    class that is not a `torch.nn.Module`, a file that imports oneflow.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.py"
    >>> _ = f.write_text("from torch import nn\\nclass M(nn.Module):\\n    pass\\n")
    >>> issubclass(load_module_class(f, "M"), torch.nn.Module)
    True
    """
    return load_class(path, class_name, base=torch.nn.Module, refuse={"oneflow": _NO_ONEFLOW})
