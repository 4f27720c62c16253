"""The Store: one open campaign file per process, shared by every H5Database opened on it.

HDF5 itself hands a second open of a file in the same process the file it already
has open.  Two :class:`~hards_h5.H5Database` objects with their own record logs
would then each keep their own view of the file and lose each other's changes.
So every ``H5Database`` is a *handle* on one :class:`Store` per file (by
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

import contextlib
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from hards_h5.errors import (
    CorruptFileError,
    DatabaseClosedError,
    DatabaseLockedError,
    NodeNotFoundError,
    StorageFullError,
)
from hards_h5.store import blobs as _blobs
from hards_h5.store import fold as _fold
from hards_h5.store import layout as _layout
from hards_h5.store import live as _live
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.log import DatasetLog, FileRef
from hards_h5.store.progress import Tally

__all__ = ["Mark", "Store", "attach", "detach"]

_REOPEN_PATIENCE = 5.0  # seconds to get a read-only file back after a failed upgrade

Key = tuple[int, int]


class Store:
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
    tree : dict
        The child dataset names by dataset path, read once (see :meth:`children`).
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
    ) -> None:
        self.key = key
        self.path = path
        self.h5: h5py.File | None = h5
        self.mode = mode
        self.swmr_reader = swmr
        self.live = False
        self.live_lock = _live.LiveLock()
        self.logs: dict[tuple[str, ...], DatasetLog] = {}
        self.tree: dict[tuple[str, ...], dict[str, None]] = {}  # child datasets, read once
        self.handles = 1
        self.closed = False
        self.failure: str | None = None  # why the file can no longer be used
        self.pid = os.getpid()  # a forked child inherits this state: see attach()
        self.fold_tally: Tally | None = None
        """Progress of the fold at close, for the operation that writes this file
        (``merge``, ``import``): set by it just before it closes the file."""

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

    def upgrade(self, timeout: float | None) -> None:
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
            self.tree.clear()
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

    # ------------------------------------------------------------ the datasets
    def group(self, names: Sequence[str], *, label: Path | None = None) -> h5py.Group:
        """Return the HDF5 group of the dataset at ``names`` (``()``: the root).

        Raises
        ------
        NodeNotFoundError
            If it no longer exists.  ``label`` is the file's path as the user
            gave it, for messages (default: :attr:`path`).

        """
        try:
            return self.file()[_layout.dataset_path(tuple(names))]
        except KeyError:
            msg = f"{label or self.path}: dataset {'/'.join(names)!r} no longer exists"
            raise NodeNotFoundError(msg) from None

    def _child_names(self, names: tuple[str, ...], label: Path | None) -> dict[str, None]:
        """Return the (cached) child dataset names of ``names``, in creation order.

        Only this process can add datasets while it has the file open (one
        writer; a SWMR live writer may create none; readers exclude writers), and
        datasets are never removed in place, so the list read once stays true
        until this store creates a dataset (kept up to date by
        :meth:`new_dataset`), rolls back (:meth:`roll_back`) or reopens the file.
        """
        known = self.tree.get(names)
        if known is None:
            known = dict.fromkeys(self.group(names, label=label)[_layout.DATASETS])
            self.tree[names] = known
        return known

    def children(self, names: Sequence[str], *, label: Path | None = None) -> list[str]:
        """Return the names of the child datasets of ``names``, in creation order."""
        self.file()
        return list(self._child_names(tuple(names), label))

    def has_child(self, names: Sequence[str], name: str, *, label: Path | None = None) -> bool:
        """Return whether the dataset at ``names`` has a child dataset ``name``."""
        self.file()
        return name in self._child_names(tuple(names), label)

    def new_dataset(self, names: Sequence[str], name: str, *, label: Path | None = None) -> bool:
        """Create the child dataset ``name`` of ``names``; False if it exists already."""
        names = tuple(names)
        known = self._child_names(names, label)
        if name in known:
            return False
        parent = self.group(names, label=label)[_layout.DATASETS]
        _layout.new_dataset_group(parent, name)
        known[name] = None
        self.tree[names + (name,)] = {}  # (a new dataset has no children)  # noqa: RUF005
        return True

    def log(self, names: tuple[str, ...], *, label: Path | None = None) -> DatasetLog:
        """Return the replayed record log of the dataset at ``names``.

        Raises
        ------
        NodeNotFoundError
            If the dataset no longer exists.
        CorruptFileError
            If its log is damaged (a record failing its CRC outside a live SWMR
            reader, which may see records still being written).

        """
        log = self.logs.get(names)
        if log is None:
            label = label or self.path
            group = self.group(names, label=label)
            try:
                log = DatasetLog(group, writable=self.mode != "r")
            except (KeyError, OSError, RuntimeError, ValueError) as exc:
                msg = f"{label}: damaged dataset {'/'.join(names)!r}: {exc}"
                raise CorruptFileError(msg) from exc
            if log.torn_rows and not self.swmr_reader:
                # Only a live SWMR reader may see records still being written; in a
                # closed (or recovered) file every record is complete, so a bad one
                # is damage.  Refuse rather than silently show a shorter dataset.
                msg = (
                    f"{label}: dataset {'/'.join(names)!r}: a damaged record fails "
                    f"its CRC ({log.torn_rows} record(s) from it on are unread); run "
                    f"'hards-h5 check {label}' and 'hards-h5 recover {label}', "
                    "which keeps every intact record"
                )
                raise CorruptFileError(msg)
            self.logs[names] = log
        return log

    def blobs(self) -> h5py.Dataset:
        """Return the ``/blobs`` byte array (refreshed first for a SWMR reader)."""
        blobs = self.file()[_layout.BLOBS]
        if self.swmr_reader:
            blobs.refresh()
        return blobs

    def read_file(self, ref: FileRef, fd: int, *, wait_for_writer: bool) -> None:
        """Write the stored bytes of ``ref`` to ``fd``, checked against their SHA-256.

        With ``wait_for_writer`` (a SWMR reader) bytes that do not match yet are
        read again for a while: a live writer may still be writing them.
        """
        if wait_for_writer:
            _blobs.read_live_blob_into(self.blobs, ref, fd)
        else:
            _blobs.read_blob_into(self.blobs(), ref, fd)

    def write_file(self, fd: int) -> FileRef:
        """Store the bytes read from ``fd`` once; return their reference."""
        return _blobs.write_blob(self.blobs(), fd)

    # --------------------------------------------------------------- lifecycle
    def write_through(self, *, closing: bool) -> None:
        """Write pending records, flush and fsync; a full disk is a StorageFullError."""
        h5, path = self.file(), self.path
        if closing:
            outcome = "the changes made since the last flush() are lost"
        else:
            outcome = (
                "the changes made since the last flush() are kept in memory: free disk "
                "space and call flush() again"
            )
        try:
            for log in self.logs.values():
                log.write_pending()
            h5.flush()
            _layout.fsync_file(path)
        except StorageFullError as exc:  # refused by the free-space check: nothing written
            msg = f"{exc}. Everything flushed before is intact; {outcome}"
            raise StorageFullError(msg) from exc
        except (OSError, RuntimeError) as exc:
            if not _layout.is_disk_full(exc):
                raise
            msg = (
                f"{path}: the disk filled up while HDF5 was writing the file. Everything "
                f"flushed before is intact; {outcome}. If the file then refuses to open, "
                f"run 'hards-h5 recover {path}'"
            )
            raise StorageFullError(msg) from exc

    def seal_logs(self) -> None:
        """Seal the long record logs of a closing writer, after its last flush.

        A seal is only a shortcut for readers: one refused for lack of space is left
        out, and nothing written before can be lost by one that fails.  Never in SWMR
        live mode (a seal may need a new HDF5 object).
        """
        if self.file().swmr_mode:
            return
        with self._optional_at_close("sealing the record logs"):
            for log in self.logs.values():
                log.seal()

    def fold(self) -> None:
        """Bring the HDF5 tree at rest up to date from the record logs (a closing writer).

        Never in SWMR live mode: creating groups or attributes while SWMR readers
        are attached makes them fail.  The tree is then completed by the next
        writer's close (or ``compact``).  Everything is flushed before, so a fold
        that fails or is killed loses nothing: the next close folds again.
        """
        h5 = self.file()
        if self.live or h5.swmr_mode:
            return
        with self._optional_at_close("writing the HDF5 tree"):
            _fold.fold_file(h5, self.logs, tally=self.fold_tally)

    @contextlib.contextmanager
    def _optional_at_close(self, doing: str) -> Iterator[None]:
        """Run a step a closing writer may leave out (seals, the tree), after its flush.

        A step refused by its free-space check (nothing written) is left out: the
        next close does it.  A disk that fills up during it is a StorageFullError;
        everything flushed before is intact either way.
        """
        try:
            yield
        except StorageFullError:  # refused by the free-space check: nothing written
            return
        except (OSError, RuntimeError) as exc:
            if not _layout.is_disk_full(exc):
                raise
            msg = (
                f"{self.path}: the disk filled up while {doing} at close; everything "
                "flushed before is intact. If the file then refuses to open, run "
                f"'hards-h5 recover {self.path}'"
            )
            raise StorageFullError(msg) from exc

    def release(self) -> None:
        """Write pending records, flush, fsync and close the file (its last handle's end)."""
        h5, logs, path = self.file(), self.logs, self.path
        handles = [dataset for log in logs.values() for dataset in log.handles()]
        try:
            if self.mode != "r" and h5.id.valid:
                self.write_through(closing=True)
                self.seal_logs()
                self.fold()
        finally:
            logs.clear()
            _writer_info.withdraw(path)  # before the file is let go: a next writer's is not ours
            try:
                h5.close()
                self.h5 = None
            except (OSError, RuntimeError) as exc:
                # HDF5 could not write its caches (typically ENOSPC).  It leaves the
                # datasets it failed to close half-freed: closing them again, as h5py
                # does when the objects are collected, crashes the process.  Keep them
                # open instead (and the file out of later opens, see detach); the
                # file on disk needs 'hards-h5 recover'.
                for dataset in handles:
                    dataset.id.locked = True
                h5.id.locked = True
                if _layout.is_disk_full(exc):
                    msg = (
                        f"{path}: the disk filled up while HDF5 was closing the file; "
                        f"everything flushed before is intact. Run 'hards-h5 recover {path}' "
                        "once space is free"
                    )
                    raise StorageFullError(msg) from exc
                raise
            finally:
                self.live_lock.release()  # only once the file is closed

    # -------------------------------------------------------------------- SWMR
    def start_swmr(self) -> None:
        """Write everything pending, then switch the writer to SWMR live mode."""
        if self.live:
            return
        h5 = self.file()
        self.write_through(closing=False)
        # HDF5 drops its own file lock when SWMR starts, so the live writer holds
        # its own lock until the file is closed: taken before HDF5 lets go where
        # the platform allows it, so that no moment passes with the file unlocked.
        # (If starting fails, the live lock stays until close: HDF5 may have let
        # go of its own lock by then.)
        early = self.live_lock.before_hdf5_unlocks
        if early:
            try:
                self.live_lock.acquire(self.path)
            except DatabaseLockedError:  # e.g. NFS, where flock is a POSIX lock too
                early = False
        _live.start_swmr_write(h5, self.path)
        if not early:
            self.live_lock.acquire(self.path, use_flock=True)
        self.live = True
        _writer_info.went_live(self.path)

    def refresh(self) -> None:
        """Make a SWMR reader's logs see what the writer has flushed since."""
        self.file()
        if not self.swmr_reader:
            return
        for log in self.logs.values():
            log.refresh()

    # ---------------------------------------------------------------- rollback
    def mark(self) -> Mark:
        """Flush, and return where every log and ``/blobs`` end now (see :meth:`roll_back`)."""
        h5 = self.file()
        self.write_through(closing=False)
        rows = {
            group.name: (group[_layout.RECORDS].shape[0], group[_layout.HEAP].shape[0])
            for _, group in _layout.walk_datasets(h5)
        }
        return Mark(rows, h5[_layout.BLOBS].shape[0])

    def roll_back(self, mark: Mark) -> None:
        """Drop everything written or pending since ``mark``, and the datasets created since.

        Every log and ``/blobs`` only grow, so cutting them back to the marked
        lengths (and unlinking the datasets created since) undoes the changes.
        """
        for log in self.logs.values():
            log.discard_pending()
        self.logs.clear()
        self.tree.clear()
        h5 = self.file()
        created = []
        for _, group in list(_layout.walk_datasets(h5)):
            if group.name in mark.rows:
                rows, heap = mark.rows[group.name]
                group[_layout.RECORDS].resize((rows,))
                group[_layout.HEAP].resize((heap,))
            else:
                created.append(group.name)
        for name in created:  # parents come first; deleting one takes its children
            if name in h5:
                del h5[name]
        h5[_layout.BLOBS].resize((mark.blobs,))


@dataclass
class Mark:
    """Where a file's append-only arrays ended: a rollback point (:meth:`Store.mark`)."""

    rows: dict[str, tuple[int, int]]  # dataset group path -> (records rows, heap bytes)
    blobs: int


_registry: dict[Key, Store] = {}
# Re-entrant: a handle collected by the garbage collector in the middle of an
# attach() (any allocation may run a collection) detaches in the same thread.
_guard = threading.RLock()


def attach(
    path: Path,
    mode: str,
    *,
    swmr: bool,
    timeout: float | None,
) -> Store:
    """Return this process's shared state of ``path``, opening the file if needed.

    The caller holds one handle on it, given back with :func:`detach`; the last
    one given back closes the file (:meth:`Store.release`).

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
                shared = Store(key, Path(path).absolute(), h5, mode, swmr=swmr)
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
                    shared.upgrade(timeout)
                except BaseException:
                    detach(shared)
                    raise
            return shared


def detach(shared: Store) -> None:
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
            shared.release()
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


def _forget(shared: Store) -> None:
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
