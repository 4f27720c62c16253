"""SWMR live mode with real processes: one writer, readers polling and verifying."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import hards, python_child
from hards_h5 import (
    AutoRecoveryWarning,
    DatabaseLockedError,
    H5Database,
    LiveModeError,
    ReadOnlyError,
)

# Every 97th datapoint gets a note; every 485th a note of 2.3 MB, which (but for
# the first) starts mid-chunk in /blobs and spans whole chunks written directly.
REPS = """
def reps(i):
    return 260_000 + i if i % 485 == 0 else i % 500 + 1
"""

WRITER = """
import sys, time
from pathlib import Path
from hards_h5 import H5Database
path, n, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
note, readers = Path(sys.argv[4]), int(sys.argv[5])
db = H5Database(path)
ds = db.get_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
REPS
deadline = time.time() + 60  # start once every reader has opened the file
while len(list(note.parent.glob("ready.*"))) < readers and time.time() < deadline:
    time.sleep(0.01)
for i in range(n):
    p = ds.create_datapoint(f"p{i}")
    p.add_data({"i": i, "sq": i * i, "text": "t" * (i % 300)})
    if i % 97 == 0:
        note.write_text(f"note {i}\\n" * reps(i))
        p.add_file(note, name="note.txt")
    if i % every == every - 1:
        db.flush()
        time.sleep(0.002)
db.close()
""".replace("REPS\n", REPS)

READER = """
import os, sys, time
from pathlib import Path
from hards_h5 import H5Database
path, n = sys.argv[1], int(sys.argv[2])
db = H5Database(path, "r", swmr=True)
ds = db.get_dataset("ds")
Path(sys.argv[3], f"ready.{os.getpid()}").touch()
REPS
seen = polls = 0
deadline = time.time() + 240
while seen < n and time.time() < deadline:
    db.refresh()
    names = ds.datapoints
    assert len(names) >= seen, "datapoints went backwards"
    for i in range(seen, len(names)):
        assert names[i] == f"p{i}", names[i]
        point = ds.get_datapoint(names[i])
        assert point.data == {"i": i, "sq": i * i, "text": "t" * (i % 300)}, point.data
        if i % 97 == 0:
            assert point.get_file("note.txt").read_text() == f"note {i}\\n" * reps(i)
    seen = len(names)
    polls += 1
assert seen == n, f"reader saw {seen} of {n}"
print(f"OK {seen} {polls}")
""".replace("REPS\n", REPS)


def _live_run(path: Path, n: int, readers: int, every: int, tmp_path: Path) -> list[str]:
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(path),
            str(n),
            str(every),
            str(tmp_path / "note.txt"),
            str(readers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "LIVE"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(n), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(readers)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out)
    _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    with H5Database(path, "r") as db:  # after close: an ordinary campaign file
        assert len(db.get_dataset("ds").datapoints) == n
    return outputs


def test_live_readers_see_every_flushed_datapoint(tmp_path: Path) -> None:
    outputs = _live_run(tmp_path / "live.h5", 2000, readers=2, every=40, tmp_path=tmp_path)
    assert all(out.startswith("OK 2000") for out in outputs)
    # a reader polls again only while it has seen part of the data: live growth was seen
    assert all(int(out.split()[2]) > 1 for out in outputs)


@pytest.mark.slow
def test_stress_one_writer_four_readers_10k(tmp_path: Path) -> None:
    outputs = _live_run(tmp_path / "stress.h5", 10_000, readers=4, every=25, tmp_path=tmp_path)
    assert all(out.startswith("OK 10000") for out in outputs)
    assert all(int(out.split()[2]) > 1 for out in outputs)


STEPPED_WRITER = """
import sys
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
ds = db.get_dataset("ds") if db.has_dataset("ds") else db.create_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
for line in sys.stdin:
    i = int(line)
    ds.create_datapoint(f"p{i}").add_data({"i": i})
    db.flush()
    print("FLUSHED", flush=True)
db.close()
"""


WAITER = """
import sys
from hards_h5 import H5Database
with H5Database(sys.argv[1], timeout=60) as db:
    print(*db.get_dataset("ds").datapoints)
"""


def _stepped_writer(db_path: Path) -> subprocess.Popen[str]:
    """Start STEPPED_WRITER on ``db_path``: it goes live, then adds a datapoint per line."""
    return python_child(STEPPED_WRITER, str(db_path))


def test_new_rows_appear_only_after_refresh(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds").create_datapoint("p0").add_data({"i": 0})
    writer = _stepped_writer(db_path)
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "LIVE"
        with H5Database(db_path, "r", swmr=True) as reader:
            ds = reader.get_dataset("ds")
            point = ds.get_datapoint("p0")
            for i in (1, 2):
                writer.stdin.write(f"{i}\n")
                writer.stdin.flush()
                assert writer.stdout.readline().strip() == "FLUSHED"
                assert ds.datapoints == [f"p{k}" for k in range(i)]  # not before refresh
                reader.refresh()
                assert ds.datapoints == [f"p{k}" for k in range(i + 1)]
                assert ds.get_datapoint(f"p{i}").data == {"i": i}
                assert point.data == {"i": 0}
    finally:
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    with H5Database(db_path, "r") as db:
        assert db.get_dataset("ds").datapoints == ["p0", "p1", "p2"]


def test_a_live_writer_keeps_the_file_locked(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    writer = _stepped_writer(db_path)
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "LIVE"
        # HDF5 dropped its own lock at start_swmr(); the live writer's lock still
        # keeps writers and recovery out, with a message saying what to do.
        with pytest.raises(DatabaseLockedError, match=r"live \(SWMR\) writer.*timeout="):
            H5Database(db_path, "r+")
        with pytest.raises(
            DatabaseLockedError, match=r"live \(SWMR\) writer \(pid \d+ on host .*swmr=True"
        ):
            H5Database(db_path, "r")
        recover = hards("recover", str(db_path))
        assert recover.returncode == 1
        assert "another process has the file open" in recover.stderr
        with H5Database(db_path, "r", swmr=True) as reader:  # watching is fine
            assert reader.children == ["ds"]
        waiter = subprocess.Popen(
            [sys.executable, "-c", WAITER, str(db_path)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting for the live writer
        writer.stdin.write("1\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "FLUSHED"
    finally:
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    assert out.split() == ["p1"]


def test_live_mode_refuses_new_datasets_but_takes_data(db_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("ds")
        db.start_swmr()
        assert db.swmr_mode
        with pytest.raises(LiveModeError, match="before start_swmr"):
            db.create_dataset("late")
        with pytest.raises(LiveModeError):
            ds.create_dataset("late")
        ds.add_data({"meta": 1})
        point = ds.create_datapoint("p")
        point.add_data({"a": 1})
        point.add_file(src)
    with H5Database(db_path, "r") as db:
        ds = db.get_dataset("ds")
        assert ds.data == {"meta": 1}
        assert ds.get_datapoint("p").get_file("f.txt").read_text() == "x"
        assert db.children == ["ds"]


def test_swmr_arguments_checked(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    with pytest.raises(ValueError, match="swmr=True is for readers"):
        H5Database(db_path, "r+", swmr=True)
    with H5Database(db_path, "r") as db:
        with pytest.raises(ReadOnlyError):
            db.start_swmr()
        db.refresh()  # no writer: nothing to do


KILLED_WRITER = """
import sys
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
ds = db.get_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
i = 0
while True:
    ds.create_datapoint(f"p{i}").add_data({"i": i, "pad": "x" * (i % 500)})
    i += 1
    if i % 50 == 0:
        db.flush()
        print(i, flush=True)  # acknowledged: every datapoint below i is on disk
"""


def test_killed_live_writer_readers_survive_and_the_next_open_recovers(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "LIVE"
    reader = H5Database(db_path, "r", swmr=True)
    ds = reader.get_dataset("ds")
    acknowledged = 0
    while acknowledged < 2000:
        acknowledged = int(writer.stdout.readline())
        reader.refresh()
        assert len(ds.datapoints) >= acknowledged
    writer.kill()  # SIGKILL, mid-write
    writer.wait()
    reader.refresh()  # the reader outlives the writer and sees a consistent prefix
    names = ds.datapoints
    assert len(names) >= acknowledged
    for i in range(0, len(names), 7):
        assert ds.get_datapoint(f"p{i}").data == {"i": i, "pad": "x" * (i % 500)}
    reader.close()
    # the dead writer left its flags but not its lock: the next plain open recovers it
    with (
        pytest.warns(AutoRecoveryWarning, match="recovered automatically"),
        H5Database(db_path, "r") as db,
    ):
        recovered = db.get_dataset("ds").datapoints
    assert len(recovered) >= acknowledged
    assert recovered == [f"p{i}" for i in range(len(recovered))]


CHURN_LIVE = """
import sys, time
from hards_h5 import H5Database
end, starts = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    with H5Database(sys.argv[1], timeout=30) as db:
        db.start_swmr()  # must never fail because another process probes the file
        assert db.store.live_lock.held
        starts += 1
print(starts)
"""
CHURN_OPEN = """
import sys, time, warnings
from hards_h5 import AutoRecoveryWarning, DatabaseLockedError, H5Database, RecoveryNeededError
warnings.simplefilter("error", AutoRecoveryWarning)
end, wrong = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    try:
        H5Database(sys.argv[1]).close()
    except DatabaseLockedError:
        pass
    except (RecoveryNeededError, AutoRecoveryWarning):  # 'the writer died' of a live one
        wrong += 1
    time.sleep(0.005)  # (no fairness between lockers: leave the live writer a turn)
print(wrong)
"""
CHURN_RECOVER = """
import sys, time
from hards_h5 import DatabaseLockedError, HARDSError, recover
end, rewritten = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    try:
        rewritten += recover(sys.argv[1]).rewritten  # the file is never dead: never rewritten
    except (DatabaseLockedError, HARDSError):
        pass
    time.sleep(0.005)
print(rewritten)
"""


def test_starting_live_mode_leaves_no_unlocked_moment(db_path: Path) -> None:
    """A live writer's lock is taken before HDF5 drops its own, so waiting writers
    and recover never see the file unlocked while a writer enters live mode."""
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(db_path), "6"], stdout=subprocess.PIPE, text=True
        )
        for code in (CHURN_LIVE, CHURN_OPEN, CHURN_RECOVER)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    starts, wrong, rewritten = map(int, outputs)
    assert starts > 0
    assert (wrong, rewritten) == (0, 0)
