"""Opening a file whose writer died: recover it on the spot, as SQLite rolls back its journal.

A writer killed with the file open leaves HDF5's status flags set, and HDF5 then
refuses every open.  The next opener that finds the flags set and no process
holding the file (HDF5's ``flock`` free, no live writer's lock) recovers it here:

1. It takes the file's locks itself — HDF5's ``flock`` exclusively and the live
   writers' OFD lock — so nobody can open the file meanwhile, and checks that
   the locked file is still the one at the path (not replaced by a recover or
   compact in between).
2. It checks, through a view of the file with the flags cleared (nothing is
   written yet), that the file is exactly the state of the dead writer's last
   flush: every dataset's record log replays to its end with every CRC
   matching (no torn tail), and no chunk of any dataset lies beyond the space
   HDF5 had allocated at that flush (the superblock's end-of-file address), so
   the next writer cannot allocate over anything the file refers to.
3. If so (the light repair), it clears the flags in place, as ``h5clear -s``
   does, with one ``pwrite`` and an fsync.  Otherwise it runs the full
   ``recover`` rewrite (salvage into a new file, the original kept as
   ``FILE.bak-<time>``).
4. It warns once (:class:`~hards_h5.errors.AutoRecoveryWarning`), naming the
   file and what was done; the next open finds a clean file and says nothing.

A reader without write permission on the file cannot clear the flags.  If the
light repair would do, it reads through the same view (copy-free: only the
superblock's flags byte and checksum are patched as they are read) while holding
a shared ``flock``, so no writer can recover the file under it.  Otherwise
:class:`~hards_h5.errors.RecoveryNeededError` says who must run what.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import inspect
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from hards_h5.errors import (
    AutoRecoveryWarning,
    DatabaseLockedError,
    HARDSError,
    RecoveryNeededError,
    StoreFileNotFoundError,
)
from hards_h5.store import layout as _layout
from hards_h5.store import rewrite as _rewrite
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.live import claim_exclusive, live_lock_on
from hards_h5.store.log import DatasetLog
from hards_h5.store.superblock import (
    clear_status_flags,
    cleared_flags_patch,
    end_of_file_address,
    status_flags,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["open_left_open"]


def open_left_open(path: Path, mode: str, *, swmr: bool) -> h5py.File:
    """Open ``path``, whose status flags say a writer has it but which no process holds.

    Recovers the file first (see the module docstring) and warns once.

    Raises
    ------
    DatabaseLockedError
        If another process took the file meanwhile (a writer, a reader, recover).
    RecoveryNeededError
        If the file needs the full recover rewrite and this opener may not do it.
    CorruptFileError
        If the file is damaged beyond what recover can read.

    """
    done = who = ""
    with _locked(path, exclusive=True) as (fd, writable):
        if status_flags(path):  # (else another opener recovered it just before us)
            who = _dead_writer(path, fd, remove=writable)
            problem = _light_repair_problem(fd, path)
            if not writable:
                if problem is None and mode == "r":
                    return _view_file(os.dup(fd), path)  # (keeps our shared lock)
                raise _cannot_recover(path, mode, problem)
            if problem is None:
                clear_status_flags(path)
                done = "cleared its writer marks; every record checked, nothing flushed was lost"
            else:
                done = _full_recover(fd, path, problem)
    if done:  # once our locks are gone: HDF5 takes its own
        _warn(path, who, done)
    return _layout.open_file(path, mode, swmr=swmr)


@contextlib.contextmanager
def _locked(path: Path, *, exclusive: bool) -> Iterator[tuple[int, bool]]:
    """Hold ``path``'s locks as a writer would (shared ``flock`` if not ``exclusive``).

    Yields the descriptor and whether it is writable.  Without write permission
    the ``flock`` is shared whatever ``exclusive`` says: enough to keep writers,
    and any recovery, away while this process reads.
    """
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            writable = True
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            writable = False
    except FileNotFoundError:  # removed since the open that found the marks
        msg = f"{path}: no such campaign file"
        raise StoreFileNotFoundError(msg) from None
    try:
        _lock(fd, path, exclusive=exclusive and writable, writable=writable)
        yield fd, writable
    finally:
        os.close(fd)  # releases every lock taken on it


def _lock(fd: int, path: Path, *, exclusive: bool, writable: bool) -> None:
    busy = DatabaseLockedError(
        f"{path}: its previous writer stopped without closing it, and another process "
        "holds it now (it is recovered only when none does); try again (or pass "
        "timeout=SECONDS)"
    )
    if live_lock_on(fd):  # checked first: leave HDF5's flock alone then
        raise busy
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in {errno.EWOULDBLOCK, errno.EAGAIN}:
            raise busy from None
        raise
    live = not claim_exclusive(fd) if writable else live_lock_on(fd)
    if live:
        raise busy
    st, now = os.fstat(fd), _identity(path)
    if now != (st.st_dev, st.st_ino):  # replaced (recover, compact) before we locked it
        raise busy


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _ClearedView(io.RawIOBase):
    """The file's bytes as they read with the superblock's flags cleared; writes nothing."""

    def __init__(self, fd: int, path: Path) -> None:
        super().__init__()
        self._fd = fd
        self._path = path
        self._at, self._patch = cleared_flags_patch(fd, path)
        self._pos = 0

    def __repr__(self) -> str:
        return str(self._path)  # h5py names the file by it (messages show the path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            offset += os.fstat(self._fd).st_size
        elif whence == os.SEEK_CUR:
            offset += self._pos
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        n = os.preadv(self._fd, [view], self._pos)
        low = max(self._pos, self._at)
        high = min(self._pos + n, self._at + len(self._patch))
        if low < high:
            view[low - self._pos : high - self._pos] = self._patch[low - self._at : high - self._at]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)  # also releases the reader's shared flock
        super().close()


def _open_view(view: _ClearedView) -> h5py.File:
    return h5py.File(view, "r", libver=_layout.LIBVER, locking=False)


def _light_repair_problem(fd: int, path: Path) -> str | None:
    """Say why clearing the flags would not be enough, or None if it is.

    Reads the file through a view with the flags cleared; writes nothing.
    """
    eoa = end_of_file_address(fd, path)
    view = _ClearedView(os.dup(fd), path)
    try:
        with _open_view(view) as f:
            _layout.validate_root(f, path)
            problem = _beyond(f[_layout.BLOBS], "/blobs", eoa)
            for names, group in _layout.walk_datasets(f):
                label = "/".join(names)
                log = DatasetLog(group, writable=False)
                if log.torn_rows:
                    return f"dataset {label!r}: {log.torn_rows} record(s) incomplete or damaged"
                for name in (_layout.RECORDS, _layout.HEAP, _layout.SEALS):
                    if problem is None and isinstance(group.get(name), h5py.Dataset):
                        problem = _beyond(group[name], f"dataset {label!r} {name}", eoa)
            return problem
    except (HARDSError, OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        return f"HDF5 cannot read it as it was at the last flush ({exc})"
    finally:
        view.close()


def _beyond(dataset: h5py.Dataset, label: str, eoa: int | None) -> str | None:
    """Say if a chunk of ``dataset`` lies past ``eoa`` (written after the last flush)."""
    if eoa is None or dataset.chunks is None:
        return None
    past: list[int] = []

    def visit(chunk: h5py.h5d.StoreInfo) -> None:
        if chunk.byte_offset + chunk.size > eoa:
            past.append(chunk.byte_offset)

    dataset.id.chunk_iter(visit)
    if past:
        return f"{label}: {len(past)} chunk(s) written after the last flush"
    return None


def _view_file(fd: int, path: Path) -> h5py.File:
    """Open ``path`` read-only through a flags-cleared view on ``fd`` (a shared ``flock``'s).

    ``fd`` is a duplicate of the descriptor the checks ran on, so the view reads
    the very file they checked and holds its lock (one lock per open file
    description) until the file and the view are closed (the view closes when
    the h5py file is collected).
    """
    try:
        view = _ClearedView(fd, path)
    except BaseException:
        os.close(fd)
        raise
    try:
        f = _open_view(view)
        _layout.validate_root(f, path)
    except BaseException:
        view.close()
        raise
    warnings.warn(
        f"{path}: the previous writer stopped without closing the file; read as it "
        "was at its last flush (nothing flushed is lost) without changing it, since "
        "you may not write it. Its owner can make this permanent by opening it for "
        "writing once",
        AutoRecoveryWarning,
        stacklevel=_user_frame(),
    )
    return f


def _full_recover(fd: int, path: Path, problem: str) -> str:
    """Run the recover rewrite on ``path`` (the caller holds its locks); say what it did.

    The rewrite reads the original through the flags-cleared view and never
    writes it: killed midway, the original is as the dead writer left it and the
    next open starts again.
    """
    view = _ClearedView(os.dup(fd), path)
    try:
        with _open_view(view) as source:
            _layout.validate_root(source, path)
            report = _rewrite.rewrite_locked(path, source)
    except PermissionError as exc:
        msg = (
            f"{path}: the previous writer stopped without closing the file and it needs "
            f"a full recovery ({problem}), which needs write permission on its directory "
            f"({exc.strerror or exc}); run 'hards-h5 recover {path}' as its owner"
        )
        raise RecoveryNeededError(msg) from exc
    finally:
        view.close()
    dropped = f"; dropped: {'; '.join(report.dropped)}" if report.dropped else ""
    return (
        f"recovered its {report.datapoints} datapoint(s) into a clean file ({problem}); "
        f"nothing flushed was lost{dropped}. The original is kept as {report.backup} "
        "(delete it once you are satisfied)"
    )


def _cannot_recover(path: Path, mode: str, problem: str | None) -> RecoveryNeededError:
    why = f" and needs a full recovery ({problem})" if problem else ""
    what = "open it for writing" if mode == "r" and not problem else "recover it"
    msg = (
        f"{path}: the previous writer stopped without closing the file{why}; you may not "
        f"write the file, so the file's owner must {what}: 'hards-h5 recover {path}'"
    )
    return RecoveryNeededError(msg)


def _dead_writer(path: Path, fd: int, *, remove: bool) -> str:
    """Return `` (pid 123 on host x)`` from the dead writer's sidecar, or ``""``.

    With ``remove``, the sidecar goes too (the caller holds the file's locks, so
    no writer of it is alive; a next writer writes its own once it has opened it).
    """
    side = _writer_info.sidecar_path(path)
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
        who = f" (pid {int(raw['pid'])} on host {raw['host']})"
        file_id = raw.get("file")
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    st = os.fstat(fd)
    if file_id is not None and file_id != [st.st_dev, st.st_ino]:
        return ""  # written for an earlier file of the same name
    if remove:
        with contextlib.suppress(OSError):
            side.unlink()
    return who


def _warn(path: Path, who: str, done: str) -> None:
    warnings.warn(
        f"{path}: the previous writer{who} stopped without closing the file; recovered "
        f"automatically: {done}",
        AutoRecoveryWarning,
        stacklevel=_user_frame(),
    )


def _user_frame() -> int:
    """Return the ``stacklevel`` that points a warning at the caller of hards-h5."""
    package = str(Path(__file__).parent.parent)  # hards_h5/, not only hards_h5/store/
    frame = inspect.currentframe()
    try:
        frame, level = (frame.f_back if frame else None), 1  # the frame calling warnings.warn
        while frame is not None and frame.f_back is not None:
            if not frame.f_code.co_filename.startswith(package):
                break
            frame, level = frame.f_back, level + 1
        return level
    finally:
        del frame  # (a frame kept in a local keeps every caller's objects alive)
