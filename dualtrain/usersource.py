"""Load a class from a user's own Python file without leaving anything in the process.

A user's model file (`models.py:SmallCNN`) is executed into a private module
object; so is every module of the user's own that it imports (`import blocks`,
`from .layers import Y`, `from mypkg.layers import Y`), found next to the file
and under its package root. The framework side can hand in a source transform
(the OneFlow backend renames `torch` to `oneflow`), which is then applied to
every user file, not only the first: otherwise one framework's copy of a
sibling module would be reused by the other and build half a model.

How it stays private:
- Each user module gets its own `__builtins__` whose `__import__` resolves the
  user's own modules to the private copies of this load, so an import that runs
  later (inside `forward`) still gets them; everything else goes to Python's
  import as usual.
- `sys.path` and `sys.meta_path` are never touched. The private modules sit in
  `sys.modules` only while the load runs (Python itself does that for a module
  being executed; `dataclasses` with `from __future__ import annotations` needs
  it) and are removed at the end, so afterwards `sys.modules` has no new key but
  the third-party modules the user's code imported itself.

Known limits: `importlib.import_module("blocks")` in user code bypasses the
private import (it finds the user's file on `sys.path` if at all); a class
loaded here cannot be pickled by reference (its module is not in `sys.modules`):
a child process rebuilds it from the file and the class name.

The core stays framework-free: the frameworks' names come in as arguments.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import itertools
import os
import sys
import tokenize
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

from dualtrain.errors import ConfigError

#: `transform(source, filename) -> source`: a line-preserving rewrite of a user file.
Transform = Callable[[str, str], str]

_LOADS = itertools.count(1)


def split_model_ref(ref: str) -> tuple[str, str]:
    """`"models.py:SmallCNN"` -> `("models.py", "SmallCNN")`, or a one-line ConfigError.

    >>> split_model_ref("examples/port/cnn.py:SmallCNN")
    ('examples/port/cnn.py', 'SmallCNN')
    """
    path, sep, name = ref.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise ConfigError(f"a model is FILE.py:ClassName, got {ref!r}")
    return path, name


def read_source(path: Path) -> str:
    """The file's text, decoded as Python decodes it (coding cookie, BOM)."""
    with tokenize.open(path) as f:
        return f.read()


class UserModules:
    """Where a user's own modules live: the file's folder, then its package root.

    `name_of(path)` is the name Python would give the file (`mypkg.models` inside a
    package, else the stem); `find(name)` is the file of a user module, or None.
    """

    def __init__(self, path: Path) -> None:
        self.main = path
        top = path.parent
        while (top / "__init__.py").is_file():
            top = top.parent
        self.roots = [path.parent] if top == path.parent else [path.parent, top]
        parts = path.parent.relative_to(top).parts
        self.main_name = ".".join((*parts, path.stem))
        self._found: dict[str, tuple[Path, bool] | None] = {}

    def find(self, name: str) -> tuple[Path, bool] | None:
        """(file, is_package) of the user module `name` (dotted, absolute), or None."""
        if name == self.main_name:
            return self.main, False
        if name not in self._found:
            self._found[name] = self._search(name)
        return self._found[name]

    def _search(self, name: str) -> tuple[Path, bool] | None:
        parts = name.split(".")
        if not all(p.isidentifier() for p in parts):
            return None
        for root in self.roots:
            base = root.joinpath(*parts)
            if base.with_suffix(".py").is_file() and base.name + ".py" != "__init__.py":
                return base.with_suffix(".py"), False
            if (base / "__init__.py").is_file():
                return base / "__init__.py", True
            # A folder without __init__.py is a namespace package only where
            # nothing installed has that name, as in Python's own import.
            if base.is_dir() and (len(parts) > 1 or importlib.util.find_spec(name) is None):
                return base, True
        return None

    def is_user(self, name: str) -> bool:
        """Whether the top-level package of `name` is one of the user's."""
        return self.find(name.partition(".")[0]) is not None


class _Load:
    """One load: the user modules executed so far, by their user-level names."""

    def __init__(self, where: UserModules, transform, refuse, base_builtins) -> None:
        self.where = where
        self.transform = transform
        self.refuse = dict(refuse)
        self.base_builtins = base_builtins
        self.prefix = f"_dualtrain_user_{os.getpid()}_{next(_LOADS)}"
        self.modules: dict[str, ModuleType] = {}
        self.registered: list[str] = []  # private names put in sys.modules during the load
        self.started: set[str] = {str(self.where.main)}  # files run, failed ones included

    def files(self) -> set[str]:
        return self.started

    def module(self, name: str) -> ModuleType:
        """The private copy of user module `name`, loading it (parents first) if needed."""
        if name in self.modules:
            return self.modules[name]
        parent, _, child = name.rpartition(".")
        if parent:
            self.module(parent)
        found = self.where.find(name)
        if found is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        module = self._execute(name, *found)
        if parent:
            setattr(self.modules[parent], child, module)
        return module

    def _execute(self, name: str, file: Path, is_package: bool) -> ModuleType:
        private = f"{self.prefix}.{name}"
        module = ModuleType(private)
        module.__file__ = str(file)
        module.__package__ = private if is_package else private.rpartition(".")[0]
        if is_package:
            module.__path__ = [str(file.parent if file.is_file() else file)]
        module.__dict__["__builtins__"] = self._builtins(name, is_package)
        self.modules[name] = module
        if file.is_dir():  # a namespace package: nothing to run
            return module
        source = read_source(file)
        if self.transform is not None:
            source = self.transform(source, str(file))
        sys.modules[private] = module
        self.registered.append(private)
        self.started.add(str(file))
        try:
            exec(compile(source, str(file), "exec", dont_inherit=True), module.__dict__)
        except BaseException:
            del self.modules[name]
            raise
        return module

    def _builtins(self, importer: str, is_package: bool) -> dict:
        namespace = dict(self.base_builtins)
        package = importer if is_package else importer.rpartition(".")[0]

        def __import__(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A001
            return self.import_(package, name, globals, locals, fromlist, level)

        namespace["__import__"] = __import__
        return namespace

    def import_(self, package, name, globals_, locals_, fromlist, level):
        """`__import__` as seen from a user module of package `package`."""
        absolute = _absolute(package, name, level)
        self._check_refused(absolute)
        if level == 0 and not self.where.is_user(absolute):
            return builtins.__import__(name, globals_, locals_, fromlist or (), 0)
        module = self.module(absolute)
        if not fromlist:
            return self.modules[absolute.partition(".")[0]]
        for item in fromlist:
            sub = f"{absolute}.{item}"
            if item != "*" and not hasattr(module, item) and self.where.find(sub):
                self.module(sub)
        return module

    def _check_refused(self, absolute: str) -> None:
        top = absolute.partition(".")[0]
        if top in self.refuse:
            file, line = _innermost(traceback.extract_stack(), self.files())
            raise ConfigError(f"{file}:{line}: imports {absolute}; {self.refuse[top]}")

    def unregister(self) -> None:
        for private in self.registered:
            sys.modules.pop(private, None)


def _absolute(package: str, name: str, level: int) -> str:
    """The absolute name of `from <level dots><name> import ...` inside `package`."""
    if level == 0:
        return name
    if not package:
        raise ImportError("attempted relative import with no known parent package")
    parts = package.split(".")
    if level - 1 >= len(parts):
        raise ImportError("attempted relative import beyond top-level package")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def _innermost(frames, files: set[str]) -> tuple[str, int | str]:
    """File and line of the innermost frame that runs one of the user's files."""
    for frame in reversed(frames):
        if frame.filename in files:
            return frame.filename, frame.lineno
    return next(iter(files)), "?"


def load_class(
    path: str | os.PathLike,
    class_name: str,
    *,
    base: type,
    transform: Transform | None = None,
    refuse: Mapping[str, str] | None = None,
) -> type:
    """The class `class_name` of the user's file, a subclass of `base`, loaded privately.

    Args:
        path: the user's Python file.
        class_name: a class defined (or imported) at the top level of that file, or a
            top-level function that returns the module (a factory).
        base: the class it must derive from (the framework's `nn.Module`).
        transform: a line-preserving rewrite applied to the file and every user module
            it imports (line numbers and the real filename stay, so tracebacks point at
            the user's own file).
        refuse: top-level module names whose import is an error, with the reason.

    Returns:
        The class. Bad input is a one-line ConfigError naming the file (and line).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "m.py").write_text("class A(dict):\\n    pass\\n")
    >>> load_class(folder / "m.py", "A", base=dict).__name__
    'A'
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"model file {str(path)!r} not found")
    load = _Load(UserModules(file), transform, refuse or {}, builtins.__dict__)
    try:
        module = load.module(load.where.main_name)
    except ConfigError:
        raise
    except SyntaxError as e:  # IndentationError and TabError included
        raise ConfigError(f"{e.filename}:{e.lineno}: {type(e).__name__}: {e.msg}") from None
    except tokenize.TokenError as e:
        raise ConfigError(f"{file}: cannot read it as Python: {e.args[0]}") from None
    except Exception as e:
        raise ConfigError(_one_line(e, load.files())) from None
    finally:
        load.unregister()
    return _class_of(module, file, class_name, base)


def _one_line(error: BaseException, files: set[str]) -> str:
    file, line = _innermost(traceback.extract_tb(error.__traceback__), files)
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{file}:{line}: {type(error).__name__}: {message}"


def _class_of(module: ModuleType, file: Path, class_name: str, base: type) -> type:
    value = getattr(module, class_name, None)
    if inspect.isfunction(value) and value.__name__ != "<lambda>":
        # A factory (`def make_model(): return Net(16)`): what it returns is checked
        # when it is called, by the backend that builds the model.
        return value
    if not isinstance(value, type):
        defined = sorted(
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, base) and v is not base
        )
        what = (
            "no class"
            if value is None
            else f"{type(value).__name__}, not a class or function, named"
        )
        known = f" (its {base.__name__} classes: {', '.join(defined)})" if defined else ""
        raise ConfigError(f"{file} has {what} {class_name!r}{known}")
    if not issubclass(value, base):
        where = f"{base.__module__}.{base.__qualname__}"
        raise ConfigError(f"{file}: {class_name} is not a subclass of {where}")
    return value


def user_module_files(path: str | os.PathLike) -> list[Path]:
    """The user's file and every user module it imports, transitively (found by `ast`).

    Nothing is executed: a file that does not build is still listed. Imports
    inside function bodies count too.
    """
    file = Path(path).resolve()
    where = UserModules(file)
    seen: dict[Path, str] = {}
    todo = [(file, where.main_name, False)]
    while todo:
        current, name, is_package = todo.pop()
        if current in seen or current.is_dir():
            continue
        seen[current] = name
        package = name if is_package else name.rpartition(".")[0]
        for target in _imported_names(current, package):
            for candidate in _with_parents(target):
                found = where.find(candidate)
                if found is not None:
                    todo.append((found[0], candidate, found[1]))
    return list(seen)


def _imported_names(file: Path, package: str) -> Iterator[str]:
    try:
        tree = ast.parse(read_source(file), str(file))
    except (SyntaxError, ValueError, tokenize.TokenError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            try:
                base = _absolute(package, node.module or "", node.level)
            except ImportError:
                continue
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0]]
