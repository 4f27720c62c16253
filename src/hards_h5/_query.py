"""Filters on datapoint data: signac/MongoDB-style filter dicts.

A filter is a dict.  ``{"x": 0.5}`` matches data whose ``x`` equals 0.5;
``{"x": {"$gt": 0.5, "$lte": 1}}`` applies operators; ``{"opt.lr": 0.1}`` reaches
into nested dicts with dots; ``{"$or": [f1, f2]}``, ``{"$and": [...]}`` and
``{"$not": f}`` combine filters.  Operators: ``$eq $ne $gt $gte $lt $lte $in
$nin $exists $regex $type``.  Comparing values of different types (a string with
a number) is simply false, and booleans never equal numbers (``true`` is not
``1``).  :func:`compile_filter` checks a filter once, so a mistake raises
:class:`InvalidFilterError` before any datapoint is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from hards_h5._codec import same_value
from hards_h5.errors import HARDSError

__all__ = ["InvalidFilterError", "compile_filter", "parse_filter"]

Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float,),
    "number": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "null": (type(None),),
}


class InvalidFilterError(HARDSError, ValueError):
    """A filter is malformed (unknown operator, wrong operand type, bad JSON)."""


def parse_filter(text: str) -> dict[str, Any]:
    """Parse a filter given as JSON text (as on the command line)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"filter is not valid JSON ({exc.msg} at column {exc.colno}): {text}"
        raise InvalidFilterError(msg) from None
    if not isinstance(value, dict):
        msg = f'a filter is a JSON object such as \'{{"x": {{"$gt": 0.5}}}}\', not {text}'
        raise InvalidFilterError(msg)
    return value


def _getter(dotted: str) -> Callable[[Mapping[str, Any]], Any]:
    """Return a function reading ``dotted`` (``"a.b"`` is ``data["a"]["b"]``) or _MISSING."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return lambda data: data.get(dotted, _MISSING)

    def lookup(data: Mapping[str, Any]) -> Any:
        value: Any = data
        for part in parts:
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return lookup


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(value: Any, operand: Any) -> bool:
        if value is _MISSING or isinstance(value, bool) != isinstance(operand, bool):
            return False
        try:
            return bool(op(value, operand))
        except TypeError:
            return False

    return compare


def _in(value: Any, operand: Any) -> bool:
    return value is not _MISSING and any(same_value(value, item) for item in operand)


def _regex(value: Any, operand: Any) -> bool:
    return isinstance(value, str) and re.search(operand, value) is not None


def _type(value: Any, operand: Any) -> bool:
    kinds = _TYPES[operand]
    if isinstance(value, bool) and bool not in kinds:
        return False
    return value is not _MISSING and isinstance(value, kinds)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda value, operand: value is not _MISSING and same_value(value, operand),
    "$ne": lambda value, operand: value is _MISSING or not same_value(value, operand),
    "$gt": _ordered(lambda a, b: a > b),
    "$gte": _ordered(lambda a, b: a >= b),
    "$lt": _ordered(lambda a, b: a < b),
    "$lte": _ordered(lambda a, b: a <= b),
    "$in": _in,
    "$nin": lambda value, operand: not _in(value, operand),
    "$exists": lambda value, operand: (value is not _MISSING) == operand,
    "$regex": _regex,
    "$type": _type,
}


def _check_operand(op: str, operand: Any, key: str) -> None:
    if op in {"$in", "$nin"} and not isinstance(operand, list):
        msg = f"filter for {key!r}: {op} takes a list"
        raise InvalidFilterError(msg)
    if op == "$exists" and not isinstance(operand, bool):
        msg = f"filter for {key!r}: $exists takes true or false"
        raise InvalidFilterError(msg)
    if op == "$regex":
        try:
            re.compile(operand)
        except (re.error, TypeError) as exc:
            msg = f"filter for {key!r}: bad $regex {operand!r}: {exc}"
            raise InvalidFilterError(msg) from None
    if op == "$type" and (not isinstance(operand, str) or operand not in _TYPES):
        msg = f"filter for {key!r}: $type must be one of {sorted(_TYPES)}"
        raise InvalidFilterError(msg)


def _field(key: str, condition: Any) -> Predicate:
    if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
        tests: list[tuple[Callable[[Any, Any], bool], Any]] = []
        for op, operand in condition.items():
            if op not in _OPERATORS:
                msg = (
                    f"filter for {key!r}: unknown operator {op!r}; use one of {sorted(_OPERATORS)}"
                )
                raise InvalidFilterError(msg)
            _check_operand(op, operand, key)
            tests.append((_OPERATORS[op], operand))

        get = _getter(key)
        if len(tests) == 1:
            ((test, operand),) = tests
            return lambda data: test(get(data), operand)

        def check(data: Mapping[str, Any]) -> bool:
            value = get(data)
            return all(test(value, operand) for test, operand in tests)

        return check
    get = _getter(key)
    return lambda data: (value := get(data)) is not _MISSING and same_value(value, condition)


def compile_filter(spec: Mapping[str, Any]) -> Predicate:
    """Check ``spec`` and return a predicate on a datapoint's data dict.

    Raises
    ------
    InvalidFilterError
        If ``spec`` is not a dict or uses an unknown operator or a bad operand.

    """
    if not isinstance(spec, Mapping):
        msg = f"a filter is a dict such as {{'x': {{'$gt': 0.5}}}}, not {type(spec).__name__}"
        raise InvalidFilterError(msg)
    parts: list[Predicate] = []
    for key, condition in spec.items():
        if not isinstance(key, str):
            msg = f"filter keys are data keys (str) or operators, not {key!r}"
            raise InvalidFilterError(msg)
        if key in {"$and", "$or"}:
            if not isinstance(condition, list) or not condition:
                msg = f"{key} takes a non-empty list of filters"
                raise InvalidFilterError(msg)
            subs = [compile_filter(sub) for sub in condition]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(compile_filter(condition)))
        elif key.startswith("$"):
            msg = f"unknown top-level operator {key!r}; use $and, $or or $not"
            raise InvalidFilterError(msg)
        else:
            parts.append(_field(key, condition))
    if len(parts) == 1:
        return parts[0]
    return _all(parts)


def _all(subs: list[Predicate]) -> Predicate:
    if len(subs) == 2:  # noqa: PLR2004 - the common "this and that" filter, unrolled
        first, second = subs
        return lambda data: first(data) and second(data)
    return lambda data: all(sub(data) for sub in subs)


def _any(subs: list[Predicate]) -> Predicate:
    return lambda data: any(sub(data) for sub in subs)


def _negate(sub: Predicate) -> Predicate:
    return lambda data: not sub(data)
