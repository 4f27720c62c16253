"""The HDF5 tree at rest: what a stranger with plain h5py (or h5ls) finds after close."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_runner import hards, python_child
from hards_h5 import H5Database
from hards_h5.errors import AutoRecoveryWarning
from hards_h5.store.layout import FORMAT_VERSION

DATA_DIR = Path(__file__).parent / "data"


# ---------------------------------------------------------------- plain h5py
def plain_read(path: Path) -> dict[str, Any]:
    """Read a campaign with nothing but h5py and json (no hards_h5): the stranger's view."""

    def node(group: h5py.Group) -> dict[str, Any]:
        files = group.get("files")
        return {
            "data": json.loads(group.attrs["data"]),
            "files": {} if files is None else {n: files[n][()].tobytes() for n in files},
        }

    def dataset(group: h5py.Group) -> dict[str, Any]:
        out = node(group)
        points = group["datapoints"]
        out["points"] = [(name, node(points[name])) for name in points]
        out["children"] = {n: dataset(c) for n, c in group["datasets"].items()}
        return out

    with h5py.File(path, "r") as f:
        return {n: dataset(g) for n, g in f["datasets"].items()}


def api_read(path: Path) -> dict[str, Any]:
    """The same picture through the HARDS API."""
    with H5Database(path, mode="r") as db:
        return api_view(db)


def api_view(db: H5Database) -> dict[str, Any]:
    """What the HARDS API returns through an open database, in ``plain_read``'s shape."""

    def node(obj: Any) -> dict[str, Any]:
        return {
            "data": obj.data,
            "files": {n: Path(obj.get_file(n)).read_bytes() for n in obj.files},
        }

    def dataset(ds: Any) -> dict[str, Any]:
        out = node(ds)
        out["points"] = [(p, node(ds.get_datapoint(p))) for p in ds.datapoints]
        out["children"] = {c: dataset(ds.get_dataset(c)) for c in ds.children}
        return out

    return {c: dataset(db.get_dataset(c)) for c in db.children}


# ---------------------------------------------------------------- campaigns
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=4,
)
DATASETS = ["a", "b", "a/c"]
node_steps = st.one_of(
    st.tuples(st.just("point"), st.sampled_from(DATASETS), st.sampled_from("pqrs")),
    st.tuples(st.just("data"), st.sampled_from(DATASETS), st.sampled_from("pqrs-"), json_objects),
    st.tuples(
        st.just("file"),
        st.sampled_from(DATASETS),
        st.sampled_from("pqrs-"),
        st.sampled_from(["x.txt", "y.png", "z"]),
        st.binary(max_size=300),
    ),
)
ops = st.lists(node_steps | st.tuples(st.just("reopen")), max_size=25)


def _dataset(db: H5Database, name: str) -> Any:
    """Return the dataset ``name`` ("a/c": c in a), creating what is missing."""
    ds: Any = db
    for part in name.split("/"):
        ds = ds.get_dataset(part) if ds.has_dataset(part) else ds.create_dataset(part)
    return ds


def _apply(db: H5Database, scratch: Path, step: tuple[Any, ...]) -> None:
    """Carry out one "point", "data" or "file" step (creating missing datasets)."""
    ds = _dataset(db, step[1])
    if step[0] == "point":
        if not ds.has_datapoint(step[2]):
            ds.create_datapoint(step[2])
        return
    target = ds
    if step[2] != "-":
        if not ds.has_datapoint(step[2]):
            return
        target = ds.get_datapoint(step[2])
    if step[0] == "data":
        target.add_data(step[3])
    else:
        src = scratch / step[3]
        src.write_bytes(step[4])
        target.add_file(src)


def _run(path: Path, scratch: Path, steps: list[tuple[Any, ...]]) -> None:
    db = H5Database.create_database(path)
    try:
        for step in steps:
            if step[0] == "reopen":
                db.close()
                db = H5Database(path)
                continue
            _apply(db, scratch, step)
    finally:
        db.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_plain_h5py_reader_finds_what_the_api_returns(
    tmp_path: Path, steps: list[tuple[Any, ...]]
) -> None:
    work = tmp_path / f"run{abs(hash(str(steps))) % 10**9}"
    work.mkdir()
    path = work / "c.h5"
    _run(path, work, steps)
    assert plain_read(path) == api_read(path)


def test_tree_order_data_and_file_attributes(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    src = tmp_path / "notes.txt"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("runs")
        ds.add_data({"seed": 3})
        for i in (5, 1, 3):
            ds.create_datapoint(f"sample-{i}").add_data({"i": i})
        src.write_text("one")
        ds.get_datapoint("sample-1").add_file(src)
        src.write_text("two, longer")
        ds.get_datapoint("sample-1").add_file(src)  # replaced: re-pointed
        big = "x" * 200_000  # far beyond HDF5's 64 KiB compact attribute limit
        ds.get_datapoint("sample-3").add_data({"big": big})
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "hards-h5"
        assert int(f.attrs["format_version"]) == FORMAT_VERSION == 2
        assert int(f.attrs["hards_h5_format"]) == 2
        assert "format.md" in f.attrs["documentation"]
        g = f["/datasets/runs"]
        assert list(g["datapoints"]) == ["sample-5", "sample-1", "sample-3"]
        assert json.loads(g.attrs["data"]) == {"seed": 3}
        assert json.loads(g["datapoints/sample-3"].attrs["data"])["big"] == big
        d = g["datapoints/sample-1/files/notes.txt"]
        assert d[()].tobytes() == b"two, longer"
        assert d.is_virtual
        assert d.dtype == np.uint8
        assert dict(d.attrs) == {
            "file_name": "notes.txt",
            "size": 11,
            "sha256": __import__("hashlib").sha256(b"two, longer").hexdigest(),
            "algorithm": "sha256",
            "type": "text/plain",
        }
        assert int(g.attrs["folded_records"]) == g["records"].shape[0]


def test_rewriting_data_does_not_leak_space(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    size = 20_000
    with H5Database.create_database(path) as db:
        db.create_dataset("d").create_datapoint("p").add_data({"v": "x" * size})
    sizes = []
    for i in range(40):
        with H5Database(path) as db:  # one fold per close: the attribute is rewritten
            db.get_dataset("d").get_datapoint("p").add_data({"v": f"{i:02d}" * (size // 2)})
        sizes.append(path.stat().st_size)
    # The log grows by one record and its ~20 KB JSON text per change; an attribute
    # rewrite that leaked the old value would add another ~20 KB each time.
    growth = sizes[-1] - sizes[9]
    assert growth < 30 * size * 1.3, sizes


@pytest.mark.skipif(shutil.which("h5ls") is None, reason="h5ls not installed")
def test_h5ls_shows_datapoints_and_files(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    src = tmp_path / "plot.png"
    src.write_bytes(b"\x89PNG fake")
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("mc")
        ds.create_datapoint("sample-000001").add_file(src)
        ds.create_datapoint("sample-000002")
    out = subprocess.run(
        ["h5ls", "-r", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "/datasets/mc/datapoints/sample-000001 Group" in out
    assert "/datasets/mc/datapoints/sample-000002 Group" in out
    assert "/datasets/mc/datapoints/sample-000001/files/plot.png Dataset {9}" in out


# ------------------------------------------------------------- version 1
def test_version_1_file_reads_and_is_upgraded_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "v1.h5"
    shutil.copyfile(DATA_DIR / "campaign_v1.h5", path)
    with h5py.File(path, "r") as f:
        assert int(f.attrs["hards_h5_format"]) == 1
        assert "datapoints" not in f["/datasets/monte_carlo"]
    with H5Database(path, mode="r") as db:
        mc = db.get_dataset("monte_carlo")
        assert mc.datapoints == [f"sample-{i:06d}" for i in range(3)]
        assert mc.get_datapoint("sample-000001").data == {"x": 10, "name": "s1"}
    assert hards("check", str(path)).returncode == 0
    H5Database(path).close()  # the first writer folds and upgrades
    with h5py.File(path, "r") as f:
        assert int(f.attrs["hards_h5_format"]) == 2
        mc = f["/datasets/monte_carlo"]
        note = mc["datapoints/sample-000001/files/notes.txt"][()].tobytes()
        assert note == b"second version\n"
        assert mc["files/empty.bin"][()].tobytes() == b""
    assert plain_read(path) == api_read(path)
    assert hards("check", str(path)).returncode == 0


def test_compact_folds_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "v1.h5"
    shutil.copyfile(DATA_DIR / "campaign_v1.h5", path)
    result = hards("compact", str(path))
    assert result.returncode == 0, result.stderr
    with h5py.File(path, "r") as f:
        assert int(f.attrs["hards_h5_format"]) == 2
    assert plain_read(path) == api_read(path)


# ------------------------------------------------------------------ check
def test_check_reports_a_tree_that_differs_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    src = tmp_path / "a.txt"
    src.write_text("a")
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        ds.create_datapoint("p").add_data({"v": 1})
        ds.create_datapoint("q").add_file(src)
    assert hards("check", str(path)).returncode == 0
    with h5py.File(path, "r+") as f:
        f["/datasets/d/datapoints/p"].attrs.modify("data", '{"v": 2}')
        del f["/datasets/d/datapoints/q/files/a.txt"]
    result = hards("check", str(path))
    assert result.returncode != 0
    assert "'data' attribute differs" in result.stdout + result.stderr
    assert "files" in result.stdout + result.stderr
    H5Database(path).close()  # the journal is authoritative: check names the damage
    assert hards("check", str(path)).returncode != 0
    assert hards("compact", str(path)).returncode == 0  # a rewrite builds it again
    assert hards("check", str(path)).returncode == 0
    assert plain_read(path) == api_read(path)


# ------------------------------------------------------------------- SWMR
def _live_writer_leaves_the_tree_behind(path: Path) -> None:
    """A datapoint 'before' folded at close, then 'live' added by a SWMR live writer."""
    with H5Database.create_database(path) as db:
        db.create_dataset("d").create_datapoint("before")
    with H5Database(path) as db:
        db.start_swmr()
        db.get_dataset("d").create_datapoint("live").add_data({"x": 1})


def test_live_writer_does_not_fold_and_the_next_writer_does(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _live_writer_leaves_the_tree_behind(path)
    with h5py.File(path, "r") as f:
        g = f["/datasets/d"]
        assert list(g["datapoints"]) == ["before"]  # not folded in live mode
        assert int(g.attrs["folded_records"]) < g["records"].shape[0]
    assert hards("check", str(path)).returncode == 0  # behind its mark: not damage
    H5Database(path).close()
    with h5py.File(path, "r") as f:
        assert list(f["/datasets/d/datapoints"]) == ["before", "live"]
    assert plain_read(path) == api_read(path)


def test_compact_folds_what_a_live_writer_left_behind(tmp_path: Path) -> None:
    # compact keeps an already compact file as it is, but never one whose tree is
    # behind its journal (a live writer's close does not fold)
    path = tmp_path / "c.h5"
    _live_writer_leaves_the_tree_behind(path)
    with h5py.File(path, "r") as f:
        assert list(f["/datasets/d/datapoints"]) == ["before"]
    assert hards("compact", str(path)).returncode == 0
    with h5py.File(path, "r") as f:
        assert list(f["/datasets/d/datapoints"]) == ["before", "live"]
    assert plain_read(path) == api_read(path)


# ----------------------------------------------------------------- kill -9
_FOLD_CHILD = r"""
import sys
from hards_h5 import H5Database
import hards_h5.store.fold as fold

calls = 0
hook = "_new_point" if fold._new_point is not None else "_set_text"  # the hot path
original = getattr(fold, hook)

def signalling(*args, **kwargs):
    global calls
    calls += 1
    if calls == 3000:
        print("folding", flush=True)
    return original(*args, **kwargs)

setattr(fold, hook, signalling)
db = H5Database.create_database(sys.argv[1])
ds = db.create_dataset("big")
for i in range(int(sys.argv[2])):
    ds.create_datapoint(f"p{i:06d}").add_data({"i": i})
db.flush()
print("flushed", flush=True)
db.close()
print("closed", flush=True)
"""


def test_kill_during_the_fold_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    count = 40_000
    child = python_child(_FOLD_CHILD, str(path), str(count))
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "flushed"
        assert child.stdout.readline().strip() == "folding"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutoRecoveryWarning)
        H5Database(path).close()  # recovers the dead writer's file, then folds
    with h5py.File(path, "r") as f:
        g = f["/datasets/big"]
        names = list(g["datapoints"])
        assert names == [f"p{i:06d}" for i in range(count)]
        assert json.loads(g["datapoints/p039999"].attrs["data"]) == {"i": count - 1}
        assert int(g.attrs["folded_records"]) == g["records"].shape[0]
    result = hards("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _small(path: Path, name: str) -> None:
    with H5Database.create_database(path) as db:
        ds = db.create_dataset(name)
        ds.add_data({"name": name})
        ds.create_datapoint("p").add_data({"n": name})


def test_merge_import_and_recover_end_with_a_folded_tree(tmp_path: Path) -> None:
    _small(tmp_path / "a.h5", "x")
    _small(tmp_path / "b.h5", "y")
    merged = tmp_path / "m.h5"
    result = hards("merge", str(merged), str(tmp_path / "a.h5"), str(tmp_path / "b.h5"))
    assert result.returncode == 0, result.stderr
    assert plain_read(merged) == api_read(merged)
    assert set(plain_read(merged)) == {"x", "y"}
    result = hards("export", str(merged), str(tmp_path / "seed"))
    assert result.returncode == 0, result.stderr
    imported = tmp_path / "i.h5"
    result = hards("import", str(tmp_path / "seed"), str(imported))
    assert result.returncode == 0, result.stderr
    assert plain_read(imported) == api_read(imported) == api_read(merged)
    # A live writer leaves the tree behind; recover (which leaves a clean file alone) folds it.
    with H5Database(imported) as db:
        db.start_swmr()
        db.get_dataset("x").create_datapoint("live").add_data({"l": 1})
    with h5py.File(imported, "r") as f:
        assert "live" not in f["/datasets/x/datapoints"]
    result = hards("recover", str(imported))
    assert result.returncode == 0, result.stderr
    with h5py.File(imported, "r") as f:
        assert "live" in f["/datasets/x/datapoints"]
    assert plain_read(imported) == api_read(imported)


# ------------------------------------------------- generated SWMR phase
# A live reader in another process: on each "look" line it refreshes and prints
# what the HARDS API shows it (files as the SHA-256 of the extracted bytes), once
# through the database and once through the dataset objects it took at the start.
_SWMR_READER = r"""
import hashlib, json, sys
from pathlib import Path
from hards_h5 import H5Database

def node(obj):
    files = {n: hashlib.sha256(Path(obj.get_file(n)).read_bytes()).hexdigest() for n in obj.files}
    return {"data": obj.data, "files": files}

def dataset(ds):
    out = node(ds)
    out["points"] = [[p, node(ds.get_datapoint(p))] for p in ds.datapoints]
    out["children"] = {c: dataset(ds.get_dataset(c)) for c in ds.children}
    return out

db = H5Database(sys.argv[1], mode="r", swmr=True)
held = {c: db.get_dataset(c) for c in db.children}
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "look":
        break
    db.refresh()
    fresh = {c: dataset(db.get_dataset(c)) for c in db.children}
    print(json.dumps([fresh, {c: dataset(ds) for c, ds in held.items()}]), flush=True)
db.close()
"""

live_ops = st.lists(node_steps | st.tuples(st.just("look")), max_size=12)


def _digest(view: dict[str, Any]) -> dict[str, Any]:
    """``plain_read``/``api_view``'s picture with files as SHA-256 hex, lists for pairs."""

    def node(obj: dict[str, Any]) -> dict[str, Any]:
        files = {n: hashlib.sha256(b).hexdigest() for n, b in obj["files"].items()}
        return {"data": obj["data"], "files": files}

    def dataset(obj: dict[str, Any]) -> dict[str, Any]:
        out = node(obj)
        out["points"] = [[p, node(v)] for p, v in obj["points"]]
        out["children"] = {c: dataset(v) for c, v in obj["children"].items()}
        return out

    return {n: dataset(v) for n, v in view.items()}


def _look(reader: subprocess.Popen[str]) -> dict[str, Any]:
    """Have the live reader refresh; return what it sees (the same both ways)."""
    assert reader.stdin is not None
    assert reader.stdout is not None
    reader.stdin.write("look\n")
    reader.stdin.flush()
    line = reader.stdout.readline()
    assert line, f"the live reader died (exit status {reader.wait(timeout=60)})"
    seen, through_held = json.loads(line)
    assert through_held == seen
    assert isinstance(seen, dict)
    return seen


def _swmr_campaign(
    tmp_path: Path, before: list[tuple[Any, ...]], live: list[tuple[Any, ...]], finish: str
) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    path = work / "c.h5"
    _run(path, work, before)
    with H5Database(path) as db:
        for name in DATASETS:  # a live writer cannot create datasets
            _dataset(db, name)
    at_rest = plain_read(path)
    db = H5Database(path)
    reader: subprocess.Popen[str] | None = None
    try:
        db.start_swmr()
        reader = python_child(_SWMR_READER, str(path))
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        assert _look(reader) == _digest(api_view(db))  # as it was when the reader came
        for step in [*live, ("look",)]:
            if step[0] == "look":
                db.flush()
                assert _look(reader) == _digest(api_view(db))
            else:
                _apply(db, work, step)
        expected = _digest(api_view(db))
        db.close()  # the reader is still attached
        assert _look(reader) == expected
        assert reader.stdin is not None
        reader.stdin.write("bye\n")
        reader.stdin.flush()
        assert reader.wait(timeout=120) == 0
    finally:
        db.close()
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait(timeout=60)
    # The live close does not fold (readers were attached): the tree is as it was,
    # behind the journal, which is not damage, and the API reads the journal. The
    # next ordinary writer's close, or compact, folds it (format.md, "When the tree
    # is complete").
    assert plain_read(path) == at_rest
    check = hards("check", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert _digest(api_read(path)) == expected
    if finish == "reopen":
        H5Database(path).close()
    else:
        result = hards("compact", str(path))
        assert result.returncode == 0, result.stderr
    assert plain_read(path) == api_read(path)
    assert _digest(plain_read(path)) == expected


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=ops, live=live_ops, finish=st.sampled_from(["reopen", "compact"]))
def test_swmr_phase_live_reader_then_plain_h5py_tree(
    tmp_path: Path, before: list[tuple[Any, ...]], live: list[tuple[Any, ...]], finish: str
) -> None:
    _swmr_campaign(tmp_path, before, live, finish)


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    before=ops,
    live=st.lists(node_steps | st.tuples(st.just("look")), max_size=40),
    finish=st.sampled_from(["reopen", "compact"]),
)
def test_swmr_phase_live_reader_then_plain_h5py_tree_many(
    tmp_path: Path, before: list[tuple[Any, ...]], live: list[tuple[Any, ...]], finish: str
) -> None:
    _swmr_campaign(tmp_path, before, live, finish)


def test_fold_writes_scalar_variable_length_utf8_text(tmp_path: Path) -> None:
    # The fold's fast path (libhdf5 called directly) writes what h5py writes: a scalar
    # variable-length UTF-8 string, here beside datapoints with files (the h5py path).
    path = tmp_path / "c.h5"
    src = tmp_path / "f.txt"
    src.write_text("x")
    texts = {
        "plain": {"a": 1},
        "accents": {"é": "ünï ☃ 🎉"},
        "empty": {},
        "big": {"b": "y" * 70_000},
    }
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for name, data in texts.items():
            point = ds.create_datapoint(name)
            if data:
                point.add_data(data)
            if name == "accents":
                point.add_file(src)
        ds.create_datapoint("last").add_data({"z": 0})
    with h5py.File(path, "r") as f:
        points = f["/datasets/d/datapoints"]
        assert list(points) == [*texts, "last"]
        for name in [*texts, "last"]:
            attr = h5py.h5a.open(points[name].id, b"data")
            kind = attr.get_type()
            assert kind.get_class() == h5py.h5t.STRING
            assert kind.is_variable_str()
            assert kind.get_cset() == h5py.h5t.CSET_UTF8
            assert attr.get_space().get_simple_extent_type() == h5py.h5s.SCALAR
            value = points[name].attrs["data"]
            assert isinstance(value, str)
            assert json.loads(value) == texts.get(name, {"z": 0})
    assert plain_read(path) == api_read(path)


def test_fold_completes_a_group_left_without_its_attribute(tmp_path: Path) -> None:
    # A fold killed between a new group and its attribute: the next close finishes it.
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i in range(4):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
    with h5py.File(path, "r+") as f:
        g = f["/datasets/d"]
        del g["datapoints/p1"].attrs["data"]
        del g["datapoints/p2"], g["datapoints/p3"]
        g.attrs["folded_records"] = np.int64(0)
    with H5Database(path) as db:
        db.get_dataset("d").create_datapoint("p4").add_data({"i": 4})
    with h5py.File(path, "r") as f:
        points = f["/datasets/d/datapoints"]
        assert list(points) == [f"p{i}" for i in range(5)]
        assert [json.loads(points[f"p{i}"].attrs["data"]) for i in range(5)] == [
            {"i": i} for i in range(5)
        ]
    assert plain_read(path) == api_read(path)


@pytest.mark.slow  # (100k datapoints; run by .ci/run's slow step)
def test_check_of_a_large_dataset_is_not_quadratic(tmp_path: Path) -> None:
    # Comparing the tree's order with the journal's built a set of every name once per
    # datapoint: `hards-h5 check` of 100k datapoints in one dataset took many minutes.
    path = tmp_path / "c.h5"
    count = 100_000
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i in range(count):
            ds.create_datapoint(f"p{i:06d}").add_data({"i": i})
    result = subprocess.run(
        [sys.executable, "-m", "hards_h5.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=900,  # a few seconds once linear (many minutes before): a hang guard only
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100000" in result.stdout.replace(",", "")


def test_check_names_every_kind_of_tree_difference(tmp_path: Path) -> None:
    # check reads the usual datapoint directly; every other shape of node the slower way.
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for name in ("same", "text", "fixed", "array", "gone", "dataset", "extra", "none"):
            ds.create_datapoint(name).add_data({"n": name})
    assert hards("check", str(path)).returncode == 0
    with h5py.File(path, "r+") as f:
        points = f["/datasets/d/datapoints"]
        points["text"].attrs.modify("data", '{"n": "other"}')
        points["fixed"].attrs.create("data", b'{"n": "fixed"}')  # fixed-length bytes
        points["array"].attrs["data"] = ['{"n": "array"}', "x"]
        del points["gone"]
        del points["dataset"]
        points.create_dataset("dataset", data=[1])
        points["extra"].create_group("files").create_dataset("x.txt", data=[1])
        del points["none"].attrs["data"]
    result = hards("check", str(path))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("text", "fixed", "array", "none"):
        assert f"datapoint '{name}': the tree's 'data' attribute differs" in out, name
    for name in ("gone", "dataset"):
        assert f"datapoint '{name}': no group in the tree" in out, name
    assert "datapoint 'extra': the tree's files" in out
    assert "'same'" not in out
