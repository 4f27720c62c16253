"""The HARDS contract as pytest tests, run against any implementation."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hards.api import (
    AbstractDatabase,
    AbstractDatapoint,
    AbstractDataset,
    AlreadyExistsError,
    DoesNotExistError,
    HARDSError,
    InvalidNameError,
)

__all__ = ["HardsConformance"]

BAD_NAMES = ["", "a/b", "a b", "caf\u00e9", ".", "..", "nul\0", "tab\t", "star*", "q?"]
GOOD_NAMES = ["run.v2", "a", "A-1_b.c", "0", "x" * 200, "..a", "a.."]


def _parent(node: AbstractDataset | AbstractDatapoint) -> Any:
    parent = node.parent
    assert parent is not None
    return parent


class HardsConformance:
    """Contract tests for a HARDS implementation; subclass and set the factories.

    Attributes
    ----------
    known_failures : dict[str, str]
        Test names the implementation is known to fail, with the reason; they run
        as strict expected failures.  A key is a test name (all its parameters) or
        a parametrised id such as ``"test_x[param]"``.

    """

    known_failures: ClassVar[dict[str, str]] = {}

    # ----------------------------------------------------------------- factories
    def create(self, path: Path) -> AbstractDatabase:
        """Create a new, empty database at ``path`` (which does not exist)."""
        raise NotImplementedError

    def reopen(self, db: AbstractDatabase, path: Path) -> AbstractDatabase:
        """Close ``db`` (if the implementation has a close) and open ``path`` again."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(autouse=True)
    def _known_failure(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_failures.get(request.node.name)
        if reason is None:
            reason = self.known_failures.get(getattr(request.node, "originalname", ""))
        if reason is not None:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    @pytest.fixture
    def location(self, tmp_path: Path) -> Path:
        """Return where the database under test lives."""
        return tmp_path / "db"

    @pytest.fixture
    def db(self, location: Path) -> Iterator[AbstractDatabase]:
        """Return a new, empty database."""
        database = self.create(location)
        yield database
        close = getattr(database, "close", None)
        if callable(close):
            close()

    @pytest.fixture
    def src(self, tmp_path: Path) -> Path:
        """Return a small file to attach."""
        path = tmp_path / "input.txt"
        path.write_bytes(b"first content\n")
        return path

    # -------------------------------------------------------------- tree basics
    def test_abc_instances(self, db: AbstractDatabase) -> None:
        ds = db.create_dataset("ds")
        dp = ds.create_datapoint("dp")
        assert isinstance(db, AbstractDatabase)
        assert isinstance(ds, AbstractDataset)
        assert isinstance(dp, AbstractDatapoint)
        assert db.is_database
        assert not ds.is_database

    def test_create_get_has_dataset(self, db: AbstractDatabase) -> None:
        assert db.children == []
        ds = db.create_dataset("mc")
        assert ds.name == "mc"
        assert list(db.children) == ["mc"]
        assert db.has_dataset("mc")
        assert not db.has_dataset("other")
        assert db.get_dataset("mc").name == "mc"

    def test_duplicate_dataset_rejected(self, db: AbstractDatabase) -> None:
        db.create_dataset("mc")
        with pytest.raises(AlreadyExistsError):
            db.create_dataset("mc")
        assert list(db.children) == ["mc"]

    def test_missing_dataset(self, db: AbstractDatabase) -> None:
        with pytest.raises(DoesNotExistError):
            db.get_dataset("nope")
        with pytest.raises(DoesNotExistError):
            db.recursively_get_dataset("a/b")

    def test_datapoints_basic(self, db: AbstractDatabase) -> None:
        ds = db.create_dataset("ds")
        dp = ds.create_datapoint("p1")
        assert dp.name == "p1"
        assert list(ds.datapoints) == ["p1"]
        assert ds.has_datapoint("p1")
        assert not ds.has_datapoint("p2")
        assert ds.get_datapoint("p1").name == "p1"
        with pytest.raises(AlreadyExistsError):
            ds.create_datapoint("p1")
        with pytest.raises(DoesNotExistError):
            ds.get_datapoint("p2")

    def test_dataset_and_datapoint_namespaces_are_separate(self, db: AbstractDatabase) -> None:
        ds = db.create_dataset("ds")
        ds.create_dataset("same")
        ds.create_datapoint("same")
        assert list(ds.children) == ["same"]
        assert list(ds.datapoints) == ["same"]

    @pytest.mark.parametrize("bad", BAD_NAMES)
    def test_invalid_names_rejected(self, db: AbstractDatabase, bad: str, src: Path) -> None:
        ds = db.create_dataset("ds")
        with pytest.raises(InvalidNameError):
            db.create_dataset(bad)
        with pytest.raises(InvalidNameError):
            ds.create_datapoint(bad)
        with pytest.raises(InvalidNameError):
            ds.add_file(src, name=bad)
        assert list(db.children) == ["ds"]
        assert list(ds.datapoints) == []
        assert list(ds.files) == []

    @pytest.mark.parametrize("good", GOOD_NAMES)
    def test_valid_names_round_trip(
        self, db: AbstractDatabase, location: Path, good: str, src: Path
    ) -> None:
        ds = db.create_dataset(good)
        ds.create_datapoint(good)
        ds.add_file(src, name=good)
        db = self.reopen(db, location)
        assert list(db.children) == [good]
        ds = db.get_dataset(good)
        assert list(ds.datapoints) == [good]
        assert list(ds.files) == [good]
        assert ds.get_datapoint(good).name == good

    def test_taken_file_name_is_checked(self, db: AbstractDatabase, tmp_path: Path) -> None:
        bad = tmp_path / "bad name.txt"
        bad.write_text("x")
        ds = db.create_dataset("ds")
        with pytest.raises(InvalidNameError):
            ds.add_file(bad)
        assert list(ds.files) == []

    def test_creation_order(self, db: AbstractDatabase, location: Path) -> None:
        names = ["zeta", "alpha", "mid", "b", "a10", "a9", "Z"]
        for name in names:
            db.create_dataset(name)
        ds = db.get_dataset("mid")
        for name in names:
            ds.create_datapoint(name)
        assert list(db.children) == names
        assert list(ds.datapoints) == names
        db = self.reopen(db, location)
        assert list(db.children) == names
        assert list(db.get_dataset("mid").datapoints) == names

    def test_objects_see_the_file_as_it_is_now(self, db: AbstractDatabase) -> None:
        ds = db.create_dataset("ds")
        first = db.get_dataset("ds")
        second = db.get_dataset("ds")
        first.create_datapoint("p")
        first.create_dataset("child")
        assert list(second.datapoints) == ["p"]
        assert list(second.children) == ["child"]
        assert list(ds.datapoints) == ["p"]

    # ------------------------------------------------------------- tree walking
    def test_paths_and_parents(self, db: AbstractDatabase) -> None:
        a = db.create_dataset("a")
        b = a.create_dataset("b")
        p = b.create_datapoint("p")
        assert p.fullname() == "a/b/p"
        assert p.path_to_database() == ["a", "b", "p"]
        assert b.fullname() == "a/b"
        assert _parent(p).name == "b"
        assert _parent(b).name == "a"
        assert _parent(a).is_database
        assert p.database() is db
        assert db.recursively_get_dataset("a/b").name == "b"
        assert db.recursively_get_dataset("/a/b/").name == "b"
        assert db.recursively_get_datapoint("a/b/p").name == "p"
        with pytest.raises(DoesNotExistError):
            db.recursively_get_datapoint("a/b/q")

    def test_recursively_get_datapoints(self, db: AbstractDatabase) -> None:
        top = db.create_dataset("top")
        mid = top.create_dataset("mid")
        low = mid.create_dataset("low")
        for i in range(3):
            top.create_datapoint(f"t{i}").add_data({"level": "top", "i": i})
        mid.create_datapoint("m0").add_data({"level": "mid"})
        low.create_datapoint("l0").add_data({"level": "low"})
        everything = low.recursively_get_datapoints()
        assert [p.name for p in everything] == ["l0", "m0", "t0", "t1", "t2"]
        assert [p.data["level"] for p in everything] == ["low", "mid", "top", "top", "top"]
        assert [_parent(p).name for p in everything] == ["low", "mid", "top", "top", "top"]
        own = low.recursively_get_datapoints(parents=False)
        assert [p.name for p in own] == ["l0"]
        quick = low.recursively_get_datapoints(reconstruct=False)
        assert [p.name for p in quick] == ["l0", "m0", "t0", "t1", "t2"]
        assert [p.name for p in top.recursively_get_datapoints()] == ["t0", "t1", "t2"]

    # --------------------------------------------------------------------- data
    def test_data_starts_empty_and_merges(self, db: AbstractDatabase) -> None:
        ds = db.create_dataset("ds")
        dp = ds.create_datapoint("p")
        assert ds.data == {}
        assert dp.data == {}
        dp.add_data({"a": 1, "b": {"x": 1}})
        dp.add_data({"b": {"y": 2}, "c": [1, 2]})
        assert dp.data == {"a": 1, "b": {"y": 2}, "c": [1, 2]}
        ds.add_data({"meta": "yes"})
        assert ds.data == {"meta": "yes"}

    def test_data_is_a_fresh_dict(self, db: AbstractDatabase) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_data({"a": 1, "nested": {"k": [1]}})
        got = dp.data
        got["a"] = 99
        got["nested"]["k"].append(2)
        got["new"] = True
        assert dp.data == {"a": 1, "nested": {"k": [1]}}

    def test_data_persists(self, db: AbstractDatabase, location: Path) -> None:
        value = {"s": "unicode \u2603 \U0001f600", "i": -(2**62), "f": 0.1, "n": None,
                 "b": True, "l": [1, "2", [3.5]], "d": {"deep": {"er": {}}}}  # fmt: skip
        ds = db.create_dataset("ds")
        ds.add_data({"meta": value})
        ds.create_datapoint("p").add_data(value)
        db = self.reopen(db, location)
        ds = db.get_dataset("ds")
        assert ds.get_datapoint("p").data == value
        assert ds.data == {"meta": value}

    def test_big_value_round_trips(self, db: AbstractDatabase, location: Path) -> None:
        big = "x" * (200 * 1024)  # past HDF5's 64 KiB attribute limit
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_data({"big": big, "many": list(range(20000))})
        db = self.reopen(db, location)
        data = db.recursively_get_datapoint("ds/p").data
        assert data["big"] == big
        assert data["many"] == list(range(20000))

    def test_add_data_is_atomic(self, db: AbstractDatabase, location: Path) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_data({"keep": 1})
        with pytest.raises((HARDSError, TypeError, ValueError)):
            dp.add_data({"ok": 2, "bad": object()})
        assert dp.data == {"keep": 1}
        db = self.reopen(db, location)
        assert db.recursively_get_datapoint("ds/p").data == {"keep": 1}

    def test_numpy_values_accepted(self, db: AbstractDatabase, location: Path) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_data(
            {
                "f64": np.float64(0.5),
                "f32": np.float32(0.25),
                "i": np.int64(7),
                "u": np.uint8(3),
                "b": np.bool_(True),  # noqa: FBT003
                "arr": np.arange(4),
                "mat": np.array([[1.5, 2.0], [3.0, 4.0]]),
            }
        )
        expected = {"f64": 0.5, "f32": 0.25, "i": 7, "u": 3, "b": True,
                    "arr": [0, 1, 2, 3], "mat": [[1.5, 2.0], [3.0, 4.0]]}  # fmt: skip
        assert dp.data == expected
        db = self.reopen(db, location)
        got = db.recursively_get_datapoint("ds/p").data
        assert got == expected
        assert json.loads(json.dumps(got)) == expected

    # -------------------------------------------------------------------- files
    def test_add_and_get_file(self, db: AbstractDatabase, src: Path, location: Path) -> None:
        ds = db.create_dataset("ds")
        dp = ds.create_datapoint("p")
        dp.add_file(src)
        dp.add_file(src, name="renamed.dat")
        ds.add_file(src, name="dataset-level.txt")
        assert list(dp.files) == ["input.txt", "renamed.dat"]
        assert dp.has_file("input.txt")
        assert not dp.has_file("missing.txt")
        assert dp.get_file("renamed.dat").read_bytes() == b"first content\n"
        db = self.reopen(db, location)
        ds = db.get_dataset("ds")
        assert ds.get_datapoint("p").get_file("input.txt").read_bytes() == b"first content\n"
        assert ds.get_file("dataset-level.txt").read_bytes() == b"first content\n"

    def test_returned_path_is_read_only(self, db: AbstractDatabase, src: Path) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_file(src)
        path = dp.get_file("input.txt")
        assert isinstance(path, Path)
        assert path.name == "input.txt"
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0

    def test_overwritten_file_gives_new_content(
        self, db: AbstractDatabase, src: Path, location: Path
    ) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_file(src, name="result.txt")
        old = dp.get_file("result.txt")
        assert old.read_bytes() == b"first content\n"
        src.write_bytes(b"second, longer content\n")
        dp.add_file(src, name="result.txt")
        assert list(dp.files) == ["result.txt"]
        assert dp.get_file("result.txt").read_bytes() == b"second, longer content\n"
        db = self.reopen(db, location)
        dp = db.recursively_get_datapoint("ds/p")
        assert list(dp.files) == ["result.txt"]
        assert dp.get_file("result.txt").read_bytes() == b"second, longer content\n"

    def test_empty_and_binary_files(self, db: AbstractDatabase, tmp_path: Path) -> None:
        empty = tmp_path / "empty.bin"
        empty.write_bytes(b"")
        binary = tmp_path / "all.bin"
        binary.write_bytes(bytes(range(256)) * 1000)
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_file(empty)
        dp.add_file(binary)
        assert dp.get_file("empty.bin").read_bytes() == b""
        assert dp.get_file("all.bin").read_bytes() == bytes(range(256)) * 1000

    def test_missing_file_errors(self, db: AbstractDatabase, tmp_path: Path) -> None:
        dp = db.create_dataset("ds").create_datapoint("p")
        with pytest.raises(DoesNotExistError):
            dp.add_file(tmp_path / "nope.txt")
        with pytest.raises(DoesNotExistError):
            dp.get_file("nope.txt")
        assert list(dp.files) == []

    def test_directory_is_not_a_file(self, db: AbstractDatabase, tmp_path: Path) -> None:
        folder = tmp_path / "folder"
        folder.mkdir()
        dp = db.create_dataset("ds").create_datapoint("p")
        with pytest.raises(DoesNotExistError):
            dp.add_file(folder)
        assert list(dp.files) == []

    def test_fifo_is_not_a_file(self, db: AbstractDatabase, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        dp = db.create_dataset("ds").create_datapoint("p")
        with pytest.raises(DoesNotExistError):
            dp.add_file(fifo)
        assert list(dp.files) == []

    # -------------------------------------------------------------- persistence
    def test_everything_persists(self, db: AbstractDatabase, src: Path, location: Path) -> None:
        expected: dict[str, Any] = {}
        mc = db.create_dataset("mc")
        mc.add_data({"sampler": "uniform"})
        sub = mc.create_dataset("sub")
        for i in range(50):
            dp = (mc if i % 2 else sub).create_datapoint(f"p{i}")
            dp.add_data({"i": i, "x": i / 7})
            expected[dp.fullname()] = {"i": i, "x": i / 7}
        sub.get_datapoint("p0").add_file(src)
        db = self.reopen(db, location)
        for fullname, data in expected.items():
            assert db.recursively_get_datapoint(fullname).data == data
        sub = db.recursively_get_dataset("mc/sub")
        assert len(sub.recursively_get_datapoints()) == 50
        assert sub.get_datapoint("p0").get_file("input.txt").read_bytes() == b"first content\n"
        assert db.get_dataset("mc").data == {"sampler": "uniform"}
