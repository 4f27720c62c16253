"""Data keys as table columns: the one rule shared by to_dataframe() and the column index.

Nested dicts are flattened into dotted column names (``{"opt": {"lr": 0.1}}`` gives
the column ``opt.lr``), as signac does; a row lacking a key holds :data:`MISSING`.
``api/frame.py`` builds DataFrames with it and ``store/index.py`` the index at rest,
so that the two can never disagree on which columns a dataset has.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Final

__all__ = ["MISSING", "ColumnClashError", "flatten"]

MISSING: Final[Any] = object()
"""The value of a column in a row that lacks the key."""


class ColumnClashError(Exception):
    """Two data keys give the same column (a key holding a dot and a nested dict).

    Parameters
    ----------
    column : str
        The column both give.
    row : int
        The first row where both hold a value.

    """

    def __init__(self, column: str, row: int) -> None:
        super().__init__(column, row)
        self.column, self.row = column, row


def flatten(columns: dict[str, list[Any]], name: str, values: list[Any]) -> None:
    """Add column ``name`` to ``columns``; nested dicts become dotted columns.

    ``values`` holds one value per row (``MISSING`` where a row lacks the key).
    A row whose value is a non-empty dict gives its keys to ``name.key`` columns
    (recursively); other values (an empty dict too) stay in ``name``.
    """
    if dict in set(map(type, values)) and any(type(value) is dict and value for value in values):
        nested = [value if type(value) is dict else None for value in values]
        kept = [
            MISSING if value else original for value, original in zip(nested, values, strict=True)
        ]
        if any(value is not MISSING for value in kept):
            _add(columns, name, kept)
        for key in dict.fromkeys(chain.from_iterable(value for value in nested if value)):
            sub = [value.get(key, MISSING) if value else MISSING for value in nested]
            flatten(columns, f"{name}.{key}", sub)
    else:
        _add(columns, name, values)


def _add(columns: dict[str, list[Any]], name: str, values: list[Any]) -> None:
    """Add a column; one named like another (``"a.b"`` and ``a`` -> ``b``) shares it."""
    old = columns.setdefault(name, values)
    if old is values:
        return
    for row, (was, value) in enumerate(zip(old, values, strict=True)):
        if value is not MISSING:
            if was is not MISSING:
                raise ColumnClashError(name, row)
            old[row] = value
