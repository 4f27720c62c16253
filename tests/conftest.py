"""Shared fixtures: every test gets its own extraction cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARDS_H5_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "campaign.h5"
