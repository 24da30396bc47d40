"""Reading config files (JSON or TOML) and `KEY=VALUE` arguments, with one-line errors."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

from dualtrain.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10, where OneFlow lives
    import tomli as tomllib


def load_config(path: str | Path) -> dict[str, Any]:
    """A JSON (.json) or TOML (.toml) file's top-level table.

    Example:
        >>> load_config("missing.toml")
        Traceback (most recent call last):
        ...
        dualtrain.errors.ConfigError: config 'missing.toml': no such file
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {str(path)!r}: no such file")
    text = _read_text(path)
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {str(path)!r}: not valid TOML ({exc})") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {str(path)!r}: not valid JSON ({exc})") from None
    else:
        raise ConfigError(f"config {str(path)!r}: expected a .json or .toml file")
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(path)!r}: expected a table at the top, got {data!r:.60}")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config {str(path)!r}: not UTF-8 text") from None


def parse_assignment(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE a Python literal; anything else is kept as a string.

    Example:
        >>> parse_assignment("milestones=[2, 5]")
        ('milestones', [2, 5])
        >>> parse_assignment("lr_lambda=0.95 ** epoch")
        ('lr_lambda', '0.95 ** epoch')
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"--arg expects KEY=VALUE with KEY a name, got {text!r}")
    raw = raw.strip()
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, raw
