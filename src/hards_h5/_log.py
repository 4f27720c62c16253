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
    read_bytes,
    read_rows,
    record_crc,
)
from hards_h5.errors import CorruptFileError

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
    data: list[str] = field(default_factory=lambda: [_codec.EMPTY])
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
        self.refresh()
        if writable and self._applied < self._records.shape[0]:
            # A torn tail left by a crashed writer: cut it so appends follow the
            # last good record.
            self._records.resize((self._applied,))

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        """Datapoint names in creation order (the live list: do not mutate)."""
        return self._state.names

    def node_of(self, name: str) -> int | None:
        """Return the node number of datapoint ``name``, or None."""
        return self._state.index.get(name)

    def data_text(self, node: int) -> str:
        """Return the JSON text of ``node``'s data."""
        return self._state.data[node]

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
        raw = rows.tobytes()
        size = RECORD_DTYPE.itemsize
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
        for i, (kind, node, name_lo, name_len, body_off, body_len, crc) in enumerate(columns):
            name = heap[name_lo : name_lo + name_len]
            blob = _NO_BLOB
            if kind == FILE:
                body = b""
                sha = raw[i * size + _SHA_OFFSET : i * size + _SHA_OFFSET + 32]
                blob = FileRef(body_off, body_len, sha)
            else:
                body_lo = body_off - heap_lo
                body = heap[body_lo : body_lo + body_len]
            if (
                kind not in _KINDS
                or len(name) != name_len
                or len(body) != (0 if kind == FILE else body_len)
                or crc != record_crc(raw[i * size : (i + 1) * size - 4], name, body)
            ):
                break
            try:
                self._apply(kind, node, name.decode(), body.decode(), blob)
            except (UnicodeDecodeError, ValueError):
                break
            self._applied += 1

    def _is_swmr_reader(self) -> bool:
        return bool(self._records.file.swmr_mode) and not self._writable

    def _apply(self, kind: int, node: int, name: str, body: str, blob: FileRef) -> None:
        state = self._state
        if kind == CREATE:
            if node != len(state.names) + 1 or name in state.index:
                raise ValueError(name)
            state.names.append(name)
            state.index[name] = node
            state.data.append(body or _codec.EMPTY)
            state.files.append(None)
        elif node > len(state.names):
            raise ValueError(node)
        elif kind == DATA:
            state.data[node] = body
        else:
            files = state.files[node]
            if files is None:
                files = state.files[node] = {}
            files[name] = blob

    # ------------------------------------------------------------------ writing
    def create(self, name: str) -> int:
        """Create datapoint ``name`` (already validated, not present); return its node."""
        node = len(self._state.names) + 1
        raw = name.encode()
        self._apply(CREATE, node, name, "", _NO_BLOB)
        self._push(_Pending(CREATE, node, raw, b""))
        return node

    def set_data(self, node: int, text: str) -> None:
        """Record that ``node``'s complete data is now the JSON ``text``."""
        self._state.data[node] = text
        body = text.encode()
        last = self._pending[-1] if self._pending else None
        if last is not None and last.node == node and last.kind in (CREATE, DATA):
            self._pending_bytes += len(body) - len(last.body)
            last.body = body  # fold into the not-yet-written record
            return
        self._push(_Pending(DATA, node, b"", body))

    def set_file(self, node: int, name: str, ref: FileRef) -> None:
        """Record that ``node``'s file ``name`` now holds the blob ``ref``."""
        self._apply(FILE, node, name, "", ref)
        self._push(_Pending(FILE, node, name.encode(), b"", ref))

    @property
    def has_pending(self) -> bool:
        """Whether records are waiting to be appended to the file."""
        return bool(self._pending)

    def _push(self, item: _Pending) -> None:
        self._pending.append(item)
        self._pending_bytes += len(item.name) + len(item.body)
        if len(self._pending) >= SPILL_ROWS or self._pending_bytes >= SPILL_BYTES:
            self.write_pending()

    def write_pending(self) -> None:
        """Append pending records to the file: heap bytes first, then the rows."""
        pending = self._pending
        if not pending:
            return
        heap_start = self._heap.shape[0]
        rows = np.zeros(len(pending), dtype=RECORD_DTYPE)
        chunks: list[bytes] = []
        offset = heap_start
        for i, item in enumerate(pending):
            row = rows[i]
            row["kind"] = item.kind
            row["node"] = item.node
            row["name_off"] = offset
            row["name_len"] = len(item.name)
            offset += len(item.name)
            if item.blob is not None:
                row["body_off"] = item.blob.offset
                row["body_len"] = item.blob.size
                row["sha256"] = np.frombuffer(item.blob.sha256, dtype=np.uint8)
            else:
                row["body_off"] = offset
                row["body_len"] = len(item.body)
                offset += len(item.body)
            chunks.append(item.name)
            chunks.append(item.body)
            row["crc"] = record_crc(row.tobytes()[:-4], item.name, item.body)
        heap = b"".join(chunks)
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


_NO_BLOB = FileRef(0, 0, b"")
_KINDS = frozenset((CREATE, DATA, FILE))
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
