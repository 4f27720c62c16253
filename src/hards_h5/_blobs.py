"""Attached files: streamed into ``/blobs`` and back out in fixed-size chunks.

Memory use is bounded by :data:`CHUNK` whatever the file size; the SHA-256 is
computed while streaming in, and checked again while streaming out.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hards_h5 import _layout
from hards_h5._log import FileRef
from hards_h5.errors import FileIntegrityError, SourceFileError, StorageFullError

__all__ = ["CHUNK", "copy_blob", "open_source", "read_blob_into", "write_blob"]

CHUNK = 8 << 20
"""Bytes moved per read/write call (8 MiB)."""

_PIPELINE_FROM = 2 * CHUNK
"""Files this large are hashed on a second thread while the next chunk moves."""


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int | None, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing ``fd``'s dirty bytes to the disk; do not wait.

    ``length`` 0 means to the end of the file.  Streaming a large file would
    otherwise leave all of it to be written when it is flushed; started chunk by
    chunk, the disk writes while the CPU hashes, and the fsync of ``flush()`` (or
    of a ``sync`` after an extraction) finds little left to do.  A hint only
    (Linux ``sync_file_range``): it promises nothing about durability, which
    ``flush()`` gives, and does nothing where the call is missing.
    """
    if fd is not None and _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # result ignored: a hint


def _file_descriptor(dataset: h5py.Dataset) -> int | None:
    """Return the descriptor HDF5 writes ``dataset``'s file through, if it has one."""
    try:
        return int(dataset.file.id.get_vfd_handle())
    except (AttributeError, OSError, RuntimeError, TypeError, ValueError):
        return None


def _stream(
    size: int,
    fill: Callable[[np.ndarray[Any, Any]], int],
    drain: Callable[[np.ndarray[Any, Any]], None],
) -> bytes:
    """Move bytes from ``fill`` to ``drain`` chunk by chunk; return their SHA-256.

    ``fill(buf)`` reads up to ``len(buf)`` bytes into ``buf`` and returns how many
    (0 at the end); ``drain(part)`` stores them.  For files of ``size`` two chunks
    or more, hashing (which releases the GIL) runs on a second thread over the
    previous chunk while the next one is read and stored, with two buffers
    taking turns, so a large file moves at the speed of its I/O, not I/O plus
    hashing.
    """
    digest = hashlib.sha256()
    if size < _PIPELINE_FROM:
        buf = np.empty(min(CHUNK, max(size, 1)), dtype=np.uint8)
        while n := fill(buf):
            drain(buf[:n])
            digest.update(buf.data[:n])
        return digest.digest()
    buffers = (np.empty(CHUNK, dtype=np.uint8), np.empty(CHUNK, dtype=np.uint8))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hards-h5-sha256") as pool:
        hashing: Future[None] | None = None
        turn = 0
        try:
            # the buffer filled now is not the one being hashed: that one is
            # refilled only after its hash is done (waited for below)
            while n := fill(buffers[turn]):
                part = buffers[turn][:n]
                drain(part)
                if hashing is not None:
                    hashing.result()
                hashing = pool.submit(digest.update, part.data)
                turn ^= 1
        finally:
            if hashing is not None:
                hashing.result()
    return digest.digest()


def open_source(src: Path) -> int:
    """Open ``src`` for reading, refusing anything but a regular file.

    The descriptor is opened non-blocking (a FIFO would otherwise hang the call)
    and checked with ``fstat`` after opening, so the file checked is the file read.

    Raises
    ------
    SourceFileError
        If ``src`` does not exist, cannot be read, or is not a regular file.

    """
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        msg = f"cannot add file {src}: it does not exist"
        raise SourceFileError(msg) from None
    except IsADirectoryError:
        msg = f"cannot add file {src}: it is a directory, not a file"
        raise SourceFileError(msg) from None
    except OSError as exc:
        msg = f"cannot add file {src}: {exc.strerror or exc}"
        raise SourceFileError(msg) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        msg = f"cannot add file {src}: it is {kind}"
        raise SourceFileError(msg)
    os.set_blocking(fd, True)
    return fd


def write_blob(blobs: h5py.Dataset, fd: int) -> FileRef:
    """Append the bytes readable from ``fd`` to ``blobs``; return where they went.

    Raises
    ------
    StorageFullError
        If the file's disk cannot hold the bytes (checked before writing).

    """
    start = blobs.shape[0]
    expected = os.fstat(fd).st_size
    _layout.check_space(blobs.file.filename, expected)
    store = _Appender(blobs, start)
    try:
        blobs.resize((start + expected,))
        sha256 = _stream(expected, lambda buf: os.readv(fd, [buf.data]), store)
    except BaseException as exc:
        # No record points at the bytes written so far: shrink /blobs back so they
        # are not part of it (HDF5 keeps their disk space inside the file, to reuse
        # while it is open; 'hards-h5 compact' gives it back to the disk).
        with contextlib.suppress(Exception):
            blobs.resize((start,))
        if isinstance(exc, (OSError, RuntimeError)) and _layout.is_disk_full(exc):
            msg = (
                f"{blobs.file.filename}: the disk filled up while storing a file; the "
                "file was not stored and everything flushed before is intact. Free disk "
                "space to go on; 'hards-h5 compact' (file closed) reclaims the partial bytes"
            )
            raise StorageFullError(msg) from exc
        raise
    if store.pos != blobs.shape[0]:  # the source shrank while being read
        blobs.resize((store.pos,))
    return FileRef(start, store.pos - start, sha256)


def read_blob_into(blobs: h5py.Dataset, ref: FileRef, fd: int) -> None:
    """Write blob ``ref`` to ``fd`` in chunks, checking its SHA-256.

    Raises
    ------
    FileIntegrityError
        If the bytes read do not hash to ``ref.sha256`` (or lie past the end of
        ``/blobs``).

    """
    end = ref.offset + ref.size
    if end > blobs.shape[0]:
        msg = f"attached file bytes {ref.offset}..{end} lie past the end of /blobs"
        raise FileIntegrityError(msg)

    written = 0

    def write_out(part: np.ndarray[Any, Any]) -> None:
        nonlocal written
        view = part.data
        while view:
            view = view[os.write(fd, view) :]
        start_writeback(fd, written, len(part))
        written += len(part)

    sha256 = _stream(ref.size, _reader(blobs, ref.offset, end), write_out)
    if sha256 != ref.sha256:
        msg = "attached file bytes do not match their recorded SHA-256"
        raise FileIntegrityError(msg)


def copy_blob(src: h5py.Dataset, ref: FileRef, dst: h5py.Dataset) -> FileRef:
    """Append blob ``ref`` of ``src`` to ``dst`` chunk by chunk; return the new ref.

    The bytes are checked against ``ref.sha256`` on the way.

    Raises
    ------
    FileIntegrityError
        If the bytes lie outside ``src`` or do not match their SHA-256 (``dst``
        is then left as it was).

    """
    if ref.offset + ref.size > src.shape[0]:
        msg = (
            f"attached file bytes {ref.offset}..{ref.offset + ref.size} lie past the end of /blobs"
        )
        raise FileIntegrityError(msg)
    start = dst.shape[0]
    dst.resize((start + ref.size,))
    store = _Appender(dst, start)
    sha256 = _stream(ref.size, _reader(src, ref.offset, ref.offset + ref.size), store)
    if sha256 != ref.sha256:
        dst.resize((start,))
        msg = "attached file bytes do not match their recorded SHA-256"
        raise FileIntegrityError(msg)
    return FileRef(start, ref.size, ref.sha256)


class _Appender:
    """A ``drain`` for :func:`_stream` writing ``blobs`` from ``pos`` on, in order.

    Grows ``blobs`` if more bytes come than it was sized for (a source file that
    grew while being read) and starts the write-back of each chunk.
    """

    def __init__(self, blobs: h5py.Dataset, start: int) -> None:
        self.blobs = blobs
        self.pos = start
        self._fd = _file_descriptor(blobs)

    def __call__(self, part: np.ndarray[Any, Any]) -> None:
        end = self.pos + len(part)
        if end > self.blobs.shape[0]:
            self.blobs.resize((end,))
        self.blobs[self.pos : end] = part
        self.pos = end
        start_writeback(self._fd)


def _reader(blobs: h5py.Dataset, start: int, end: int) -> Callable[[np.ndarray[Any, Any]], int]:
    """Return a ``fill`` for :func:`_stream` reading ``blobs[start:end]`` in order."""
    pos = start

    def fill(buf: np.ndarray[Any, Any]) -> int:
        nonlocal pos
        n = min(len(buf), end - pos)
        if n > 0:
            blobs.read_direct(buf[:n], np.s_[pos : pos + n])
            pos += n
        return max(n, 0)

    return fill
