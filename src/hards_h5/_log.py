"""One dataset's record log: replayed state, pending appends, and their flush.

A dataset's datapoints, and the data and files of the dataset and its datapoints,
are an append-only log of records (``_layout.RECORD_DTYPE``) plus a byte heap.
:class:`DatasetLog` replays the committed prefix of the log into plain Python
lists (names, JSON texts, file references) and keeps new records in memory until
:meth:`DatasetLog.write_pending` appends them to the file.  Replay stops at the
first record whose CRC does not match, so a torn append is never read.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from hards_h5 import _codec
from hards_h5._layout import (
    CREATE,
    DATA,
    FILE,
    HEAP,
    RECORD_DTYPE,
    RECORDS,
    check_space,
    is_disk_full,
    read_bytes,
    read_rows,
    record_crc,
)
from hards_h5.errors import CorruptFileError, StorageFullError

__all__ = ["DatasetLog", "FileRef"]

SPILL_ROWS = 16384
"""Pending rows kept in memory before they are appended to the file unasked."""
SPILL_BYTES = 16 << 20
"""Pending heap bytes kept in memory before they are appended to the file unasked."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """Where an attached file's bytes live in ``/blobs``, and their SHA-256."""

    offset: int
    size: int
    sha256: bytes


@dataclass(slots=True)
class _Pending:
    kind: int
    node: int
    name: bytes
    body: bytes
    blob: FileRef | None = None


@dataclass(slots=True)
class _State:
    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=lambda: [_codec.EMPTY])
    files: list[dict[str, FileRef] | None] = field(default_factory=lambda: [None])


class DatasetLog:
    """The replayed record log of one dataset (node 0) and its datapoints (1..n)."""

    def __init__(self, group: h5py.Group, *, writable: bool) -> None:
        self._records: h5py.Dataset = group[RECORDS]
        self._heap: h5py.Dataset = group[HEAP]
        self._writable = writable
        self._state = _State()
        self._applied = 0  # committed rows replayed
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self.big_ints = False
        """Whether some JSON text of this log may hold an integer beyond 64 bits
        (checked once per text read or written, so each parse need not)."""
        self.refresh()

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        """Datapoint names in creation order (the live list: do not mutate)."""
        return self._state.names

    def node_of(self, name: str) -> int | None:
        """Return the node number of datapoint ``name``, or None."""
        return self._state.index.get(name)

    def data_json(self, node: int) -> bytes:
        """Return the JSON text (UTF-8 bytes) of ``node``'s data."""
        return self._state.data[node]

    def data(self, node: int) -> dict[str, Any]:
        """Return ``node``'s data as a fresh dict."""
        return _codec.decode(self._state.data[node], big_ints=self.big_ints)

    def data_text(self, node: int) -> str:
        """Return the JSON text of ``node``'s data as a str."""
        return self._state.data[node].decode()

    def files(self, node: int) -> dict[str, FileRef]:
        """Return ``node``'s files (the live mapping: do not mutate)."""
        return self._state.files[node] or {}

    def refresh(self) -> None:
        """Replay records committed to the file since the last replay."""
        records = self._records
        if isinstance(records.id, h5py.h5d.DatasetID) and self._is_swmr_reader():
            records.refresh()
            self._heap.refresh()
        total = records.shape[0]
        if total <= self._applied:
            return
        rows = read_rows(records, self._applied, total)
        heap_lo, heap_hi = _heap_span(rows)
        heap = read_bytes(self._heap, heap_lo, min(heap_hi, self._heap.shape[0]))
        self.big_ints = self.big_ints or _codec.may_hold_big_int(heap)
        self._applied += self._replay(rows, heap, heap_lo)

    def _replay(self, rows: np.ndarray[Any, Any], heap: bytes, heap_lo: int) -> int:  # noqa: C901 - the bulk path, inlined on purpose
        """Apply the valid prefix of ``rows``; return how many rows it holds.

        ``heap`` holds the log's heap bytes from offset ``heap_lo``.  This is the
        bulk read path, hence one tight loop with the common record kinds inlined.
        """
        # The CRC covers a row with its own crc field zeroed: zero them all at once,
        # so that each row needs one crc32 call for its fixed part.
        zeroed = rows.copy()
        zeroed["crc"] = 0
        raw = zeroed.tobytes()
        size = RECORD_DTYPE.itemsize
        state = self._state
        names, index, data, files = state.names, state.index, state.data, state.files
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
            name_hi = name_lo + name_len
            head = crc32(raw[at : at + size])
            if kind == FILE:
                name = heap[name_lo:name_hi]
                body = b""
                ok = len(name) == name_len and crc == crc32(name, head)
            elif body_off - heap_lo == name_hi:  # written together: one slice, one CRC
                span = heap[name_lo : name_hi + body_len]
                name = span[:name_len]
                body = span[name_len:]
                ok = len(span) == name_len + body_len and crc == crc32(span, head)
            else:
                name = heap[name_lo:name_hi]
                body = heap[body_off - heap_lo : body_off - heap_lo + body_len]
                ok = (
                    len(name) == name_len
                    and len(body) == body_len
                    and crc == crc32(body, crc32(name, head))
                )
            if not ok:
                break
            # Inlined replay of the common record kinds; anything inconsistent
            # (a CREATE out of sequence, a repeated name, an unknown node or kind,
            # undecodable UTF-8) ends the committed prefix like a bad CRC.
            if kind == CREATE:
                try:
                    text = name.decode()
                except UnicodeDecodeError:
                    break
                if node != len(names) + 1 or text in index:
                    break
                names.append(text)
                index[text] = node
                data.append(body or _codec.EMPTY)
                files.append(None)
            elif kind == DATA and 0 <= node <= len(names):
                data[node] = body
            elif kind == FILE and 0 <= node <= len(names):
                try:
                    text = name.decode()
                except UnicodeDecodeError:
                    break
                sha = raw[at + _SHA_OFFSET : at + _SHA_OFFSET + 32]
                self._apply_file(node, text, FileRef(body_off, body_len, sha))
            else:
                break
            at += size
        return at // size

    def _is_swmr_reader(self) -> bool:
        return bool(self._records.file.swmr_mode) and not self._writable

    def _apply_file(self, node: int, name: str, ref: FileRef) -> None:
        files = self._state.files[node]
        if files is None:
            files = self._state.files[node] = {}
        files[name] = ref

    # ------------------------------------------------------------------ writing
    def create(self, name: str) -> int:
        """Create datapoint ``name`` (already validated, not present); return its node."""
        state = self._state
        node = len(state.names) + 1
        state.names.append(name)
        state.index[name] = node
        state.data.append(_codec.EMPTY)
        state.files.append(None)
        self._push(_Pending(CREATE, node, name.encode(), b""))
        return node

    def set_data(self, node: int, body: bytes) -> None:
        """Record that ``node``'s complete data is now the JSON text ``body``."""
        self.big_ints = self.big_ints or _codec.may_hold_big_int(body)
        self._state.data[node] = body
        last = self._pending[-1] if self._pending else None
        if last is not None and last.node == node and last.kind in (CREATE, DATA):
            self._pending_bytes += len(body) - len(last.body)
            last.body = body  # fold into the not-yet-written record
            return
        self._push(_Pending(DATA, node, b"", body))

    def set_file(self, node: int, name: str, ref: FileRef) -> None:
        """Record that ``node``'s file ``name`` now holds the blob ``ref``."""
        self._apply_file(node, name, ref)
        self._push(_Pending(FILE, node, name.encode(), b"", ref))

    @property
    def torn_rows(self) -> int:
        """Rows in the file after the last valid record (ignored by replay)."""
        return int(self._records.shape[0]) - self._applied

    def handles(self) -> tuple[h5py.Dataset, h5py.Dataset]:
        """Return the open HDF5 datasets this log reads and appends to."""
        return self._records, self._heap

    @property
    def has_pending(self) -> bool:
        """Whether records are waiting to be appended to the file."""
        return bool(self._pending)

    def discard_pending(self) -> None:
        """Forget the records not yet appended (an aborted merge rolls back)."""
        self._pending = []
        self._pending_bytes = 0

    def _push(self, item: _Pending) -> None:
        self._pending.append(item)
        self._pending_bytes += len(item.name) + len(item.body)
        if len(self._pending) >= SPILL_ROWS or self._pending_bytes >= SPILL_BYTES:
            try:
                self.write_pending()
            except (OSError, RuntimeError) as exc:
                if not is_disk_full(exc):
                    raise
                cause = (
                    str(exc)
                    if isinstance(exc, StorageFullError)
                    else f"{self._records.file.filename}: the disk filled up while writing"
                )
                msg = (
                    f"{cause}. This change and the others since the last flush() are "
                    "kept in memory: free disk space and call flush()"
                )
                raise StorageFullError(msg) from exc

    def write_pending(self) -> None:
        """Append pending records to the file: heap bytes first, then the rows."""
        pending = self._pending
        if not pending:
            return
        heap_start = self._heap.shape[0]
        rows, heap = _encode(pending, heap_start)
        # Refuse before HDF5 sees the bytes: an HDF5 write or flush that fails
        # with ENOSPC leaves the library unable to close the file cleanly.
        check_space(self._records.file.filename, len(heap) + rows.nbytes)
        if heap:
            self._heap.resize((heap_start + len(heap),))
            self._heap[heap_start:] = np.frombuffer(heap, dtype=np.uint8)
        start = self._records.shape[0]
        if start != self._applied:
            msg = f"record log of {self._records.parent.name} changed under its writer"
            raise CorruptFileError(msg)
        try:
            self._records.resize((start + len(rows),))
            self._records[start:] = rows
        except BaseException:
            # Leave the log as it was (pending records are kept for a retry): a
            # half-written tail would otherwise block every later append.
            with contextlib.suppress(Exception):
                self._records.resize((start,))
            raise
        self._applied += len(rows)
        self._pending = []
        self._pending_bytes = 0


def _encode(pending: list[_Pending], heap_start: int) -> tuple[np.ndarray[Any, Any], bytes]:
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
    size = RECORD_DTYPE.itemsize
    rows["crc"] = [
        record_crc(raw[i * size : (i + 1) * size - 4], item.name, item.body)
        for i, item in enumerate(pending)
    ]
    return rows, b"".join(chunks)


_SHA_OFFSET: int = RECORD_DTYPE.fields["sha256"][1]  # type: ignore[index]


def _heap_span(rows: np.ndarray[Any, Any]) -> tuple[int, int]:
    """Return the smallest heap range holding every name and body of ``rows``."""
    if rows.size == 0:
        return 0, 0
    starts = rows["name_off"].astype(np.int64)
    ends = starts + rows["name_len"]
    in_heap = np.isin(rows["kind"], (CREATE, DATA))
    body_starts = np.where(in_heap, rows["body_off"], starts).astype(np.int64)
    body_ends = np.where(in_heap, rows["body_off"] + rows["body_len"], ends).astype(np.int64)
    lo = int(min(starts.min(), body_starts.min()))
    hi = int(max(ends.max(), body_ends.max()))
    return lo, hi
