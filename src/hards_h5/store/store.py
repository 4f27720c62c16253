"""One open campaign file per process, shared by every H5Database opened on it.

HDF5 itself hands a second open of a file in the same process the file it already
has open.  Two :class:`~hards_h5.H5Database` objects with their own record logs
would then each keep their own view of the file and lose each other's changes.
So every ``H5Database`` is a *handle* on one :class:`SharedFile` per file (by
device and inode, so a symlink or a relative path reaches the same one): the
h5py file, the replayed record logs (with what is pending in memory), the SWMR
state and the live writer's lock.  The file is closed, after everything pending
is written, when the last handle is closed or collected.

A writer opening a file this process has open read-only switches the shared file
to read-write: the read-only handles hold no h5py objects (they look their record
logs up on every use), so HDF5's read-only file is closed and the file reopened
read-write under them; if that fails, it is reopened read-only as it was.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hards_h5.errors import DatabaseClosedError, DatabaseLockedError
from hards_h5.store import live as _live

if TYPE_CHECKING:
    import h5py

    from hards_h5.store.log import DatasetLog

__all__ = ["SharedFile", "attach", "detach"]

_REOPEN_PATIENCE = 5.0  # seconds to get a read-only file back after a failed upgrade

Key = tuple[int, int]


class SharedFile:
    """The state of one campaign file that this process has open.

    Attributes
    ----------
    path : Path
        The absolute path the file was first opened by (for file operations).
    h5 : h5py.File or None
        The open file; None once closed (or lost, see :meth:`file`).
    mode : str
        ``"r"`` or ``"r+"``: how HDF5 has the file open.
    swmr_reader : bool
        Whether HDF5 has the file open as a SWMR reader.
    live : bool
        Whether a writer has started SWMR live mode on it.
    live_lock : LiveLock
        The live writer's lock, held until the file is closed.
    logs : dict
        The replayed record logs by dataset path, pending records included.
    handles : int
        How many open H5Database objects use this file.

    """

    def __init__(
        self,
        key: Key,
        path: Path,
        h5: h5py.File,
        mode: str,
        *,
        swmr: bool,
        release: Callable[[SharedFile], None],
    ) -> None:
        self.key = key
        self.path = path
        self.h5: h5py.File | None = h5
        self.mode = mode
        self.swmr_reader = swmr
        self.live = False
        self.live_lock = _live.LiveLock()
        self.logs: dict[tuple[str, ...], DatasetLog] = {}
        self.handles = 1
        self.closed = False
        self.failure: str | None = None  # why the file can no longer be used
        self.pid = os.getpid()  # a forked child inherits this state: see attach()
        self._release = release

    def file(self) -> h5py.File:
        """Return the open h5py file.

        Raises
        ------
        DatabaseClosedError
            If the file was lost (a failed switch to writing) or is closed.

        """
        h5 = self.h5
        if h5 is None:
            msg = self.failure or f"{self.path}: the database is closed"
            raise DatabaseClosedError(msg)
        return h5

    def _upgrade(self, timeout: float | None) -> None:
        """Reopen the read-only file read-write (see the module docstring).

        Raises
        ------
        DatabaseLockedError
            If another process keeps the file (after ``timeout`` seconds, if given).

        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        wait = 0.005
        swmr = self.swmr_reader
        while True:
            h5 = self.file()
            h5.close()  # (invalidates the logs' h5py objects; a reader has nothing pending)
            self.logs.clear()
            try:
                self.h5 = _live.open_waiting(self.path, "r+", swmr=False, timeout=None)
            except BaseException as exc:
                self.h5 = None
                self._reopen_read_only(swmr)
                if not isinstance(exc, DatabaseLockedError):
                    raise
                left = None if deadline is None else deadline - time.monotonic()
                if left is None or left <= 0:
                    waited = "" if timeout is None else f" (waited {timeout:g} s)"
                    msg = (
                        f"{self.path}: this process has the file open read-only, and "
                        f"opening it for writing failed: {exc}{waited}"
                    )
                    raise DatabaseLockedError(msg) from exc
                time.sleep(min(left, wait * random.uniform(0.5, 1.5)))  # noqa: S311 - jitter
                wait = min(wait * 2, 0.25)
            else:
                self.mode = "r+"
                self.swmr_reader = False
                return

    def _reopen_read_only(self, swmr: bool) -> None:
        """Give the read-only handles their file back after a failed upgrade."""
        try:
            self.h5 = _live.open_waiting(self.path, "r", swmr=swmr, timeout=_REOPEN_PATIENCE)
        except Exception as exc:
            self.failure = (
                f"{self.path}: this database lost its file: opening it for writing in "
                f"this process failed, and so did reopening it read-only ({exc}); open "
                "it again"
            )
            _forget(self)
            raise DatabaseLockedError(self.failure) from exc


_registry: dict[Key, SharedFile] = {}
# Re-entrant: a handle collected by the garbage collector in the middle of an
# attach() (any allocation may run a collection) detaches in the same thread.
_guard = threading.RLock()


def attach(
    path: Path,
    mode: str,
    *,
    swmr: bool,
    timeout: float | None,
    release: Callable[[SharedFile], None],
) -> SharedFile:
    """Return this process's shared state of ``path``, opening the file if needed.

    The caller holds one handle on it, given back with :func:`detach`.
    ``release`` is called with the state when the last handle is given back.

    Raises
    ------
    DatabaseLockedError
        If another process holds the file in a conflicting mode (after ``timeout``
        seconds, if given), or this process could not close it earlier.

    """
    with _guard:
        while True:
            key = _identity(path)
            shared = _registry.get(key) if key is not None else None
            if shared is None:
                h5 = _live.open_waiting(path, mode, swmr=swmr, timeout=timeout)
                # (after the open: recovering a dead writer's file may replace it)
                key = _identity(path) or key or (-1, id(h5))
                shared = SharedFile(
                    key, Path(path).absolute(), h5, mode, swmr=swmr, release=release
                )
                _registry[key] = shared
                return shared
            if shared.failure is not None:
                raise DatabaseLockedError(shared.failure)
            if shared.pid != os.getpid() and "r+" in (mode, shared.mode):
                raise _forked_error(path, shared.mode)
            shared.handles += 1
            if shared.closed:  # its last handle was collected meanwhile
                continue
            if mode != "r" and shared.mode == "r":
                try:
                    shared._upgrade(timeout)  # noqa: SLF001
                except BaseException:
                    detach(shared)
                    raise
            return shared


def detach(shared: SharedFile) -> None:
    """Give one handle back; the last one writes what is pending and closes the file."""
    with _guard:
        shared.handles -= 1
        if shared.handles > 0 or shared.closed:
            return
        shared.closed = True
        if shared.h5 is None:  # lost: nothing left to close
            _forget(shared)
            return
        try:
            shared._release(shared)  # noqa: SLF001
        finally:
            if shared.h5 is None:
                _forget(shared)
            else:  # HDF5 could not close it (a full disk): later opens must not share it
                shared.failure = (
                    f"{shared.path}: this process could not close the file (see the error "
                    "raised then); restart the interpreter, then open it again (or run "
                    f"'hards-h5 recover {shared.path}' if it asks for it)"
                )


def _forked_error(path: Path, inherited: str) -> DatabaseLockedError:
    # The child has a copy of the parent's open file and pending records: writing
    # through it would write the parent's records twice.
    how = "for writing" if inherited == "r+" else "read-only"
    msg = (
        f"{path}: this process was forked from one that has the file open {how}; "
        "it cannot share that: open the file in the worker processes only, or close "
        "it in the parent before they start (or start them with the 'spawn' method)"
    )
    return DatabaseLockedError(msg)


def _forget(shared: SharedFile) -> None:
    with _guard:
        if _registry.get(shared.key) is shared:
            del _registry[shared.key]


def _identity(path: Path) -> Key | None:
    """Return ``(device, inode)`` of ``path``, or None if it cannot be stat-ed."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
