"""The column index: one table per dataset of its datapoints' scalar data.

Written by the fold (:func:`update`, called from ``fold.fold_file``), read by
``to_dataframe()`` and ``find()`` (:func:`read`) so that they need not replay and
parse the record log.  In each dataset group (see ``docs/format.md``)::

    index        1-D compound dataset, one row per datapoint in creation order:
                 field "datapoint" (the name), then one field per column
                 (float64, int64, bool or fixed-length UTF-8 string), named
                 like to_dataframe()'s columns ("opt.lr" for nested dicts)
    index_mask   1-D compound dataset of bools, one field per column: True
                 where the datapoint has a value (False: key absent or null)

Attributes of ``index``: ``records`` (the journal rows it reflects: the index is
used only while the log has exactly that many), ``columns`` (JSON list of
``[key path, kind]``, kind one of ``int float number bool str``), ``complete``
(every data key is a column: otherwise ``omitted`` lists the columns left out and
the API reads the journal), ``exact`` (the data dicts can be rebuilt from the
table: complete, no null, no column mixing ints and floats; ``find`` needs it).

The index is derived data, like the tree: the journal is authoritative.
"""

from __future__ import annotations

import json
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

import h5py
import numpy as np

# (the pure flattening rule of to_dataframe, shared so that the columns agree)
from hards_h5.errors import CorruptFileError, HARDSError
from hards_h5.store import layout as _layout
from hards_h5.store.columns import MISSING as _MISSING
from hards_h5.store.columns import ColumnClashError as _ColumnClashError
from hards_h5.store.columns import flatten as _flatten

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from hards_h5.store.log import DatasetLog
    from hards_h5.store.store import Store

__all__ = [
    "INDEX",
    "INDEX_MASK",
    "MAX_COLUMNS",
    "ColumnIndex",
    "current",
    "for_store",
    "index_problems",
    "read",
    "space_needed",
    "update",
]

INDEX: Final = "index"
INDEX_MASK: Final = "index_mask"
NAME_FIELD: Final = "datapoint"
MAX_COLUMNS: Final = 1000
"""More columns than this: no index (the API reads the journal)."""
MAX_FIXED: Final = 256
"""Longer strings (UTF-8 bytes) are not indexed: the columns hold fixed-length strings
(fast to read; a variable-length string leaks its space in HDF5 when rewritten)."""

_CHUNK = 1 << 14
_PARSE_ROWS = 1 << 14  # datapoints a rebuild parses at a time (memory: one slice of dicts)
_PARSE_BYTES = 16 << 20  # ... fewer if their JSON texts are long
_MIN_CHUNK = 16
_SAMPLE = 1024  # rows looked at for repeating strings
_FEW = 16  # repeating strings: at most this many in the sample
_INT64 = (-(2**63), 2**63 - 1)
_FLOATS = {"float", "number"}
_WIDER = {("number", "int"), ("number", "float")}  # (column kind, new rows' kind) that fit


def _kind(values: list[Any]) -> str | None:
    """Return the column kind of ``values`` (None: not one scalar type)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    kinds.discard(object)  # (_MISSING)
    if kinds == {int}:
        present = [v for v in values if type(v) is int]
        return "int" if _INT64[0] <= min(present) and max(present) <= _INT64[1] else None
    if kinds == {float}:
        return "float"
    if kinds == {int, float}:
        ints = [v for v in values if type(v) is int]
        return "number" if _INT64[0] <= min(ints) and max(ints) <= _INT64[1] else None
    if kinds == {bool}:
        return "bool"
    if kinds == {str}:
        texts = [v for v in values if type(v) is str]
        too_long = max(map(len, texts)) * 4 > MAX_FIXED and (
            max(len(v.encode()) for v in texts) > MAX_FIXED
        )
        return None if too_long or any("\0" in v for v in texts) else "str"
    return None


def _dotted(dicts: Iterable[dict[str, Any]]) -> bool:
    """Whether a key of ``dicts`` (at any depth) holds a dot (column names get ambiguous)."""
    dicts = list(dicts)
    keys = dict.fromkeys(chain.from_iterable(dicts))
    if any("." in key for key in keys):
        return True
    for key in keys:
        sub = [d[key] for d in dicts if type(d.get(key)) is dict]
        if sub and _dotted(sub):
            return True
    return False


class _Columns:
    """The columns of some rows: names, kinds, values; what is left out and why."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.kinds: dict[str, str] = {}
        self.omitted: list[str] = []
        self.reason = ""  # why no column is indexed at all (a clash, too many columns)
        self.has_null = False
        self.dotted = _dotted(rows)
        try:
            for key in dict.fromkeys(chain.from_iterable(rows)):
                _flatten(self.columns, key, [row.get(key, _MISSING) for row in rows])
        except _ColumnClashError as exc:
            self.reason = f"two data keys both give the column {exc.column!r}"
            self.columns = {}
            return
        if len(self.columns) > MAX_COLUMNS:
            self.reason = f"{len(self.columns)} columns (more than {MAX_COLUMNS})"
            self.columns = {}
            return
        for name, values in self.columns.items():
            kind = _kind(values)
            if kind is None or not name or name == NAME_FIELD or "\0" in name or self.dotted:
                self.omitted.append(name)
            else:
                self.kinds[name] = kind
                self.has_null = self.has_null or any(v is None for v in values)


def _text_dtype(values: list[Any]) -> np.dtype[Any]:
    longest = max((len(v.encode()) for v in values if type(v) is str), default=1)
    dtype: np.dtype[Any] = h5py.string_dtype("utf-8", _width(longest))
    return dtype


def _width(longest: int) -> int:
    """Return the fixed length for strings of up to ``longest`` bytes: room to append."""
    return min(max(longest, MAX_FIXED), max(8, 1 << max(longest - 1, 0).bit_length()))


def _arrays(
    names: list[str], table: _Columns, dtypes: dict[str, np.dtype[Any]] | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """Return the index rows and mask rows of ``names`` (``dtypes``: the fields to fit)."""
    count = len(names)
    fields: list[tuple[str, Any]] = []
    if dtypes is None:
        width = _width(max((len(n.encode()) for n in names), default=1))
        fields.append((NAME_FIELD, h5py.string_dtype("utf-8", width)))
        for name, kind in table.kinds.items():
            if kind == "str":
                dtype: Any = _text_dtype(table.columns[name])
            else:
                dtype = {"int": "<i8", "float": "<f8", "number": "<f8", "bool": "?"}[kind]
            fields.append((name, dtype))
    else:
        fields = list(dtypes.items())
    rows = np.zeros(count, dtype=fields)
    rows[NAME_FIELD] = [n.encode() for n in names]
    masks = np.zeros(count, dtype=[(n, "?") for n in table.kinds]) if table.kinds else None
    for name in table.kinds:
        values = table.columns[name]
        present = [v is not None and v is not _MISSING for v in values]
        column = rows[name]
        if column.dtype.kind == "S":
            column[:] = [v.encode() if p else b"" for v, p in zip(values, present, strict=True)]
        else:
            fill = False if column.dtype.kind == "b" else 0
            column[:] = [v if p else fill for v, p in zip(values, present, strict=True)]
        assert masks is not None  # noqa: S101 - (there is a column)
        masks[name] = present
    return rows, masks


def _meta(index: h5py.Dataset) -> dict[str, Any]:
    attrs = index.attrs
    return {
        "records": int(np.asarray(attrs.get("records", -1)).item()),
        "columns": json.loads(attrs.get("columns", "[]")),
        "complete": bool(attrs.get("complete", False)),
        "exact": bool(attrs.get("exact", False)),
        "omitted": json.loads(attrs.get("omitted", "[]")),
        "unindexed": str(attrs.get("unindexed", "")),
    }


def current(group: h5py.Group, rows: int) -> bool:
    """Whether ``group``'s index reflects exactly ``rows`` journal records."""
    index = group.get(INDEX)
    if not isinstance(index, h5py.Dataset):
        return False
    return int(np.asarray(index.attrs.get("records", -1)).item()) == rows


def _chunk(rows: int) -> int:
    """Return the chunk length for an index of ``rows`` rows (a power of two)."""
    return min(_CHUNK, max(_MIN_CHUNK, 1 << max(rows - 1, 0).bit_length()))


def _put(group: h5py.Group, name: str, data: np.ndarray[Any, Any] | None) -> h5py.Dataset | None:
    """Write ``data`` as ``group[name]``: in place when the dtype is the same, else anew."""
    old = group.get(name)
    if data is None:
        if old is not None:
            del group[name]
        return None
    if isinstance(old, h5py.Dataset) and old.dtype == data.dtype:
        chunk = old.chunks[0] if old.chunks else 0
        if chunk >= _chunk(len(data)) or chunk == _CHUNK:
            old.resize((len(data),))
            old[...] = data
            return old
    if old is not None:
        del group[name]
    return group.create_dataset(name, data=data, maxshape=(None,), chunks=(_chunk(len(data)),))


def _write(
    group: h5py.Group, log: DatasetLog, table: _Columns, rows: np.ndarray[Any, Any], masks: Any
) -> None:
    _put(group, INDEX_MASK, masks)
    index = _put(group, INDEX, rows)
    assert index is not None  # noqa: S101 - (rows given)
    columns = [[name.split("."), kind] for name, kind in table.kinds.items()]
    _set_meta(index, log.applied, table, columns, table.omitted)


def _set_meta(
    index: h5py.Dataset,
    records: int,
    table: _Columns,
    columns: list[list[Any]],
    omitted: list[str],
) -> None:
    complete = not omitted and not table.dotted and not table.reason
    attrs = index.attrs
    attrs["unindexed"] = table.reason
    attrs["columns"] = json.dumps(columns)
    attrs["omitted"] = json.dumps(omitted)
    attrs["complete"] = complete
    attrs["exact"] = complete and not table.has_null and not any(k == "number" for _, k in columns)
    attrs["records"] = np.int64(records)


def space_needed(group: h5py.Group, log: DatasetLog) -> int:
    """Return the bytes this fold's index update may add (for the free-space check).

    The rows not yet in the index, each about its row size (or, for a new index,
    twice the dataset's average JSON text), plus a chunk's worth.
    """
    index = group.get(INDEX)
    count = len(log.names)
    per_row = 2 * int(group[_layout.HEAP].shape[0]) // max(log.applied, 1) + 64
    have = 0
    if isinstance(index, h5py.Dataset):
        per_row = max(per_row, index.dtype.itemsize + len(index.dtype.names or ()))
        have = min(int(index.shape[0]), count)
    return (count - have) * per_row + _CHUNK * 64


def _parse(log: DatasetLog, start: int, stop: int) -> list[dict[str, Any]]:
    return [log.data(node) for node in range(start + 1, stop + 1)]


def update(group: h5py.Group, log: DatasetLog) -> None:
    """Bring ``group``'s column index up to ``log`` (completely replayed, nothing pending).

    Datapoints only appended since the index was written, with values that fit its
    columns: the new rows are appended.  Otherwise the index is rebuilt (a datapoint's
    data changed, a new key or type).  Data that cannot be indexed (a column clash,
    more than ``MAX_COLUMNS`` columns) gives an index of the names only, marked
    ``unindexed`` (appended to as long as only datapoints are added: it stays so).
    """
    index = group.get(INDEX)
    try:
        if isinstance(index, h5py.Dataset) and _append(group, index, log):
            return
        _rebuild(group, log)
    except (TypeError, ValueError, CorruptFileError) as exc:
        # Data HDF5 cannot hold as a table, or a damaged JSON text ('hards-h5 check'
        # names it): an index of the names only, never a failed close.
        table = _Columns([])
        table.reason = f"cannot be a table ({exc})"
        _write(group, log, table, *_arrays(list(log.names), table, None))


class _Keys:
    """The data keys of some rows as :func:`flatten` nests them, in first-seen order.

    A rebuild learns its columns a slice of rows at a time; this tree, grown by
    every slice, gives their order as the whole table at once would (a nested
    key first seen in a later slice still goes next to its siblings).
    """

    def __init__(self) -> None:
        self.leaf = False  # a row holds a value here that is not a non-empty dict
        self.sub: dict[str, _Keys] = {}

    def grow(self, values: list[Any]) -> None:
        """Add what :func:`flatten` makes of ``values`` (one per row, ``MISSING`` if absent)."""
        if dict in set(map(type, values)) and any(type(v) is dict and v for v in values):
            nested = [v if type(v) is dict else None for v in values]
            if any(not n and v is not _MISSING for n, v in zip(nested, values, strict=True)):
                self.leaf = True
            for key in dict.fromkeys(chain.from_iterable(v for v in nested if v)):
                sub = self.sub.setdefault(key, _Keys())
                sub.grow([v.get(key, _MISSING) if v else _MISSING for v in nested])
        else:
            self.leaf = True

    def names(self, name: str | None = None) -> Iterator[str]:
        """Yield the column names in the order :func:`flatten` adds them (repeats too).

        ``name``: this node's column name (None: the root, whose keys are the top level).
        """
        if self.leaf and name is not None:
            yield name
        for key, sub in self.sub.items():
            yield from sub.names(key if name is None else f"{name}.{key}")


class _Stats:
    """What :func:`_kind` and the string widths need of a column, a slice at a time."""

    def __init__(self) -> None:
        self.types: set[type] = set()
        self.low = self.high = 0
        self.longest = 0  # UTF-8 bytes of the longest string
        self.nul = False
        self.null = False

    def add(self, values: list[Any]) -> None:
        """Take in one slice's values of the column."""
        types = set(map(type, values))
        self.null = self.null or type(None) in types
        types.discard(type(None))
        types.discard(object)  # (_MISSING)
        if int in types:
            ints = [v for v in values if type(v) is int]
            low, high = min(ints), max(ints)
            self.low, self.high = (
                (low, high) if int not in self.types else (min(low, self.low), max(high, self.high))
            )
        if str in types:
            texts = [v for v in values if type(v) is str]
            self.longest = max(self.longest, *(len(v.encode()) for v in texts))
            self.nul = self.nul or any("\0" in v for v in texts)
        self.types |= types

    def kind(self) -> str | None:
        """Return the column kind, as :func:`_kind` gives it for all the values at once."""
        in_range = _INT64[0] <= self.low and self.high <= _INT64[1]
        kinds = {
            frozenset({int}): "int" if in_range else None,
            frozenset({float}): "float",
            frozenset({int, float}): "number" if in_range else None,
            frozenset({bool}): "bool",
            frozenset({str}): None if self.longest > MAX_FIXED or self.nul else "str",
        }
        return kinds.get(frozenset(self.types))


def _slices(log: DatasetLog, count: int) -> list[tuple[int, int]]:
    """Return the row ranges a rebuild parses one at a time (rows and JSON bytes bounded)."""
    out, lo, size = [], 0, 0
    for node in range(1, count + 1):
        size += len(log.data_json(node))
        if node - lo >= _PARSE_ROWS or size >= _PARSE_BYTES:
            out.append((lo, node))
            lo, size = node, 0
    if lo < count or not out:
        out.append((lo, count))
    return out


def _flat(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Return the columns of ``rows`` as :class:`_Columns` flattens them (may raise a clash)."""
    columns: dict[str, list[Any]] = {}
    for key in dict.fromkeys(chain.from_iterable(rows)):
        _flatten(columns, key, [row.get(key, _MISSING) for row in rows])
    return columns


def _learn(
    rows: list[dict[str, Any]], keys: _Keys, stats: dict[str, _Stats]
) -> tuple[dict[str, list[Any]], bool]:
    """Add a slice of rows to ``keys`` and ``stats``; return its columns, whether dotted."""
    columns = _flat(rows)
    for key in dict.fromkeys(chain.from_iterable(rows)):
        keys.sub.setdefault(key, _Keys()).grow([row.get(key, _MISSING) for row in rows])
    if len(columns) <= MAX_COLUMNS:
        for name, values in columns.items():
            stats.setdefault(name, _Stats()).add(values)
    return columns, _dotted(rows)


def _scan(
    log: DatasetLog, slices: list[tuple[int, int]]
) -> tuple[_Columns, dict[str, np.dtype[Any]], dict[str, list[Any]] | None] | None:
    """Learn a rebuild's columns, kinds and field types a slice of rows at a time.

    Returns the table (its ``columns`` empty: the values come in the second pass),
    the index's fields, and the one slice's columns if there is only one; None if
    two data keys give one column (the whole table is then built at once, which
    names the first clash as always).
    """
    keys, stats = _Keys(), dict[str, _Stats]()
    dotted, kept = False, None
    for lo, hi in slices:
        try:
            columns, has_dot = _learn(_parse(log, lo, hi), keys, stats)
        except _ColumnClashError:
            return None
        dotted = dotted or has_dot
        kept = columns if len(slices) == 1 else None
        del columns  # (before the next slice is parsed: one slice in memory at a time)
    table = _Columns([])
    table.dotted = dotted
    order = list(dict.fromkeys(keys.names()))
    if len(order) > MAX_COLUMNS:
        table.reason = f"{len(order)} columns (more than {MAX_COLUMNS})"
        order = []
    width = _width(max((len(n.encode()) for n in log.names), default=1))
    fields: dict[str, Any] = {NAME_FIELD: h5py.string_dtype("utf-8", width)}
    for name in order:
        kind = stats[name].kind()
        if kind is None or not name or name == NAME_FIELD or "\0" in name or dotted:
            table.omitted.append(name)
            continue
        table.kinds[name] = kind
        table.has_null = table.has_null or stats[name].null
        if kind == "str":
            fields[name] = h5py.string_dtype("utf-8", _width(stats[name].longest))
        else:
            fields[name] = {"int": "<i8", "float": "<f8", "number": "<f8", "bool": "?"}[kind]
    return table, fields, kept


def _target(
    group: h5py.Group, name: str, dtype: np.dtype[Any] | None, count: int
) -> h5py.Dataset | None:
    """Return ``group[name]`` ready for ``count`` rows of ``dtype``, as :func:`_put` makes it."""
    old = group.get(name)
    if dtype is None:
        if old is not None:
            del group[name]
        return None
    if isinstance(old, h5py.Dataset) and old.dtype == dtype:
        chunk = old.chunks[0] if old.chunks else 0
        if chunk >= _chunk(count) or chunk == _CHUNK:
            old.resize((count,))
            return old
    if old is not None:
        del group[name]
    return group.create_dataset(
        name, shape=(count,), dtype=dtype, maxshape=(None,), chunks=(_chunk(count),)
    )


def _fill(
    index: h5py.Dataset,
    mask_set: h5py.Dataset | None,
    log: DatasetLog,
    rows: tuple[int, int],
    *,
    kinds: dict[str, str],
    fields: dict[str, Any],
    kept: dict[str, list[Any]] | None,
) -> None:
    """Parse the datapoints of ``rows`` (unless ``kept``) and write their index rows."""
    lo, hi = rows
    fit = _Columns([])
    fit.kinds = kinds
    if kinds:
        columns = kept if kept is not None else _flat(_parse(log, lo, hi))
        fit.columns = {n: columns.get(n, [_MISSING] * (hi - lo)) for n in kinds}
    table, masks = _arrays(log.names[lo:hi], fit, fields)
    if hi > lo:
        index[lo:hi] = table
        if mask_set is not None and masks is not None:
            mask_set[lo:hi] = masks


def _rebuild(group: h5py.Group, log: DatasetLog) -> None:
    """Write ``group``'s index anew, a slice of rows at a time (two passes over the JSON).

    The first pass learns the columns, kinds and string widths (as the whole
    table at once would give them), the second parses each slice again, fills
    its rows and writes them: memory holds one slice of parsed data, not a
    million dicts.
    """
    count = len(log.names)
    slices = _slices(log, count)
    scanned = _scan(log, slices)
    if scanned is None:
        table = _Columns(_parse(log, 0, count))
        _write(group, log, table, *_arrays(list(log.names), table, None))
        return
    table, fields, kept = scanned
    dtype = np.dtype(list(fields.items()))
    mask_dtype = np.dtype([(n, "?") for n in table.kinds]) if table.kinds else None
    mask_set = _target(group, INDEX_MASK, mask_dtype, count)
    index = _target(group, INDEX, dtype, count)
    assert index is not None  # noqa: S101 - (a dtype given)
    for lo, hi in slices:
        _fill(index, mask_set, log, (lo, hi), kinds=table.kinds, fields=fields, kept=kept)
    columns_meta = [[name.split("."), kind] for name, kind in table.kinds.items()]
    _set_meta(index, log.applied, table, columns_meta, table.omitted)


def _append(group: h5py.Group, index: h5py.Dataset, log: DatasetLog) -> bool:
    """Append the datapoints created since ``index`` was written; False if it cannot."""
    meta = _meta(index)
    done, have, count = meta["records"], int(index.shape[0]), len(log.names)
    if done == log.applied:
        return True
    chunk = index.chunks[0] if index.chunks else 0
    if (
        not 0 <= done < log.applied
        or (count > 4 * chunk and chunk != _CHUNK)  # longer chunks: rebuilt (amortised)
        # an indexed datapoint's data changed (the dataset's own, node 0, is not indexed)
        or log.touched_masks(done)[0][1 : have + 1].any()
    ):
        return False
    mask_set = group.get(INDEX_MASK)
    known = {".".join(path): kind for path, kind in meta["columns"]}
    if known and not isinstance(mask_set, h5py.Dataset):
        return False
    table = _Columns([] if meta["unindexed"] or count == have else _parse(log, have, count))
    dtypes = {name: index.dtype.fields[name][0] for name in index.dtype.names or ()}
    names = log.names[have:count]
    if not _fits(meta, table, known, dtypes, names):
        return False
    fit = _Columns([])
    fit.columns = {
        name: table.columns.get(name, [_MISSING] * len(names)) for name in dict.fromkeys(known)
    }
    fit.kinds = dict(known)
    fit.reason = meta["unindexed"]
    fit.has_null = not meta["exact"] or any(
        v is None for values in fit.columns.values() for v in values
    )
    rows, masks = _arrays(names, fit, dtypes)
    index.resize((count,))
    index[have:count] = rows
    if masks is not None:
        mask_set.resize((count,))
        mask_set[have:count] = masks
    _set_meta(index, log.applied, fit, meta["columns"], list(meta["omitted"]))
    return True


def _fits(
    meta: dict[str, Any],
    table: _Columns,
    known: dict[str, str],
    dtypes: dict[str, np.dtype[Any]],
    names: list[str],
) -> bool:
    """Whether new rows (``table``, datapoints ``names``) fit an index's columns as they are."""
    if (
        table.reason
        or table.dotted
        or (not meta["complete"] and not meta["omitted"] and not meta["unindexed"])
    ):
        return False  # (an index left incomplete by dotted keys: rebuilt)
    for name, values in table.columns.items():
        if name not in known:
            if name not in meta["omitted"]:
                return False  # a new column (it would go in first-seen order): rebuild
            continue
        kind = table.kinds.get(name)
        if kind is None and any(v is not None and v is not _MISSING for v in values):
            return False  # (values of another type: no longer one scalar column)
        if kind is not None and kind != known[name] and (known[name], kind) not in _WIDER:
            return False
        if kind == "str" and any(
            len(v.encode()) > dtypes[name].itemsize for v in values if type(v) is str
        ):
            return False
    return all(len(n.encode()) <= dtypes[NAME_FIELD].itemsize for n in names)


class ColumnIndex:
    """One dataset's index, read: names, and per column its kind, values and mask."""

    def __init__(
        self, names: np.ndarray[Any, Any], columns: list[tuple[tuple[str, ...], str]]
    ) -> None:
        self._names = names  # (str objects, or UTF-8 bytes decoded when first asked)
        self.columns = columns
        self.arrays: dict[tuple[str, ...], np.ndarray[Any, Any]] = {}
        self.present: dict[tuple[str, ...], np.ndarray[Any, Any]] = {}
        self.exact = False

    @property
    def names(self) -> np.ndarray[Any, Any]:
        """The datapoint names, an object array of str (decoded when first asked)."""
        if self._names.dtype.kind == "S":
            self._names = _objects(self._names)
        return self._names

    def __len__(self) -> int:
        """Return the number of rows (datapoints)."""
        return len(self._names)

    def names_of(self, rows: np.ndarray[Any, Any]) -> list[str]:
        """Return the names of the datapoints at ``rows`` (0-based), decoding only those."""
        names = self._names[rows]
        out: list[str] = (_texts(names) if names.dtype.kind == "S" else names).tolist()
        return out

    def texts(self, path: tuple[str, ...]) -> np.ndarray[Any, Any]:
        """Return string column ``path`` as an object array of str, None where masked."""
        out = _objects(self.arrays[path])
        out[~self.present[path]] = None
        return out

    def rows(self, keys: set[str] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every datapoint's data rebuilt from the columns (for an exact index).

        ``keys``: only these top-level keys (what a filter looks at).  Built
        ``_CHUNK`` rows at a time, so memory holds one chunk of dicts.
        """
        paths = [path for path in self.arrays if keys is None or path[0] in keys]
        for start in range(0, len(self.names), _CHUNK):
            yield from self._rows(paths, start, min(start + _CHUNK, len(self.names)))

    def _rows(self, paths: list[tuple[str, ...]], start: int, stop: int) -> list[dict[str, Any]]:
        dicts: list[dict[str, Any]] = [{} for _ in range(start, stop)]
        for path in paths:
            column = self.arrays[path]
            present = self.present[path][start:stop].tolist()
            values = column[start:stop]
            values = _texts(values).tolist() if values.dtype.kind == "S" else values.tolist()
            if len(path) == 1:
                key = path[0]
                for data, value, has in zip(dicts, values, present, strict=True):
                    if has:
                        data[key] = value
                continue
            *parents, key = path
            for data, value, has in zip(dicts, values, present, strict=True):
                if has:
                    node = data
                    for part in parents:
                        node = node.setdefault(part, {})
                    node[key] = value
        return dicts


def _texts(raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Decode a fixed-length UTF-8 string column (numpy bytes) into a str array."""
    try:
        return raw.astype("U")  # (ASCII, the common case: decoded in C)
    except UnicodeDecodeError:
        return np.array([text.decode() for text in raw.tolist()], dtype=object)


def _objects(raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Decode a fixed-length UTF-8 string column into an object array of str.

    A value that repeats (a tag) is decoded once, and every row holding it refers
    to the same str (memory): the values seen in the first rows, if few, are
    matched column-wise; the rest are decoded one by one.
    """
    sample = np.unique(raw[:_SAMPLE])
    if len(sample) > _FEW:
        return _texts(raw).astype(object)
    out = np.empty(len(raw), dtype=object)
    todo: np.ndarray[Any, Any] | None = None
    for value in sample.tolist():
        hit = raw == value
        out[hit] = value.decode()
        todo = ~hit if todo is None else todo & ~hit
    if todo is not None and todo.any():
        out[todo] = _texts(raw[todo])
    return out


def read(group: h5py.Group, rows: int, *, exact: bool = False) -> ColumnIndex | None:
    """Read ``group``'s index if it reflects ``rows`` records and is complete, else None.

    ``exact``: also require that the data dicts can be rebuilt from it (``find``).
    """
    index = group.get(INDEX)
    if not isinstance(index, h5py.Dataset):
        return None
    meta = _meta(index)
    if meta["records"] != rows or not meta["complete"] or (exact and not meta["exact"]):
        return None
    table = index[()]
    columns = [(tuple(path), kind) for path, kind in meta["columns"]]
    out = ColumnIndex(table[NAME_FIELD], columns)
    out.exact = meta["exact"]
    masks = group[INDEX_MASK][()] if columns else None
    for path, _kind in columns:
        field = ".".join(path)
        out.arrays[path] = table[field]
        assert masks is not None  # noqa: S101 - (there are columns)
        out.present[path] = masks[field]
    return out


def index_problems(group: h5py.Group, log: DatasetLog) -> list[str]:
    """Return how ``group``'s index (if current for ``log``) differs from the journal."""
    index = group.get(INDEX)
    if not isinstance(index, h5py.Dataset):
        return []
    meta = _meta(index)
    if meta["records"] != log.applied:
        return []  # stale: never used, rebuilt by the next fold
    if int(index.shape[0]) != len(log.names):
        return [f"the column index has {index.shape[0]} rows, the journal {len(log.names)}"]
    table = index[()]
    names = [n.decode() for n in table[NAME_FIELD].tolist()]
    problems: list[str] = []
    if names != log.names:
        problems.append("the column index's datapoint names differ from the journal's")
    try:
        want = _Columns(_parse(log, 0, len(log.names)))
    except CorruptFileError:
        return problems  # (a damaged JSON text: check reports it as such)
    have = [(".".join(path), kind) for path, kind in meta["columns"]]
    masks = group.get(INDEX_MASK)
    if (
        bool(want.reason) != bool(meta["unindexed"])
        or have != list(want.kinds.items())
        or (want.kinds and not isinstance(masks, h5py.Dataset))
    ):
        return [*problems, "the column index's columns differ from the journal's keys"]
    if want.kinds:
        problems.extend(_cell_problems(table, masks[()], want, names))
    return problems


def _cell_problems(
    table: np.ndarray[Any, Any], masks: np.ndarray[Any, Any], want: _Columns, names: list[str]
) -> list[str]:
    """Return the columns of ``table`` whose cells differ from the journal's ``want``."""
    problems = []
    for name, kind in want.kinds.items():
        values, present = table[name], masks[name]
        for row, value in enumerate(want.columns[name]):
            has = value is not None and value is not _MISSING
            if bool(present[row]) != has or (has and not _same(values[row], value, kind)):
                problems.append(
                    f"the column index's {name!r} differs from datapoint {names[row]!r}"
                )
                break
    return problems


def _same(stored: Any, value: Any, kind: str) -> bool:
    if kind == "str":
        text = stored.decode() if isinstance(stored, bytes) else stored
        return bool(text == value)
    if kind in _FLOATS:
        got = float(stored)
        return got == float(value) or (got != got and value != value)  # noqa: PLR0124 - NaN
    return bool(stored.item() == value) if kind != "bool" else bool(stored) is value


def for_store(store: Store, names: tuple[str, ...], *, exact: bool = False) -> ColumnIndex | None:
    """Return the dataset at ``names``' index if it is current for ``store``, else None.

    Current: the file's log has exactly the rows the index reflects, and this
    process has nothing pending for it; never for a SWMR reader or a live writer
    (the log grows under them).  ``exact``: as for :func:`read`.
    """
    if store.live or store.swmr_reader:
        return None
    log = store.logs.get(names)
    if log is not None and (log.has_pending or log.torn_rows):
        return None
    try:
        group = store.group(names)
    except HARDSError:
        return None
    rows = _layout.log_rows(group)
    if log is not None and log.applied != rows:
        return None
    return read(group, rows, exact=exact)
