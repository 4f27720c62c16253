"""Opening a campaign file again in the same process: every object shares one open file.

The seed's application notebook (Monte Carlo pi, random vs Sobol samples) writes a
campaign, then opens ``FilesystemDatabase(same_path)`` while the first object is
alive and reads it back; notebooks re-run cells like that all the time.  With
``H5Database`` swapped in, both objects must work, see the same campaign, and keep
everything either of them writes.
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hards import api

from cli_runner import python_child
from hards_h5 import (
    DatabaseClosedError,
    DatabaseLockedError,
    H5Database,
    LiveModeError,
    ReadOnlyError,
)

BITS = 30


def sobol_2d(n: int) -> list[tuple[float, float]]:
    """The first ``n`` points of the 2-D Sobol sequence (Gray-code order)."""
    v1 = [1 << (BITS - 1 - k) for k in range(BITS)]
    m = [1]
    for _ in range(1, BITS):
        m.append((2 * m[-1]) ^ m[-1])  # primitive polynomial x + 1
    v2 = [m[k] << (BITS - 1 - k) for k in range(BITS)]
    x = y = 0
    out = []
    for i in range(n):
        out.append((x / 2**BITS, y / 2**BITS))
        c = (~i & (i + 1)).bit_length() - 1  # lowest zero bit of i
        x ^= v1[c]
        y ^= v2[c]
    return out


def sample(kind: str, n: int, seed: int = 0) -> list[tuple[float, float]]:
    if kind == "sobol":
        return sobol_2d(n)
    rng = random.Random(seed)
    return [(rng.random(), rng.random()) for _ in range(n)]


def add_samples(ds: api.AbstractDataset, kind: str, start: int, n: int) -> None:
    """The notebook's loop: one datapoint per sample, with x, y and inside."""
    for i, (x, y) in enumerate(sample(kind, start + n)[start:], start=start):
        ds.create_datapoint(f"{kind}-{i}").add_data(
            {"x": x, "y": y, "inside": x * x + y * y <= 1.0}
        )


def estimate(ds: api.AbstractDataset) -> float:
    points = ds.recursively_get_datapoints()
    return 4 * sum(p.data["inside"] for p in points) / len(points)


def pi_campaign(path: Path, n: int = 200) -> H5Database:
    db = H5Database.create_database(path)
    for kind in ("random", "sobol"):
        ds = db.create_dataset(kind)
        ds.add_data({"sampler": kind})
        add_samples(ds, kind, 0, n)
    return db


READ_BACK = """
import json, sys
from hards_h5 import H5Database
with H5Database(sys.argv[1], "r") as db:
    out = {}
    for name in db.children:
        ds = db.get_dataset(name)
        out[name] = {
            "data": ds.data,
            "files": {f: ds.get_file(f).read_bytes().decode("latin-1") for f in ds.files},
            "points": {p.name: p.data for p in ds.recursively_get_datapoints()},
        }
print(json.dumps(out))
"""


def read_in_fresh_process(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def expected_points(kind: str, n: int) -> dict[str, dict[str, Any]]:
    return {
        f"{kind}-{i}": {"x": x, "y": y, "inside": x * x + y * y <= 1.0}
        for i, (x, y) in enumerate(sample(kind, n))
    }


@pytest.mark.parametrize("first_closes_first", [True, False])
def test_notebook_reopens_the_campaign_while_the_first_object_lives(
    db_path: Path, tmp_path: Path, *, first_closes_first: bool
) -> None:
    db = pi_campaign(db_path)
    estimates = {kind: estimate(db.get_dataset(kind)) for kind in ("random", "sobol")}
    database = H5Database(db_path)  # the notebook's next cell; `db` is still alive
    assert database.children == ["random", "sobol"]
    for kind, value in estimates.items():
        assert estimate(database.get_dataset(kind)) == value
        assert abs(value - math.pi) < 0.3
    # Both write; each sees the other's datapoints at once.
    add_samples(db.get_dataset("random"), "random", 200, 50)
    add_samples(database.get_dataset("sobol"), "sobol", 200, 50)
    assert len(database.get_dataset("random").datapoints) == 250
    assert len(db.get_dataset("sobol").datapoints) == 250
    note = tmp_path / "notes.txt"
    note.write_text("sobol converges faster")
    database.get_dataset("sobol").add_file(note)
    db.get_dataset("random").add_data({"seed": 0})
    assert db.get_dataset("sobol").get_file("notes.txt").read_text() == "sobol converges faster"
    assert database.get_dataset("random").data == {"sampler": "random", "seed": 0}
    closing = (db, database) if first_closes_first else (database, db)
    closing[0].close()
    survivor = closing[1]
    assert not survivor.closed
    survivor.get_dataset("random").create_datapoint("late").add_data({"after": "close"})
    with pytest.raises(DatabaseClosedError, match="closed"):
        closing[0].get_dataset("random")
    survivor.close()
    seen = read_in_fresh_process(db_path)
    assert seen["random"]["data"] == {"sampler": "random", "seed": 0}
    assert seen["sobol"]["files"] == {"notes.txt": "sobol converges faster"}
    assert seen["random"]["points"] == {
        **expected_points("random", 250),
        "late": {"after": "close"},
    }
    assert seen["sobol"]["points"] == expected_points("sobol", 250)


def test_notebook_rebinding_without_close_loses_nothing(db_path: Path) -> None:
    # `db = H5Database(path)` run twice: the first object is dropped, never closed,
    # with datapoints still pending in memory.
    db = pi_campaign(db_path, n=100)
    db = H5Database(db_path)
    gc.collect()  # the first object is collected: the file stays open for the second
    add_samples(db.get_dataset("random"), "random", 100, 20)
    assert len(db.get_dataset("sobol").datapoints) == 100
    del db
    gc.collect()  # the last one: everything pending is written, the file closed
    seen = read_in_fresh_process(db_path)
    assert seen["random"]["points"] == expected_points("random", 120)
    assert seen["sobol"]["points"] == expected_points("sobol", 100)
    with H5Database(db_path) as again:  # nothing of the old ones is left open
        assert again.get_dataset("random").datapoints[-1] == "random-119"


def test_reader_beside_a_writer_sees_its_writes_and_cannot_write(
    db_path: Path, tmp_path: Path
) -> None:
    writer = pi_campaign(db_path, n=20)
    reader = H5Database(db_path, "r")
    assert reader.mode == "r"
    assert writer.mode == "r+"
    ds = reader.get_dataset("random")
    point = ds.get_datapoint("random-0")
    add_samples(writer.get_dataset("random"), "random", 20, 5)  # not flushed: seen anyway
    writer.get_dataset("random").get_datapoint("random-0").add_data({"checked": True})
    assert ds.datapoints == [f"random-{i}" for i in range(25)]
    assert point.data["checked"] is True
    source = tmp_path / "a.txt"
    source.write_text("a")
    for attempt in (
        lambda: reader.create_dataset("halton"),
        lambda: ds.create_datapoint("x"),
        lambda: point.add_data({"x": 1}),
        lambda: point.add_file(source),
    ):
        with pytest.raises(ReadOnlyError, match="read-only"):
            attempt()
    writer.close()  # the reader keeps the file open
    assert len(ds.datapoints) == 25
    assert point.data["checked"] is True
    with pytest.raises(ReadOnlyError):
        ds.create_datapoint("x")
    reader.close()
    assert len(read_in_fresh_process(db_path)["random"]["points"]) == 25


def test_writer_after_a_reader_keeps_the_readers_objects_working(
    db_path: Path, tmp_path: Path
) -> None:
    source = tmp_path / "plot.png"
    source.write_bytes(b"\x89PNG" + bytes(range(256)) * 100)
    with pi_campaign(db_path, n=30) as db:
        db.get_dataset("sobol").add_file(source)
    reader = H5Database(db_path, "r")
    ds = reader.get_dataset("sobol")
    point = ds.get_datapoint("sobol-1")
    writer = H5Database(db_path)  # HDF5 had it open read-only: switched to read-write
    add_samples(writer.get_dataset("sobol"), "sobol", 30, 10)
    assert ds.datapoints == [f"sobol-{i}" for i in range(40)]
    assert point.data == expected_points("sobol", 2)["sobol-1"]
    assert ds.get_file("plot.png").read_bytes() == source.read_bytes()
    with pytest.raises(ReadOnlyError):
        ds.create_datapoint("x")
    reader.close()
    writer.get_dataset("sobol").create_datapoint("after-reader")
    writer.close()
    seen = read_in_fresh_process(db_path)
    assert list(seen["sobol"]["points"]) == [f"sobol-{i}" for i in range(40)] + ["after-reader"]


HOLD_READ_ONLY = """
import sys
from hards_h5 import H5Database
db = H5Database(sys.argv[1], "r")
print("open", flush=True)
sys.stdin.readline()
db.close()
"""


def test_writer_after_a_reader_waits_for_other_processes_readers(db_path: Path) -> None:
    pi_campaign(db_path, n=10).close()
    reader = H5Database(db_path, "r")
    child = python_child(HOLD_READ_ONLY, str(db_path))
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "open"
        with pytest.raises(DatabaseLockedError, match="conflicting mode"):
            H5Database(db_path)
        assert len(reader.get_dataset("random").datapoints) == 10  # still works
        started = time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        with H5Database(db_path, timeout=60) as writer:  # waits for the other reader
            writer.get_dataset("random").create_datapoint("after-wait")
            assert reader.get_dataset("random").datapoints[-1] == "after-wait"
        assert time.monotonic() - started < 60
    finally:
        child.kill()
        child.wait(timeout=60)
    assert reader.get_dataset("random").datapoints[-1] == "after-wait"
    reader.close()
    assert "after-wait" in read_in_fresh_process(db_path)["random"]["points"]


SWMR_WATCH = """
import sys, time
from hards_h5 import H5Database
with H5Database(sys.argv[1], "r", swmr=True) as db:
    ds = db.get_dataset("random")
    deadline = time.monotonic() + 120
    while len(ds.datapoints) < int(sys.argv[2]) and time.monotonic() < deadline:
        time.sleep(0.02)
        db.refresh()
    print(len(ds.datapoints), ",".join(ds.datapoints[-2:]))
"""
TRY_WRITE = """
import sys
from hards_h5 import DatabaseLockedError, H5Database
try:
    H5Database(sys.argv[1]).close()
except DatabaseLockedError:
    print("locked")
else:
    print("opened")
"""


def _other_process_writer(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_WRITE, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.strip()


def test_live_writer_and_a_second_handle(db_path: Path) -> None:
    pi_campaign(db_path, n=10).close()
    first = H5Database(db_path)
    first.start_swmr()
    second = H5Database(db_path)
    watcher = H5Database(db_path, "r", swmr=True)  # a SWMR reader in the writer's process
    assert first.swmr_mode
    assert second.swmr_mode
    with pytest.raises(LiveModeError):
        second.create_dataset("halton")
    second.start_swmr()  # already live: nothing to do
    first.get_dataset("random").create_datapoint("from-first")
    second.get_dataset("random").create_datapoint("from-second")
    watcher.refresh()
    assert watcher.get_dataset("random").datapoints[-2:] == ["from-first", "from-second"]
    second.flush()
    child = subprocess.run(
        [sys.executable, "-c", SWMR_WATCH, str(db_path), "12"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert child.stdout.split() == ["12", "from-first,from-second"]
    first.close()  # the live lock stays while the other handles keep the file
    assert _other_process_writer(db_path) == "locked"
    watcher.close()
    second.get_dataset("random").create_datapoint("last")
    second.close()
    assert _other_process_writer(db_path) == "opened"
    points = read_in_fresh_process(db_path)["random"]["points"]
    assert list(points)[-3:] == ["from-first", "from-second", "last"]


def test_swmr_reader_handle_then_writer_in_one_process(db_path: Path) -> None:
    pi_campaign(db_path, n=5).close()
    watcher = H5Database(db_path, "r", swmr=True)
    assert watcher.get_dataset("sobol").datapoints[-1] == "sobol-4"
    with H5Database(db_path) as writer:
        writer.get_dataset("sobol").create_datapoint("new")
        watcher.refresh()
        assert watcher.get_dataset("sobol").datapoints[-1] == "new"
    watcher.close()
    assert "new" in read_in_fresh_process(db_path)["sobol"]["points"]


def test_same_file_through_a_symlink_and_a_relative_path(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pi_campaign(db_path, n=5)
    link = tmp_path / "link.h5"
    link.symlink_to(db_path)
    monkeypatch.chdir(tmp_path)
    by_link = H5Database(link)
    by_relative = H5Database(os.path.relpath(db_path, tmp_path))
    assert by_link.path == link
    assert by_relative.path == Path("campaign.h5")
    by_link.get_dataset("random").create_datapoint("via-link")
    by_relative.get_dataset("random").create_datapoint("via-relative")
    assert db.get_dataset("random").datapoints[-2:] == ["via-link", "via-relative"]
    for handle in (by_relative, db, by_link):
        handle.close()
    points = read_in_fresh_process(db_path)["random"]["points"]
    assert list(points)[-2:] == ["via-link", "via-relative"]


def test_each_handle_has_its_own_extraction_cache(db_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "table.csv"
    source.write_text("x,y\n0.1,0.2\n")
    with pi_campaign(db_path, n=1) as db:
        db.get_dataset("random").add_file(source)
    one = H5Database(db_path, cache_dir=tmp_path / "cache-one")
    two = H5Database(db_path, "r", cache_dir=tmp_path / "cache-two")
    got_one = one.get_dataset("random").get_file("table.csv")
    got_two = two.get_dataset("random").get_file("table.csv")
    assert got_one.is_relative_to(tmp_path / "cache-one")
    assert got_two.is_relative_to(tmp_path / "cache-two")
    assert got_one.read_text() == got_two.read_text() == "x,y\n0.1,0.2\n"
    two.close()
    one.close()


def test_other_processes_stay_locked_out_until_the_last_handle_closes(db_path: Path) -> None:
    first = pi_campaign(db_path, n=1)
    second = H5Database(db_path, "r")
    first.close()
    assert _other_process_writer(db_path) == "locked"
    second.close()
    assert _other_process_writer(db_path) == "opened"
    with H5Database(db_path, "r") as again:  # and in this process, a fresh open
        assert again.children == ["random", "sobol"]


def _open_in_forked_child(path: str, mode: str, answer: Any) -> None:
    try:
        with H5Database(path, mode) as db:  # type: ignore[arg-type]
            answer.put(("opened", db.children))
    except DatabaseLockedError as exc:
        answer.put(("locked", str(exc)))


def _in_forked_child(path: Path, mode: str) -> tuple[str, Any]:
    context = multiprocessing.get_context("fork")
    answer = context.Queue()
    child = context.Process(target=_open_in_forked_child, args=(str(path), mode, answer))
    child.start()
    result: tuple[str, Any] = answer.get(timeout=120)
    child.join(timeout=120)
    return result


def test_forked_worker_does_not_share_the_parents_open_writer(db_path: Path) -> None:
    # The child would inherit the parent's open file and pending datapoints: writing
    # through them would store the parent's datapoints twice.
    db = pi_campaign(db_path, n=3)  # datapoints still pending
    for mode in ("r+", "r"):
        status, message = _in_forked_child(db_path, mode)
        assert status == "locked"
        assert "forked from one that has the file open for writing" in message
    db.get_dataset("random").create_datapoint("parent")
    db.close()
    assert list(read_in_fresh_process(db_path)["random"]["points"])[-2:] == [
        "random-2",
        "parent",
    ]
    with H5Database(db_path, "r") as reader:  # a read-only parent: workers may read
        assert _in_forked_child(db_path, "r") == ("opened", ["random", "sobol"])
        status, message = _in_forked_child(db_path, "r+")
        assert status == "locked"
        assert "open read-only" in message
        assert reader.children == ["random", "sobol"]


NEVER_CLOSED = """
import sys
from hards_h5 import H5Database
db = H5Database.create_database(sys.argv[1])
ds = db.create_dataset("random")
again = H5Database(sys.argv[1])
reader = H5Database(sys.argv[1], "r")
for i in range(500):
    (ds if i % 2 else again.get_dataset("random")).create_datapoint(f"p{i}").add_data({"i": i})
# no close(), no flush(): the kernel simply exits
"""


def test_unclosed_handles_are_written_at_exit(db_path: Path) -> None:
    subprocess.run([sys.executable, "-c", NEVER_CLOSED, str(db_path)], check=True, timeout=120)
    points = read_in_fresh_process(db_path)["random"]["points"]
    assert points == {f"p{i}": {"i": i} for i in range(500)}
