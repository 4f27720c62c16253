"""The HDF5 superblock's file-consistency flags: read them, clear them.

A file opened for writing with the v110+ format (superblock version 2 or 3) has
flags set in its superblock while a writer has it open.  A writer that dies leaves
them set and HDF5 then refuses to open the file; ``h5clear -s`` clears them.  This
module does the same in pure Python so that recovery needs no extra tool: it
rewrites the flags byte and the superblock's Jenkins lookup3 checksum with one
``pwrite`` (one sector), so a crash cannot leave a half-updated superblock.
"""

from __future__ import annotations

import os
from pathlib import Path

from hards_h5.errors import CorruptFileError, NotAHardsFileError

__all__ = [
    "HDF5_SIGNATURE",
    "clear_status_flags",
    "cleared_flags_patch",
    "end_of_file_address",
    "lookup3",
    "status_flags",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""The eight bytes an HDF5 superblock starts with."""
_FLAGS_AT = 11
_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Return Bob Jenkins' lookup3 ``hashlittle`` of ``data`` (HDF5's metadata checksum)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    i = 0
    while length > 12:  # noqa: PLR2004 - lookup3 works in 12-byte blocks
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M
        a = (a - c) & _M
        a ^= _rot(c, 4)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 6)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 8)
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= _rot(c, 16)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 19)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 4)
        b = (b + a) & _M
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i : i + length] + b"\0" * (12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b
    c = (c - _rot(b, 14)) & _M
    a ^= c
    a = (a - _rot(c, 11)) & _M
    b ^= a
    b = (b - _rot(a, 25)) & _M
    c ^= b
    c = (c - _rot(b, 16)) & _M
    a ^= c
    a = (a - _rot(c, 4)) & _M
    b ^= a
    b = (b - _rot(a, 14)) & _M
    c ^= b
    return (c - _rot(b, 24)) & _M


def _read_superblock(fd: int, path: Path) -> tuple[bytes, int] | None:
    """Return the superblock's bytes up to its checksum and where that starts.

    None for versions 0 and 1 (what h5repack writes without -L): they keep no
    status flags, so there is nothing a dead writer could have left set.
    """
    head = os.pread(fd, 64, 0)
    if head[:8] != HDF5_SIGNATURE:
        msg = f"{path}: no HDF5 superblock at offset 0"
        raise NotAHardsFileError(msg)
    version = head[8]
    if version in (0, 1):
        return None
    if version not in (2, 3):
        msg = f"{path}: HDF5 superblock version {version} has no status flags to clear"
        raise NotAHardsFileError(msg)
    size_of_offsets = head[9]
    end = 12 + 4 * size_of_offsets
    if size_of_offsets not in (2, 4, 8) or len(head) < end + 4:
        msg = f"{path}: damaged HDF5 superblock (size of offsets {size_of_offsets})"
        raise CorruptFileError(msg)
    stored = int.from_bytes(head[end : end + 4], "little")
    if lookup3(head[:end]) != stored:
        msg = f"{path}: damaged HDF5 superblock (checksum mismatch)"
        raise CorruptFileError(msg)
    return head[: end + 4], end


def status_flags(path: Path) -> int:
    """Return the superblock's file-consistency flags (0 when no writer has it open).

    Raises
    ------
    NotAHardsFileError
        If ``path`` has no HDF5 superblock (version 0 to 3) at offset 0.
    CorruptFileError
        If the superblock's checksum does not match.

    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    try:
        superblock = _read_superblock(fd, path)
    finally:
        os.close(fd)
    return 0 if superblock is None else superblock[0][_FLAGS_AT]


def clear_status_flags(path: Path) -> bool:
    """Clear the superblock's file-consistency flags, as ``h5clear -s`` does.

    Only call this when no process has the file open for writing.

    Returns
    -------
    bool
        True if flags were set (and are now cleared), False if they were clear.

    """
    if not status_flags(path):
        return False  # (and a read-only file needs no write access for that)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        superblock = _read_superblock(fd, path)
        if superblock is None or superblock[0][_FLAGS_AT] == 0:
            return False
        # One write of bytes 11..end+4: the flag and its checksum change together.
        os.pwrite(fd, _cleared(*superblock), _FLAGS_AT)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _cleared(block: bytes, end: int) -> bytes:
    """Return the superblock's bytes from the flags on, flags cleared, checksum redone."""
    fixed = bytearray(block)
    fixed[_FLAGS_AT] = 0
    fixed[end : end + 4] = lookup3(bytes(fixed[:end])).to_bytes(4, "little")
    return bytes(fixed[_FLAGS_AT:])


def cleared_flags_patch(fd: int, path: Path) -> tuple[int, bytes]:
    """Return where and what to write so that ``fd``'s superblock has its flags clear.

    Writes nothing: a reader without write permission reads the file through
    these bytes instead (see ``_autorecover``).  ``(0, b"")`` if there are no flags.

    Raises
    ------
    NotAHardsFileError, CorruptFileError
        As :func:`status_flags`.

    """
    superblock = _read_superblock(fd, path)
    if superblock is None:
        return 0, b""
    return _FLAGS_AT, _cleared(*superblock)


def end_of_file_address(fd: int, path: Path) -> int | None:
    """Return the end of the space HDF5 had allocated when it last wrote the superblock.

    HDF5 writes the superblock when it flushes the file, and truncates the file
    to this address then: bytes beyond it were written after the last flush.
    None for superblock versions 0 and 1 (which a dead writer cannot have left).

    Raises
    ------
    NotAHardsFileError, CorruptFileError
        As :func:`status_flags`.

    """
    superblock = _read_superblock(fd, path)
    if superblock is None:
        return None
    block = superblock[0]
    size_of_offsets = block[9]
    at = 12 + 2 * size_of_offsets  # base address, extension address, end of file address
    return int.from_bytes(block[at : at + size_of_offsets], "little")
