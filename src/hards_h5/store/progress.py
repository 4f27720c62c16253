"""Progress reporting for long operations (import, export, merge, check, compact, recover).

The library never draws anything: a long operation takes an optional
``progress(done, total)`` callback and calls it as work advances, in units the
operation chooses (datapoints for import and export, record-log rows for the
others, where the total is known without reading the logs).  The command-line
tool turns the calls into a progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Progress", "Tally", "after"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as a long operation advances (``total`` > 0)."""


def after(callback: Progress | None, done: int) -> Progress | None:
    """Return ``callback`` for a phase that follows ``done`` units already reported.

    The phase's ``(d, t)`` is reported as ``(done + d, done + t)``: the bar goes on
    from where the first phase ended (``recover`` audits a file, then folds it).
    """
    if callback is None or done <= 0:
        return callback
    report = callback
    return lambda d, t: report(done + d, done + t)


class Tally:
    """Counts work done against a known total and reports it now and then.

    Parameters
    ----------
    callback : callable or None
        ``callback(done, total)``; ``None`` makes the tally silent.  It is called
        once at the start with ``done = 0``, then after every ``every`` units or
        ``seconds`` of time (whichever comes first), and when ``done`` reaches
        ``total``.  It is never called when ``total`` is 0.
    total : int
        The number of units the whole operation will add.
    every : int
        Report after at least this many units.
    seconds : float
        Report when at least this long has passed since the last report, so
        slow units (a large file being hashed or copied) still show progress.

    """

    def __init__(
        self, callback: Progress | None, total: int, *, every: int = 256, seconds: float = 0.1
    ) -> None:
        self.callback = callback
        self.total, self.every, self.seconds = total, every, seconds
        self.done = 0
        self._reported = 0
        self._last = time.monotonic()
        if self.callback is not None and total > 0:
            self.callback(0, total)

    def add(self, units: int = 1) -> None:
        """Count ``units`` more units done, and report when it is time to."""
        if units <= 0 or self.callback is None or self.total <= 0:
            return
        before, self.done = self.done, self.done + units
        now = time.monotonic()
        finished = self.done >= self.total > before
        if finished or self.done - self._reported >= self.every or now - self._last >= self.seconds:
            self._reported, self._last = self.done, now
            self.callback(self.done, self.total)

    def expect(self, units: int) -> None:
        """Say that ``units`` units of work remain: the total moves to ``done + units``.

        For a phase whose size is known only when it starts (the fold into the HDF5
        tree after a copy): an operation counts an estimate in its total from the
        start, and the phase corrects it, so the bar neither stops at 100 % nor
        goes back.  Reported at once (never with a total of 0).
        """
        total = self.done + max(units, 0)
        if total == self.total:
            return
        self.total = total
        if self.callback is not None and total > 0:
            self._reported, self._last = self.done, time.monotonic()
            self.callback(self.done, total)

    def add_rest(self, size: int, counted: int) -> None:
        """Count the rest of a part of ``size`` units of which ``counted`` were added."""
        self.add(size - counted)
