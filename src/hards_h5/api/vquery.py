"""Filters evaluated on a dataset's column index: numpy masks instead of a dict per row.

``find()`` reads an ``exact`` column index (``store/index.py``: one typed column
per data key, int64, float64, bool or UTF-8 string, each with a mask of the rows
holding a value) and, for the filters whose meaning the typed columns give
exactly, computes one boolean mask per condition, combined with ``& | ~``: no
datapoint's data is rebuilt.  The result is the per-row predicate's of
``api/query.py``, to the datapoint, NaN, booleans, huge integers and the
ordering operators' type check included:

- each condition is evaluated only on the rows the per-row predicate would
  reach (``$and`` and ``$or`` stop early), so the type check after the search
  records exactly the kinds the per-row predicate would have met;
- integers beyond 64 bits and integer/float comparisons are exact (no rounding
  through float64);
- a key that no column holds is missing everywhere (the index is complete).

What is not reproduced exactly falls back (:meth:`Search.rows` returns None, and
the caller matches the datapoints one by one): an equality (``$eq $ne $in $nin``)
with a dict where the rows reached hold nested dicts under the key, a ``$regex``
that is not a str (a compiled pattern), an ordering operand string
holding NUL or unpaired surrogates, operands of other Python types (tuples, numpy
scalars), and any index that is not ``exact`` (``for_store(exact=True)`` returns
none: null values, columns mixing ints and floats, lists, keys left out).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final

import numpy as np

from hards_h5.api import query as _query
from hards_h5.store.index import ColumnIndex

__all__ = ["Search"]

Mask = np.ndarray[Any, np.dtype[np.bool_]]
_INT64: Final = (-(2**63), 2**63 - 1)
_ORDERING: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
# The query's kind of a value held by a column of each index kind (_query._KINDS).
_KIND: Final = {"int": "number", "float": "number", "bool": "boolean", "str": "string"}
_JSON: Final = {bool, int, float, str, list, dict, type(None)}  # (other operands: per row)
_DTYPE: Final = {"int": "i", "float": "f", "bool": "b", "str": "S"}
# $type: the column kinds whose values are of the type (and whether nested dicts are).
_TYPE: Final[dict[str, tuple[set[str], bool]]] = {
    "str": ({"str"}, False),
    "int": ({"int"}, False),
    "float": ({"float"}, False),
    "number": ({"int", "float"}, False),
    "bool": ({"bool"}, False),
    "list": (set(), False),
    "dict": (set(), True),
    "null": (set(), False),
}


class _Unsupported(Exception):  # noqa: N818 - a signal, never seen by users
    """Raised when this filter on this index needs the per-row predicate."""


class _Field:
    """A data key's conditions: ``(operator, operand, ordering check or None)``."""

    __slots__ = ("path", "tests")

    def __init__(self, key: str, tests: list[tuple[str, Any, _query.TypeCheck | None]]) -> None:
        self.path = tuple(key.split("."))
        self.tests = tests


class _Node:
    """``$and`` (also several keys in one dict), ``$or`` or ``$not`` of sub-filters."""

    __slots__ = ("op", "parts")

    def __init__(self, op: str, parts: list[_Node | _Field]) -> None:
        self.op, self.parts = op, parts


def _plan(spec: Mapping[str, Any], checks: Any) -> _Node | _Field:
    """Mirror ``query._compile``: the same tree, taking its ordering checks in its order."""
    parts: list[_Node | _Field] = []
    for key, condition in spec.items():
        if key in {"$and", "$or"}:
            parts.append(_Node(key, [_plan(sub, checks) for sub in condition]))
        elif key == "$not":
            parts.append(_Node(key, [_plan(condition, checks)]))
        elif isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
            tests = [
                (op, operand, next(checks) if op in _ORDERING else None)
                for op, operand in condition.items()
            ]
            parts.append(_Field(key, tests))
        else:
            parts.append(_Field(key, [("$eq", condition, None)]))
    return parts[0] if len(parts) == 1 else _Node("$and", parts)


class Search:
    """A checked filter: the per-row predicate, and its evaluation on a column index.

    Parameters
    ----------
    spec : Mapping
        The filter (see ``api/query.py``).

    Raises
    ------
    InvalidFilterError
        If ``spec`` is malformed.

    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.matches, checks, self.check_types = _query.compile_tracked(spec)
        walk = iter(checks)
        self._plan = _plan(spec, walk)
        if next(walk, None) is not None:  # pragma: no cover - the trees differ: a bug
            msg = "vquery's plan and query's predicate disagree"
            raise AssertionError(msg)

    def rows(self, index: ColumnIndex) -> np.ndarray[Any, np.dtype[np.intp]] | None:
        """Return the rows of ``index`` that match (0-based, ascending), or None.

        None: this filter on this index needs the per-row predicate (nothing was
        recorded for the type check then).
        """
        if not index.exact:
            return None
        evaluation = _Evaluation(index)
        try:
            mask = evaluation.node(self._plan, np.ones(len(index), dtype=np.bool_))
        except _Unsupported:
            return None
        for check, kind in evaluation.met:
            if kind is None:
                check.met = True
            else:
                check.others[kind] = None
        return np.flatnonzero(mask)


class _Value:
    """What a key holds in each row: a scalar column's values, and/or nested dicts."""

    __slots__ = ("kind", "nested", "scalar", "values")

    def __init__(self, index: ColumnIndex, path: tuple[str, ...]) -> None:
        rows = len(index)
        self.kind: str | None = None
        self.values: np.ndarray[Any, Any] | None = None
        self.scalar: Mask = np.zeros(rows, dtype=np.bool_)
        self.nested: Mask | None = None  # rows where the key holds a (non-empty) dict
        for column, kind in index.columns:
            if column == path:
                values = index.arrays[column]
                if kind not in _DTYPE or values.dtype.kind != _DTYPE[kind]:
                    raise _Unsupported
                self.kind, self.values, self.scalar = kind, values, index.present[column]
            elif column[: len(path)] == path:
                has = index.present[column]
                self.nested = has if self.nested is None else self.nested | has

    def present(self) -> Mask:
        return self.scalar if self.nested is None else self.scalar | self.nested


class _Evaluation:
    """One filter evaluated on one index; ``met``: what the ordering checks met."""

    def __init__(self, index: ColumnIndex) -> None:
        self.index = index
        self.rows = len(index)
        self.values: dict[tuple[str, ...], _Value] = {}
        self.met: list[tuple[_query.TypeCheck, str | None]] = []

    def none(self) -> Mask:
        return np.zeros(self.rows, dtype=np.bool_)

    def node(self, node: _Node | _Field, reached: Mask) -> Mask:
        """Return the rows where ``node`` holds; only those in ``reached`` are meaningful.

        ``reached``: the rows the per-row predicate evaluates ``node`` on (``$and``
        stops at the first false part, ``$or`` at the first true one).
        """
        if isinstance(node, _Field):
            value = self.values.get(node.path)
            if value is None:
                value = self.values[node.path] = _Value(self.index, node.path)
            tests = [partial(self.test, value, *test) for test in node.tests]
            return self.chain(tests, reached, every=True)
        if node.op == "$not":
            return ~self.node(node.parts[0], reached)
        parts = [partial(self.node, part) for part in node.parts]
        return self.chain(parts, reached, every=node.op == "$and")

    @staticmethod
    def chain(parts: Sequence[Callable[[Mask], Mask]], reached: Mask, *, every: bool) -> Mask:
        """``all`` (``every``) or ``any`` of ``parts``, each reaching what Python's would."""
        result: Mask | None = None
        for part in parts:
            mask = part(reached)
            if result is None:
                result = mask
            elif every:
                result = result & mask
            else:
                result = result | mask
            reached = reached & (mask if every else ~mask)
        return reached.copy() if result is None else result  # (no part: all() is True)

    def test(
        self,
        value: _Value,
        op: str,
        operand: Any,
        check: _query.TypeCheck | None,
        reached: Mask,
    ) -> Mask:
        """Return the rows where ``value`` passes one operator."""
        if check is not None:
            return self.order(value, _ORDERING[op], operand, check, reached)
        if op == "$regex":
            return self.regex(value, operand, reached)
        if op in {"$exists", "$type"}:
            return self.kind(value, op, operand)
        hits = self.equal(value, [operand] if op in {"$eq", "$ne"} else operand, reached)
        return hits if op in {"$eq", "$in"} else ~hits

    def kind(self, value: _Value, op: str, operand: Any) -> Mask:
        """``$exists`` and ``$type``."""
        if op == "$exists":
            return value.present() if operand else ~value.present()
        kinds, nested = _TYPE[operand]
        hits = value.scalar if value.kind in kinds else self.none()
        return hits | value.nested if nested and value.nested is not None else hits

    def equal(self, value: _Value, items: list[Any], reached: Mask) -> Mask:
        """Rows whose value ``same_value``-equals one of ``items`` (``$in``; ``$eq``: one)."""
        stored = []  # (the items as the column stores them, those it can hold)
        for item in items:
            kind_of = type(item)
            if kind_of not in _JSON:
                raise _Unsupported
            if kind_of is dict and value.nested is not None and (reached & value.nested).any():
                raise _Unsupported  # (a dict compared with nested dicts)
            same = None if value.values is None else _stored(value.kind, value.values, item)
            if same is not None:
                stored.append(same)
        if not stored or value.values is None:
            return self.none()
        if len(stored) == 1:
            return value.scalar & _mask(value.values == stored[0])
        members = np.array(stored, dtype=value.values.dtype)
        return value.scalar & np.isin(value.values, members)

    def order(
        self,
        value: _Value,
        op: Callable[[Any, Any], Any],
        operand: Any,
        check: _query.TypeCheck,
        reached: Mask,
    ) -> Mask:
        """``$gt $gte $lt $lte``, recording in ``check`` the kinds met in ``reached``."""
        want = check.want if check.want not in {None, "object", "null"} else ""
        kind = _KIND.get(value.kind or "")
        if kind is not None and (reached & value.scalar).any():
            self.met.append((check, None if kind == want else kind))
        if value.nested is not None and (reached & value.nested).any():
            self.met.append((check, "object"))
        values = value.values
        if kind != want or values is None:
            return self.none()
        if kind == "string":
            text = _utf8(operand)
            if text is None:
                raise _Unsupported  # (NUL, unpaired surrogates: the byte order differs)
            return value.scalar & _mask(op(values, text))
        if kind == "boolean":
            return value.scalar & _mask(op(values, operand))
        if value.kind == "int":
            return value.scalar & _int_order(values, op, operand)
        return value.scalar & _float_order(values, op, operand)

    def regex(self, value: _Value, pattern: Any, reached: Mask) -> Mask:
        """``$regex``: each distinct string searched once."""
        if type(pattern) is not str:
            raise _Unsupported  # (a compiled or bytes pattern: as the per-row path does)
        hits = self.none()
        if value.kind != "str" or value.values is None:
            return hits
        rows = reached & value.scalar
        if rows.any():
            texts, where = np.unique(value.values[rows], return_inverse=True)
            found = [re.search(pattern, text.decode()) is not None for text in texts.tolist()]
            hits[rows] = np.array(found, dtype=np.bool_)[where]
        return hits


def _stored(kind: str | None, values: np.ndarray[Any, Any], item: Any) -> Any:
    """Return the value a column of ``kind`` holds where it equals ``item``, or None.

    None: no value the column can hold equals ``item`` (``same_value``: booleans are
    not numbers, ints and floats compare exactly, NaN equals nothing; an exact index
    holds no list, no null, no NUL, no unpaired surrogate).
    """
    kind_of = type(item)
    if kind_of is bool:
        return item if kind == "bool" else None
    if kind_of is str:
        text = _utf8(item) if kind == "str" else None
        return text if text is not None and len(text) <= values.dtype.itemsize else None
    if kind_of is float and kind == "float":
        return None if math.isnan(item) else item
    if kind_of is int and kind == "float":
        return _exact_float(item)
    if kind_of in {int, float} and kind == "int":
        whole = item if kind_of is int else _whole(item)
        return whole if whole is not None and _INT64[0] <= whole <= _INT64[1] else None
    return None


def _mask(result: Any) -> Mask:
    """Return a comparison's result (a bool array), typed."""
    mask: Mask = result
    return mask


def _utf8(text: str) -> bytes | None:
    """``text`` as the index stores it; None if it cannot be (NUL, unpaired surrogates)."""
    if "\0" in text:
        return None
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _exact_float(number: int) -> float | None:
    """Return the float equal to ``number``, or None if none is (Python compares exactly)."""
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if value == number else None


def _whole(number: float) -> int | None:
    """Return the int equal to ``number``, or None (NaN, infinities, fractions)."""
    return int(number) if number.is_integer() else None


def _int_order(values: np.ndarray[Any, Any], op: Callable[[Any, Any], Any], bound: Any) -> Mask:
    """``op(values, bound)`` for int64 ``values``, exactly as Python compares."""
    if type(bound) is float:
        if math.isnan(bound):
            return np.zeros(len(values), dtype=np.bool_)
        if math.isinf(bound):
            return np.full(len(values), op(0, bound), dtype=np.bool_)
        # x > f is x > floor(f) for an integer x, x >= f is x >= ceil(f), and so on
        up = op in {operator.ge, operator.lt}
        bound = math.ceil(bound) if up else math.floor(bound)
    if not _INT64[0] <= bound <= _INT64[1]:
        return np.full(len(values), op(0, bound), dtype=np.bool_)
    result: Mask = op(values, np.int64(bound))
    return result


def _float_order(values: np.ndarray[Any, Any], op: Callable[[Any, Any], Any], bound: Any) -> Mask:
    """``op(values, bound)`` for float64 ``values``, exactly as Python compares."""
    if type(bound) is int:
        try:
            near = float(bound)
        except OverflowError:
            near = math.inf if bound > 0 else -math.inf
        if near > bound:  # no float between bound and near: x > bound is x >= near
            op = {operator.gt: operator.ge, operator.le: operator.lt}.get(op, op)
        elif near < bound:
            op = {operator.ge: operator.gt, operator.lt: operator.le}.get(op, op)
        bound = near
    result: Mask = op(values, bound)
    return result
