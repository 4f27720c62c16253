"""Attached files: streamed into ``/blobs`` and back out in fixed-size chunks.

Memory use is bounded by :data:`CHUNK` whatever the file size; the SHA-256 is
computed while streaming in, and checked again while streaming out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import h5py
import numpy as np

from hards_h5 import _layout
from hards_h5._log import FileRef
from hards_h5.errors import FileIntegrityError, SourceFileError, StorageFullError

__all__ = ["CHUNK", "copy_blob", "open_source", "read_blob_into", "write_blob"]

CHUNK = 8 << 20
"""Bytes moved per read/write call (8 MiB)."""


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
    try:
        blobs.resize((start + expected,))
        digest = hashlib.sha256()
        buf = np.empty(CHUNK, dtype=np.uint8)
        view = buf.data
        pos = start
        while True:
            n = os.readv(fd, [view])
            if n == 0:
                break
            if pos + n > blobs.shape[0]:  # the source grew while being read
                blobs.resize((pos + n,))
            blobs[pos : pos + n] = buf[:n]
            digest.update(view[:n])
            pos += n
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
    if pos != blobs.shape[0]:  # the source shrank while being read
        blobs.resize((pos,))
    return FileRef(start, pos - start, digest.digest())


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
    digest = hashlib.sha256()
    buf = np.empty(min(CHUNK, max(ref.size, 1)), dtype=np.uint8)
    pos = ref.offset
    while pos < end:
        n = min(CHUNK, end - pos)
        part = buf[:n]
        blobs.read_direct(part, np.s_[pos : pos + n])
        view = part.data
        digest.update(view)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        pos += n
    if digest.digest() != ref.sha256:
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
    digest = hashlib.sha256()
    buf = np.empty(min(CHUNK, max(ref.size, 1)), dtype=np.uint8)
    done = 0
    while done < ref.size:
        n = min(CHUNK, ref.size - done)
        part = buf[:n]
        src.read_direct(part, np.s_[ref.offset + done : ref.offset + done + n])
        digest.update(part.data)
        dst[start + done : start + done + n] = part
        done += n
    if digest.digest() != ref.sha256:
        dst.resize((start,))
        msg = "attached file bytes do not match their recorded SHA-256"
        raise FileIntegrityError(msg)
    return FileRef(start, ref.size, ref.sha256)
