"""A pytest plugin for `make mutation`: freeze the heap after each session.

mutmut forks one child per mutant from the process that ran the tests once, with
torch and OneFlow imported; every pytest session in a child ends with full garbage
collections (pytest's unraisable-exception check), which walk that whole inherited
heap: 0.7 of the 1.6 s a one-test mutant took. `gc.freeze()` moves what exists at
the end of a session into the permanent generation, which collections skip, so a
child pays only for what its own tests allocate. Nothing a test sees changes.
"""

from __future__ import annotations

import gc


def pytest_sessionfinish(session, exitstatus) -> None:
    gc.freeze()
