"""A file whose writer was killed opens directly: the next open recovers it (real kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import pytest

from cli_runner import hards, python_child
from hards_h5 import AutoRecoveryWarning, DatabaseLockedError, H5Database
from hards_h5.store.autorecover import _lock
from hards_h5.store.superblock import status_flags
from hards_h5.tools.maintenance import check

WRITE_AND_HANG = """
import sys, time
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
ds = db.get_dataset("ds")
for i in range(int(sys.argv[2])):
    ds.create_datapoint(f"{sys.argv[3]}{i}").add_data({"i": i})
db.flush()
ds.create_datapoint("unacked").add_data({"ok": False})
print("FLUSHED", flush=True)
time.sleep(600)
"""

# Opens the file twice in a fresh process; prints what it saw and the recovery warnings.
OPEN_AND_REPORT = """
import json, os, sys, warnings
from pathlib import Path
from hards_h5 import AutoRecoveryWarning, H5Database, HARDSError
path, mode = Path(sys.argv[1]), sys.argv[2]
if sys.argv[3] == "no-write-permission":
    real_open = os.open
    def no_write(file, flags, *args, **kwargs):
        if Path(str(file)) == path and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)
    os.open = no_write
seen = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        for _ in range(2):
            with H5Database(path, mode) as db:
                ds = db.get_dataset("ds")
                seen = [[n, ds.get_datapoint(n).data] for n in ds.datapoints]
                if mode != "r":
                    ds.create_datapoint(f"after{len(seen)}")
        error = None
    except HARDSError as exc:
        error = f"{type(exc).__name__}: {exc}"
said = [str(w.message) for w in caught if issubclass(w.category, AutoRecoveryWarning)]
print(json.dumps({"seen": seen, "warnings": said, "error": error}))
"""


def _killed_writer(path: Path, acked: int = 3, prefix: str = "acked") -> None:
    """Leave ``path`` as a writer killed (SIGKILL) after flushing ``acked`` datapoints."""
    if not path.exists():
        with H5Database.create_database(path) as db:
            db.create_dataset("ds")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_HANG, str(path), str(acked), prefix],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "FLUSHED"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # (closes the pipe)
    assert status_flags(path)  # the dead writer's marks are left


def _open_in_child(path: Path, mode: str, who: str = "owner") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_AND_REPORT, str(path), mode, who],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome


def _said(caught: pytest.WarningsRecorder) -> str:
    """Return the one AutoRecoveryWarning among ``caught`` (others may be unrelated)."""
    said = [str(w.message) for w in caught if issubclass(w.category, AutoRecoveryWarning)]
    assert len(said) == 1, said
    return said[0]


def _acked(n: int) -> list[list[object]]:
    return [[f"acked{i}", {"i": i}] for i in range(n)]


def test_reader_in_a_fresh_process_opens_a_killed_writers_file(db_path: Path) -> None:
    _killed_writer(db_path)
    outcome = _open_in_child(db_path, "r")
    assert outcome["error"] is None
    assert outcome["seen"] == _acked(3)  # every flushed datapoint, nothing unflushed
    said = outcome["warnings"]
    assert isinstance(said, list)
    assert len(said) == 1  # once: the second open finds a clean file
    assert str(db_path) in said[0]
    assert "stopped without closing" in said[0]
    assert "nothing flushed was lost" in said[0]
    assert status_flags(db_path) == 0
    assert check(db_path).ok
    assert not list(db_path.parent.glob("*.bak-*"))  # the light repair: no rewrite


def test_writer_recovers_a_killed_writers_file_and_writes_on(db_path: Path) -> None:
    _killed_writer(db_path)
    inode = db_path.stat().st_ino
    outcome = _open_in_child(db_path, "r+")
    assert outcome["error"] is None
    assert outcome["seen"][: len(_acked(3))] == _acked(3)  # type: ignore[index]
    assert len(outcome["warnings"]) == 1  # type: ignore[arg-type]
    with H5Database(db_path, "r") as db:
        names = db.get_dataset("ds").datapoints
    assert names == [*(f"acked{i}" for i in range(3)), "after3", "after4"]  # opened twice
    assert db_path.stat().st_ino == inode  # recovered in place
    assert check(db_path).ok


def test_mode_a_recovers_too_and_a_second_crash_is_recovered_again(db_path: Path) -> None:
    _killed_writer(db_path, acked=2)
    with pytest.warns(AutoRecoveryWarning, match="recovered automatically") as caught:
        H5Database(db_path, "a").close()
    _said(caught)
    _killed_writer(db_path, acked=2, prefix="again")
    with pytest.warns(AutoRecoveryWarning, match="recovered automatically") as caught:
        db = H5Database(db_path, "a")
    with db:
        names = db.get_dataset("ds").datapoints
    _said(caught)
    assert names == ["acked0", "acked1", "again0", "again1"]


def test_reader_without_write_permission_reads_without_changing_the_file(
    db_path: Path,
) -> None:
    _killed_writer(db_path)
    before = db_path.read_bytes()
    outcome = _open_in_child(db_path, "r", "no-write-permission")
    assert outcome["error"] is None
    assert outcome["seen"] == _acked(3)
    said = outcome["warnings"]
    assert isinstance(said, list)
    assert len(said) == 2  # the file stays as it was: each open says so
    assert "may not write it" in said[0]
    assert db_path.read_bytes() == before  # not a byte written
    outcome = _open_in_child(db_path, "r+", "no-write-permission")
    assert outcome["error"] is not None
    assert outcome["error"].startswith("RecoveryNeededError")  # type: ignore[attr-defined]
    assert f"hards-h5 recover {db_path}" in outcome["error"]  # type: ignore[operator]


HOLD_VIEW = """
import os, sys
from pathlib import Path
path = Path(sys.argv[1])
real_open = os.open
def no_write(file, flags, *args, **kwargs):
    if Path(str(file)) == path and flags & (os.O_RDWR | os.O_WRONLY):
        raise PermissionError(13, "Permission denied", str(file))
    return real_open(file, flags, *args, **kwargs)
os.open = no_write
from hards_h5 import H5Database
db = H5Database(path, "r")
print(len(db.get_dataset("ds").datapoints), flush=True)
sys.stdin.readline()
print(len(db.get_dataset("ds").datapoints), flush=True)
db.close()
"""


def test_no_writer_recovers_the_file_under_a_reader_without_write_permission(
    db_path: Path,
) -> None:
    _killed_writer(db_path)
    reader = python_child(HOLD_VIEW, str(db_path))
    assert reader.stdin is not None
    assert reader.stdout is not None
    try:
        assert reader.stdout.readline().strip() == "3"
        with pytest.raises(DatabaseLockedError):
            H5Database(db_path)  # the reader holds the file: no recovery under it
        assert status_flags(db_path)
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "3"
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
        reader.stdout.close()
    with pytest.warns(AutoRecoveryWarning):
        H5Database(db_path).close()  # the reader is gone: now a writer recovers it


def test_a_live_writer_is_never_recovered(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITE_AND_HANG, str(db_path), "3", "acked"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "FLUSHED"
        before = db_path.read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error", AutoRecoveryWarning)
            for mode in ("r", "r+", "a"):
                with pytest.raises(DatabaseLockedError):
                    H5Database(db_path, mode)  # type: ignore[arg-type]
        assert db_path.read_bytes() == before
        assert status_flags(db_path)
    finally:
        proc.kill()
        proc.communicate()


def _damage_a_record(path: Path) -> None:
    """Flip a bit in the JSON of datapoint p11 of dataset 'old' (a CRC then fails)."""
    with h5py.File(path, "r+") as f:
        group = f["datasets/old"]
        row = group["records"][11]
        assert bytes(group["heap"][row["name_off"] : row["name_off"] + row["name_len"]]) == b"p11"
        group["heap"][int(row["body_off"]) + 2] ^= 0x01


def _damaged_and_left_open(path: Path) -> None:
    """A campaign with a damaged record in dataset ``old``, then left by a killed writer."""
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
        old = db.create_dataset("old")
        for i in range(50):
            old.create_datapoint(f"p{i}").add_data({"i": i})
    _damage_a_record(path)
    _killed_writer(path)


def test_a_killed_writers_damaged_file_is_rewritten_by_the_next_writer(db_path: Path) -> None:
    _damaged_and_left_open(db_path)
    # who may not write the file is told who must run what; nothing is changed
    before = db_path.read_bytes()
    outcome = _open_in_child(db_path, "r", "no-write-permission")
    assert isinstance(outcome["error"], str)
    assert outcome["error"].startswith("RecoveryNeededError")
    assert "needs a full recovery" in outcome["error"]
    assert f"hards-h5 recover {db_path}" in outcome["error"]
    assert db_path.read_bytes() == before
    # a writer runs the recover rewrite itself, keeping every intact record
    with pytest.warns(AutoRecoveryWarning, match="into a clean file") as caught:
        db = H5Database(db_path)
    with db:
        assert db.get_dataset("ds").datapoints == ["acked0", "acked1", "acked2"]
        assert db.get_dataset("old").datapoints == [f"p{i}" for i in range(50) if i != 11]
    message = _said(caught)
    assert "dropped" in message
    backups = list(db_path.parent.glob("campaign.h5.bak-*"))
    assert len(backups) == 1
    assert str(backups[0]) in message
    assert backups[0].read_bytes() == before  # the original was read, never written
    assert check(db_path).ok


def test_damage_in_a_closed_file_still_needs_recover(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        old = db.create_dataset("old")
        for i in range(50):
            old.create_datapoint(f"p{i}").add_data({"i": i})
    _damage_a_record(db_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AutoRecoveryWarning)
        with H5Database(db_path) as db, pytest.raises(Exception, match="hards-h5 recover"):
            db.get_dataset("old").datapoints  # noqa: B018
    assert not list(db_path.parent.glob("*.bak-*"))  # nothing rewritten behind the user's back


def test_the_lock_refuses_a_file_replaced_at_its_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    for path in (first, second):
        H5Database.create_database(path).close()
    fd = os.open(first, os.O_RDWR)
    try:
        second.replace(first)  # what a recover or compact does between open and lock
        with pytest.raises(DatabaseLockedError, match="try again"):
            _lock(fd, first, exclusive=True, writable=True)
    finally:
        os.close(fd)


def test_a_file_rewritten_by_its_open_is_shared_by_the_next_open_in_the_process(
    db_path: Path,
) -> None:
    """The rewrite replaces the file (a new inode): the process's next open must find
    the file it already has open, not open a second one beside it."""
    _damaged_and_left_open(db_path)
    with pytest.warns(AutoRecoveryWarning, match="into a clean file"):
        first = H5Database(db_path)
    with first:
        first.get_dataset("ds").create_datapoint("pending")  # not flushed yet
        with H5Database(db_path, "r") as second:
            assert "pending" in second.get_dataset("ds").datapoints


def test_compact_recovers_a_killed_writers_file_first(db_path: Path) -> None:
    """``hards-h5 compact`` on a dead writer's file recovers it as an open would
    (saying so once) and then compacts it, instead of sending the user to recover."""
    _killed_writer(db_path, acked=5)
    done = hards("compact", str(db_path))
    assert done.returncode == 0, done.stderr
    assert "stopped without closing the file; recovered automatically" in done.stderr
    assert status_flags(db_path) == 0
    with H5Database(db_path, "r") as db:
        points = db.get_dataset("ds").recursively_get_datapoints()
        assert [[p.name, p.data] for p in points] == _acked(5)
    assert check(db_path).ok
