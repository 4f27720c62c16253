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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hards_h5.errors import (
    CorruptFileError,
    FileIntegrityError,
    SourceFileError,
    StorageFullError,
)
from hards_h5.store import layout as _layout
from hards_h5.store.records import FileRef

__all__ = [
    "CHUNK",
    "LIVE_PATIENCE",
    "WRITE_PIECE",
    "BlobCopier",
    "copy_blob",
    "open_source",
    "read_blob_into",
    "read_live_blob_into",
    "write_blob",
]

CHUNK = 8 << 20
"""Bytes moved per read/write call (8 MiB)."""

WRITE_PIECE = 1 << 20
"""Bytes per ``write`` call when extracting (1 MiB, like HDF5's chunk writes).

Smaller writes extract faster than one per :data:`CHUNK` (see
``docs/performance.md``, "Why the code is shaped this way").  Reads stay at
:data:`CHUNK`: they fill page-cache-resident bytes into a reused buffer.
"""

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
        for at in range(0, len(part), WRITE_PIECE):
            view = part.data[at : at + WRITE_PIECE]
            while view:
                view = view[os.write(fd, view) :]
        start_writeback(fd, written, len(part))
        written += len(part)

    sha256 = _stream(ref.size, _reader(blobs, ref.offset, end), write_out)
    if sha256 != ref.sha256:
        msg = "attached file bytes do not match their recorded SHA-256"
        raise FileIntegrityError(msg)


LIVE_PATIENCE = 2.0
"""Seconds a SWMR reader keeps re-reading a file that fails its check before saying so."""


def read_live_blob_into(
    open_blobs: Callable[[], h5py.Dataset],
    ref: FileRef,
    fd: int,
    *,
    patience: float = LIVE_PATIENCE,
) -> None:
    """Write blob ``ref`` to ``fd`` like :func:`read_blob_into`, for a SWMR reader.

    A live reader may be shown a file's record while its view of ``/blobs`` (its
    extent, chunk index or cached chunks) is older than the record: the writer's
    HDF5 flush is not atomic.  A blob that fails its check is therefore read again,
    through a ``/blobs`` handle that ``open_blobs`` opens and refreshes anew, with
    a growing pause, for up to ``patience`` seconds.  Each handle is closed before
    the next is opened: HDF5 re-reads a dataset's metadata on refresh only when no
    other handle holds it open, so neither this function nor the error it raises
    keeps one.

    Raises
    ------
    FileIntegrityError
        If the bytes still do not match ``ref.sha256`` (or lie past the end of
        ``/blobs``) after ``patience`` seconds.

    """
    deadline = time.monotonic() + patience
    wait = 0.005
    while True:
        blobs = open_blobs()
        try:
            read_blob_into(blobs, ref, fd)
        except FileIntegrityError as exc:
            problem = str(exc)  # (the error's traceback holds the handle: not kept)
        else:
            return
        finally:
            del blobs
        if time.monotonic() >= deadline:
            break
        time.sleep(wait)
        wait = min(wait * 2, 0.2)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
    msg = (
        f"{problem} (read again for {patience:g} s: if the live writer may still be "
        "writing it, call refresh() and try again; otherwise run 'hards-h5 check')"
    )
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
    store = _Appender(dst, start)
    dst.resize((start + ref.size,))
    sha256 = _stream(ref.size, _reader(src, ref.offset, ref.offset + ref.size), store)
    if sha256 != ref.sha256:
        dst.resize((start,))
        msg = "attached file bytes do not match their recorded SHA-256"
        raise FileIntegrityError(msg)
    return FileRef(start, ref.size, ref.sha256)


class BlobCopier:
    """Copies attached files from one file's ``/blobs`` to another's, each content once.

    The one copier of compact, recover and merge: a content (SHA-256) already
    in ``known`` (copied before, or already in the destination) is not copied
    again.

    Parameters
    ----------
    src, dst : h5py.Dataset
        The source and destination ``/blobs``.
    known : dict, optional
        Destination references by SHA-256; shared between copiers into the same
        destination (it is updated in place).

    """

    def __init__(
        self, src: h5py.Dataset, dst: h5py.Dataset, known: dict[bytes, FileRef] | None = None
    ) -> None:
        self.src, self.dst = src, dst
        self.known: dict[bytes, FileRef] = {} if known is None else known

    def copy(self, ref: FileRef) -> FileRef:
        """Return the destination reference of ``ref``'s content, copying it if new.

        Raises
        ------
        FileIntegrityError
            As :func:`copy_blob` (nothing is copied then).

        """
        target = self.known.get(ref.sha256)
        if target is None:
            target = copy_blob(self.src, ref, self.dst)
            self.known[ref.sha256] = target
        return target


class _Appender:
    """A ``drain`` for :func:`_stream` writing ``blobs`` from ``pos`` on, in order.

    Grows ``blobs`` if more bytes come than it was sized for (a source file that
    grew while being read) and starts the write-back of each chunk.

    Whole HDF5 chunks are written with ``H5Dwrite_chunk`` (h5py's
    ``write_direct_chunk``): one ``pwrite`` from the buffer per chunk, without
    the selection and conversion machinery of a slice assignment (faster, see
    ``docs/performance.md``).  HDF5 evicts
    any cached copy of a chunk written this way, so the two paths never disagree.
    The partial chunks at either end of a file, and every chunk of a ``/blobs``
    with a filter pipeline, go through the ordinary slice assignment.
    """

    def __init__(self, blobs: h5py.Dataset, start: int) -> None:
        if blobs.dtype != np.uint8 or len(blobs.shape) != 1:
            # (written by another tool: bytes stored there would be converted)
            msg = (
                f"{blobs.file.filename}: /blobs is a {blobs.dtype} array of shape "
                f"{blobs.shape}, not 1-D bytes (uint8); attached files cannot be stored"
            )
            raise CorruptFileError(msg)
        self.blobs = blobs
        self.pos = start
        self._fd = _file_descriptor(blobs)
        self._chunk = _direct_chunk_size(blobs)

    def __call__(self, part: np.ndarray[Any, Any]) -> None:
        pos, n, chunk = self.pos, len(part), self._chunk
        end = pos + n
        if end > self.blobs.shape[0]:
            self.blobs.resize((end,))
        for at, length, whole in _pieces(pos, n, chunk):
            piece = part[at : at + length]
            if whole:
                self.blobs.id.write_direct_chunk((pos + at,), piece)
            else:
                self.blobs[pos + at : pos + at + length] = piece
        self.pos = end
        start_writeback(self._fd)


def _pieces(pos: int, n: int, chunk: int) -> Iterator[tuple[int, int, bool]]:
    """Split ``n`` bytes of ``/blobs`` from ``pos`` at its chunk boundaries.

    Yields ``(at, length, whole)`` in order: ``at`` counts from ``pos``, and
    ``whole`` is true for a piece that is exactly one chunk.  With ``chunk`` 0 (no
    whole-chunk I/O) the bytes are one piece.
    """
    done = min(-pos % chunk, n) if chunk else n  # up to the first chunk boundary
    if done:
        yield 0, done, False
    while chunk and n - done >= chunk:
        yield done, chunk, True
        done += chunk
    if done < n:
        yield done, n - done, False


def _direct_chunk_size(blobs: h5py.Dataset) -> int:
    """Return the chunk length ``blobs`` takes whole-chunk writes of, or 0 if none.

    Whole chunks can be written as they are only into a chunked 1-D byte array
    without filters: there, a chunk's stored bytes are its elements.
    """
    if blobs.chunks is None or len(blobs.chunks) != 1 or blobs.dtype != np.uint8:
        return 0
    if blobs.id.get_create_plist().get_nfilters():
        return 0
    return int(blobs.chunks[0])


def _reader(blobs: h5py.Dataset, start: int, end: int) -> Callable[[np.ndarray[Any, Any]], int]:
    """Return a ``fill`` for :func:`_stream` reading ``blobs[start:end]`` in order.

    Whole chunks are read with ``H5Dread_chunk`` (h5py's ``read_direct_chunk``),
    straight into the buffer without the selection machinery and chunk cache of
    a slice read (faster, see ``docs/performance.md``); HDF5
    flushes a dirty cached copy of the chunk first.
    Partial chunks, a chunk that is not allocated (its bytes then read as the
    fill value, and the SHA-256 check fails) and every chunk of a filtered
    ``/blobs`` are read as a slice.
    """
    pos = start
    chunk = _direct_chunk_size(blobs)

    def fill(buf: np.ndarray[Any, Any]) -> int:
        nonlocal pos
        n = max(min(len(buf), end - pos), 0)
        for at, length, whole in _pieces(pos, n, chunk):
            piece = buf[at : at + length]
            if whole:
                try:
                    blobs.id.read_direct_chunk((pos + at,), out=piece)
                    continue
                except (OSError, RuntimeError, ValueError):  # not allocated
                    pass
            blobs.read_direct(piece, np.s_[pos + at : pos + at + length])
        pos += n
        return n

    return fill
