"""Opening a campaign file while other processes use it: waiting for locks, SWMR.

HDF5 locks the file itself (``flock``: one writer, or any number of readers) and
reports a conflict with errno 11.  :func:`open_waiting` turns that into
:class:`DatabaseLockedError` and, given a timeout, retries with a growing,
jittered back-off until the other process is done.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import h5py

from hards_h5 import _layout
from hards_h5.errors import DatabaseLockedError

__all__ = ["open_waiting"]

_FIRST_WAIT = 0.005
_MAX_WAIT = 0.25


def open_waiting(path: Path, mode: str, *, swmr: bool, timeout: float | None) -> h5py.File:
    """Open ``path`` like :func:`_layout.open_file`, waiting up to ``timeout`` s for locks.

    Raises
    ------
    DatabaseLockedError
        If the file is still locked by another process when the timeout expires
        (at once when ``timeout`` is None).

    """
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    wait = _FIRST_WAIT
    while True:
        try:
            return _layout.open_file(path, mode, swmr=swmr)
        except DatabaseLockedError as exc:  # noqa: PERF203 - a retry loop
            if deadline is None:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{exc} (waited {timeout:g} s)"
                raise DatabaseLockedError(msg) from exc
            time.sleep(min(left, wait * random.uniform(0.5, 1.5)))  # noqa: S311 - jitter
            wait = min(wait * 2, _MAX_WAIT)
