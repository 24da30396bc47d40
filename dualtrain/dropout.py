"""Dropout masks drawn by the core, so every engine drops the same units.

Each framework draws its own masks (same seed: half the units agree, losses
then differ by up to 11%, measured), so a model with dropout cannot train the
same on two engines as it is. Here the mask of every call of every dropout
module at every step is a pure function of (run seed, step, module name, call
number within the step, shape): each engine asks for it and applies
`input * mask / (1 - p)` in place of its own dropout. A run resumed at step k,
an eager engine, a graph fed the masks as inputs, all get the same numbers.
"""

from __future__ import annotations

import numpy as np

from dualtrain.usermodel import DropoutSite

#: Keeps these streams apart from every other use of the run's seed.
_STREAM = 0x44524F50  # "DROP"


def mask(seed: int, step: int, site: DropoutSite, call: int, shape: tuple[int, ...]) -> np.ndarray:
    """The keep mask (1.0 keep, 0.0 drop, float64) of one dropout call.

    A unit is kept with probability 1 - p, as torch's dropout keeps it. A
    "channel" site (Dropout2d) draws one value per (sample, channel) and
    broadcasts it over the remaining dimensions.

    Example:
        >>> m = mask(0, 3, DropoutSite("drop", 0.5), 0, (2, 4))
        >>> m.shape, set(m.ravel().tolist()) <= {0.0, 1.0}
        ((2, 4), True)
        >>> bool((m == mask(0, 3, DropoutSite("drop", 0.5), 0, (2, 4))).all())
        True
    """
    rng = np.random.default_rng([seed, _STREAM, step, call, *site.name.encode()])
    drawn = tuple(shape)
    if site.kind == "channel":
        drawn = drawn[:2] + (1,) * (len(drawn) - 2)
    keep = rng.random(drawn) >= site.p
    return np.broadcast_to(keep, tuple(shape)).astype(np.float64)


class SharedMasks:
    """The masks of one engine's run, step by step: what a backend's hooks ask.

    The backend calls `begin(step)` before each training step; every dropout
    call of that step then gets `next(site, shape)`, calls counted per module
    (a module applied twice in one forward gets two masks).
    """

    def __init__(self, seed: int, sites: tuple[DropoutSite, ...], first_step: int = 0) -> None:
        self.seed = seed
        self.sites = {site.name: site for site in sites}
        self.step = first_step
        self.calls: dict[str, int] = {}

    def begin(self, step: int) -> None:
        """Start training step `step`: call counts back to zero."""
        self.step, self.calls = step, {}

    def next(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The mask of the next call of module `name` in this step."""
        call = self.calls.get(name, 0)
        self.calls[name] = call + 1
        return mask(self.seed, self.step, self.sites[name], call, shape)

    def step_masks(self, calls: list[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
        """Every mask of this step for `calls` = [(module name, shape)] in call order,
        for a static graph that takes them as inputs."""
        self.calls = {}
        return [self.next(name, shape) for name, shape in calls]
