"""Plain progress lines where stdout is not a terminal.

A progress bar redraws one line in place: in a file (`| tee log`, nohup, a SLURM job's output) it is
noise, so the commands show bars on a terminal only, and a long loop would otherwise say nothing
there until it ends. A `Reporter` prints a short line instead, every `every_seconds` seconds or at
each `every_fraction` of the work, whichever comes first:

    progress: epoch 2/4  step 1234  37%  loss 0.0123  1540 samples/s  00:01:12
    progress: likelihood k=1000  4000/10000 images  40%  00:03:10

Each line starts with `progress:` (to grep for, or out) and is flushed at once, as stdout may be
a file. On a terminal a Reporter prints nothing: the bars are there.
"""

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _floor(x: float) -> int:
    """floor(x), forgiving the rounding of a quotient such as 0.3 / 0.1 = 2.9999999999999996."""
    return math.floor(x * (1 + 1e-9))


class Reporter:
    """Decides when a line is due and prints it. `start()` begins a piece of work (an epoch, a
    command's loop): its elapsed time and fraction marks count from there. `stream` is stdout when
    the Reporter is made (not at import: a test's capture may stand in for it); `clock` is injectable
    so that tests need not wait."""

    def __init__(self, every_seconds: float = 30.0, every_fraction: float = 0.1, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.every_seconds, self.every_fraction, self.clock = every_seconds, every_fraction, clock
        self.stream = sys.stdout if stream is None else stream
        self.terminal = self.stream.isatty()
        self.start()

    def start(self) -> None:
        self.started = self.last_line = self.clock()
        self.marks = 0  # fraction marks passed when the last line was printed

    def due(self, fraction: float) -> bool:
        """Whether a line is due with `fraction` of the work done: a new mark passed, or
        `every_seconds` since the last line. Cheap enough to ask at every training step."""
        if self.terminal:
            return False
        return _floor(fraction / self.every_fraction) > self.marks or self.clock() - self.last_line >= self.every_seconds

    def line(self, fraction: float, head: str, tail: str = "") -> None:
        """Print `progress: <head>  <percent>%  <tail>  <elapsed>`."""
        now = self.clock()
        self.marks, self.last_line = max(self.marks, _floor(fraction / self.every_fraction)), now
        parts = [head, f"{_floor(100 * fraction)}%", *([tail] if tail else []), hms(now - self.started)]
        print("progress: " + "  ".join(parts), file=self.stream, flush=True)

    def update(self, fraction: float, head: str, tail: str = "") -> None:
        """A line if one is due."""
        if self.due(fraction):
            self.line(fraction, head, tail)


class Counted:
    """Work counted in units (steps, runs, images) over a Reporter:
    `progress: <what>  <done>/<total> <unit>  <percent>%  <note>  <elapsed>`."""

    def __init__(self, reporter: Reporter, what: str, total: int, unit: str) -> None:
        self.reporter, self.what, self.total, self.unit = reporter, what, total, unit
        self.done = 0

    def advance(self, n: int = 1, note: str = "") -> None:
        """`n` more units done; `note` says which (the step just finished, say)."""
        self.done += n
        self.reporter.update(self.done / self.total, f"{self.what}  {self.done}/{self.total} {self.unit}", note)


class Stopwatch:
    """The seconds of the spans it ran: an epoch's training time, with a validation in its middle
    left out (`pause` when it starts, `resume` when it ends). `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.restart()

    def restart(self) -> None:
        self.total, self.since = 0.0, self.clock()

    def pause(self) -> None:
        if self.since is not None:
            self.total += self.clock() - self.since
            self.since = None

    def resume(self) -> None:
        self.since = self.clock()

    @property
    def seconds(self) -> float:
        return self.total + (self.clock() - self.since if self.since is not None else 0.0)
