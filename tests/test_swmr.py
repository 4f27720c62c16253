"""SWMR live mode with real processes: one writer, readers polling and verifying."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database, LiveModeError, ReadOnlyError

WRITER = """
import sys, time
from pathlib import Path
from hards_h5 import H5Database
path, n, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
note = Path(sys.argv[4])
db = H5Database(path)
ds = db.get_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
for i in range(n):
    p = ds.create_datapoint(f"p{i}")
    p.add_data({"i": i, "sq": i * i, "text": "t" * (i % 300)})
    if i % 97 == 0:
        note.write_text(f"note {i}\\n" * (i % 500 + 1))
        p.add_file(note, name="note.txt")
    if i % every == every - 1:
        db.flush()
        time.sleep(0.002)
db.close()
"""

READER = """
import sys, time
from hards_h5 import H5Database
path, n = sys.argv[1], int(sys.argv[2])
db = H5Database(path, "r", swmr=True)
ds = db.get_dataset("ds")
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
            assert point.get_file("note.txt").read_text() == f"note {i}\\n" * (i % 500 + 1)
    seen = len(names)
    polls += 1
assert seen == n, f"reader saw {seen} of {n}"
print(f"OK {seen} {polls}")
"""


def _live_run(path: Path, n: int, readers: int, every: int, tmp_path: Path) -> list[str]:
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(n), str(every), str(tmp_path / "note.txt")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "LIVE"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(n)],
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


@pytest.mark.slow
def test_stress_one_writer_four_readers_10k(tmp_path: Path) -> None:
    outputs = _live_run(tmp_path / "stress.h5", 10_000, readers=4, every=25, tmp_path=tmp_path)
    assert all(out.startswith("OK 10000") for out in outputs)


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
