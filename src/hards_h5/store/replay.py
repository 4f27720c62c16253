"""Replaying record-log rows into a dataset's in-memory state.

Three ways, one result (what ``docs/format.md`` calls replay):

* :func:`apply_each` goes record by record and stops at the first invalid one;
  it is the reference, and finds exactly where a torn or damaged log ends.
* :func:`apply_all` checks a batch of rows column-wise (numpy, and one C-level
  ``map`` per step) and applies them only if every one is valid.
* :func:`apply_sealed` does the same for rows a matching seal covers (``_seal``),
  so without a CRC per record, and (when most of the heap is live) leaves the JSON
  texts in the heap until read.

The bulk functions change nothing when they return False; the caller then falls
back to :func:`apply_each`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, Final

import numpy as np

from hards_h5.errors import CorruptFileError
from hards_h5.store import codec as _codec
from hards_h5.store import records as _records
from hards_h5.store.layout import CREATE, DATA, FILE, RECORD_DTYPE
from hards_h5.store.records import FileRef, record_sha256

__all__ = ["FileRef", "State", "apply_all", "apply_each", "apply_sealed", "heap_span"]

_SIZE: Final = RECORD_DTYPE.itemsize
_SEPARATOR: Final = ord("/")  # never in a valid name
_NAME_BLOCK: Final = 1 << 16  # names gathered per numpy pass (bounds the temporaries)


@dataclass(slots=True)
class State:
    """Datapoint names, data and files of one log: node 0 is the dataset itself."""

    names: list[str] = field(default_factory=list)
    data: list[bytes | None] = field(default_factory=lambda: [_codec.EMPTY])
    """JSON text per node; None: still in ``sealed_heap`` (see :meth:`body`)."""
    files: list[dict[str, FileRef] | None] = field(default_factory=lambda: [None])
    built_index: dict[str, int] | None = field(default_factory=dict)
    """Name -> node; None until first needed after a sealed replay."""
    sealed_heap: bytes = b""
    sealed_lo: array[int] = field(default_factory=lambda: array("q"))
    sealed_hi: array[int] = field(default_factory=lambda: array("q"))

    @property
    def index(self) -> dict[str, int]:
        """Name -> node of every datapoint (built on first use after a sealed replay)."""
        index = self.built_index
        if index is None:
            index = dict(zip(self.names, range(1, len(self.names) + 1), strict=True))
            if len(index) != len(self.names):
                msg = "damaged record log: two datapoints share a name"
                raise CorruptFileError(msg)
            self.built_index = index
        return index

    def body(self, node: int) -> bytes:
        """Return the JSON text of ``node``'s data."""
        body = self.data[node]
        if body is None:
            lo, hi = self.sealed_lo[node], self.sealed_hi[node]
            return self.sealed_heap[lo:hi] if hi > lo else _codec.EMPTY
        return body

    def add_file(self, node: int, name: str, ref: FileRef) -> None:
        """Record that ``node``'s file ``name`` now holds ``ref``."""
        files = self.files[node]
        if files is None:
            files = self.files[node] = {}
        files[name] = ref


_OFFSET_LIMIT: Final = 1 << 61  # past any real heap: larger offsets are clipped to it


def _clipped(column: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return a uint64 offset or length column as int64, absurd values clipped (no overflow)."""
    wide = column.astype(np.uint64)
    clipped: np.ndarray[Any, Any] = np.minimum(wide, np.uint64(_OFFSET_LIMIT)).astype(np.int64)
    return clipped


def heap_span(rows: np.ndarray[Any, Any]) -> tuple[int, int]:
    """Return the smallest heap range holding every name and body of ``rows``.

    Offsets beyond any real heap (a damaged row) are clipped, so the range stays
    non-negative; such a row then fails its bounds check when replayed.
    """
    if rows.size == 0:
        return 0, 0
    starts = _clipped(rows["name_off"])
    ends = starts + _clipped(rows["name_len"])
    in_heap = np.isin(rows["kind"], (CREATE, DATA))
    body_starts = np.where(in_heap, _clipped(rows["body_off"]), starts)
    body_ends = np.where(in_heap, body_starts + _clipped(rows["body_len"]), ends)
    lo = int(min(starts.min(), body_starts.min()))
    hi = int(max(ends.max(), body_ends.max()))
    return lo, hi


@dataclass(slots=True)
class _Columns:
    """The columns of a batch of rows, with heap offsets made relative to the batch."""

    kind: np.ndarray[Any, Any]
    node: np.ndarray[Any, Any]
    creates: np.ndarray[Any, Any]
    name_lo: np.ndarray[Any, Any]
    name_hi: np.ndarray[Any, Any]
    body_lo: np.ndarray[Any, Any]
    body_hi: np.ndarray[Any, Any]


def _structure(
    state: State, rows: np.ndarray[Any, Any], heap_len: int, heap_lo: int
) -> _Columns | None:
    """Check what can be checked on whole columns; return them, or None if a row fails.

    Kinds known, CREATE numbering in sequence, DATA/FILE only for nodes that exist
    by then, names and (CREATE/DATA) bodies inside the heap.
    """
    kind = rows["kind"]
    creates = kind == CREATE
    in_heap = creates | (kind == DATA)
    if not bool(np.all(in_heap | (kind == FILE))):
        return None
    node = rows["node"].astype(np.int64)
    known = len(state.names)
    created = int(np.count_nonzero(creates))
    if not np.array_equal(node[creates], np.arange(known + 1, known + 1 + created)):
        return None
    if not bool(np.all(node <= known + np.cumsum(creates))):
        return None
    # Offsets are uint64: beyond int64 they turn negative and fail the bounds test.
    name_lo = rows["name_off"].astype(np.int64) - heap_lo
    name_hi = name_lo + rows["name_len"].astype(np.int64)
    body_lo = np.where(in_heap, rows["body_off"].astype(np.int64) - heap_lo, 0)
    body_hi = body_lo + np.where(in_heap, rows["body_len"].astype(np.int64), 0)
    # (A sum that wrapped past int64 is caught by hi >= lo.)
    inside = (name_lo >= 0) & (name_hi >= name_lo) & (name_hi <= heap_len)
    inside &= (body_lo >= 0) & (body_hi >= body_lo) & (body_hi <= heap_len)
    if not bool(np.all(inside)):
        return None
    return _Columns(kind, node, creates, name_lo, name_hi, body_lo, body_hi)


def _file_refs(
    rows: np.ndarray[Any, Any], cols: _Columns, heap: bytes
) -> list[tuple[int, str, FileRef]] | None:
    """Return (node, name, ref) of the FILE rows, or None if a name is not UTF-8."""
    out: list[tuple[int, str, FileRef]] = []
    picked = np.flatnonzero(cols.kind == FILE)
    if picked.size == 0:
        return out
    raw = rows[picked].tobytes()
    for at, i in enumerate(picked.tolist()):
        try:
            name = heap[int(cols.name_lo[i]) : int(cols.name_hi[i])].decode()
        except UnicodeDecodeError:
            return None
        sha = record_sha256(raw, at * _SIZE)
        ref = FileRef(int(rows["body_off"][i]), int(rows["body_len"][i]), sha)
        out.append((int(cols.node[i]), name, ref))
    return out


def _split_names(joined: bytes, count: int) -> list[str] | None:
    """Split ``count`` names joined by "/"; None if not UTF-8 or a name holds a "/".

    Joining keeps invalid UTF-8 invalid, so one decode checks every name.
    """
    if count == 0:
        return []
    try:
        names = joined.decode().split("/")
    except UnicodeDecodeError:
        return None
    return names if len(names) == count else None


def apply_all(state: State, rows: np.ndarray[Any, Any], heap: bytes, heap_lo: int) -> bool:
    """Apply ``rows`` to ``state`` if every one is valid; else change nothing, return False.

    ``heap`` holds the log's heap bytes from offset ``heap_lo``.  Checks each
    row's CRC and everything :func:`apply_each` checks, column-wise.
    """
    cols = _structure(state, rows, len(heap), heap_lo)
    if cols is None:
        return False
    getter = heap.__getitem__
    names = list(map(getter, map(slice, cols.name_lo.tolist(), cols.name_hi.tolist())))
    bodies = list(map(getter, map(slice, cols.body_lo.tolist(), cols.body_hi.tolist())))
    if not np.array_equal(_records.row_crcs(rows, names, bodies), rows["crc"]):
        return False
    create_list = cols.creates.tolist()
    known = len(state.names)
    new_names = _split_names(b"/".join(compress(names, create_list)), sum(create_list))
    if new_names is None:
        return False
    new_index = dict(zip(new_names, range(known + 1, known + 1 + len(new_names)), strict=True))
    if len(new_index) != len(new_names) or not state.index.keys().isdisjoint(new_index):
        return False
    files = _file_refs(rows, cols, heap)
    if files is None:
        return False
    # Every row is valid: apply.  Per node only the order of its own DATA and FILE
    # records matters, and each follows its node's CREATE.
    state.names.extend(new_names)
    state.index.update(new_index)
    state.data.extend([body or _codec.EMPTY for body in compress(bodies, create_list)])
    state.files.extend([None] * len(new_names))
    data = state.data
    data_list = (cols.kind == DATA).tolist()
    targets = compress(cols.node.tolist(), data_list)
    for target, body in zip(targets, compress(bodies, data_list), strict=False):
        data[target] = body
    for node, name, ref in files:
        state.add_file(node, name, ref)
    return True


def apply_sealed(state: State, rows: np.ndarray[Any, Any], heap: bytes) -> bool:
    """Apply a sealed log prefix to an empty ``state``; else change nothing, return False.

    ``rows`` are records ``[0, n)`` and ``heap`` the heap bytes from 0, both known
    to match a seal (their CRCs were checked as a whole).  Every rule of the
    reference replay but the per-record CRC is still checked; names are indexed
    on first lookup, and JSON texts stay in ``heap`` until read unless most of it
    is superseded texts (then the live ones are copied out and the heap let go).
    """
    if state.names or len(state.data) != 1:
        return False
    cols = _structure(state, rows, len(heap), 0)
    if cols is None:
        return False
    created = int(np.count_nonzero(cols.creates))
    datas = cols.kind == DATA
    if bool(np.any(datas & (cols.body_hi == cols.body_lo))):
        return False  # an empty DATA body is not "{}": leave it to the reference replay
    names = _gather_names(heap, cols.name_lo[cols.creates], cols.name_hi[cols.creates])
    if names is None or len(names) != created or len(set(names)) != created:
        return False
    files = _file_refs(rows, cols, heap)
    if files is None:
        return False
    # Each node's data is the body of its last CREATE or DATA row (stable sort by
    # node keeps row order within a node).
    with_body = np.flatnonzero(cols.creates | datas)
    order = with_body[np.argsort(cols.node[with_body], kind="stable")]
    nodes = cols.node[order]
    last = order[np.append(nodes[1:] != nodes[:-1], True)] if order.size else order
    lo = np.zeros(created + 1, dtype=np.int64)
    hi = np.zeros(created + 1, dtype=np.int64)
    lo[cols.node[last]] = cols.body_lo[last]
    hi[cols.node[last]] = cols.body_hi[last]
    state.names.extend(names)
    state.built_index = None  # (names checked unique above)
    state.files.extend([None] * created)
    if int((hi - lo).sum()) * 2 >= len(heap):
        # Mostly live: keep the heap and slice a text out when it is read.
        state.data = [None] * (created + 1)
        state.sealed_heap = heap
        state.sealed_lo, state.sealed_hi = array("q", lo.tobytes()), array("q", hi.tobytes())
    else:
        # Mostly superseded texts: copy out the live ones and let the heap go.
        bodies = map(heap.__getitem__, map(slice, lo.tolist(), hi.tolist()))
        state.data = [body or _codec.EMPTY for body in bodies]
    for node, name, ref in files:
        state.add_file(node, name, ref)
    return True


def _gather_names(
    heap: bytes, lo: np.ndarray[Any, Any], hi: np.ndarray[Any, Any]
) -> list[str] | None:
    """Return the names at heap ranges ``[lo, hi)`` (None if not valid UTF-8 or holding "/").

    The bytes are gathered by numpy into one "/"-separated buffer, decoded and split
    once per block, so no Python object is made per name but the name itself.
    """
    buffer = np.frombuffer(heap, dtype=np.uint8)
    out: list[str] = []
    for start in range(0, lo.size, _NAME_BLOCK):
        block_lo = lo[start : start + _NAME_BLOCK]
        lens = hi[start : start + _NAME_BLOCK] - block_lo
        count, total = int(block_lo.size), int(lens.sum())
        packed_start = np.cumsum(lens) - lens
        within = np.arange(total, dtype=np.int64) - np.repeat(packed_start, lens)
        joined = np.full(total + count - 1, _SEPARATOR, dtype=np.uint8)
        joined[np.repeat(packed_start + np.arange(count), lens) + within] = buffer[
            np.repeat(block_lo, lens) + within
        ]
        names = _split_names(joined.tobytes(), count)
        if names is None:
            return None
        out.extend(names)
    return out


def apply_each(state: State, rows: np.ndarray[Any, Any], heap: bytes, heap_lo: int) -> int:
    """Apply the valid prefix of ``rows`` record by record; return its length.

    ``heap`` holds the log's heap bytes from offset ``heap_lo``.  Anything
    inconsistent (a bad CRC, a CREATE out of sequence, a repeated name, an unknown
    node or kind, undecodable UTF-8) ends the valid prefix.
    """
    names, index, data = state.names, state.index, state.data
    applied = 0
    for kind, node, name, body, _, body_off, body_len, sha256, _ in _records.decode(
        rows, heap, heap_lo, stop_at_bad=True
    ):
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
            state.files.append(None)
        elif kind == DATA and 0 <= node <= len(names):
            data[node] = body
        elif kind == FILE and 0 <= node <= len(names):
            try:
                text = name.decode()
            except UnicodeDecodeError:
                break
            state.add_file(node, text, FileRef(body_off, body_len, sha256))
        else:
            break
        applied += 1
    return applied
