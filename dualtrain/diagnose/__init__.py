"""Localise a divergence: the step, the phase and the module where two engines part.

`diagnose(comparison)` reruns the comparison's first diverging step from the
state before it, on the reference and on the engine that differs, with probes
on every module (`docs/diagnose.md`). The package is framework-free; each
backend's `probes.py` gives the hooks (`dualtrain.diagnose.hooks.Ops`).
"""

from __future__ import annotations

from typing import Any


def diagnose(comparison: Any, always: bool = False) -> Any:
    """See `dualtrain.diagnose.pipeline.diagnose`."""
    from dualtrain.diagnose.pipeline import diagnose as run

    return run(comparison, always)


def localise(comparison: Any, requested: bool | None = None) -> None:
    """See `dualtrain.diagnose.pipeline.localise`."""
    from dualtrain.diagnose.pipeline import localise as run

    run(comparison, requested)
