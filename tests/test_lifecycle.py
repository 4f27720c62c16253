"""Lifecycle: code written for the seed never calls close(), and loses nothing."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import DatabaseLockedError, H5Database

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


def test_conflicting_modes_in_one_process(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    reader = H5Database(db_path, "r")
    try:
        with pytest.raises(DatabaseLockedError, match="close that H5Database first"):
            H5Database(db_path)
    finally:
        reader.close()
    with H5Database(db_path) as writer:
        writer.create_dataset("ok")


def test_second_writer_in_one_process_is_refused(db_path: Path) -> None:
    # A notebook cell re-run without close(): HDF5 would hand the second writer the
    # same file, and the two would lose each other's datapoints.
    first = H5Database.create_database(db_path)
    first.create_dataset("d").create_datapoint("x0")
    for mode in ("r+", "a"):
        with pytest.raises(DatabaseLockedError, match="already has the file open for writing"):
            H5Database(db_path, mode)  # type: ignore[arg-type]
    first.get_dataset("d").create_datapoint("x1")
    first.close()
    with H5Database(db_path) as again:  # the claim ends with close()
        again.get_dataset("d").create_datapoint("x2")
    with H5Database(db_path, "r") as db:
        assert db.get_dataset("d").datapoints == ["x0", "x1", "x2"]


def test_writer_claim_ends_when_collected(db_path: Path) -> None:
    H5Database.create_database(db_path).create_dataset("d")
    gc.collect()
    with H5Database(db_path) as db:
        assert db.children == ["d"]


def test_reader_beside_a_writer_in_one_process_is_refused(db_path: Path) -> None:
    # HDF5 would share the writer's file with it, but the reader would not follow
    # the writer's changes: refused, with what to do instead.
    with H5Database.create_database(db_path) as writer:
        writer.create_dataset("d")
        with pytest.raises(DatabaseLockedError, match="read it through that H5Database"):
            H5Database(db_path, "r")
    with H5Database(db_path, "r") as reader:
        assert reader.children == ["d"]


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


def test_swmr_reader_beside_a_plain_reader_is_a_lock_error(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    with H5Database(db_path, "r"), pytest.raises(DatabaseLockedError, match="this process"):
        H5Database(db_path, "r", swmr=True)
