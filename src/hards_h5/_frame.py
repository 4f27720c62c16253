"""pandas views of datasets, built on the bulk read path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hards_h5 import _codec
from hards_h5.errors import HARDSError

if TYPE_CHECKING:
    from hards_h5._log import DatasetLog

__all__ = ["MissingDependencyError", "frame"]


class MissingDependencyError(HARDSError, ImportError):
    """An optional dependency (pandas, mpi4py) is not installed."""


def frame(sources: list[tuple[str, DatasetLog]]) -> Any:
    """Return a DataFrame with one row per datapoint of ``sources``.

    ``sources`` lists (dataset full name, its log), own dataset first.  Columns:
    ``dataset`` (where the datapoint lives), then one per top-level data key, in
    first-seen order; the index is the datapoint name (``datapoint``).
    """
    try:
        import pandas as pd  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        msg = "to_dataframe needs pandas: pip install 'hards-h5[pandas]'"
        raise MissingDependencyError(msg) from exc
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    for dataset, log in sources:
        for node, name in enumerate(log.names, start=1):
            row = _codec.decode(log.data_json(node))
            row["dataset"] = dataset
            rows.append(row)
            names.append(name)
    df = pd.DataFrame.from_records(rows, index=pd.Index(names, name="datapoint"))
    if "dataset" in df.columns:
        df.insert(0, "dataset", df.pop("dataset"))
    else:
        df.insert(0, "dataset", pd.Series(dtype=object))
    return df
