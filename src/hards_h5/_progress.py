"""Progress reporting for long operations (import, export, merge, check, compact, recover).

The library never draws anything: a long operation takes an optional
``progress(done, total)`` callback and calls it as work advances, in units the
operation chooses (datapoints for import and export, record-log rows for the
others, where the total is known without reading the logs).  The command-line
tool turns the calls into a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "Tally"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as a long operation advances."""


class Tally:
    """Counts work done against a known total and reports it, at most every ``every`` units.

    Parameters
    ----------
    callback : callable or None
        ``callback(done, total)``; ``None`` makes the tally silent.
    total : int
        The number of units the whole operation will add.
    every : int
        Report after at least this many units (and always when ``done`` reaches
        ``total``), so a callback that draws is not called per datapoint.

    """

    def __init__(self, callback: Progress | None, total: int, *, every: int = 256) -> None:
        self.callback, self.total, self.every = callback, total, every
        self.done = 0
        self._reported = 0

    def add(self, units: int = 1) -> None:
        """Count ``units`` more units done, and report when enough have accumulated."""
        self.done += units
        if self.callback is None:
            return
        if self.done - self._reported >= self.every or self.done >= self.total:
            self._reported = self.done
            self.callback(self.done, self.total)
