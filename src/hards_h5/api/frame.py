"""pandas views of datasets, built on the bulk read path."""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from hards_h5.errors import InvalidDataError, MissingDependencyError
from hards_h5.store.columns import MISSING as _MISSING
from hards_h5.store.columns import ColumnClashError as _ColumnClashError
from hards_h5.store.columns import flatten as _flatten

if TYPE_CHECKING:
    from hards_h5.store.index import ColumnIndex
    from hards_h5.store.log import DatasetLog

__all__ = ["MissingDependencyError", "frame", "indexed_frame"]  # the error lives in errors.py

_INT64 = (-(2**63), 2**63 - 1)


def frame(
    sources: list[tuple[str, DatasetLog]], *, origin: str = "dataset", files: bool | str = False
) -> Any:
    """Return a DataFrame with one row per datapoint of ``sources``.

    ``sources`` lists (dataset full name, its log), own dataset first.  The JSON
    texts are parsed straight from the logs (no datapoint objects).  Columns:
    ``origin`` (the dataset each datapoint lives in), then one per data key, in
    first-seen order, nested dicts flattened into dotted names (``opt.lr``, the
    names ``find`` accepts); then (``files``) a column ``"files"`` (or the name
    given) listing each datapoint's file names.  The index is the datapoint name
    (``datapoint``).  Column types: integers ``Int64``, booleans ``boolean``,
    strings ``string`` (pandas' nullable types: a missing key or JSON null is
    ``<NA>``), numbers with a fraction ``float64`` (missing is NaN), anything else
    (lists, mixed types, integers beyond 64 bits) ``object`` (missing is None).
    """
    try:
        import pandas as pd  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = "to_dataframe needs pandas: pip install 'hards-h5[pandas]'"
        raise MissingDependencyError(msg) from exc
    files_column = ("files" if files is True else files) or None
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    labels: list[str] = []
    file_lists: list[list[str]] = []
    for dataset, log in sources:
        count = len(log.names)
        rows.extend(map(log.data, range(1, count + 1)))
        names.extend(log.names[:count])
        labels.extend([dataset] * count)
        if files_column:
            file_lists.extend(list(log.files(node)) for node in range(1, count + 1))
    columns: dict[str, list[Any]] = {}
    try:
        for key in dict.fromkeys(chain.from_iterable(rows)):
            _flatten(columns, key, [row.get(key, _MISSING) for row in rows])
    except _ColumnClashError as exc:
        msg = (
            f"{labels[exc.row]}/{names[exc.row]}: two data keys both give the column "
            f"{exc.column!r} (a key holding a dot and a nested dict); rename one of them"
        )
        raise InvalidDataError(msg) from None
    for extra, option in ((origin, "origin"), (files_column, "files")):
        if extra in columns:
            row = next(i for i, value in enumerate(columns[extra]) if value is not _MISSING)
            msg = (
                f"data key {extra!r} (in {labels[row]}/{names[row]}) clashes with the column "
                f"naming each row's {'dataset' if option == 'origin' else 'files'}; pass "
                f"to_dataframe({option}='another_name')"
            )
            raise InvalidDataError(msg)
    index = pd.Index(names, name="datapoint")
    table: dict[str, Any] = {origin: pd.Series(labels, index=index, dtype=object)}
    for column, values in columns.items():
        table[column] = _column(pd, values, index)
    if files_column:
        table[files_column] = pd.Series(file_lists, index=index, dtype=object)
    return pd.DataFrame(table, index=index)


def _column(pd: Any, values: list[Any], index: Any) -> Any:
    """Return one column as a Series of the most precise pandas type that holds it."""
    kinds = set(map(type, values))
    complete = not kinds & {type(None), object}  # (no row lacks the key or holds null)
    kinds.discard(type(None))
    kinds.discard(object)  # (_MISSING)
    dtype: Any = object
    if kinds == {int}:
        present = values if complete else [v for v in values if type(v) is int]
        if _INT64[0] <= min(present) and max(present) <= _INT64[1]:
            if complete:
                return pd.Series(np.array(values, dtype=np.int64), index=index, dtype="Int64")
            dtype = "Int64"
    elif kinds == {bool}:
        dtype = "boolean"
    elif kinds == {str}:
        dtype = "string"
    elif kinds in ({float}, {int, float}):
        if not complete:
            nan = float("nan")
            values = [v if type(v) in (int, float) else nan for v in values]
        return pd.Series(np.array(values, dtype=np.float64), index=index)
    if not complete:
        values = [None if v is _MISSING else v for v in values]
    return pd.Series(values, index=index, dtype=dtype)


def indexed_frame(sources: list[tuple[str, ColumnIndex]], *, origin: str = "dataset") -> Any:
    """Return :func:`frame`'s DataFrame built from the datasets' column indexes, or None.

    ``sources`` are (dataset full name, its complete and current index), own dataset
    first.  The columns come in the order :func:`frame` gives them (first seen, a
    nested dict's keys after the key's own values), with the same dtypes.  None when
    :func:`frame` would give an ``object`` column (a key holding values of different
    kinds in different datasets) or a column clashes with ``origin``: the caller then
    reads the journal, which gives the same table (or error) as always.
    """
    try:
        import pandas as pd  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = "to_dataframe needs pandas: pip install 'hards-h5[pandas]'"
        raise MissingDependencyError(msg) from exc
    order, kinds = _merged_columns(sources)
    if any(".".join(path) == origin for path in order):
        return None
    names = [index.names for _, index in sources]
    labels = [
        np.array([dataset], dtype=object).repeat(len(index.names)) for dataset, index in sources
    ]
    index_ = pd.Index(
        np.concatenate(names) if names else np.zeros(0, dtype=object), name="datapoint"
    )
    table: dict[str, Any] = {
        origin: pd.Series(
            np.concatenate(labels) if labels else np.zeros(0, dtype=object),
            index=index_,
            dtype=object,
        )
    }
    for path in order:
        column = _indexed_column(pd, sources, path, kinds[path], index_)
        if column is None:
            return None
        table[".".join(path)] = column
    return pd.DataFrame(table, index=index_)


def _merged_columns(
    sources: list[tuple[str, ColumnIndex]],
) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], set[str]]]:
    """Return the key paths of the columns of all ``sources`` in :func:`frame`'s order.

    And each path's kinds.  :func:`_flatten` gives a key's own column before its
    nested keys' columns, each level in first-seen order: the order of a tree of
    the paths, each level in first-inserted order.
    """
    tree: dict[str, Any] = {}
    own: set[tuple[str, ...]] = set()  # the paths that are columns
    kinds: dict[tuple[str, ...], set[str]] = {}
    for _, index in sources:
        for path, kind in index.columns:
            node = tree
            for part in path:
                node = node.setdefault(part, {})
            own.add(path)
            kinds.setdefault(path, set()).add(kind)
    order: list[tuple[str, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for key, sub in node.items():
            here = (*path, key)
            if here in own:
                order.append(here)
            walk(sub, here)

    walk(tree, ())
    return order, kinds


def _indexed_column(
    pd: Any,
    sources: list[tuple[str, ColumnIndex]],
    path: tuple[str, ...],
    kinds: set[str],
    index: Any,
) -> Any:
    """Return one column from the indexes, typed as :func:`_column` types it, or None."""
    if kinds == {"str"}:
        texts = [
            source.texts(path)
            if path in source.arrays
            else np.array([None], dtype=object).repeat(len(source.names))
            for _, source in sources
        ]
        return pd.Series(np.concatenate(texts), index=index, dtype="string")
    numeric = {"int": np.int64, "bool": np.bool_}.get(next(iter(kinds)), np.float64)
    if len(kinds) > 1 and not kinds <= {"int", "float", "number"}:
        return None
    if len(kinds) > 1:
        numeric = np.float64
    parts: list[np.ndarray[Any, Any]] = []
    masks: list[np.ndarray[Any, Any]] = []
    for _, source in sources:
        if path in source.arrays:
            parts.append(source.arrays[path].astype(numeric))
            masks.append(source.present[path])
        else:
            parts.append(np.zeros(len(source.names), dtype=numeric))
            masks.append(np.zeros(len(source.names), dtype=np.bool_))
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=numeric)
    present = np.concatenate(masks).astype(np.bool_) if masks else np.zeros(0, dtype=np.bool_)
    if numeric is np.float64:
        return pd.Series(np.where(present, data, np.nan), index=index)
    array = pd.arrays.IntegerArray if numeric is np.int64 else pd.arrays.BooleanArray
    return pd.Series(array(data, ~present), index=index)
