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
from typing import Any

import h5py
import numpy as np

from hards_h5.errors import CorruptFileError, StorageFullError
from hards_h5.store import codec as _codec
from hards_h5.store.layout import (
    BLOBS,
    CREATE,
    DATA,
    FILE,
    HEAP,
    RECORDS,
    check_space,
    is_disk_full,
    read_bytes,
    read_rows,
)
from hards_h5.store.records import Pending, encode
from hards_h5.store.replay import FileRef, State, apply_all, apply_each, apply_sealed, heap_span
from hards_h5.store.seal import SEAL_MIN_ROWS, Seal, append_seal, find_seal, read_matching

__all__ = ["DatasetLog", "FileRef"]

SPILL_ROWS = 16384
"""Pending rows kept in memory before they are appended to the file unasked."""
SPILL_BYTES = 16 << 20
"""Pending heap bytes kept in memory before they are appended to the file unasked."""
_TOUCHED_ROWS = 1 << 14  # records DatasetLog.touched_masks reads at a time (69 bytes each)


class DatasetLog:
    """The replayed record log of one dataset (node 0) and its datapoints (1..n).

    ``use_seal=False`` checks every record's CRC even where a seal would vouch for
    them (``hards-h5 check`` does, to find damage a seal cannot explain).
    """

    def __init__(self, group: h5py.Group, *, writable: bool, use_seal: bool = True) -> None:
        self._group = group
        self._records: h5py.Dataset = group[RECORDS]
        self._heap: h5py.Dataset = group[HEAP]
        self._writable = writable
        self._state = State()
        self._applied = 0  # committed rows replayed
        self._seal: Seal | None = None  # the newest seal known to match the file
        self._pending: list[Pending] = []
        self._pending_bytes = 0
        self.big_ints = False
        """Whether some JSON text of this log may hold an integer beyond 64 bits
        (checked once per text read or written, so each parse need not)."""
        if use_seal:
            self._replay_sealed()
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
        return self._state.body(node)

    def data(self, node: int) -> dict[str, Any]:
        """Return ``node``'s data as a fresh dict."""
        body = self._state.data[node]  # (State.body, inlined: the bulk read path)
        try:
            return _codec.decode(
                self._state.body(node) if body is None else body, big_ints=self.big_ints
            )
        except ValueError as exc:  # a record that passed its CRC but holds no JSON object
            msg = (
                f"{self._group.file.filename}: {self._group.name}: the stored data of "
                f"node {node} is not a JSON object ({exc}); run 'hards-h5 check'"
            )
            raise CorruptFileError(msg) from exc

    def files(self, node: int) -> dict[str, FileRef]:
        """Return ``node``'s files (the live mapping: do not mutate)."""
        return self._state.files[node] or {}

    def file_totals(self) -> tuple[int, int]:
        """Return how many files the dataset and its datapoints hold, and their bytes."""
        count = size = 0
        for files in self._state.files:
            if files:
                count += len(files)
                size += sum(ref.size for ref in files.values())
        return count, size

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
        heap_lo, heap_hi = heap_span(rows)
        heap_len = int(self._heap.shape[0])
        heap_lo = min(heap_lo, heap_len)  # (a damaged offset: nothing to read there)
        heap = read_bytes(self._heap, heap_lo, min(heap_hi, heap_len))
        self.big_ints = self.big_ints or _codec.may_hold_big_int(heap)
        self._applied += self._replay(rows, heap, heap_lo)

    def _replay_sealed(self) -> None:
        """Replay the part of the log its newest seal covers, if the seal matches.

        Two CRCs over the sealed records and heap replace one per record; a seal
        that does not match the bytes is ignored (``refresh`` then checks every
        record).
        """
        total = int(self._records.shape[0])
        if total < SEAL_MIN_ROWS:
            return
        seal = find_seal(self._group, total, int(self._heap.shape[0]))
        if seal is None:
            return
        sealed = read_matching(self._group, seal)
        if sealed is not None and apply_sealed(self._state, *sealed):
            self.big_ints = seal.big_ints
            self._applied = seal.rows
            self._seal = seal

    def seal(self) -> None:
        """Seal the log (see ``_seal``) if it grew by ``SEAL_MIN_ROWS`` since its last seal.

        For a writer closing the file, after :meth:`write_pending`: the next
        reader then replays the sealed part without checking each record's CRC.
        """
        if self._pending:
            msg = "seal() needs the pending records written first"
            raise RuntimeError(msg)
        sealed = self._seal.rows if self._seal is not None else 0
        if self._applied - sealed >= SEAL_MIN_ROWS:
            self._seal = append_seal(self._group, self._applied, self._seal, big_ints=self.big_ints)

    def _replay(self, rows: np.ndarray[Any, Any], heap: bytes, heap_lo: int) -> int:
        """Apply the valid prefix of ``rows``; return how many rows it holds.

        ``heap`` holds the log's heap bytes from offset ``heap_lo``.  Rows that are
        all valid (the normal case: a closed file, or a complete SWMR append) are
        checked and applied column-wise; anything else goes record by record,
        which finds exactly where the valid prefix ends.
        """
        if apply_all(self._state, rows, heap, heap_lo):
            return int(rows.size)
        return apply_each(self._state, rows, heap, heap_lo)

    def _is_swmr_reader(self) -> bool:
        return bool(self._records.file.swmr_mode) and not self._writable

    # ------------------------------------------------------------------ writing
    def create(self, name: str) -> int:
        """Create datapoint ``name`` (already validated, not present); return its node."""
        state = self._state
        node = len(state.names) + 1
        state.names.append(name)
        state.index[name] = node
        state.data.append(_codec.EMPTY)
        state.files.append(None)
        self._push(Pending(CREATE, node, name.encode(), b""))
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
        self._push(Pending(DATA, node, b"", body))

    def set_file(self, node: int, name: str, ref: FileRef) -> None:
        """Record that ``node``'s file ``name`` now holds the blob ``ref``."""
        self._state.add_file(node, name, ref)
        self._push(Pending(FILE, node, name.encode(), b"", ref))

    @property
    def applied(self) -> int:
        """How many of the file's records are committed and replayed."""
        return self._applied

    def touched_masks(self, start: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Return which nodes records ``[start, applied)`` gave data, and which files.

        Two boolean arrays indexed by node number (0: the dataset, ``k``: its
        ``k``-th datapoint), one entry per node.  The records are read a slice at a
        time, their kind and node only: a fold of a million new datapoints needs a
        few MB here, not a Python set of a million ints.
        """
        size = len(self._state.names) + 1
        data = np.zeros(size, dtype=bool)
        files = np.zeros(size, dtype=bool)
        for lo in range(start, self._applied, _TOUCHED_ROWS):
            rows = read_rows(self._records, lo, min(lo + _TOUCHED_ROWS, self._applied))
            kinds, nodes = rows["kind"], rows["node"]
            if nodes.size and int(nodes.max()) >= size:  # (not after a complete replay)
                grow = int(nodes.max()) + 1 - size
                data, files = np.append(data, [False] * grow), np.append(files, [False] * grow)
                size += grow
            data[nodes[(kinds == CREATE) | (kinds == DATA)]] = True
            files[nodes[kinds == FILE]] = True
        return data, files

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

    def _push(self, item: Pending) -> None:
        self._pending.append(item)
        self._pending_bytes += len(item.name) + len(item.body)
        if len(self._pending) >= SPILL_ROWS or self._pending_bytes >= SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        """Append pending records to the file unasked (memory stays bounded).

        The newest datapoint is still being filled in: its data is folded into its
        CREATE record while that is pending, and its files come after it.  Its
        records stay pending (unless they are all there is), so that the file
        never holds a datapoint without the data it was about to get; a writer
        killed before its next ``flush()`` loses it whole.
        """
        last_create = max(
            (i for i, item in enumerate(self._pending) if item.kind == CREATE), default=0
        )
        try:
            self.write_pending(last_create or None)
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

    def write_pending(self, count: int | None = None) -> None:
        """Append pending records to the file: heap bytes first, then the rows.

        ``count`` appends only the first ``count`` pending records (default: all).
        """
        pending = self._pending[:count]
        if not pending:
            return
        heap_start = self._heap.shape[0]
        rows, heap = encode(pending, heap_start)
        # Refuse before HDF5 sees the bytes: an HDF5 write or flush that fails
        # with ENOSPC leaves the library unable to close the file cleanly.
        check_space(self._records.file.filename, len(heap) + rows.nbytes)
        if any(item.blob is not None for item in pending):
            # The bytes of the files these records point at go to the file first:
            # HDF5 writes the metadata of different datasets in no set order, and a
            # SWMR reader that saw a FILE record before /blobs' new extent and chunk
            # index would find the file's bytes missing.
            self._group.file[BLOBS].flush()
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
        self._pending = self._pending[len(pending) :]
        self._pending_bytes = sum(len(item.name) + len(item.body) for item in self._pending)
