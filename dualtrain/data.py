"""Datasets and the deterministic batch order every backend receives.

The core owns the data: each epoch's order is a permutation drawn from
(seed, epoch) alone, so a run resumed mid-way, or the same run on another
backend, sees exactly the same batches as NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dualtrain.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """Inputs `x` (n, ...) and targets `y`: (n, outputs) floats or (n,) class ids.

    A declarative model takes x of shape (n, features); a user's own module any
    shape, in float or int (token ids), and targets such as (n, seq) class ids.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.ndim < 2:
            raise ConfigError(
                f"data x must be at least 2-D (samples, features...), got shape {self.x.shape}"
            )
        if len(self.x) != len(self.y):
            raise ConfigError(
                f"data x and y must have as many rows, got {len(self.x)} and {len(self.y)}"
            )
        if len(self.x) == 0:
            raise ConfigError("data has no rows")
        for name, array in (("x", self.x), ("y", self.y)):
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ConfigError(f"data {name} holds NaN or infinite values")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.x[index], self.y[index])

    def split(self, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
        """(train, validation) with `fraction` of the rows, drawn by `seed`, held out."""
        if not 0 <= fraction < 1:
            raise ConfigError(f"validation fraction must be in [0, 1), got {fraction!r}")
        n_val = int(round(len(self) * fraction))
        if n_val == 0:
            return self, None
        order = np.random.default_rng([seed, 7919]).permutation(len(self))
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))


def batch_indices(
    n: int, batch_size: int, epoch: int, seed: int, shuffle: bool = True, drop_last: bool = False
) -> list[np.ndarray]:
    """Row indices of each batch of `epoch`, the same on every backend and every resume.

    Example:
        >>> [b.tolist() for b in batch_indices(5, 2, epoch=0, seed=0, shuffle=False)]
        [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    batches = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
    if not batches:
        raise ConfigError(f"batch_size {batch_size} with drop_last leaves no batch from {n} rows")
    return batches


def load_data(path: str | Path, target: str | None = None) -> Dataset:
    """A dataset from an NPZ (arrays `x` and `y`) or a CSV with a header row.

    In a CSV the target column is `target` (default: the last column). Integer
    targets in an NPZ are class ids; the loop casts float class ids for
    cross-entropy.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data {str(path)!r}: no such file")
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".csv":
        return _load_csv(path, target)
    raise ConfigError(f"data {str(path)!r}: expected a .csv or .npz file")


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x", "y"} - set(archive.files)
            if missing:
                raise ConfigError(
                    f"data {str(path)!r}: missing array(s) {sorted(missing)} "
                    f"(has {sorted(archive.files)})"
                )
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"data {str(path)!r}: not a readable .npz ({exc})") from None
    return Dataset(inputs(np.asarray(x)), targets(np.asarray(y)))


def _load_csv(path: Path, target: str | None) -> Dataset:
    if not path.read_text(errors="replace").strip():
        raise ConfigError(f"data {str(path)!r}: the file is empty; expected a header and rows")
    try:
        table = np.genfromtxt(path, delimiter=",", names=True, dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"data {str(path)!r}: not a numeric CSV with a header ({exc})") from None
    names = list(table.dtype.names or ())
    if len(names) < 2:
        raise ConfigError(f"data {str(path)!r}: need a header and at least two columns")
    target = target or names[-1]
    if target not in names:
        raise ConfigError(f"data {str(path)!r}: no column {target!r} (columns: {names})")
    features = [n for n in names if n != target]
    table = np.atleast_1d(table)
    for name in names:
        bad = np.flatnonzero(~np.isfinite(table[name]))
        if bad.size:
            raise ConfigError(
                f"data {str(path)!r}: column {name!r} has a missing or non-numeric value "
                f"in data row {int(bad[0]) + 1}; expected numbers only"
            )
    x = np.stack([table[n] for n in features], axis=1)
    return Dataset(x, targets(table[target]))


def inputs(x: np.ndarray) -> np.ndarray:
    """Integer inputs (token ids) as int64, everything else as float64."""
    if x.dtype.kind in "iu":
        return x.astype(np.int64)
    return x.astype(np.float64)


def targets(y: np.ndarray) -> np.ndarray:
    """Class ids as int64; float targets as float64 of shape (samples, outputs)."""
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    y = y.astype(np.float64)
    return y.reshape(-1, 1) if y.ndim == 1 else y
