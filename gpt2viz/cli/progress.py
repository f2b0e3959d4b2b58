"""Progress of long command-line runs, on stderr (stdout keeps the results and the JSON line).
A counted run draws one bar that rewrites itself on a terminal, with the time so far and an
estimate from the pace of the steps done (where stderr is a file or a pipe, a line every
LINE_SECONDS and at the end)."""
from __future__ import annotations

import sys
import time

BAR_WIDTH = 24
LINE_SECONDS = 5.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ProgressBar:
    """Call it with (done, total, what): done of total steps finished, `what` the one running."""

    def __init__(self, title: str, stream=None):
        self.title, self.stream, self.started = title, stream or sys.stderr, time.monotonic()
        self.last_line = None  # when the last line was written (not a terminal)

    def line(self, done: int, total: int, what: str, now: float) -> str:
        elapsed = now - self.started
        filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
        left = f", about {elapsed / done * (total - done):.0f} s left" if 0 < done < total else ""
        return (f"{self.title} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} "
                f"({elapsed:.0f} s{left}) {what}")

    def __call__(self, done: int, total: int, what: str = "") -> None:
        terminal, now = self.stream.isatty(), time.monotonic()
        if not terminal and done < total and self.last_line is not None and now - self.last_line < LINE_SECONDS:
            return
        self.last_line = now
        end = "\n" if not terminal or done >= total else ""
        print(("\r\033[K" if terminal else "") + self.line(done, total, what, now), end=end,
              file=self.stream, flush=True)
