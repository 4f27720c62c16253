"""Seals: a whole-prefix CRC written at close lets readers skip the per-record CRCs.

A seal is only a shortcut, so every test compares what a sealed read shows with
what the record-by-record replay (``use_seal=False``) shows, and damage to a seal
or to what it covers must never change what is read — only how fast.
"""

from __future__ import annotations

import random
import tempfile
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_runner import python_child
from hards_h5 import CorruptFileError, H5Database, check, compact, recover
from hards_h5.store.layout import RECORD_DTYPE, SEAL_DTYPE, dataset_path
from hards_h5.store.log import DatasetLog
from hards_h5.store.records import record_crc
from hards_h5.store.replay import State, apply_all, apply_each, heap_span
from hards_h5.store.seal import SEAL_MIN_ROWS


def _snapshot(log: DatasetLog) -> dict[str, Any]:
    nodes = range(len(log.names) + 1)
    return {
        "names": list(log.names),
        "index": {name: log.node_of(name) for name in log.names},
        "data": [log.data_json(node) for node in nodes],
        "files": [dict(log.files(node)) for node in nodes],
        "big_ints": log.big_ints,
    }


def _both_ways(path: Path, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``names``' log with its seal and record by record: (sealed, each) snapshots.

    Each snapshot also says which seal was used (``seal``) and how many rows
    were replayed in all (``applied``).
    """
    with h5py.File(path, "r") as f:
        group = f[dataset_path(names)]
        out = []
        for use_seal in (True, False):
            log = DatasetLog(group, writable=False, use_seal=use_seal)
            out.append({**_snapshot(log), "seal": log._seal, "applied": log._applied})
    return out[0], out[1]


def _same(sealed: dict[str, Any], each: dict[str, Any]) -> bool:
    skip = {"seal", "applied"}
    return {k: v for k, v in sealed.items() if k not in skip} == {
        k: v for k, v in each.items() if k not in skip
    }


def _content(snapshot: dict[str, Any]) -> tuple[Any, ...]:
    files = [{k: (ref.size, ref.sha256) for k, ref in f.items()} for f in snapshot["files"]]
    return snapshot["names"], snapshot["data"], files


def _seals(path: Path, names: tuple[str, ...]) -> np.ndarray[Any, Any]:
    with h5py.File(path, "r") as f:
        group = f[dataset_path(names)]
        return group["seals"][()] if "seals" in group else np.empty(0, dtype=SEAL_DTYPE)


def _campaign(path: Path, n: int, tmp: Path) -> None:
    """A log with every record kind: CREATE with and without data, DATA, FILE."""
    src = tmp / "f.bin"
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("mc")
        mc.add_data({"dataset": "level"})
        for i in range(30):
            mc.create_datapoint(f"m{i}").add_data({"i": i})
        sub = mc.create_dataset("sub")
        for i in range(n):
            point = sub.create_datapoint(f"p{i}")
            if i % 7:
                point.add_data({"i": i, "s": "é" * (i % 5)})
            if i % 11 == 0 and i >= 5:
                sub.get_datapoint(f"p{i - 5}").add_data({"later": i})  # a separate DATA record
            if i % 500 == 0:
                src.write_bytes(random.Random(i).randbytes(3000))
                point.add_file(src, name="f.bin")
                point.add_file(src, name="g.bin")
        sub.add_data({"sub": True})
        src.write_bytes(b"second version")
        sub.get_datapoint("p0").add_file(src, name="f.bin")  # replaces, keeps the position


def test_close_seals_a_long_log_and_reads_match(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 3000, tmp_path)
    assert _seals(path, ("mc", "sub")).size == 1
    assert _seals(path, ("mc",)).size == 0  # 30 datapoints: too short to be worth a seal
    sealed, each = _both_ways(path, ("mc", "sub"))
    assert sealed["seal"] is not None
    assert each["seal"] is None
    assert _same(sealed, each)
    with H5Database(path, "r") as db:
        sub = db.recursively_get_dataset("mc/sub")
        points = sub.recursively_get_datapoints()
        assert len(points) == 3030
        assert points[0].data == {}  # a CREATE without data
        assert points[1].data == {"i": 1, "s": "é"}
        assert points[6].data == {"i": 6, "s": "é", "later": 11}  # CREATE, then a DATA record
        assert points[-1].data == {"i": 29}  # inherited from mc
        assert sub.data == {"sub": True}
        assert sub.get_datapoint("p0").files == ["f.bin", "g.bin"]
        assert sub.get_datapoint("p0").get_file("f.bin").read_bytes() == b"second version"
        assert sub.get_datapoint("p2999").data == {"i": 2999, "s": "éééé"}
    assert check(path).ok


def test_a_tail_after_the_seal_is_replayed_record_by_record(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 2000, tmp_path)
    with H5Database(path, "a") as db:  # a few more: not enough for a new seal
        sub = db.recursively_get_dataset("mc/sub")
        for i in range(2000, 2010):
            sub.create_datapoint(f"p{i}").add_data({"i": i})
        sub.get_datapoint("p3").add_data({"changed": True})
    assert _seals(path, ("mc", "sub")).size == 1
    sealed, each = _both_ways(path, ("mc", "sub"))
    assert sealed["seal"] is not None
    assert sealed["applied"] == each["applied"] > sealed["seal"].rows
    assert _same(sealed, each)
    assert b'"changed":true' in sealed["data"][4]  # node 4 is p3


def test_a_new_seal_continues_the_last_one(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 1500, tmp_path)
    with H5Database(path, "a") as db:
        sub = db.recursively_get_dataset("mc/sub")
        for i in range(1500, 1500 + SEAL_MIN_ROWS):
            sub.create_datapoint(f"p{i}").add_data({"i": i})
    seals = _seals(path, ("mc", "sub"))
    assert seals.size == 2
    with h5py.File(path, "r") as f:  # the second seal's CRCs, computed from scratch
        group = f[dataset_path(("mc", "sub"))]
        newest = seals[-1]
        rows = group["records"][: int(newest["rows"])]
        heap = group["heap"][: int(newest["heap"])]
        assert zlib.crc32(rows.tobytes()) == int(newest["rows_crc"])
        assert zlib.crc32(heap.tobytes()) == int(newest["heap_crc"])
    sealed, each = _both_ways(path, ("mc", "sub"))
    assert sealed["seal"] is not None
    assert sealed["seal"].rows == int(seals[-1]["rows"])
    assert _same(sealed, each)


def _flip(
    path: Path, names: tuple[str, ...], member: str, at: int, field: str | None = None
) -> None:
    with h5py.File(path, "r+") as f:
        dataset = f[dataset_path(names)][member]
        if field is None:
            dataset[at] ^= 0x01
        else:
            row = dataset[at : at + 1]
            row[field] ^= 1
            dataset[at : at + 1] = row


def test_a_damaged_seal_is_ignored_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 2000, tmp_path)
    before = _both_ways(path, ("mc", "sub"))[1]
    _flip(path, ("mc", "sub"), "seals", 0, "heap_crc")
    sealed, each = _both_ways(path, ("mc", "sub"))
    assert sealed["seal"] is None  # ignored: every record was checked instead
    assert _same(sealed, each)
    assert _same(sealed, before)
    found = check(path)
    assert any("damaged seal" in problem for problem in found.problems), found.problems
    report = recover(path)  # rewrites the file, with a new seal
    assert report.datapoints == 2030
    assert check(path).ok
    after = _both_ways(path, ("mc", "sub"))[0]
    assert after["seal"] is not None
    assert _content(after) == _content(before)  # (a rewrite moves the files' bytes)


@pytest.mark.parametrize("member", ["records", "heap"])
def test_damage_under_a_seal_is_found_as_without_one(tmp_path: Path, member: str) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 2000, tmp_path)
    with h5py.File(path, "r") as f:  # the CREATE record of p150
        group = f[dataset_path(("mc", "sub"))]
        rows, heap = group["records"][()], group["heap"][()].tobytes()
        index = next(
            i
            for i, row in enumerate(rows)
            if row["kind"] == 1 and heap[row["name_off"] : row["name_off"] + 4] == b"p150"
        )
    at = index if member == "records" else int(rows[index]["body_off"]) + 1
    _flip(path, ("mc", "sub"), member, at, "node" if member == "records" else None)
    with H5Database(path, "r") as db, pytest.raises(CorruptFileError, match="CRC"):
        db.recursively_get_dataset("mc/sub").datapoints  # noqa: B018
    problems = check(path).problems
    assert any("torn or damaged record" in p for p in problems), problems
    assert any("does not match its records" in p for p in problems), problems
    report = recover(path)
    assert report.datapoints == 2029  # the damaged record is dropped, the rest kept
    assert check(path).ok


def test_a_seal_that_vouches_for_duplicate_names_is_caught(tmp_path: Path) -> None:
    """A forged seal (CRCs recomputed over a doctored log) cannot smuggle in a repeated name."""
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        for i in range(SEAL_MIN_ROWS + 10):
            ds.create_datapoint(f"q{i:05d}")
    with h5py.File(path, "r+") as f:
        group = f["datasets/ds"]
        row = group["records"][1]
        name_at = int(row["name_off"])
        group["heap"][name_at : name_at + 6] = np.frombuffer(b"q00000", dtype=np.uint8)
        seals = group["seals"][()]
        seals["heap_crc"][-1] = zlib.crc32(group["heap"][: int(seals["heap"][-1])].tobytes())
        seals["crc"][-1] = 0
        seals["crc"][-1] = zlib.crc32(seals[-1:].tobytes())
        group["seals"][...] = seals
    with H5Database(path, "r") as db, pytest.raises(CorruptFileError, match="CRC"):
        db.get_dataset("ds").datapoints  # noqa: B018 - even listing: the seal is not trusted
    with h5py.File(path, "r") as f:
        log = DatasetLog(f["datasets/ds"], writable=False)
        assert log._seal is None
        assert log.names == ["q00000"]  # the reference replay stops at the repeated name
    assert not check(path).ok  # the record-by-record check sees the bad CRC


def test_big_integers_under_a_seal_stay_exact(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    big = 2**70 + 1
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        for i in range(SEAL_MIN_ROWS + 5):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
        ds.get_datapoint("p3").add_data({"big": big})
    seals = _seals(path, ("ds",))
    assert seals.size == 1
    assert int(seals["flags"][0]) & 1
    with H5Database(path, "r") as db:
        assert db.get_dataset("ds").get_datapoint("p3").data == {"i": 3, "big": big}


LIVE_WRITER = """
import sys
from hards_h5 import H5Database
path, more = sys.argv[1], int(sys.argv[2])
db = H5Database(path, "a")
sub = db.recursively_get_dataset("mc/sub")
db.start_swmr()
print("LIVE", flush=True)
sys.stdin.readline()
for i in range(1200, 1200 + more):
    sub.create_datapoint(f"p{i}").add_data({"i": i})
db.flush()
print("FLUSHED", flush=True)
sys.stdin.readline()
db.close()
"""


def test_no_seal_in_live_mode_and_live_readers_follow_a_sealed_file(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _campaign(path, 1200, tmp_path)
    more = SEAL_MIN_ROWS + 10
    writer = python_child(LIVE_WRITER, str(path), str(more))
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "LIVE"
        with H5Database(path, "r", swmr=True) as reader:
            seen = reader.recursively_get_dataset("mc/sub")
            assert len(seen.datapoints) == 1200
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "FLUSHED"
            reader.refresh()
            assert len(seen.datapoints) == 1200 + more
            assert seen.get_datapoint(f"p{1200 + more - 1}").data == {"i": 1200 + more - 1}
            assert seen.get_datapoint("p1").data == {"i": 1, "s": "é"}
        writer.stdin.write("close\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert _seals(path, ("mc", "sub")).size == 1  # still only the one from before live mode
    sealed, each = _both_ways(path, ("mc", "sub"))
    assert sealed["seal"] is not None
    assert sealed["applied"] == each["applied"] > sealed["seal"].rows + more - 1
    assert _same(sealed, each)
    compact(path)  # a rewrite seals everything again
    seals = _seals(path, ("mc", "sub"))
    assert seals.size == 1
    assert int(seals["rows"][0]) >= 1200 + more


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 50)),
        st.tuples(st.just("data"), st.integers(0, 50)),
        st.tuples(st.just("file"), st.integers(0, 50)),
    ),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=_ops, second=_ops)
def test_sealed_and_record_by_record_reads_agree(
    tmp_path: Path, first: list[tuple[str, int]], second: list[tuple[str, int]]
) -> None:
    """Any mix of records, sealed after every session, reads the same both ways."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "c.h5"
    src = path.parent / "src.bin"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("hards_h5.store.log.SEAL_MIN_ROWS", 1)
        for session, ops in enumerate((first, second)):
            db = H5Database.create_database(path) if session == 0 else H5Database(path, "a")
            with db:
                ds = db.create_dataset("ds") if session == 0 else db.get_dataset("ds")
                for step, (op, k) in enumerate(ops):
                    names = ds.datapoints
                    if op == "create" or not names:
                        point = ds.create_datapoint(f"s{session}.{step}")
                        if k % 3:
                            point.add_data({"k": k, "t": "x" * k})
                    elif op == "data":
                        ds.get_datapoint(names[k % len(names)]).add_data({f"d{k}": [k, None]})
                    else:
                        src.write_bytes(bytes([k]) * k)
                        target = ds if k % 5 == 0 else ds.get_datapoint(names[k % len(names)])
                        target.add_file(src, name=f"f{k % 3}")
        sealed, each = _both_ways(path, ("ds",))
        assert sealed["seal"] is not None
        assert _same(sealed, each)


# ----------------------------------------------------------------- hostile logs
def _row(kind: int, node: int, name: tuple[int, int], body: tuple[int, int]) -> Any:
    """A record row (name and body: offset, length) whose CRC is right for empty ones."""
    row = np.zeros(1, dtype=RECORD_DTYPE)
    row["kind"], row["node"] = kind, node
    row["name_off"], row["name_len"] = name
    row["body_off"], row["body_len"] = body
    row["crc"] = record_crc(row.tobytes()[:-4], b"", b"")
    return row


def _append_rows(path: Path, rows: np.ndarray[Any, Any]) -> None:
    with h5py.File(path, "r+") as f:
        records = f["datasets/ds/records"]
        end = records.shape[0]
        records.resize((end + rows.size,))
        records[end:] = rows


def _points(path: Path, n: int) -> None:
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        for i in range(n):
            ds.create_datapoint(f"p{i}").add_data({"i": i})


def test_a_name_range_that_overflows_is_damage_not_an_empty_name(tmp_path: Path) -> None:
    """name_off + name_len past 2**63 must not wrap into an empty name that passes its CRC."""
    path = tmp_path / "c.h5"
    _points(path, 5)
    big = 2**63 - 2**31
    _append_rows(
        path, np.concatenate([_row(3, 0, (big, 2**31), (0, 10)), _row(1, 6, (big, 2**31), (0, 0))])
    )
    with h5py.File(path, "r") as f:
        group = f["datasets/ds"]
        rows, heap = group["records"][()], group["heap"][()].tobytes()
    lo, hi = heap_span(rows)
    assert 0 <= lo <= hi
    assert not apply_all(State(), rows, heap[lo:hi], lo)
    assert apply_each(State(), rows, heap[lo:hi], lo) == 5
    with H5Database(path, "r") as db, pytest.raises(CorruptFileError, match="CRC"):
        db.get_dataset("ds").datapoints  # noqa: B018
    assert not check(path).ok


def test_offsets_beyond_any_heap_are_damage(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _points(path, 3)
    _append_rows(path, _row(1, 4, (2**64 - 8, 4), (2**64 - 4, 4)))
    with H5Database(path, "r") as db, pytest.raises(CorruptFileError, match="CRC"):
        db.get_dataset("ds").datapoints  # noqa: B018
    assert recover(path).datapoints == 3


def test_an_empty_data_record_is_not_read_as_empty_data(tmp_path: Path) -> None:
    """A DATA record with no body is damage with or without a seal, never ``{}``."""
    path = tmp_path / "c.h5"
    _points(path, 5)
    _append_rows(path, _row(2, 3, (0, 0), (0, 0)))
    with H5Database(path, "a") as db:  # an honest writer then seals the whole log
        ds = db.get_dataset("ds")
        for i in range(5, 5 + SEAL_MIN_ROWS):
            ds.create_datapoint(f"p{i}")
    assert _seals(path, ("ds",)).size == 1
    for use_seal in (True, False):
        with h5py.File(path, "r") as f:
            log = DatasetLog(f["datasets/ds"], writable=False, use_seal=use_seal)
            assert log.data_json(3) == b""
            with pytest.raises(CorruptFileError, match="not a JSON object"):
                log.data(3)
    with H5Database(path, "r") as db, pytest.raises(CorruptFileError, match="not a JSON"):
        db.get_dataset("ds").get_datapoint("p2").data  # noqa: B018
    assert any("p2: data is not a valid JSON object" in p for p in check(path).problems)


@pytest.mark.parametrize("shape", ["scalar", "2-d", "group", "other dtype"])
def test_a_malformed_seals_object_is_ignored_and_reported(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "c.h5"
    _points(path, SEAL_MIN_ROWS + 10)
    with h5py.File(path, "r+") as f:
        group = f["datasets/ds"]
        good = group["seals"][()]
        del group["seals"]
        if shape == "scalar":
            group.create_dataset("seals", data=good[0])
        elif shape == "2-d":
            group.create_dataset("seals", data=np.stack([good, good], axis=1))
        elif shape == "group":
            group.create_group("seals")
        else:
            group.create_dataset("seals", data=np.zeros(3, dtype=np.uint32))
    sealed, each = _both_ways(path, ("ds",))
    assert sealed["seal"] is None
    assert _same(sealed, each)
    with H5Database(path, "r") as db:
        assert len(db.get_dataset("ds").datapoints) == SEAL_MIN_ROWS + 10
    problems = check(path).problems
    assert any("unreadable seals" in p for p in problems), problems


def test_a_heap_of_superseded_texts_is_not_kept_in_memory(tmp_path: Path) -> None:
    """Data revised many times: the sealed read keeps only each node's current text."""
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        points = [ds.create_datapoint(f"p{i}") for i in range(SEAL_MIN_ROWS)]
        db.flush()
        for revision in range(4):
            for point in points:
                point.add_data({"r": revision, "pad": "x" * 200})
            db.flush()
    with h5py.File(path, "r") as f:
        log = DatasetLog(f["datasets/ds"], writable=False)
        assert log._seal is not None
        assert log._state.sealed_heap == b""  # copied out, heap let go
        assert log.data(7) == {"r": 3, "pad": "x" * 200}
    path2 = tmp_path / "d.h5"
    _points(path2, SEAL_MIN_ROWS + 1)
    with h5py.File(path2, "r") as f:
        log = DatasetLog(f["datasets/ds"], writable=False)
        assert log._seal is not None
        assert log._state.sealed_heap  # mostly live: texts stay in the heap until read
        assert log.data(SEAL_MIN_ROWS + 1) == {"i": SEAL_MIN_ROWS}
