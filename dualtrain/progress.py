"""A progress bar for runs long enough to want one, silent when not on a terminal.

tqdm draws it when installed (`pip install dualtrain[progress]`); otherwise a
one-line bar of our own does. Either appears only after `delay` seconds, so
quick runs and piped output stay clean.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Steps done out of `total`, with the last loss, on stderr when it is a terminal."""

    def __init__(
        self, total: int, label: str, delay: float = 2.0, stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.label, self.delay = total, label, delay
        self.done, self.bar, self.shown = 0, None, False
        self.started = self.last_draw = time.perf_counter()
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=total, desc=label, delay=delay, leave=False, unit="step", file=self.stream
        )

    def update(self, loss: float, steps: int = 1) -> None:
        """`steps` more steps done (a chunk read at once); `loss`, the last one's,
        is shown next to the count."""
        self.done += steps
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self.bar.update(steps)
            return
        now = time.perf_counter()
        # Redraw at most ten times a second, and only once the delay has passed.
        if now - self.started >= self.delay and (now - self.last_draw >= 0.1 or self.finished):
            self.last_draw, self.shown = now, True
            self.stream.write("\r" + self.line(loss))
            self.stream.flush()

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def line(self, loss: float, width: int = 24) -> str:
        """The bar as text, e.g. `numpy/eager [#####-----]  50/100 loss 0.12`."""
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (width - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} loss {loss:.4g}"

    def close(self) -> None:
        """Remove the bar; the command prints its own summary after it."""
        if self.bar is not None:
            self.bar.close()
        elif self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
