"""The on-disk format: object names, the record dtype, format version, open/create.

This module is the only place that knows how a campaign file is laid out; it knows
nothing of the HARDS API above it.  ``docs/format.md`` describes the same layout
for people reading a file with only h5py or ``h5ls``.

Layout (format version 1)::

    /                       attrs: hards_h5_format = 1, hards_h5_creator = "hards-h5 X"
    /datasets/              group (creation order tracked): top-level datasets
    /datasets/<name>/       one group per dataset
        datasets/           its child datasets, same structure, recursively
        records             its record log: 1-D resizable compound array (RECORD_DTYPE)
        heap                UTF-8 bytes the records point into (names, JSON texts)
        seals               (optional) CRCs of the log's prefix, written at close (SEAL_DTYPE)
    /blobs                  1-D resizable uint8 array: the bytes of every attached file
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from hards_h5._version import __version__
from hards_h5.errors import (
    CorruptFileError,
    DatabaseExistsError,
    DatabaseLockedError,
    FormatVersionError,
    NotAHardsFileError,
    OpenInThisProcessError,
    RecoveryNeededError,
    StorageFullError,
    StoreFileNotFoundError,
    TruncatedFileError,
)
from hards_h5.store import scratch as _scratch
from hards_h5.store.superblock import HDF5_SIGNATURE

__all__ = [
    "ATTR_CREATOR",
    "ATTR_FORMAT",
    "BLOBS",
    "CREATE",
    "DATA",
    "DATASETS",
    "DATASET_NODE",
    "DISK_RESERVE",
    "FILE",
    "FORMAT_VERSION",
    "HEAP",
    "LIBVER",
    "RECORDS",
    "RECORD_DTYPE",
    "SEALS",
    "SEAL_BIG_INTS",
    "SEAL_DTYPE",
    "WRITER_CHUNK_CACHE",
    "check_is_hdf5",
    "check_space",
    "create_file",
    "dataset_path",
    "fsync_dir",
    "fsync_file",
    "is_disk_full",
    "is_lock_conflict",
    "log_rows",
    "new_dataset_group",
    "new_file",
    "open_file",
    "read_bytes",
    "read_rows",
    "same_file",
    "total_log_rows",
    "walk_datasets",
]

FORMAT_VERSION: Final = 2
"""Format version written by this release; files with a larger one are refused."""

LIBVER: Final = ("v110", "latest")
"""HDF5 format bounds for every open: objects are written in the oldest encoding that
HDF5 1.10 can read (so ``h5ls``/``h5dump`` 1.10+ and older h5py builds read campaign
files) while SWMR, compact groups and creation-order tracking stay available.
``libver="latest"`` on HDF5 2.0 writes datasets that HDF5 1.10's tools cannot read."""

DISK_RESERVE: Final = 4 << 20
"""Free disk space every write leaves on top of its own bytes: room for HDF5's
metadata to reach the disk when the file is flushed and closed."""

WRITER_CHUNK_CACHE: Final = 0
"""HDF5 chunk-cache size (``rdcc_nbytes``) for every writable open: none.  Appends
then reach the file inside the write call, so a full disk fails that call cleanly;
with a cache, HDF5 2.0 meets ENOSPC only when it closes a dataset, leaves the
dataset half-freed and the process crashes later (no write slowdown: see
``docs/performance.md``)."""

ATTR_FORMAT: Final = "hards_h5_format"
ATTR_CREATOR: Final = "hards_h5_creator"
DATASETS: Final = "datasets"
RECORDS: Final = "records"
HEAP: Final = "heap"
SEALS: Final = "seals"
BLOBS: Final = "blobs"

DATASET_NODE: Final = 0
"""The node number of the dataset itself in its record log (datapoints are 1, 2, ...)."""
CREATE: Final = 1
"""Record kind: a datapoint is created (``name``; optional initial JSON ``body``)."""
DATA: Final = 2
"""Record kind: a node's complete JSON data is now ``body``."""
FILE: Final = 3
"""Record kind: a node's file ``name`` now holds blob bytes ``body`` (``sha256``)."""

RECORD_DTYPE: Final = np.dtype(
    [
        ("kind", "<u1"),
        ("node", "<u4"),
        ("name_off", "<u8"),
        ("name_len", "<u4"),
        ("body_off", "<u8"),
        ("body_len", "<u8"),
        ("sha256", "<u1", (32,)),
        ("crc", "<u4"),
    ]
)
"""One record of a dataset's log.  ``node`` 0 is the dataset itself and node
``k >= 1`` its ``k``-th datapoint in creation order.  ``name_*`` point into the
dataset's ``heap``; ``body_*`` into the ``heap`` (CREATE, DATA) or into ``/blobs``
(FILE).  ``crc`` is the CRC-32 of the record with ``crc`` = 0, followed by its name
bytes and (CREATE, DATA) body bytes: a row whose CRC does not match was never
completely written and ends the log."""

SEAL_DTYPE: Final = np.dtype(
    [
        ("rows", "<u8"),
        ("heap", "<u8"),
        ("rows_crc", "<u4"),
        ("heap_crc", "<u4"),
        ("flags", "<u4"),
        ("crc", "<u4"),
    ]
)
"""One seal of a dataset's log: records ``[0, rows)`` (their bytes as stored) have
CRC-32 ``rows_crc`` and heap bytes ``[0, heap)`` have ``heap_crc``; ``flags`` bit 0
says a JSON text of those records may hold an integer beyond 64 bits; ``crc`` is
the CRC-32 of the seal row with ``crc`` = 0.  Optional: see ``_seal``."""

SEAL_BIG_INTS: Final = 1
"""Seal flag: some JSON text the sealed records point to may hold an integer beyond
64 bits (so it must be parsed exactly)."""

RECORDS_CHUNK: Final = 64
HEAP_CHUNK: Final = 1 << 12
BLOBS_CHUNK: Final = 1 << 18


def dataset_path(names: tuple[str, ...]) -> str:
    """Return the HDF5 group path of the dataset reached by ``names`` from the root."""
    return "".join(f"/{DATASETS}/{n}" for n in names) or "/"


def walk_datasets(f: h5py.File) -> Iterator[tuple[tuple[str, ...], h5py.Group]]:
    """Yield every dataset's names from the root and group, parents before children."""
    stack: list[tuple[tuple[str, ...], h5py.Group]] = [((), f)]
    while stack:
        names, group = stack.pop(0)
        children = group[DATASETS]
        for name in children:
            child = children[name]
            yield (*names, name), child
            stack.append(((*names, name), child))


def log_rows(group: h5py.Group) -> int:
    """Return the length of a dataset group's record log (0 if it cannot be read)."""
    try:
        return int(group[RECORDS].shape[0])
    except (KeyError, OSError, ValueError):
        return 0


def total_log_rows(f: h5py.File) -> int:
    """Return the number of record rows in all datasets of ``f`` (a progress total)."""
    return sum(log_rows(group) for _names, group in walk_datasets(f))


def new_dataset_group(parent: h5py.Group, name: str) -> h5py.Group:
    """Create the group, child group, record log and heap of a new dataset."""
    group = parent.create_group(name, track_order=True)
    try:
        group.create_group(DATASETS, track_order=True)
        group.create_dataset(
            RECORDS,
            shape=(0,),
            maxshape=(None,),
            dtype=RECORD_DTYPE,
            chunks=(RECORDS_CHUNK,),
        )
        group.create_dataset(HEAP, shape=(0,), maxshape=(None,), dtype="u1", chunks=(HEAP_CHUNK,))
    except BaseException:
        del parent[name]
        raise
    return group


def create_file(path: Path) -> None:
    """Create an empty campaign file at ``path``, which must not exist.

    The file is built under a temporary name in the same directory, flushed and
    fsynced, then linked into place with ``os.link`` (which refuses to replace an
    existing path), so ``path`` either does not exist or is a complete campaign
    file.  An existing path is never opened for writing.

    Raises
    ------
    DatabaseExistsError
        If ``path`` exists (file, directory or anything else).

    """
    _scratch.remove_stale(path)  # left by killed runs (ours, merge's, compact's...)
    if path.is_dir():
        msg = (
            f"{path}: is a directory, not a campaign file; create_database makes a new "
            f"file: pass a path that does not exist yet, such as {path / 'campaign.h5'}"
        )
        raise DatabaseExistsError(msg)
    if os.path.lexists(path):
        hint = "open it with H5Database(path)" if path.is_file() else "pass a new file path"
        msg = f"{path}: already exists; create_database never overwrites ({hint})"
        raise DatabaseExistsError(msg)
    directory = path.parent
    if not directory.is_dir():
        msg = f"{path}: parent directory {directory} does not exist"
        raise StoreFileNotFoundError(msg)
    tmp = _scratch.scratch_path(path, "create")
    try:
        new_file(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            msg = f"{path}: already exists; create_database never overwrites"
            raise DatabaseExistsError(msg) from None
        except OSError:  # filesystem without hard links: exclusive rename fallback
            if os.path.lexists(path):
                msg = f"{path}: already exists; create_database never overwrites"
                raise DatabaseExistsError(msg) from None
            tmp.rename(path)
        fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def new_file(path: Path) -> None:
    """Build an empty campaign file at the new path ``path`` (a scratch name), fsynced."""
    # Not mkstemp: its 0o600 would ignore the umask, and a campaign file is shared
    # like any other file (0o666 less the umask, as h5py or cp would make it).
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    with h5py.File(path, "w", libver=LIBVER, track_order=True) as f:
        _init_root(f)
    fsync_file(path)


def _init_root(f: h5py.File) -> None:
    f.attrs[ATTR_FORMAT] = np.int64(FORMAT_VERSION)
    f.attrs[ATTR_CREATOR] = f"hards-h5 {__version__}"
    f.create_group(DATASETS, track_order=True)
    f.create_dataset(BLOBS, shape=(0,), maxshape=(None,), dtype="u1", chunks=(BLOBS_CHUNK,))


def open_file(path: Path, mode: str, *, swmr: bool = False) -> h5py.File:
    """Open an existing campaign file and check that it is one.

    Parameters
    ----------
    path : Path
        The campaign file.
    mode : {"r", "r+"}
        h5py mode.  ``"w"`` is never used on an existing path.
    swmr : bool
        Open as a SWMR reader (``mode="r"`` only).

    Returns
    -------
    h5py.File
        The open, validated file.

    Raises
    ------
    StoreFileNotFoundError
        If ``path`` does not exist.
    NotAHardsFileError
        If ``path`` is not an HDF5 file, or an HDF5 file without the hards-h5 marks.
    FormatVersionError
        If the file's format version is newer than this release reads.
    RecoveryNeededError
        If a writer died with the file open and its status flags are still set.
    DatabaseLockedError
        If another process holds the file in a conflicting mode.
    CorruptFileError
        If HDF5 cannot read the file's structure.

    """
    check_is_hdf5(path)
    try:
        f = h5py.File(
            path,
            mode,
            libver=LIBVER,
            swmr=swmr and mode == "r",
            rdcc_nbytes=None if mode == "r" else WRITER_CHUNK_CACHE,
        )
    except OSError as exc:
        raise _translate_open_error(path, exc) from exc
    try:
        validate_root(f, path)
    except BaseException:
        f.close()
        raise
    return f


def validate_root(f: h5py.File, path: Path) -> None:
    """Raise unless ``f`` carries a readable hards-h5 format this release supports."""
    try:
        attrs = f.attrs
        if ATTR_FORMAT not in attrs:
            msg = (
                f"{path}: an HDF5 file, but not a hards-h5 campaign file "
                f"(no '{ATTR_FORMAT}' attribute on '/')"
            )
            raise NotAHardsFileError(msg)
        version = int(np.asarray(attrs[ATTR_FORMAT]).item())
        if version > FORMAT_VERSION:
            msg = (
                f"{path}: written in hards-h5 format {version}, but this release reads "
                f"format {FORMAT_VERSION} at most; upgrade hards-h5"
            )
            raise FormatVersionError(msg)
        if version < 1:
            msg = f"{path}: invalid hards-h5 format version {version}"
            raise NotAHardsFileError(msg)
        for name, kind in ((DATASETS, h5py.Group), (BLOBS, h5py.Dataset)):
            obj = f.get(name)
            if not isinstance(obj, kind):
                msg = f"{path}: damaged campaign file: '/{name}' is missing or of the wrong kind"
                raise CorruptFileError(msg)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, CorruptFileError):
            raise
        msg = f"{path}: damaged campaign file, HDF5 cannot read its root: {exc}"
        raise CorruptFileError(msg) from exc


def check_is_hdf5(path: Path) -> None:
    """Raise the error opening ``path`` would give if it is missing or not HDF5 at all."""
    try:
        st = path.stat()
    except FileNotFoundError:
        msg = f"{path}: no such campaign file"
        raise StoreFileNotFoundError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot be read: {exc.strerror or exc}"
        raise CorruptFileError(msg) from exc
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path)
    if st.st_size == 0:
        msg = f"{path}: empty file, not a hards-h5 campaign file"
        raise NotAHardsFileError(msg)
    try:
        # O_NONBLOCK: a FIFO put in the file's place since the stat does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _not_regular(path)
            head = os.pread(fd, 8, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        if isinstance(exc, NotAHardsFileError):
            raise
        msg = f"{path}: cannot be read: {exc.strerror or exc}"
        raise CorruptFileError(msg) from exc
    if head != HDF5_SIGNATURE and not h5py.is_hdf5(str(path)):
        msg = f"{path}: not an HDF5 file (no HDF5 signature), so not a hards-h5 campaign file"
        raise NotAHardsFileError(msg)


def _not_regular(path: Path) -> NotAHardsFileError:
    msg = f"{path}: not a regular file, so not a hards-h5 campaign file"
    return NotAHardsFileError(msg)


def _translate_open_error(path: Path, exc: OSError) -> Exception:
    text = str(exc)
    lowered = text.lower()
    if "consistency flags" in lowered or "h5clear" in lowered:
        msg = (
            f"{path}: the file was left open by a writer that did not close it "
            f"(crashed or still running). If no process is writing it, run "
            f"'hards-h5 recover {path}'"
        )
        return RecoveryNeededError(msg)
    if "already open for" in lowered or "not the same for file that is already open" in lowered:
        msg = (
            f"{path}: this process already has the file open in another mode; "
            "close that H5Database first (HDF5 allows one mode per file per process)"
        )
        return OpenInThisProcessError(msg)
    if exc.errno in {errno.EAGAIN, errno.EWOULDBLOCK} or "unable to lock file" in lowered:
        msg = (
            f"{path}: another process has the file open in a conflicting mode "
            f"(one writer, or any number of readers, at a time)"
        )
        return DatabaseLockedError(msg)
    if isinstance(exc, PermissionError) or exc.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
        return PermissionError(exc.errno, f"{path}: permission denied for this mode: {text}")
    msg = f"{path}: damaged or truncated HDF5 file, cannot open it: {text}"
    if "truncated file" in lowered:
        return TruncatedFileError(msg)
    return CorruptFileError(msg)


def check_space(
    target: str | os.PathLike[str], needed: int, *, reserve: int = DISK_RESERVE
) -> None:
    """Raise :class:`StorageFullError` unless ``needed`` bytes fit beside ``target``.

    ``reserve`` bytes (plus 1 % of ``needed``) must stay free on top, for HDF5's
    own metadata and caches to reach the disk when the file is flushed and closed.
    """
    try:
        st = os.statvfs(Path(target).absolute().parent)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if needed + needed // 100 + reserve > free:
        msg = (
            f"{target}: not enough free disk space to store {needed:,} bytes "
            f"({free:,} bytes free, {reserve:,} of them kept free for HDF5); "
            "nothing was written"
        )
        raise StorageFullError(msg)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error from h5py or the OS means the disk (or quota) is full."""
    text = str(exc)
    return (
        isinstance(exc, StorageFullError)
        or getattr(exc, "errno", None) in {errno.ENOSPC, errno.EDQUOT}
        or "No space left" in text
        or f"errno = {errno.ENOSPC}," in text
    )


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether an error from h5py means HDF5 could not take its file lock."""
    return "unable to lock file" in str(exc)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to stable storage (HDF5 itself never calls fsync)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` now (not one replaced since)."""
    try:
        st = path.stat()
    except OSError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (errors are ignored)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_rows(records: h5py.Dataset, start: int, stop: int) -> np.ndarray[Any, Any]:
    """Read records ``[start, stop)`` as a numpy structured array."""
    if stop <= start:
        return np.empty(0, dtype=RECORD_DTYPE)
    out = np.empty(stop - start, dtype=RECORD_DTYPE)
    records.read_direct(out, np.s_[start:stop])
    return out


def read_bytes(dataset: h5py.Dataset, start: int, stop: int) -> bytes:
    """Read bytes ``[start, stop)`` of a 1-D uint8 dataset."""
    if stop <= start:
        return b""
    out = np.empty(stop - start, dtype=np.uint8)
    dataset.read_direct(out, np.s_[start:stop])
    return out.tobytes()
