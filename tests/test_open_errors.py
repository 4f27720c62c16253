"""Opening and creating campaign files: every bad input gets a clear HARDSError."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hards_h5 import (
    CorruptFileError,
    DatabaseClosedError,
    DatabaseExistsError,
    FormatVersionError,
    H5Database,
    HARDSError,
    NotAHardsFileError,
    ReadOnlyError,
    StoreFileNotFoundError,
)
from hards_h5.store.layout import ATTR_FORMAT, FORMAT_VERSION


@pytest.fixture
def campaign(db_path: Path) -> Path:
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("mc")
        for i in range(200):
            ds.create_datapoint(f"p{i}").add_data({"i": i, "text": "y" * 100})
    return db_path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreFileNotFoundError, match="no such campaign file") as info:
        H5Database(tmp_path / "missing.h5")
    assert isinstance(info.value, FileNotFoundError)
    assert "missing.h5" in str(info.value)


def test_directory_is_not_a_campaign(tmp_path: Path) -> None:
    with pytest.raises(NotAHardsFileError, match="not a regular file"):
        H5Database(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    path.touch()
    with pytest.raises(NotAHardsFileError, match="empty file"):
        H5Database(path, "r")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes.h5"
    path.write_text("these are not the bytes you are looking for\n" * 10)
    with pytest.raises(NotAHardsFileError, match="not an HDF5 file"):
        H5Database(path)


def test_foreign_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10)
    before = path.read_bytes()
    with pytest.raises(NotAHardsFileError, match="not a hards-h5 campaign file"):
        H5Database(path)
    assert path.read_bytes() == before


def test_newer_format(campaign: Path) -> None:
    with h5py.File(campaign, "r+") as f:
        f.attrs[ATTR_FORMAT] = np.int64(FORMAT_VERSION + 1)
    with pytest.raises(FormatVersionError, match="upgrade hards-h5"):
        H5Database(campaign, "r")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated(campaign: Path, fraction: float) -> None:
    size = campaign.stat().st_size
    with campaign.open("r+b") as fh:
        fh.truncate(int(size * fraction))

    def read_everything() -> None:
        # The structure may survive a cut near the end; reading everything must not.
        with H5Database(campaign, "r") as db:
            db.get_dataset("mc").recursively_get_datapoints()

    with pytest.raises(CorruptFileError) as info:
        read_everything()
    assert str(campaign) in str(info.value)


def test_create_refuses_existing_path_and_leaves_it(campaign: Path, tmp_path: Path) -> None:
    before = campaign.read_bytes()
    stamp = campaign.stat().st_mtime_ns
    with pytest.raises(DatabaseExistsError, match="already exists") as info:
        H5Database.create_database(campaign)
    assert isinstance(info.value, FileExistsError)
    assert campaign.read_bytes() == before
    assert campaign.stat().st_mtime_ns == stamp
    other = tmp_path / "plain.txt"
    other.write_text("keep me")
    with pytest.raises(DatabaseExistsError):
        H5Database.create_database(other)
    assert other.read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def test_create_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreFileNotFoundError, match="parent directory"):
        H5Database.create_database(tmp_path / "no" / "such" / "dir.h5")


def test_bad_mode(campaign: Path) -> None:
    with pytest.raises(ValueError, match="never truncates"):
        H5Database(campaign, "w")  # type: ignore[arg-type]


def test_mode_a_creates_then_opens(db_path: Path) -> None:
    with H5Database(db_path, "a") as db:
        db.create_dataset("x")
    with H5Database(db_path, "a") as db:
        assert db.children == ["x"]


def test_read_only_refuses_every_write(campaign: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    before = campaign.read_bytes()
    with H5Database(campaign, "r") as db:
        ds = db.get_dataset("mc")
        dp = ds.get_datapoint("p0")
        for action in (
            lambda: db.create_dataset("new"),
            lambda: ds.create_dataset("new"),
            lambda: ds.create_datapoint("new"),
            lambda: ds.add_data({"a": 1}),
            lambda: dp.add_data({"a": 1}),
            lambda: dp.add_file(src),
            lambda: ds.add_file(src),
        ):
            with pytest.raises(ReadOnlyError, match="read-only"):
                action()
        assert dp.data == {"i": 0, "text": "y" * 100}
    assert campaign.read_bytes() == before


def test_closed_database(campaign: Path) -> None:
    db = H5Database(campaign)
    ds = db.get_dataset("mc")
    dp = ds.get_datapoint("p1")
    db.close()
    db.close()  # twice is fine
    assert db.closed
    for action in (
        lambda: db.children,
        lambda: ds.datapoints,
        lambda: dp.data,
        lambda: ds.create_datapoint("x"),
        db.flush,
    ):
        with pytest.raises(DatabaseClosedError, match="closed"):
            action()


def test_errors_are_hards_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    with pytest.raises(HARDSError):
        H5Database(path)


def test_copied_file_is_a_complete_campaign(campaign: Path, tmp_path: Path) -> None:
    """One file per campaign: copying it is enough to ship it."""
    copy = tmp_path / "copy.h5"
    shutil.copyfile(campaign, copy)
    with H5Database(copy, "r") as db:
        points = db.get_dataset("mc").recursively_get_datapoints()
        assert [p.data["i"] for p in points] == list(range(200))


def test_create_on_a_directory_says_to_pass_a_file_path(tmp_path: Path) -> None:
    """A directory is not a campaign file: do not advise opening it with H5Database."""
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(DatabaseExistsError) as info:
        H5Database.create_database(folder)
    message = str(info.value)
    assert "H5Database" not in message
    assert f"{folder}: is a directory, not a campaign file" in message
    assert str(folder / "campaign.h5") in message
    assert list(folder.iterdir()) == []
    # an existing campaign file still gets the advice to open it
    with H5Database.create_database(folder / "campaign.h5"):
        pass
    with pytest.raises(DatabaseExistsError, match=r"open it with H5Database\(path\)"):
        H5Database.create_database(folder / "campaign.h5")
