"""Opening a campaign file while other processes use it: waiting for locks, SWMR.

HDF5 locks the file itself (``flock``: one writer, or any number of readers) and
reports a conflict with errno 11.  :func:`open_waiting` turns that into
:class:`DatabaseLockedError` and, given a timeout, retries with a growing,
jittered back-off until the other process is done.

HDF5 *drops* its lock when a writer starts SWMR mode (so that SWMR readers can
open the file), which would let a second writer, or ``hards-h5 recover``, take a
file that a live writer is still appending to.  A live writer therefore holds a
:class:`LiveLock` until its file is closed: on Linux an open-file-description
(OFD) read lock on the campaign file, a kind of lock HDF5's ``flock`` does not
see, so it is taken *before* HDF5 lets go of its own — no moment passes with the
file unlocked.  Readers still come and go, while every exclusive opener (a
writer, recover, compact) sees the lock (:func:`in_use`, :func:`claim_exclusive`)
and keeps failing, or waiting.  Where OFD locks do not exist the LiveLock is a
shared ``flock`` taken just after HDF5 drops its own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import struct
import sys
import time
from pathlib import Path

import h5py

from hards_h5.errors import (
    DatabaseLockedError,
    HARDSError,
    OpenInThisProcessError,
    RecoveryNeededError,
    TruncatedFileError,
)
from hards_h5.store import layout as _layout
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.superblock import status_flags

__all__ = [
    "LiveLock",
    "claim_exclusive",
    "in_use",
    "live_lock_on",
    "live_lock_present",
    "open_waiting",
    "start_swmr_write",
]

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
            return _open_current(path, mode, swmr=swmr)
        except DatabaseLockedError as exc:  # noqa: PERF203 - a retry loop
            if deadline is None:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{exc} (waited {timeout:g} s)"
                raise DatabaseLockedError(msg) from exc
            time.sleep(min(left, wait * random.uniform(0.5, 1.5)))  # noqa: S311 - jitter
            wait = min(wait * 2, _MAX_WAIT)


_REPLACED_TRIES = 20  # times the file may be replaced under an open before it gives up
_STALE_SIZE_TRIES = 8  # opens that may find the file "truncated" before that is believed


def _open_current(path: Path, mode: str, *, swmr: bool) -> h5py.File:
    """Open like :func:`_open_live_aware` the file that is at ``path`` once it is locked.

    A compact or recover that replaces the file between HDF5's open and its lock
    leaves the opener holding the old, unlinked file, whose changes nobody would
    ever see: that one is closed and the new one opened instead.
    """
    for attempt in range(_REPLACED_TRIES):
        try:
            h5 = _open_live_aware(path, mode, swmr=swmr)
        except TruncatedFileError:
            # HDF5 reads the file's size before it takes its lock: a writer that
            # grew the file in between makes it look truncated.  Real truncation
            # stays; a size read too early does not.
            # (A closing writer's fold grows the file in many steps: wait a
            # little between tries rather than meet it again at once.)
            if attempt >= _STALE_SIZE_TRIES:
                raise
            time.sleep(0.002 * 2**attempt * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
            continue
        # (A dead writer's file read through its flags-cleared view (driver
        # "fileobj") was opened on the descriptor _autorecover locked and checked.)
        if h5.driver == "fileobj" or _layout.same_file(h5.id.get_vfd_handle(), path):
            return h5
        h5.close()
    msg = (
        f"{path}: the file was replaced {_REPLACED_TRIES} times while it was being "
        "opened (compact or recover runs?); try again"
    )
    raise DatabaseLockedError(msg)


def _open_live_aware(path: Path, mode: str, *, swmr: bool) -> h5py.File:
    """Open like :func:`_layout.open_file`; a file held by a live writer is locked, not dead.

    A SWMR writer's file carries the "open for writing" status flags that a dead
    writer leaves behind; the two differ in the writer's :class:`LiveLock`.
    """
    if not swmr and live_lock_present(path):
        # Without touching HDF5's flock: a writer entering live mode briefly
        # re-takes it, and a probe at that moment would make it fail.
        raise _live_writer_error(path, mode)
    try:
        return _layout.open_file(path, mode, swmr=swmr)
    except OpenInThisProcessError:
        raise
    except DatabaseLockedError as exc:
        if not _swmr_writer_flag(path):
            raise _plain_writer_error(path, mode, exc) from exc
        raise _live_writer_error(path, mode) from exc
    except RecoveryNeededError as exc:
        # The status flags say a writer has the file.  A live one holds a lock
        # (every writer takes one before setting the flags and drops it after
        # clearing them); a dead one does not.  A writer closing between our
        # open and the probe is neither: seen by the flags being clear again.
        if not status_flags_set(path):
            raise _closing_error(path) from exc
        if in_use(path):
            raise _live_writer_error(path, mode) from exc
        if not status_flags_set(path):
            raise _closing_error(path) from exc
        # A dead writer's file: recover it (under its locks) and open it.
        from hards_h5.store.autorecover import open_left_open  # noqa: PLC0415 - import cycle

        return open_left_open(path, mode, swmr=swmr)


def _live_writer_error(path: Path, mode: str) -> DatabaseLockedError:
    how = (
        f"watch it with H5Database(path, mode='r', swmr=True) or 'hards-h5 watch {path}'"
        if mode == "r"
        else "wait for it to close with H5Database(path, timeout=SECONDS)"
    )
    if _writer_info.read(path) is None:  # the lock alone: recover/compact take it too
        who = f"{_writer_info.being_written(path, live=True)} (or recover/compact is rewriting it)"
    else:
        who = _writer_info.being_written(path)
    return DatabaseLockedError(f"{who}; {how}")


def _plain_writer_error(path: Path, mode: str, exc: DatabaseLockedError) -> DatabaseLockedError:
    """Name the writer that holds ``path`` (from its sidecar), or keep HDF5's lock message."""
    info = _writer_info.read(path)
    if info is None or info.live:
        return exc
    how = "mode='r', " if mode == "r" else ""
    msg = (
        f"{_writer_info.being_written(path)}; wait for it to close with "
        f"H5Database(path, {how}timeout=SECONDS)"
    )
    return DatabaseLockedError(msg)


def _closing_error(path: Path) -> DatabaseLockedError:
    msg = f"{path}: a writer was just closing the file; try again (or pass timeout=SECONDS)"
    return DatabaseLockedError(msg)


def _flags(path: Path, *, unreadable: int) -> int:
    """Return the superblock's status flags, or ``unreadable`` if they cannot be read."""
    try:
        return status_flags(path)
    except (HARDSError, OSError):
        return unreadable


def status_flags_set(path: Path) -> bool:
    """Whether the superblock says a writer has ``path`` open (True if unreadable)."""
    return bool(_flags(path, unreadable=1))


def _swmr_writer_flag(path: Path) -> bool:
    """Whether the superblock says a SWMR writer has ``path`` open."""
    return bool(_flags(path, unreadable=0) & _SWMR_WRITE_FLAG)


def live_lock_on(fd: int) -> bool:
    """Whether a SWMR live writer's (OFD) lock is on ``fd``'s file; the probe takes no lock."""
    if _OFD_GETLK is None:
        return False
    try:
        return _ofd(fd, _OFD_GETLK, fcntl.F_WRLCK) != fcntl.F_UNLCK
    except OSError:
        return False


def live_lock_present(path: Path) -> bool:
    """Whether a SWMR live writer's (OFD) lock is on ``path`` (see :func:`live_lock_on`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    except OSError:
        return False
    try:
        return live_lock_on(fd)
    finally:
        os.close(fd)


def in_use(path: Path) -> bool:
    """Whether some process holds HDF5's ``flock`` or a live writer's lock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    except OSError:
        return False
    try:
        if live_lock_on(fd):
            return True
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in {errno.EAGAIN, errno.EWOULDBLOCK}
    else:
        return False
    finally:
        os.close(fd)  # also releases the probe's lock


def claim_exclusive(fd: int) -> bool:
    """Take the OFD write lock on ``fd``'s file unless a live writer holds its lock.

    For recover and compact, which already hold HDF5's ``flock`` exclusively: a
    SWMR live writer has dropped that one, but not its :class:`LiveLock`.  The
    claim lasts until ``fd`` is closed.  True where OFD locks do not exist.
    """
    if _OFD_SETLK is None:
        return True
    try:
        _ofd(fd, _OFD_SETLK, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno in {errno.EAGAIN, errno.EACCES}:
            return False
        raise
    return True


# Open-file-description record locks (Linux >= 3.15): unlike flock they do not
# meet HDF5's flock, and unlike classic POSIX locks they are not dropped when
# the process closes some other descriptor of the same file.
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)
_FLOCK_STRUCT = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid
if struct.calcsize(_FLOCK_STRUCT) != 32 or not sys.platform.startswith("linux"):  # noqa: PLR2004
    _OFD_SETLK = _OFD_GETLK = None


def _ofd(fd: int, command: int, kind: int) -> int:
    """Run an OFD lock ``command`` for the whole file; return the answer's lock type."""
    request = struct.pack(_FLOCK_STRUCT, kind, os.SEEK_SET, 0, 0, 0)
    answer = fcntl.fcntl(fd, command, request)
    kind_now: int = struct.unpack(_FLOCK_STRUCT, answer)[0]
    return kind_now


_SWMR_START_PATIENCE = 5.0  # seconds


def start_swmr_write(h5: h5py.File, path: Path) -> None:
    """Switch ``h5`` to SWMR writing, retrying while HDF5 cannot re-take its lock.

    HDF5 (2.0) drops its ``flock``, takes it again and drops it for good while
    starting SWMR; another process probing the file in between makes that
    second take fail.  HDF5 then leaves the file as it was (an ordinary writer),
    so trying again is safe.

    Raises
    ------
    DatabaseLockedError
        If the lock could not be taken back for several seconds.

    """
    deadline = time.monotonic() + _SWMR_START_PATIENCE
    wait = 0.001
    while True:
        try:
            h5.swmr_mode = True
        except RuntimeError as exc:  # noqa: PERF203 - a retry loop
            if not _layout.is_lock_conflict(exc):
                raise
            if time.monotonic() > deadline:
                msg = (
                    f"{path}: could not start SWMR live mode: other processes kept "
                    f"locking the file for {_SWMR_START_PATIENCE:g} s"
                )
                raise DatabaseLockedError(msg) from exc
            time.sleep(wait * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
            wait = min(wait * 2, 0.05)
        else:
            return


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

    @property
    def before_hdf5_unlocks(self) -> bool:
        """Whether the lock is taken before HDF5 drops its own (OFD), or just after."""
        return _OFD_SETLK is not None

    def acquire(self, path: Path, *, use_flock: bool = False) -> None:
        """Take the lock on ``path`` (it does not block: the writer has the file).

        ``use_flock`` takes a shared ``flock`` even where OFD locks exist (after
        HDF5 has dropped its own: the fallback where an OFD lock meets HDF5's).

        Raises
        ------
        DatabaseLockedError
            If another process holds a conflicting lock on ``path``.

        """
        if self._fd is not None:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if _OFD_SETLK is not None and not use_flock:
                _ofd(fd, _OFD_SETLK, fcntl.F_RDLCK)
            else:
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
