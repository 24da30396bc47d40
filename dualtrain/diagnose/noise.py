"""Noise-calibrated checks: a difference judged against what rounding alone gives there.

The rounding noise of one quantity (a module's output, an input gradient, a
parameter after one update) is measured on the reference backend itself: the
same computation on the same inputs in float32 against float64 (`noise`); the
engine's own float32-against-float64 distance (`own`) joins it where the engine
runs both (OneFlow's float32 BatchNorm variance loses more digits than torch's,
and is no port error). A real difference shows in float64 as well, so `own`
does not hide it. `dualtrain.comparison` allows twice the larger drift for whole
runs; one module in one step is a single sample of its rounding, so the factor
here is larger (NOISE_FACTOR, measured below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: A module parts when its difference exceeds this many times its noise (plus one
#: float32 ulp of its largest value, so that an exact operation, whose noise is
#: only the cast, is not judged against zero). Why 16 is honest: over the
#: correct ports of examples/port (CNN, transformer, LSTM; SGD and Adam; every
#: module's output and gradients at steps 0 and 7), the largest ratio
#: difference / max(noise, own noise) measured is 1 (docs/diagnose.md,
#: tests/diagnose_faults/measure_noise.py), updates aside (UPDATE_RTOL); the
#: injected faults of tests/diagnose_faults exceed this tolerance 100 times and more.
NOISE_FACTOR = 16.0
#: An update may differ by this share of its own size. Why: OneFlow 0.9.0 computes
#: its optimizers' hyperparameters in float32 even for float64 parameters
#: (../shared/PORTING.md), e.g. Adam's bias correction 1 - 0.999 as 0.0010000467,
#: which moves its first update by ~2e-5 of itself (measured: 7e-6 on the
#: diagnosis's transformer, docs/diagnose.md), more than float32 rounding of the
#: parameters and invisible to the engine's own float64 run. It is the
#: comparison's rtol (1e-4) applied to the step's change rather than to the value,
#: so stricter than the comparison; a real optimizer fault (another eps, weight
#: decay) moves the update by percents.
UPDATE_RTOL = 1e-4
#: One unit in the last place of float32, relative.
FLOAT32_ULP = float(np.finfo(np.float32).eps)


@dataclass
class Check:
    """One quantity of one module at one step: its difference against its tolerance."""

    phase: str
    #: The module call ("blocks.0.norm1", "act#1"), a parameter's owner for updates.
    module: str
    #: What was compared: "output", "input gradient", "weight gradient", "update of
    #: classifier.weight", "lr of group 0", "input batch", "loss", ...
    what: str
    kind: str
    #: max |engine - reference| (float64 reference).
    value: float
    #: max |reference in float32 - reference in float64|.
    noise: float
    #: max |engine in float32 - engine in float64|, where the engine has both.
    own: float
    tolerance: float

    @property
    def ratio(self) -> float:
        """How many times the rounding noise the difference is."""
        scale = max(self.noise, self.own)
        if scale == 0:
            return 0.0 if self.value == 0 else math.inf
        return self.value / scale

    @property
    def excess(self) -> float:
        """The difference over its tolerance: above 1, the module parts."""
        if self.tolerance == 0:
            return 0.0 if self.value == 0 else math.inf
        return self.value / self.tolerance

    @property
    def parted(self) -> bool:
        # Written as "not within" so that a NaN parts.
        return not (self.value <= self.tolerance)


def distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """max |a - b| in float64; inf when the shapes differ, 0 for two empty ones."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def check(
    phase: str,
    module: str,
    what: str,
    kind: str,
    engine: np.ndarray | None,
    reference: np.ndarray | None,
    low: np.ndarray | None,
    own: np.ndarray | None = None,
    change: np.ndarray | None = None,
    own_noise: float | None = None,
) -> Check:
    """The check of `engine` against the float64 `reference`, with `low` the
    reference in float32 (the noise) and `own` the engine in its other precision.

    `change`: for a parameter after an update, the reference's update itself
    (after - before); the update may then also differ by UPDATE_RTOL of its size.
    `own_noise`: the engine's own noise measured elsewhere (a graph's, by a pair of
    runs), instead of `own`.
    """
    noise = distance(low, reference) if low is not None else 0.0
    if own_noise is None:
        own_noise = distance(engine, own) if own is not None else 0.0
    scale = float(np.max(np.abs(reference))) if reference is not None and np.size(reference) else 0
    tolerance = NOISE_FACTOR * max(noise, own_noise) + FLOAT32_ULP * scale
    if change is not None and np.size(change):
        tolerance = max(tolerance, UPDATE_RTOL * float(np.max(np.abs(change))))
    if not math.isfinite(tolerance):
        tolerance = FLOAT32_ULP * scale
    value = distance(engine, reference)
    return Check(phase, module, what, kind, value, noise, own_noise, tolerance)
