"""The naming rule shared by datasets, datapoints and attached files."""

from __future__ import annotations

import re

from hards.api import VALID_NAME_CHARACTERS

from hards_h5.errors import NameValidationError

__all__ = ["FILE_NAME_MAX", "check_file_name", "check_name", "is_valid_name"]

_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
FILE_NAME_MAX = 255  # bytes: NAME_MAX of the usual filesystems (ext4, XFS, btrfs, tmpfs)


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
        bad = sorted(set(name) - VALID_NAME_CHARACTERS) if name else []
        detail = f"invalid characters {bad!r}" if bad else "it is empty"
        msg = f"invalid {what} name {name!r}: {detail}; use only [A-Za-z0-9._-]"
        raise NameValidationError(msg)
    if name in {".", ".."}:
        msg = f"invalid {what} name {name!r}: '.' and '..' are reserved"
        raise NameValidationError(msg)
    return name


def check_file_name(name: object) -> str:
    """Return ``name`` if it is a valid attached file's name, else raise.

    Besides the naming rule (see :func:`check_name`), ``get_file`` must be able
    to hand the file out under its name, so a name is at most
    :data:`FILE_NAME_MAX` bytes long.

    Raises
    ------
    NameValidationError
        If ``name`` breaks the naming rule or is longer than ``FILE_NAME_MAX`` bytes.

    """
    checked = check_name(name, "file")
    if len(checked.encode()) > FILE_NAME_MAX:
        msg = (
            f"invalid file name {checked[:40]!r}...: it has {len(checked.encode())} "
            f"characters, but a file name has at most {FILE_NAME_MAX} (the longest a "
            "filesystem holds, and get_file hands the file out under its name)"
        )
        raise NameValidationError(msg)
    return checked


def is_valid_name(name: object) -> bool:
    """Whether ``name`` follows the naming rule (see :func:`check_name`)."""
    return (
        isinstance(name, str) and _NAME_RE.fullmatch(name) is not None and name not in {".", ".."}
    )
