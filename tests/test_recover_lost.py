"""``recover`` names the datapoints whose newest state was in a damaged record."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_runner import hards
from hards_h5 import H5Database, recover
from hards_h5.store.layout import DATA, FILE, HEAP, RECORDS, dataset_path


def _campaign(path: Path, tmp_path: Path) -> None:
    """``ds/p1`` gets data v=1, 2, 3 and file out.txt twice, each in its own record."""
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("first")
    two.write_text("second")
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        p1 = ds.create_datapoint("p1")
        p1.add_data({"v": 1})
        db.flush()
        p1.add_data({"v": 2})
        p1.add_file(one, name="out.txt")
        db.flush()
        ds.create_datapoint("p2").add_data({"w": 1})
        db.flush()
        p1.add_data({"v": 3})
        db.flush()
        p1.add_file(two, name="out.txt")
        db.flush()
        ds.get_datapoint("p2").add_data({"w": 2})  # the last record: p2's


def _damage(path: Path, kind: int, which: int, where: str) -> None:
    """Flip bytes of ``p1``'s ``which``-th record of ``kind`` (in its row, or its body)."""
    with h5py.File(path, "r+") as f:
        group = f[dataset_path(("ds",))]
        records = group[RECORDS]
        rows = records[...]
        mine = [i for i, r in enumerate(rows) if r["kind"] == kind and r["node"] == 1]
        i = mine[which]
        if where == "row":
            row = rows[i].copy()
            row["sha256"][:4] ^= 0xFF
            records[i] = row
        else:
            heap = group[HEAP]
            at = int(rows[i]["body_off"]) + 1
            heap[at] = np.uint8(heap[at] ^ 0x20)


@pytest.mark.parametrize("where", ["row", "body"])
def test_recover_names_a_datapoint_whose_newest_data_was_damaged(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, tmp_path)
    _damage(path, DATA, -1, where)  # p1's v=3: its newest data
    report = recover(path)
    assert report.lost_newest == ["ds/p1"]
    lines = [line for line in report.dropped if "ds/p1" in line]
    assert len(lines) == 1
    assert "newest data" in lines[0]
    with H5Database(path, "r") as db:
        ds = db.get_dataset("ds")
        assert ds.get_datapoint("p1").data == {"v": 2}  # what it had before
        assert ds.get_datapoint("p2").data == {"w": 2}


def test_recover_names_nothing_when_the_damaged_data_was_superseded(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, tmp_path)
    _damage(path, DATA, 0, "row")  # p1's v=2, replaced by v=3 later
    report = recover(path)
    assert report.lost_newest == []
    assert any("1 incomplete or damaged record" in line for line in report.dropped)
    with H5Database(path, "r") as db:
        assert db.recursively_get_datapoint("ds/p1").data == {"v": 3}


def test_recover_names_a_datapoint_whose_newest_file_version_was_damaged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, tmp_path)
    _damage(path, FILE, -1, "row")  # out.txt's second version
    report = recover(path)
    assert report.lost_newest == ["ds/p1"]
    assert any("ds/p1" in line and "'out.txt'" in line for line in report.dropped)
    with H5Database(path, "r") as db:
        point = db.recursively_get_datapoint("ds/p1")
        assert point.get_file("out.txt").read_text() == "first"
        assert point.data == {"v": 3}


def test_recover_command_names_the_datapoint(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, tmp_path)
    _damage(path, DATA, -1, "row")
    done = hards("recover", str(path))
    assert done.returncode == 0, done.stderr
    dropped = [
        line for line in done.stderr.splitlines() if line.startswith("hards-h5: warning: dropped: ")
    ]
    assert any("ds/p1" in line and "newest data" in line for line in dropped), done.stderr
    assert not any("ds/p2" in line for line in dropped)
    with H5Database(path, "r") as db:
        assert db.recursively_get_datapoint("ds/p1").data == {"v": 2}
