"""The naming rule shared by datasets, datapoints and attached files."""

from __future__ import annotations

import re

from hards_h5.errors import NameValidationError

__all__ = ["check_name", "is_valid_name"]

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid HARDS name, else raise.

    Parameters
    ----------
    name : object
        The candidate name.
    what : str
        What is being named (``"dataset"``, ``"datapoint"``, ``"file"``), used in
        the error message.

    Returns
    -------
    str
        The name, unchanged.

    Raises
    ------
    NameValidationError
        If ``name`` is not a string, is empty, is ``.`` or ``..``, or contains a
        character outside ``[A-Za-z0-9._-]``.

    """
    if not isinstance(name, str):
        msg = f"{what} name must be a str, not {type(name).__name__}"
        raise NameValidationError(msg)
    if _NAME_RE.fullmatch(name) is None:
        bad = sorted(set(name) - set(_valid_chars())) if name else []
        detail = f"invalid characters {bad!r}" if bad else "it is empty"
        msg = f"invalid {what} name {name!r}: {detail}; use only [A-Za-z0-9._-]"
        raise NameValidationError(msg)
    if name in {".", ".."}:
        msg = f"invalid {what} name {name!r}: '.' and '..' are reserved"
        raise NameValidationError(msg)
    return name


def is_valid_name(name: object) -> bool:
    """Whether ``name`` follows the naming rule (see :func:`check_name`)."""
    return (
        isinstance(name, str) and _NAME_RE.fullmatch(name) is not None and name not in {".", ".."}
    )


def _valid_chars() -> str:
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
