"""Keep OneFlow's expected CUDA notices on a CPU machine out of the user's way.

Importing OneFlow 0.9.0 and compiling its first graph print, on stderr, from
C++: "libibverbs not available, ibv_fork_init skipped", "CUDA driver version is
insufficient for CUDA runtime version" and "Failed to get cuda runtime
version". On a CPU-only run they are expected and say nothing. They are
filtered out line by line; every other line, errors included, is passed on.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

EXPECTED = re.compile(
    r"libibverbs not available"
    r"|CUDA driver version is insufficient for CUDA runtime version"
    r"|Failed to get cuda runtime version"
)


@contextlib.contextmanager
def expected_notices_hidden():
    """Capture file descriptor 2 (C++ writes there directly) and pass on the rest."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not EXPECTED.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
