"""Lifecycle: code written for the seed never calls close(), and loses nothing."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database, ReadOnlyError

SEED_STYLE = """
import sys
from hards_h5 import H5Database
db = H5Database.create_database(sys.argv[1])
ds = db.create_dataset("a")
for i in range(3000):
    ds.create_datapoint(f"p{i}").add_data({"i": i})
# no close(), no flush(): the interpreter simply exits
"""


def test_unclosed_database_is_written_at_exit(db_path: Path) -> None:
    subprocess.run([sys.executable, "-c", SEED_STYLE, str(db_path)], check=True, timeout=120)
    with H5Database(db_path, "r") as db:
        points = db.get_dataset("a").recursively_get_datapoints()
        assert [p.data["i"] for p in points] == list(range(3000))


def test_collected_database_is_written(db_path: Path) -> None:
    def work() -> None:
        db = H5Database.create_database(db_path)
        db.create_dataset("a").create_datapoint("p").add_data({"x": 1})

    work()
    gc.collect()
    with H5Database(db_path, "r") as db:
        assert db.recursively_get_datapoint("a/p").data == {"x": 1}


def test_writer_after_a_reader_in_one_process_shares_its_file(db_path: Path) -> None:
    # HDF5 has the file open read-only for the reader: the writer switches the shared
    # file to read-write, and the reader, which holds no HDF5 object, follows.
    with H5Database.create_database(db_path) as db:
        db.create_dataset("d").create_datapoint("x0")
    reader = H5Database(db_path, "r")
    point = reader.get_dataset("d").get_datapoint("x0")
    with H5Database(db_path) as writer:
        writer.get_dataset("d").create_datapoint("x1").add_data({"v": 1})
        assert reader.get_dataset("d").datapoints == ["x0", "x1"]
        assert point.data == {}
    assert reader.recursively_get_datapoint("d/x1").data == {"v": 1}
    reader.close()
    with H5Database(db_path, "r") as db:
        assert db.get_dataset("d").datapoints == ["x0", "x1"]


def test_second_writer_in_one_process_shares_the_first(db_path: Path) -> None:
    # A notebook cell re-run without close(): both objects write the same file, and
    # neither loses the other's datapoints.
    first = H5Database.create_database(db_path)
    first.create_dataset("d").create_datapoint("x0")
    second = H5Database(db_path)
    third = H5Database(db_path, "a")
    second.get_dataset("d").create_datapoint("x1")
    first.get_dataset("d").create_datapoint("x2")
    third.get_dataset("d").create_datapoint("x3")
    assert first.get_dataset("d").datapoints == ["x0", "x1", "x2", "x3"]
    first.close()
    second.get_dataset("d").create_datapoint("x4")
    second.close()
    third.close()
    with H5Database(db_path) as again:  # a fresh open once all are closed
        again.get_dataset("d").create_datapoint("x5")
    with H5Database(db_path, "r") as db:
        assert db.get_dataset("d").datapoints == [f"x{i}" for i in range(6)]


def test_writer_claim_ends_when_collected(db_path: Path) -> None:
    H5Database.create_database(db_path).create_dataset("d")
    gc.collect()
    with H5Database(db_path) as db:
        assert db.children == ["d"]


def test_reader_beside_a_writer_in_one_process_follows_it(db_path: Path) -> None:
    with H5Database.create_database(db_path) as writer:
        writer.create_dataset("d")
        reader = H5Database(db_path, "r")
        assert reader.children == ["d"]
        writer.create_dataset("e")
        assert reader.children == ["d", "e"]
        with pytest.raises(ReadOnlyError, match="read-only"):
            reader.create_dataset("f")
        reader.close()
    with H5Database(db_path, "r") as reader:
        assert reader.children == ["d", "e"]


OPEN_OR_CREATE = """
import sys
from hards_h5 import H5Database
with H5Database(sys.argv[1], "a", timeout=60) as db:
    ds = db.get_dataset("d") if db.has_dataset("d") else db.create_dataset("d")
    ds.create_datapoint(f"w{sys.argv[2]}")
"""


def test_many_processes_open_a_missing_file_with_mode_a(db_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_OR_CREATE, str(db_path), str(i)])
        for i in range(6)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6  # no 'already exists' loser
    with H5Database(db_path, "r") as db:
        assert sorted(db.get_dataset("d").datapoints) == sorted(f"w{i}" for i in range(6))


def test_swmr_reader_beside_a_plain_reader_shares_its_file(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("d").create_datapoint("p")
    with H5Database(db_path, "r") as plain, H5Database(db_path, "r", swmr=True) as live:
        live.refresh()  # no writer: nothing new
        assert live.get_dataset("d").datapoints == plain.get_dataset("d").datapoints == ["p"]
