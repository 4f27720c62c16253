"""Crash safety with real SIGKILLs (see tests/fault_harness.py for the full harness)."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import fault_harness
from cli_runner import hards
from hards_h5 import CorruptFileError, DatabaseLockedError, H5Database
from hards_h5.store.superblock import clear_status_flags, lookup3, status_flags
from hards_h5.tools.maintenance import check, compact, recover


def _run(trials: int, tmp_path: Path) -> None:
    summary = fault_harness.run(trials, seed=trials, work=tmp_path)
    assert summary.failures == []
    assert summary.opened == summary.trials == trials  # every file opened directly
    assert summary.reader_opened == summary.writer_opened == trials  # without recover
    assert summary.light + summary.rewritten + summary.already_clean == trials
    assert summary.no_write_permission_read + summary.no_write_permission_refused == trials
    assert summary.lost_points == summary.lost_files == 0


def test_kill_writer_then_open_directly_small(tmp_path: Path) -> None:
    _run(4, tmp_path)


@pytest.mark.slow
def test_kill_writer_then_open_directly_many(tmp_path: Path) -> None:
    _run(int(os.environ.get("HARDS_H5_FAULT_TRIALS", "200")), tmp_path)


def test_lookup3_matches_hdf5(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    head = db_path.read_bytes()[:48]
    assert lookup3(head[:44]) == int.from_bytes(head[44:48], "little")
    assert lookup3(b"") == 0xDEADBEEF
    assert status_flags(db_path) == 0
    assert clear_status_flags(db_path) is False


WRITE_AND_HANG = """
import sys, time
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
db.get_dataset("ds").create_datapoint("acked").add_data({"ok": True})
db.flush()
db.get_dataset("ds").create_datapoint("unacked").add_data({"ok": False})
print("FLUSHED", flush=True)
time.sleep(600)
"""


def _killed_writer(path: Path) -> None:
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_HANG, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "FLUSHED"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_dead_writer_recover_by_hand_still_works(db_path: Path) -> None:
    _killed_writer(db_path)  # recover run before any open (which would recover itself)
    assert not check(db_path).ok
    report = recover(db_path)
    assert report.backup is not None
    assert report.backup.exists()
    assert report.cleared_flags
    with H5Database(db_path, "r") as db:
        assert db.recursively_get_datapoint("ds/acked").data == {"ok": True}
    assert check(db_path).ok


def test_check_cli_on_a_crashed_file_says_recover(db_path: Path) -> None:
    _killed_writer(db_path)
    before = db_path.read_bytes()
    done = hards("check", str(db_path))
    assert done.returncode == 1
    assert f"hards-h5 recover {db_path}" in done.stderr
    assert "format 0" not in done.stdout  # no counts for a file it could not read
    assert db_path.read_bytes() == before  # check never writes


def test_recover_refuses_while_a_writer_is_alive(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_HANG, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        before = db_path.read_bytes()
        with pytest.raises(DatabaseLockedError, match="another process"):
            recover(db_path)
        with pytest.raises(DatabaseLockedError):
            compact(db_path)
        assert db_path.read_bytes() == before
    finally:
        proc.kill()
        proc.wait()


def test_compact_reclaims_dead_space_atomically(db_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("ds")
        point = ds.create_datapoint("p")
        for i in range(30):
            src.write_bytes(random.Random(i).randbytes(300_000))
            point.add_file(src, name="result.bin")  # replaced 30 times
            point.add_data({"step": i, "pad": "x" * 10_000})
            db.flush()
        final = src.read_bytes()
    before = db_path.stat().st_size
    report = compact(db_path)
    assert report.bytes_after < before / 5
    assert db_path.stat().st_size == report.bytes_after
    with H5Database(db_path, "r") as db:
        point = db.recursively_get_datapoint("ds/p")
        assert point.data == {"step": 29, "pad": "x" * 10_000}
        assert point.get_file("result.bin").read_bytes() == final
    assert check(db_path).ok
    assert not [p for p in db_path.parent.iterdir() if ".compact-" in p.name]


def test_check_finds_a_damaged_file_blob(db_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"precious bytes" * 1000)
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds").create_datapoint("p").add_file(src)
    with h5py.File(db_path, "r+") as f:
        f["blobs"][5] ^= 0xFF
    report = check(db_path)
    assert not report.ok
    assert any("SHA-256" in p for p in report.problems)
    done = hards("check", str(db_path))
    assert done.returncode == 1
    assert "hards-h5: error: " in done.stderr


def test_recover_on_a_clean_file_leaves_it_alone(db_path: Path) -> None:
    """recover on a cleanly closed, undamaged file: nothing rewritten, no backup."""
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds").create_datapoint("p").add_data({"a": 1})
    inode = db_path.stat().st_ino
    report = recover(db_path)
    assert not report.rewritten
    assert not report.cleared_flags
    assert report.backup is None
    assert (report.datasets, report.datapoints) == (1, 1)
    assert db_path.stat().st_ino == inode
    with H5Database(db_path, "r") as db:
        assert db.recursively_get_datapoint("ds/p").data == {"a": 1}


def test_compact_and_recover_through_a_symlink_rewrite_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real" / "data.h5"
    real.parent.mkdir()
    with H5Database.create_database(real) as db:
        db.create_dataset("ds").create_datapoint("p").add_data({"a": 1})
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    compact(link)
    recover(link, force=True)
    assert link.is_symlink()
    with H5Database(link) as db:
        db.get_dataset("ds").create_datapoint("new")
    with H5Database(real, "r") as db:
        assert db.get_dataset("ds").datapoints == ["p", "new"]


def test_recover_keeps_every_intact_record_after_damage_in_the_middle(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("ds")
        for i in range(2000):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
        ds.get_datapoint("p5").add_data({"later": True})  # a DATA record near the end
    with h5py.File(db_path, "r+") as f:  # flip one byte of p10's JSON, inside the heap
        group = f["datasets/ds"]
        row = group["records"][11]  # rows 0..1999 create p0..p1999 (data in the CREATE)
        assert bytes(group["heap"][row["name_off"] : row["name_off"] + row["name_len"]]) == b"p11"
        target = int(row["body_off"]) + 2
        group["heap"][target] ^= 0x01
    with (
        H5Database(db_path, "r") as db,
        pytest.raises(CorruptFileError, match="keeps every intact record"),
    ):
        db.get_dataset("ds").datapoints  # noqa: B018
    found = check(db_path)
    assert any("1 torn or damaged record(s)" in p for p in found.problems), found.problems
    report = recover(db_path)
    assert report.datapoints == 1999
    assert any("1 incomplete or damaged record(s) dropped" in line for line in report.dropped)
    with H5Database(db_path, "r") as db:
        ds = db.get_dataset("ds")
        assert ds.datapoints == [f"p{i}" for i in range(2000) if i != 11]
        assert ds.get_datapoint("p1999").data == {"i": 1999}
        assert ds.get_datapoint("p5").data == {"i": 5, "later": True}
    assert check(db_path).ok


def test_compact_and_recover_of_a_read_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ro.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds").create_datapoint("p").add_data({"a": 1})
    path.chmod(0o444)  # rewriting needs the directory, not the file, to be writable
    if os.geteuid() == 0:  # root may open anything for writing: refuse as the kernel would
        real_open = os.open

        def no_write(file: object, flags: int, *args: object, **kwargs: object) -> int:
            if Path(str(file)) == path and flags & os.O_RDWR:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", no_write)
    compact(path)
    recover(path, force=True)
    monkeypatch.undo()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    with H5Database(path, "r") as db:
        assert db.recursively_get_datapoint("ds/p").data == {"a": 1}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_recover_by_root_keeps_the_owner(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    os.chown(db_path, 65534, 65534)
    db_path.chmod(0o640)
    recover(db_path, force=True)
    st = db_path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
