"""Shared fixtures: every test gets its own extraction cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HARDS_H5_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "campaign.h5"
