"""pandas views of datasets, built on the bulk read path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hards_h5.errors import InvalidDataError, MissingDependencyError

if TYPE_CHECKING:
    from hards_h5._log import DatasetLog

__all__ = ["MissingDependencyError", "frame"]  # the error lives in errors.py


def frame(sources: list[tuple[str, DatasetLog]], *, origin: str = "dataset") -> Any:
    """Return a DataFrame with one row per datapoint of ``sources``.

    ``sources`` lists (dataset full name, its log), own dataset first.  The JSON
    texts are parsed straight from the logs (no datapoint objects).  Columns:
    ``origin`` (the dataset each datapoint lives in), then one per top-level data
    key, in first-seen order; the index is the datapoint name (``datapoint``).
    """
    try:
        import pandas as pd  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = "to_dataframe needs pandas: pip install 'hards-h5[pandas]'"
        raise MissingDependencyError(msg) from exc
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    labels: list[str] = []
    for dataset, log in sources:
        count = len(log.names)
        rows.extend(log.data(node) for node in range(1, count + 1))
        names.extend(log.names[:count])
        labels.extend([dataset] * count)
    df = pd.DataFrame.from_records(rows, index=pd.Index(names, name="datapoint"))
    if origin in df.columns:
        clash = next(
            f"{label}/{name}"
            for label, name, row in zip(labels, names, rows, strict=True)
            if origin in row
        )
        msg = (
            f"data key {origin!r} (in {clash}) clashes with the column naming each row's "
            f"dataset; pass to_dataframe(origin='another_name')"
        )
        raise InvalidDataError(msg)
    df.insert(0, origin, pd.Series(labels, index=df.index, dtype=object))
    return df
