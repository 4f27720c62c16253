"""Seals: one CRC for a whole prefix of a record log, so a reader need not check each.

Replaying a log checks every record's own CRC, one call per record: at 100k
datapoints that is most of the time it takes to open a dataset.  When a writer
closes a file, it appends to the dataset's ``seals`` array a row saying "records
``[0, rows)`` and heap bytes ``[0, heap)`` have these two CRC-32s".  A reader that
finds the newest seal matching what is in the file checks those two CRCs (two C
calls over a few MB) instead of one per record, and replays the records after the
seal the usual way.  A seal is only ever a shortcut: if it is damaged, stale or
does not match the bytes, the reader replays every record as if it were absent.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass
from typing import Any, Final

import h5py
import numpy as np

from hards_h5.store.layout import (
    HEAP,
    RECORDS,
    SEAL_BIG_INTS,
    SEAL_DTYPE,
    SEALS,
    check_space,
    read_bytes,
    read_rows,
)

__all__ = ["SEAL_MIN_ROWS", "Seal", "append_seal", "audit", "find_seal", "read_matching"]

SEAL_MIN_ROWS: Final = 1024
"""Records a log must have gained since its last seal before closing seals it again
(a shorter tail replays in about a millisecond)."""

_CHUNK_ROWS: Final = 1 << 16
_CHUNK_BYTES: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class Seal:
    """Records ``[0, rows)`` and heap bytes ``[0, heap)`` have CRC-32s ``rows_crc``, ``heap_crc``.

    ``big_ints``: some JSON text these records point to may hold an integer beyond
    64 bits.
    """

    rows: int
    heap: int
    rows_crc: int
    heap_crc: int
    big_ints: bool


def _row_crc(row: np.ndarray[Any, Any]) -> int:
    zeroed = row.copy()
    zeroed["crc"] = 0
    return zlib.crc32(zeroed.tobytes())


def _intact(row: np.ndarray[Any, Any]) -> bool:
    """Whether the one-row array ``row`` carries its own CRC."""
    return int(row["crc"][0]) == _row_crc(row)


def _seal_of(row: np.ndarray[Any, Any]) -> Seal:
    return Seal(
        int(row["rows"][0]),
        int(row["heap"][0]),
        int(row["rows_crc"][0]),
        int(row["heap_crc"][0]),
        bool(int(row["flags"][0]) & SEAL_BIG_INTS),
    )


def _table(group: h5py.Group) -> np.ndarray[Any, Any]:
    """Return ``group``'s seals as a 1-D SEAL_DTYPE array; raise ValueError if malformed."""
    seals = group[SEALS]
    if not isinstance(seals, h5py.Dataset) or seals.ndim != 1 or seals.dtype != SEAL_DTYPE:
        msg = "the seals array is not a 1-D array of seals"
        raise ValueError(msg)
    return np.asarray(seals[()], dtype=SEAL_DTYPE)


def find_seal(group: h5py.Group, rows: int, heap: int) -> Seal | None:
    """Return the newest intact seal of ``group``'s log that fits in ``rows`` and ``heap``.

    None if there is none, or if the seals array is unreadable or malformed.
    """
    try:
        table = _table(group)
    except (KeyError, OSError, TypeError, ValueError):
        return None
    for i in range(table.size - 1, -1, -1):
        row = table[i : i + 1]
        if _intact(row):
            seal = _seal_of(row)
            if 0 < seal.rows <= rows and seal.heap <= heap:
                return seal
    return None


def read_matching(group: h5py.Group, seal: Seal) -> tuple[np.ndarray[Any, Any], bytes] | None:
    """Read the records and heap bytes ``seal`` covers; return them if they match it.

    None if they do not: the seal then vouches for nothing.
    """
    rows = read_rows(group[RECORDS], 0, seal.rows)
    heap = read_bytes(group[HEAP], 0, seal.heap)
    if (
        rows.size == seal.rows
        and len(heap) == seal.heap
        and zlib.crc32(rows.view(np.uint8).data) == seal.rows_crc
        and zlib.crc32(heap) == seal.heap_crc
    ):
        return rows, heap
    return None


def audit(group: h5py.Group) -> str | None:
    """Return what is wrong with ``group``'s seals (None if nothing, or if it has none).

    Seals are written once and never change, and the bytes they cover are only
    ever appended to, so a damaged seal row or a seal that no longer matches its
    records means the file was damaged.
    """
    if SEALS not in group:
        return None
    try:
        table = _table(group)
    except (OSError, TypeError, ValueError) as exc:
        return f"unreadable seals ({exc})"
    damaged = sum(not _intact(table[i : i + 1]) for i in range(table.size))
    if damaged:
        return f"{damaged} damaged seal(s)"
    return _audit_newest(group, _seal_of(table[-1:])) if table.size else None


def _audit_newest(group: h5py.Group, newest: Seal) -> str | None:
    if newest.rows > group[RECORDS].shape[0] or newest.heap > group[HEAP].shape[0]:
        return "its newest seal covers more records or heap bytes than the log holds"
    if read_matching(group, newest) is None:
        return "its seal does not match its records (reads then check every record)"
    return None


def append_seal(group: h5py.Group, rows: int, previous: Seal | None, *, big_ints: bool) -> Seal:
    """Seal ``group``'s records ``[0, rows)`` and its whole heap; return the new seal.

    The CRCs are computed from the bytes in the file, continuing those of
    ``previous`` (a seal known to match the file) so that only what follows it is
    read, in bounded pieces.  ``big_ints``: whether a JSON text of those records
    may hold an integer beyond 64 bits.
    """
    records: h5py.Dataset = group[RECORDS]
    heap: h5py.Dataset = group[HEAP]
    start_rows, rows_crc, start_heap, heap_crc = 0, 0, 0, 0
    if previous is not None:
        start_rows, rows_crc = previous.rows, previous.rows_crc
        start_heap, heap_crc = previous.heap, previous.heap_crc
    for lo in range(start_rows, rows, _CHUNK_ROWS):
        part = read_rows(records, lo, min(rows, lo + _CHUNK_ROWS))
        rows_crc = zlib.crc32(part.view(np.uint8).data, rows_crc)
    heap_len = int(heap.shape[0])
    for lo in range(start_heap, heap_len, _CHUNK_BYTES):
        heap_crc = zlib.crc32(read_bytes(heap, lo, min(heap_len, lo + _CHUNK_BYTES)), heap_crc)
    seal = Seal(rows, heap_len, rows_crc, heap_crc, big_ints)
    row = np.zeros(1, dtype=SEAL_DTYPE)
    row["rows"], row["heap"] = seal.rows, seal.heap
    row["rows_crc"], row["heap_crc"] = seal.rows_crc, seal.heap_crc
    row["flags"] = SEAL_BIG_INTS if big_ints else 0
    row["crc"] = _row_crc(row)
    check_space(group.file.filename, 4096)
    if SEALS not in group:
        group.create_dataset(SEALS, data=row, maxshape=(None,), chunks=(64,))
        return seal
    table: h5py.Dataset = group[SEALS]
    end = int(table.shape[0])
    table.resize((end + 1,))
    try:
        table[end:] = row
    except BaseException:
        with contextlib.suppress(Exception):  # no zero row left behind to look damaged
            table.resize((end,))
        raise
    return seal
