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
