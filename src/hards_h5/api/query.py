"""Filters on datapoint data: signac/MongoDB-style filter dicts.

A filter is a dict.  ``{"x": 0.5}`` matches data whose ``x`` equals 0.5;
``{"x": {"$gt": 0.5, "$lte": 1}}`` applies operators; ``{"opt.lr": 0.1}`` reaches
into nested dicts with dots; ``{"$or": [f1, f2]}``, ``{"$and": [...]}`` and
``{"$not": f}`` combine filters.  Operators: ``$eq $ne $gt $gte $lt $lte $in
$nin $exists $regex $type``.  As in MongoDB, a list value matches when the list
itself or any of its elements matches: ``{"tags": "a"}`` matches ``["a", "b"]``,
``{"x": {"$gt": 1}}`` matches ``[0, 2]`` (``$ne`` and ``$nin`` then mean "no
element"; ``$exists`` and ``$type`` look at the value itself).  Comparing values
of different types (a string with a number) is false for that datapoint, and
booleans never equal numbers (``true`` is not ``1``); NaN equals nothing and is
neither greater nor smaller than anything, as in Python.
:func:`compile_filter` checks a filter once, so a mistake raises
:class:`InvalidFilterError` before any datapoint is read; :func:`compile_checked`
also says, after the search, when an ordering operator (``$gt $gte $lt $lte``)
never met a value of its operand's type but did meet values of another type (the
filter ``{"x": {"$gt": "a"}}`` where every ``x`` is a number).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from hards_h5.errors import InvalidFilterError
from hards_h5.store.codec import same_value

__all__ = [
    "InvalidFilterError",
    "TypeCheck",
    "compile_checked",
    "compile_filter",
    "compile_tracked",
    "parse_filter",
]

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
_KINDS: dict[type, str] = {
    int: "number",
    float: "number",
    str: "string",
    bool: "boolean",
    list: "list",
    dict: "object",
    type(None): "null",
}


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


class _TypeCheck:
    """What an ordering operator met during one search: its operand's type or others."""

    __slots__ = ("key", "met", "op", "operand", "others", "want")

    def __init__(self, key: str, op: str, operand: Any) -> None:
        self.key, self.op, self.operand = key, op, operand
        self.want = _KINDS.get(type(operand))
        self.met = False  # a value (or list element) of the operand's type was compared
        self.others: dict[str, None] = {}  # kinds of the values that could not be

    def problem(self) -> str | None:
        if self.met or not self.others:
            return None
        kinds = " or ".join(sorted(self.others))
        return (
            f"filter for {self.key!r}: {self.op} compares with the {self.want or 'value'} "
            f"{self.operand!r}, but every value of {self.key!r} met in the search is a {kinds} "
            f"(or a list of them), so nothing can match; compare with a {kinds} instead"
        )


TypeCheck = _TypeCheck
"""What an ordering operator met during one search (see :func:`compile_tracked`)."""


def _ordered(check: _TypeCheck, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    want = check.want if check.want not in {None, "object", "null"} else ""

    def one(value: Any, operand: Any) -> bool | None:
        """Compare one value; None if its type differs from the operand's."""
        kind = _KINDS.get(type(value), "")
        if kind != want:
            check.others[kind or type(value).__name__] = None
            return None
        check.met = True
        try:
            return bool(op(value, operand))
        except TypeError:  # (lists holding values of different types)
            return False

    def compare(value: Any, operand: Any) -> bool:
        if value is _MISSING:
            return False
        result = one(value, operand)
        if result is None and type(value) is list:
            check.others.pop("list", None)
            return any([one(item, operand) for item in value])  # noqa: C419 - see every type
        return bool(result)

    return compare


def _equal(value: Any, operand: Any) -> bool:
    """``value`` equals ``operand``, or is a list with an element that does."""
    return same_value(value, operand) or (
        type(value) is list and any(same_value(item, operand) for item in value)
    )


def _in(value: Any, operand: Any) -> bool:
    return value is not _MISSING and any(_equal(value, item) for item in operand)


def _regex(value: Any, operand: Any) -> bool:
    if type(value) is list:
        return any(_regex(item, operand) for item in value)
    return isinstance(value, str) and re.search(operand, value) is not None


def _type(value: Any, operand: Any) -> bool:
    kinds = _TYPES[operand]
    if isinstance(value, bool) and bool not in kinds:
        return False
    return value is not _MISSING and isinstance(value, kinds)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda value, operand: value is not _MISSING and _equal(value, operand),
    "$ne": lambda value, operand: value is _MISSING or not _equal(value, operand),
    "$in": _in,
    "$nin": lambda value, operand: not _in(value, operand),
    "$exists": lambda value, operand: (value is not _MISSING) == operand,
    "$regex": _regex,
    "$type": _type,
}
_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
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


def _field(key: str, condition: Any, checks: list[_TypeCheck]) -> Predicate:
    if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
        tests: list[tuple[Callable[[Any, Any], bool], Any]] = []
        for op, operand in condition.items():
            if op in _ORDERING:
                checks.append(_TypeCheck(key, op, operand))
                tests.append((_ordered(checks[-1], _ORDERING[op]), operand))
                continue
            if op not in _OPERATORS:
                known = sorted([*_OPERATORS, *_ORDERING])
                msg = f"filter for {key!r}: unknown operator {op!r}; use one of {known}"
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
    return lambda data: (value := get(data)) is not _MISSING and _equal(value, condition)


def compile_filter(spec: Mapping[str, Any]) -> Predicate:
    """Check ``spec`` and return a predicate on a datapoint's data dict.

    Raises
    ------
    InvalidFilterError
        If ``spec`` is not a dict or uses an unknown operator or a bad operand.

    """
    return _compile(spec, [])


def compile_checked(spec: Mapping[str, Any]) -> tuple[Predicate, Callable[[], None]]:
    """Like :func:`compile_filter`, plus a check to call once the search is done.

    The check raises :class:`InvalidFilterError` if an ordering operator
    (``$gt $gte $lt $lte``) compared only values of another type than its
    operand during the search (``{"x": {"$gt": "a"}}`` where every ``x`` met is
    a number): such a filter can never match, and is a mistake.  Data where some
    values have the operand's type and others do not is fine.
    """
    predicate, _, check_types = compile_tracked(spec)
    return predicate, check_types


def compile_tracked(
    spec: Mapping[str, Any],
) -> tuple[Predicate, list[TypeCheck], Callable[[], None]]:
    """Like :func:`compile_checked`, plus the ordering operators' checks.

    One :class:`TypeCheck` per ``$gt $gte $lt $lte`` in the filter, in the order
    the filter lists them (depth first): ``api/vquery.py`` records in them what
    it compares on a column index, so that the check after the search sees both
    the datapoints matched one by one and those matched column-wise.
    """
    checks: list[TypeCheck] = []
    predicate = _compile(spec, checks)

    def check_types() -> None:
        for check in checks:
            problem = check.problem()
            if problem is not None:
                raise InvalidFilterError(problem)

    return predicate, checks, check_types


def _compile(spec: Mapping[str, Any], checks: list[_TypeCheck]) -> Predicate:
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
            subs = [_compile(sub, checks) for sub in condition]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(_compile(condition, checks)))
        elif key.startswith("$"):
            msg = f"unknown top-level operator {key!r}; use $and, $or or $not"
            raise InvalidFilterError(msg)
        else:
            parts.append(_field(key, condition, checks))
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


def top_keys(spec: Mapping[str, Any]) -> set[str]:
    """Return the top-level data keys a (checked) filter looks at.

    ``{"x": 1, "$or": [{"opt.lr": 0.1}]}`` looks at ``x`` and ``opt``: a datapoint's
    data reduced to these keys matches exactly when the whole data does.
    """
    keys: set[str] = set()
    for key, condition in spec.items():
        if key in {"$and", "$or"}:
            for sub in condition:
                keys |= top_keys(sub)
        elif key == "$not":
            keys |= top_keys(condition)
        else:
            keys.add(key.split(".", 1)[0])
    return keys
