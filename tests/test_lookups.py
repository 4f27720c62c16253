"""Dataset lookups are cached per open file, and the cache never goes stale.

Within one open file only this process can add datasets (one writer; a SWMR live
writer may create none), so the store reads a dataset's child list once.  These
tests pin down every way the list changes while the file is open: a dataset
created through another handle of the same file, a failed merge rolled back, a
read-only handle switched to read-write, and a new process after close.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from hards_h5 import FileIntegrityError, H5Database, NodeNotFoundError, merge


def test_a_dataset_created_through_another_handle_is_found(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as first:
        first.create_dataset("a")
        assert first.children == ["a"]  # (the list is read and kept)
        assert not first.has_dataset("b")
        with H5Database(path) as second:
            second.get_dataset("a").create_dataset("b").create_datapoint("p")
            second.create_dataset("b")
        assert first.children == ["a", "b"]
        assert first.recursively_get_datapoint("a/b/p").name == "p"
        assert first.get_dataset("a").children == ["b"]


def test_a_rolled_back_merge_leaves_no_dataset_behind_in_open_handles(tmp_path: Path) -> None:
    """A merge that fails after creating datasets in an open output unlinks them;
    a handle the user holds on the output must stop finding them."""
    out, bad = tmp_path / "out.h5", tmp_path / "bad.h5"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"payload " * 4096)
    with H5Database.create_database(bad) as db:
        db.create_dataset("extra").create_datapoint("e").add_data({"x": 1})
        db.create_dataset("zz").create_datapoint("z").add_file(payload)
    with h5py.File(bad, "r+") as f:  # flip one byte of the attached file: the copy fails
        f["blobs"][10] ^= 0xFF
    with H5Database.create_database(out) as held:
        held.create_dataset("mine")
        assert held.children == ["mine"]
        with pytest.raises(FileIntegrityError):
            merge(out, [bad])
        assert held.children == ["mine"]
        assert not held.has_dataset("extra")
        with pytest.raises(NodeNotFoundError):
            held.get_dataset("extra")
        held.create_dataset("extra")  # (the name is free again)
        assert held.children == ["mine", "extra"]


def test_a_reader_switched_to_writing_sees_the_writers_datasets(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("a")
    reader = H5Database(path, mode="r")
    assert reader.children == ["a"]
    with H5Database(path) as writer:  # reopens the file read-write under the reader
        writer.create_dataset("b")
        assert reader.children == ["a", "b"]
        assert reader.get_dataset("b").name == "b"
    reader.close()


def test_datasets_added_by_another_process_are_found_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("a")
        assert db.children == ["a"]
    code = (
        "import sys\nfrom hards_h5 import H5Database\n"
        "with H5Database(sys.argv[1]) as db:\n"
        "    db.create_dataset('b').create_datapoint('p')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
    with H5Database(path, mode="r") as db:
        assert db.children == ["a", "b"]
        assert db.recursively_get_datapoint("b/p").name == "p"


def test_lookups_on_a_closed_database_still_refuse(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    db = H5Database.create_database(path)
    db.create_dataset("a")
    assert db.has_dataset("a")
    db.close()
    with pytest.raises(Exception, match="closed"):
        db.get_dataset("a")
