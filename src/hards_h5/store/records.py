"""The record codec: a record log's rows and heap bytes, written and read back.

One place for the record format of ``docs/format.md``: :func:`encode` makes the
rows (with their CRC-32) and heap bytes of new records; :func:`decode` reads
them back one by one and says whether each is intact (CRC and lengths), with
one of two policies: stop at the first bad record (replay, whose valid prefix
ends there) or go on past it (salvage, which keeps every intact record);
:func:`row_crcs` checks a whole batch at once (the all-or-nothing bulk replay).
What the records *mean* (names, data, files per node) is replay's and
salvage's business.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np

from hards_h5.store.layout import FILE, RECORD_DTYPE

__all__ = [
    "FileRef",
    "Pending",
    "Record",
    "decode",
    "encode",
    "record_crc",
    "record_sha256",
    "row_crcs",
]

_SIZE: Final = RECORD_DTYPE.itemsize
_ROW: Final = np.dtype((np.void, _SIZE))


@dataclass(frozen=True, slots=True)
class FileRef:
    """Where an attached file's bytes live in ``/blobs``, and their SHA-256."""

    offset: int
    size: int
    sha256: bytes


@dataclass(slots=True)
class Pending:
    """A record not yet written: its kind, node, name and body (or blob, for FILE)."""

    kind: int
    node: int
    name: bytes
    body: bytes
    blob: FileRef | None = None


class Record(NamedTuple):
    """One record read back from a log's rows and heap.

    ``name`` and ``body`` are the heap bytes the row points to (shorter than
    its lengths say if the heap ends first); ``body`` is empty for FILE records,
    whose ``body_off``/``body_len``/``sha256`` place the file in ``/blobs``.
    ``intact``: the lengths match and the CRC-32 checks.
    """

    kind: int
    node: int
    name: bytes
    body: bytes
    name_len: int
    body_off: int
    body_len: int
    sha256: bytes
    intact: bool


_SHA256_AT: Final[int] = RECORD_DTYPE.fields["sha256"][1]  # type: ignore[index]


def record_sha256(raw: bytes, at: int) -> bytes:
    """Return the ``sha256`` field of the record whose bytes start at ``raw[at]``."""
    return raw[at + _SHA256_AT : at + _SHA256_AT + 32]


def record_crc(head: bytes, name: bytes, body: bytes) -> int:
    """Return the CRC-32 a record must carry.

    ``head`` is the record's bytes without its trailing ``crc`` field; the CRC
    covers them, four zero bytes in place of ``crc``, the name and the body.
    """
    crc = zlib.crc32(b"\0\0\0\0", zlib.crc32(head))
    return zlib.crc32(body, zlib.crc32(name, crc)) & 0xFFFFFFFF


def row_crcs(
    rows: np.ndarray[Any, Any], names: list[bytes], bodies: list[bytes]
) -> np.ndarray[Any, Any]:
    """Return the CRC-32 each of ``rows`` must carry, given its name and body bytes.

    Column-wise (one C-level ``map`` per step): the all-or-nothing check of a
    batch compares the result with ``rows["crc"]``.
    """
    # CRC of each row with its crc field zeroed, continued over its name and body.
    zeroed = rows.copy()
    zeroed["crc"] = 0
    heads = map(zlib.crc32, zeroed.view(_ROW).tolist())
    return np.fromiter(
        map(zlib.crc32, bodies, map(zlib.crc32, names, heads)), dtype=np.uint32, count=rows.size
    )


def decode(
    rows: np.ndarray[Any, Any], heap: bytes, heap_lo: int, *, stop_at_bad: bool
) -> Iterator[Record]:
    """Yield the records of ``rows`` in order; ``heap`` holds the heap from offset ``heap_lo``.

    With ``stop_at_bad`` the first record that is not intact ends the iteration
    (and is not yielded); without, every record is yielded, bad ones with
    ``intact`` False.
    """
    # The CRC covers a row with its own crc field zeroed: zero them all at once,
    # so that each row needs one crc32 call for its fixed part.
    zeroed = rows.copy()
    zeroed["crc"] = 0
    raw = zeroed.tobytes()
    crc32 = zlib.crc32
    columns = zip(
        rows["kind"].tolist(),
        rows["node"].tolist(),
        (rows["name_off"] - heap_lo).tolist(),
        rows["name_len"].tolist(),
        rows["body_off"].tolist(),
        rows["body_len"].tolist(),
        rows["crc"].tolist(),
        strict=True,
    )
    at = 0
    for kind, node, name_lo, name_len, body_off, body_len, crc in columns:
        head = crc32(raw[at : at + _SIZE])
        name = heap[name_lo : name_lo + name_len]
        if kind == FILE:
            body = b""
            ok = len(name) == name_len and crc == crc32(name, head)
            sha256 = record_sha256(raw, at)
        else:
            body = heap[body_off - heap_lo : body_off - heap_lo + body_len]
            ok = (
                len(name) == name_len
                and len(body) == body_len
                and crc == crc32(body, crc32(name, head))
            )
            sha256 = b""
        if not ok and stop_at_bad:
            return
        yield Record(kind, node, name, body, name_len, body_off, body_len, sha256, ok)
        at += _SIZE


def encode(pending: list[Pending], heap_start: int) -> tuple[np.ndarray[Any, Any], bytes]:
    """Return the record rows and heap bytes for ``pending``, heap starting at ``heap_start``."""
    count = len(pending)
    rows = np.zeros(count, dtype=RECORD_DTYPE)
    name_off: list[int] = []
    body_off: list[int] = []
    body_len: list[int] = []
    chunks: list[bytes] = []
    offset = heap_start
    for item in pending:
        name_off.append(offset)
        offset += len(item.name)
        chunks.append(item.name)
        if item.blob is None:
            body_off.append(offset)
            body_len.append(len(item.body))
            offset += len(item.body)
            chunks.append(item.body)
        else:
            body_off.append(item.blob.offset)
            body_len.append(item.blob.size)
    rows["kind"] = [item.kind for item in pending]
    rows["node"] = [item.node for item in pending]
    rows["name_off"] = name_off
    rows["name_len"] = [len(item.name) for item in pending]
    rows["body_off"] = body_off
    rows["body_len"] = body_len
    for i, item in enumerate(pending):
        if item.blob is not None:
            rows["sha256"][i] = np.frombuffer(item.blob.sha256, dtype=np.uint8)
    raw = rows.tobytes()
    size = _SIZE
    rows["crc"] = [
        record_crc(raw[i * size : (i + 1) * size - 4], item.name, item.body)
        for i, item in enumerate(pending)
    ]
    return rows, b"".join(chunks)
