"""The API reference as Sphinx renders it: no private types, no docstring parsed as a type."""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import pytest

from hards_h5 import H5Database, H5Datapoint, H5Dataset

CLASSES = (H5Database, H5Dataset, H5Datapoint)


def _public_members(cls: type) -> list[tuple[str, object]]:
    return [(name, member) for name, member in inspect.getmembers(cls) if not name.startswith("_")]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_public_member_returns_a_private_type(cls: type) -> None:
    """Inherited hards.api members such as ``database()`` were annotated ``_TreeNode``."""
    for name, _ in _public_members(cls):
        raw = inspect.getattr_static(cls, name)
        func = raw.fget if isinstance(raw, property) else raw
        if not callable(func):
            continue
        hints = typing.get_type_hints(func, localns={"Self": cls})
        returned = repr(hints.get("return"))
        assert "_TreeNode" not in returned, f"{cls.__name__}.{name} -> {returned}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_property_docstrings_do_not_start_with_a_type(cls: type) -> None:
    """Napoleon reads a property docstring's first line ``X: Y`` as "Type: X"."""
    for name, _ in _public_members(cls):
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, property) and raw.__doc__:
            first = raw.__doc__.strip().splitlines()[0]
            # napoleon skips colons inside roles and literals, as here
            plain = re.sub(r"(:\w+:)?`[^`]*`+", "", first)
            assert ":" not in plain, f"{cls.__name__}.{name}: {first!r}"


def test_database_returns_the_campaign(tmp_path: Path) -> None:
    with H5Database.create_database(tmp_path / "c.h5") as db:
        child = db.create_dataset("a").create_dataset("b")
        point = child.create_datapoint("p")
        assert child.database() is db
        assert point.database() is db
        assert db.database() is db
        assert db.parent is None
        assert typing.get_type_hints(H5Dataset.database)["return"] is H5Database
        assert typing.get_type_hints(H5Datapoint.database)["return"] is H5Database
