"""OneFlow's WarmupLR with no warmup (warmup_iters 0) is its wrapped schedule at every
step the pure rule is asked for, the step before the first included. A corner a full
mutation run found unchecked (docs/mutation.md); expected values are StepLR's closed
form, worked out by hand in the test.
"""

from __future__ import annotations

import pytest

from dualtrain.schedules import build_schedule

STEP = {"name": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}


@pytest.mark.parametrize("method", ["linear", "constant"])
def test_zero_warmup_iters_is_the_wrapped_schedule_at_every_step(method):
    """StepLR(2, 0.5) from base 1 is 0.5 ** (step // 2): 2.0 at step -1 (the closed
    form's value before the first step, -1 // 2 = -1), then 1, 1, 0.5, 0.5, 0.25.
    A warmup of 0 iterations has no step to ramp over, whatever its factor."""
    [schedule] = build_schedule(
        "WarmupLR",
        "oneflow",
        {"scheduler": STEP, "warmup_iters": 0, "warmup_factor": 0.5, "warmup_method": method},
    )
    assert [schedule.lr(t, 1.0) for t in range(-1, 5)] == [2.0, 1, 1, 0.5, 0.5, 0.25]
