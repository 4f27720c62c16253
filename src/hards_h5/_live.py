"""Opening a campaign file while other processes use it: waiting for locks, SWMR.

HDF5 locks the file itself (``flock``: one writer, or any number of readers) and
reports a conflict with errno 11.  :func:`open_waiting` turns that into
:class:`DatabaseLockedError` and, given a timeout, retries with a growing,
jittered back-off until the other process is done.

HDF5 *drops* its lock when a writer starts SWMR mode (so that SWMR readers can
open the file), which would let a second writer, or ``hards-h5 recover``, take a
file that a live writer is still appending to.  A live writer therefore holds a
:class:`LiveLock` — a shared ``flock`` on the campaign file itself, the kind SWMR
readers take too — until its file is closed: readers still come and go, while
every exclusive opener (a writer, recover, compact) keeps failing, or waiting.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import time
from pathlib import Path
from typing import ClassVar

import h5py

from hards_h5 import _layout
from hards_h5._superblock import status_flags
from hards_h5.errors import DatabaseLockedError, HARDSError, RecoveryNeededError

__all__ = ["LiveLock", "WriterClaim", "in_use", "open_waiting"]

_FIRST_WAIT = 0.005
_MAX_WAIT = 0.25
_SWMR_WRITE_FLAG = 0x04  # superblock v3 status flags: bit 2, "open for SWMR writing"


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
            return _open_live_aware(path, mode, swmr=swmr)
        except DatabaseLockedError as exc:  # noqa: PERF203 - a retry loop
            if deadline is None:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{exc} (waited {timeout:g} s)"
                raise DatabaseLockedError(msg) from exc
            time.sleep(min(left, wait * random.uniform(0.5, 1.5)))  # noqa: S311 - jitter
            wait = min(wait * 2, _MAX_WAIT)


def _open_live_aware(path: Path, mode: str, *, swmr: bool) -> h5py.File:
    """Open like :func:`_layout.open_file`; a file held by a live writer is locked, not dead.

    A SWMR writer's file carries the "open for writing" status flags that a dead
    writer leaves behind; the two differ in the writer's :class:`LiveLock`.
    """
    try:
        return _layout.open_file(path, mode, swmr=swmr)
    except DatabaseLockedError as exc:
        if "this process" in str(exc) or not _swmr_writer_flag(path):
            raise
        raise _live_writer_error(path, mode) from exc
    except RecoveryNeededError as exc:
        if not in_use(path):
            raise
        raise _live_writer_error(path, mode) from exc


def _live_writer_error(path: Path, mode: str) -> DatabaseLockedError:
    how = (
        "watch it with H5Database(path, mode='r', swmr=True)"
        if mode == "r"
        else "wait for it to close with H5Database(path, timeout=SECONDS)"
    )
    msg = (
        f"{path}: a SWMR live writer has the file open (or readers are still "
        f"attached to what it left); {how}"
    )
    return DatabaseLockedError(msg)


def _swmr_writer_flag(path: Path) -> bool:
    """Whether the superblock says a SWMR writer has ``path`` open."""
    try:
        return bool(status_flags(path) & _SWMR_WRITE_FLAG)
    except (HARDSError, OSError):
        return False


def in_use(path: Path) -> bool:
    """Whether some process holds a ``flock`` on ``path`` (probed without blocking)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in {errno.EAGAIN, errno.EWOULDBLOCK}
    else:
        return False
    finally:
        os.close(fd)  # also releases the probe's lock


class WriterClaim:
    """A claim, per process, to be the one writer of a campaign file.

    HDF5 hands a second writable open of a file in the same process the same
    underlying file, so two :class:`H5Database` writers would each keep their own
    view of the record logs and lose each other's changes (the second flush finds
    the log changed under it).  HDF5's ``flock`` cannot see this — both opens are
    one process — so writers register here, by device and inode, and a second one
    is refused.
    """

    _held: ClassVar[set[tuple[int, int]]] = set()

    def __init__(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            self._key: tuple[int, int] | None = None  # opening will raise the real error
            return
        key = (st.st_dev, st.st_ino)
        if key in self._held:
            msg = (
                f"{path}: this process already has the file open for writing; close "
                "that H5Database first (or restart the interpreter). Two writers in one "
                "process would lose each other's changes"
            )
            raise DatabaseLockedError(msg)
        self._held.add(key)
        self._key = key

    @classmethod
    def check_reader(cls, path: Path) -> None:
        """Refuse a read-only open of a file this process has open for writing.

        HDF5 would allow it (and share the writer's file), but the reader's record
        logs would not follow the writer's changes.

        Raises
        ------
        DatabaseLockedError
            If this process holds a writer claim on ``path``.

        """
        try:
            st = path.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in cls._held:
            msg = (
                f"{path}: this process already has the file open for writing; read it "
                "through that H5Database, or close it first (a second, read-only one "
                "would not follow its changes)"
            )
            raise DatabaseLockedError(msg)

    def release(self) -> None:
        """Give the claim up (once the file is closed); safe to call twice."""
        key, self._key = self._key, None
        if key is not None:
            self._held.discard(key)


class LiveLock:
    """A shared ``flock`` a SWMR writer holds on its campaign file until it is closed.

    Local filesystems only, like HDF5's own locks: on NFS ``flock`` may be a no-op
    or lock only against the same client (see ``docs/concurrency.md``).
    """

    def __init__(self) -> None:
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether the lock is held."""
        return self._fd is not None

    def acquire(self, path: Path) -> None:
        """Take the shared lock on ``path`` (it does not block: the writer has the file).

        Raises
        ------
        DatabaseLockedError
            If another process holds an exclusive lock on ``path``.

        """
        if self._fd is not None:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            msg = f"{path}: cannot start SWMR live mode, another process locks the file: {exc}"
            raise DatabaseLockedError(msg) from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (after the HDF5 file is closed); safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
