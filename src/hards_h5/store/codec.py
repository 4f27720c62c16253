"""Data in and out: the JSON rules, numpy conversion, validation before any write.

Everything a user hands to ``add_data`` passes through :func:`encode_data` first;
it either returns the canonical JSON text or raises :class:`InvalidDataError`
having written nothing.  Stored data is JSON (RFC 8259) with string keys only,
plus one extension: NaN and the infinities are written as the bare tokens ``NaN``,
``Infinity`` and ``-Infinity``, as Python's :mod:`json` writes and reads them
(strict RFC 8259 has no such values; see docs/format.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from hards_h5.errors import InvalidDataError

__all__ = ["EMPTY", "decode", "encode_data", "may_hold_big_int", "merge", "same_value"]

EMPTY = b"{}"
"""The JSON text (UTF-8 bytes) of a node that has no data yet."""

MAX_DEPTH = 200
"""Deepest nesting accepted; deeper (or cyclic) values raise InvalidDataError."""

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=True, check_circular=False, separators=(",", ":")
)
_SCALARS = (str, int, bool, type(None))
# Digits become "9" and the places a JSON value can start become ":"; then an
# integer of 20 digits or more is ":" and 20 nines, a negative one of 19 or more
# "-" and 19 nines.  A fraction's digits follow a "." and are not matched.
_SHAPE = bytes.maketrans(b"0123456789,[ \n\t\r", b"9" * 10 + b":" * 6)
_BIG_INT_STARTS = (b":" + b"9" * 20, b"-" + b"9" * 19)


def encode_data(new_data: object) -> dict[str, Any]:
    """Validate ``new_data`` and return it converted to plain JSON values.

    Parameters
    ----------
    new_data : object
        A mapping with string keys whose values are JSON types, numpy scalars or
        numpy arrays (converted to numbers, booleans and nested lists).

    Returns
    -------
    dict[str, Any]
        A new dict holding only ``dict``/``list``/``str``/``int``/``float``/
        ``bool``/``None`` values.

    Raises
    ------
    InvalidDataError
        If ``new_data`` is not a mapping, has a non-string key at any depth, nests
        deeper than 200 levels or refers to itself, or holds a value of a type JSON
        cannot represent.  NaN and the infinities are accepted (floats, numpy
        scalars and inside numpy arrays) and stored exactly.

    """
    if not isinstance(new_data, Mapping):
        msg = f"data must be a dict with str keys, not {type(new_data).__name__}"
        raise InvalidDataError(msg)
    return _convert_mapping(new_data, "data", 0, set())


def merge(old: dict[str, Any], converted: dict[str, Any]) -> bytes:
    """Return the JSON text of the object ``old`` with ``converted`` merged in.

    Top-level keys of ``converted`` replace those of the old object; other keys
    are kept (the HARDS ``add_data`` rule).  ``old`` is not changed.
    """
    return dumps({**old, **converted})


def dumps(value: dict[str, Any]) -> bytes:
    """Return compact UTF-8 JSON for an already converted value.

    orjson does the work; integers beyond 64 bits (which it refuses) fall back to
    the standard library, so every value :func:`encode_data` accepts is stored.
    orjson writes NaN and the infinities as ``null``: a text holding ``null``
    is written again by the standard library (``NaN``, ``Infinity``,
    ``-Infinity``), so a non-finite float is never turned into None.
    """
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    else:
        if b"null" not in text:
            # Copy to an exact-size bytes: orjson's result keeps its whole output
            # buffer (>= 4 KiB) allocated, and the writer holds every node's JSON, so
            # without the copy 1M datapoints of ~60 bytes pin ~4 GB (docs/performance.md).
            return bytes(memoryview(text))
    try:
        return _ENCODER.encode(value).encode()
    except UnicodeEncodeError as exc:
        msg = (
            f"data holds a string that is not valid Unicode ({exc.reason}: "
            f"{exc.object[exc.start : exc.end]!r}); nothing was written"
        )
        raise InvalidDataError(msg) from None


def may_hold_big_int(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` may hold an integer beyond 64 bits.

    Cheap and conservative: an integer of 20 digits or more, or a negative one
    of 19 (digits inside a string may count too; they only cost the slower, exact
    parser).
    """
    shape = raw.translate(_SHAPE)
    return any(start in shape for start in _BIG_INT_STARTS)


def decode(raw: bytes | str, *, big_ints: bool | None = None) -> dict[str, Any]:
    """Parse stored JSON (UTF-8) into a fresh dict.

    orjson parses integers beyond 64 bits as floats, silently, so a text that may
    hold one (``big_ints``; checked with :func:`may_hold_big_int` when None) goes
    to the standard library, which keeps every integer exact.  orjson refuses
    the tokens ``NaN``, ``Infinity`` and ``-Infinity`` (it never misreads them),
    so a text orjson refuses is parsed again by the standard library, which reads
    them: the common text costs nothing more.

    Raises
    ------
    ValueError
        If ``raw`` is not JSON (``json.JSONDecodeError``) or not a JSON object.
    """
    if big_ints is False:  # the bulk read path: known to hold no such integer
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = json.loads(raw)
    else:
        text = raw.encode() if isinstance(raw, str) else raw
        exact = may_hold_big_int(text) if big_ints is None else big_ints
        if exact:
            value = json.loads(text)
        else:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = json.loads(text)
    if type(value) is not dict:  # pragma: no cover - guarded by the writer
        msg = "stored data is not a JSON object"
        raise InvalidDataError(msg)
    return value


def same_value(a: Any, b: Any, *, nan_equal: bool = False) -> bool:
    """Whether two JSON values are equal: like ``==``, but ``true`` is not ``1``.

    Python counts ``True == 1`` and ``False == 0.0``; JSON (and MongoDB-style
    filters) keep booleans and numbers apart, at any depth.  Integers and floats
    of the same value are equal (``1 == 1.0``), as JSON numbers.  NaN equals
    nothing, as in Python, unless ``nan_equal`` (two stored NaN are the same
    stored value, e.g. when merging files).
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping):
        return (
            isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(same_value(value, b[key], nan_equal=nan_equal) for key, value in a.items())
        )
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(same_value(x, y, nan_equal=nan_equal) for x, y in zip(a, b, strict=True))
        )
    if isinstance(b, (Mapping, list, tuple)):
        return False
    return bool(a == b) or (nan_equal and a != a and b != b)  # noqa: PLR0124 - NaN test


def _convert_mapping(
    value: Mapping[Any, Any], where: str, depth: int, seen: set[int]
) -> dict[str, Any]:
    _enter(value, where, depth, seen)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            msg = f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str"
            raise InvalidDataError(msg)
        out[key] = _convert(item, f"{where}[{key!r}]", depth + 1, seen)
    seen.discard(id(value))
    return out


def _convert(value: Any, where: str, depth: int, seen: set[int]) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return _convert_mapping(value, where, depth, seen)
    if isinstance(value, (list, tuple)):
        _enter(value, where, depth, seen)
        out = [_convert(v, f"{where}[{i}]", depth + 1, seen) for i, v in enumerate(value)]
        seen.discard(id(value))
        return out
    if isinstance(value, np.ndarray):
        return _convert_array(value, where, depth, seen)
    if isinstance(value, np.generic):
        return _convert_numpy_scalar(value, where)
    msg = (
        f"{where} holds a {type(value).__name__}, which JSON cannot store; "
        "use dict, list, str, int, float, bool, None or numpy numbers/arrays"
    )
    raise InvalidDataError(msg)


def _enter(value: object, where: str, depth: int, seen: set[int]) -> None:
    if id(value) in seen:
        msg = f"{where} refers to itself (a cycle cannot be stored as JSON)"
        raise InvalidDataError(msg)
    if depth >= MAX_DEPTH:
        msg = f"{where} nests deeper than {MAX_DEPTH} levels"
        raise InvalidDataError(msg)
    seen.add(id(value))


def _convert_numpy_scalar(value: np.generic, where: str) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        with np.errstate(over="ignore"):
            number = float(value)
        if number in (math.inf, -math.inf) and bool(np.isfinite(value)):
            msg = f"{where} is {value!r}, too large for a float (64 bits)"
            raise InvalidDataError(msg)
        return number
    if isinstance(value, np.str_):
        return str(value)
    msg = f"{where} is a numpy {value.dtype} scalar, which JSON cannot store"
    raise InvalidDataError(msg)


def _convert_array(value: np.ndarray[Any, Any], where: str, depth: int, seen: set[int]) -> Any:
    kind = value.dtype.kind
    if kind not in "biufU":
        msg = f"{where} is a numpy array of dtype {value.dtype}, which JSON cannot store"
        raise InvalidDataError(msg)
    if depth + value.ndim >= MAX_DEPTH:
        msg = f"{where} nests deeper than {MAX_DEPTH} levels"
        raise InvalidDataError(msg)
    if kind == "f" and value.dtype.itemsize > np.dtype(np.float64).itemsize:
        # long double: tolist() would keep numpy scalars; too big a value would
        # become inf here, and is refused (infinities of its own are kept)
        with np.errstate(over="ignore"):
            wide = value
            value = value.astype(np.float64)
        if bool((np.isfinite(wide) != np.isfinite(value)).any()):
            msg = f"{where} holds a value too large for a float (64 bits)"
            raise InvalidDataError(msg)
    return _convert(value.tolist(), where, depth, seen) if kind == "U" else value.tolist()
