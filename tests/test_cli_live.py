"""The command line while a writer runs: SWMR reading, naming the writer, ``watch``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import hards, python_child
from hards_h5 import DatabaseLockedError, H5Database
from hards_h5.store.writer_info import read, sidecar_path

# A writer that adds a datapoint to "random" every 20 ms once live, flushing each.
# Commands on stdin: "live" starts SWMR live mode, "close" closes and exits.
WRITER = """
import select, sys, time
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
ds = db.get_dataset("random")
print("OPEN", flush=True)
live, i = False, 0
while True:
    ready, _, _ = select.select([sys.stdin], [], [], 0.02)
    if ready:
        line = sys.stdin.readline().strip()
        if line == "live":
            db.start_swmr()
            live = True
            print("LIVE", flush=True)
        elif line in ("close", ""):
            break
    if live:
        ds.create_datapoint(f"live-{i:06d}").add_data({"i": i})
        db.flush()
        i += 1
db.close()
print("CLOSED", flush=True)
"""


def _say(child: subprocess.Popen[str], line: str, expect: str) -> None:
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == expect


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    path = tmp_path / "c.h5"
    assert hards("demo", str(path), "--samples", "20").returncode == 0
    return path


@pytest.fixture
def writer(campaign: Path) -> Iterator[subprocess.Popen[str]]:
    child = python_child(WRITER, str(campaign))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "OPEN"
    try:
        yield child
    finally:
        if child.poll() is None:
            assert child.stdin is not None
            child.stdin.close()  # EOF: the writer closes the file
            child.wait(timeout=120)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hards-h5: error: ")
    return lines[0]


def test_a_writer_says_who_it_is_in_a_sidecar(
    campaign: Path, writer: subprocess.Popen[str]
) -> None:
    info = read(campaign)
    assert info is not None
    assert (info.pid, info.host, info.mode) == (writer.pid, socket.gethostname(), "plain")
    _say(writer, "live", "LIVE")
    info = read(campaign)
    assert info is not None
    assert info.live
    _say(writer, "close", "CLOSED")
    assert not sidecar_path(campaign).exists()


def test_a_dead_writers_sidecar_is_ignored(campaign: Path) -> None:
    child = python_child(WRITER, str(campaign))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "OPEN"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert json.loads(sidecar_path(campaign).read_text())["pid"] == child.pid  # left behind
    assert read(campaign) is None  # but its process is gone
    done = hards("tree", str(campaign))  # a reading verb opens it: recovered, said once
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"hards-h5: warning: {campaign}: the previous writer (pid ")
    assert f"pid {child.pid} on host" in lines[0]  # named as the writer that stopped
    assert "recovered automatically" in lines[0]
    assert not sidecar_path(campaign).exists()  # its sidecar went with the recovery


def test_reading_verbs_follow_a_live_writer(
    campaign: Path, writer: subprocess.Popen[str], tmp_path: Path
) -> None:
    _say(writer, "live", "LIVE")
    tree = hards("tree", str(campaign))
    assert tree.returncode == 0, tree.stderr
    assert re.search(r"random  \d+ datapoints", tree.stdout)
    info = hards("info", str(campaign))
    assert info.returncode == 0, info.stderr
    assert (
        f"a live (SWMR) writer is running (pid {writer.pid} on host {socket.gethostname()}"
        in info.stdout
    )
    assert "status flags" not in info.stdout
    assert "0x5" in hards("--verbose", "info", str(campaign)).stdout  # SWMR + writer bits
    show = hards("show", str(campaign), "random/sample-000000")
    assert show.returncode == 0, show.stderr
    got = hards("get", str(campaign), "random/sample-000000", "sample.txt", "-o", str(tmp_path))
    assert got.returncode == 0, got.stderr
    find = hards("find", str(campaign), "random", '{"i": {"$gte": 0}}')
    assert find.returncode == 0, find.stderr
    assert "random/live-000000" in find.stdout.splitlines()
    export = hards("export", str(campaign), str(tmp_path / "seed"))
    assert export.returncode == 0, export.stderr
    forced = hards("tree", "--swmr", str(campaign))
    assert forced.returncode == 0, forced.stderr


def test_a_plain_writer_is_named_with_a_way_to_wait(
    campaign: Path, writer: subprocess.Popen[str]
) -> None:
    who = f"pid {writer.pid} on host {socket.gethostname()} since "
    for verb in (["tree"], ["info"], ["show", "random"], ["watch"]):
        line = _one_error_line(hards(verb[0], str(campaign), *verb[1:]))
        assert f"{campaign} is being written by a writer ({who}" in line, verb
        assert "status flags" not in line
    assert "--wait (or --timeout SECONDS)" in _one_error_line(hards("tree", str(campaign)))
    timed = _one_error_line(hards("tree", str(campaign), "--timeout", "0.5"))
    assert timed.endswith("it did not close within 0.5 s")
    with pytest.raises(DatabaseLockedError, match=re.escape(who)):
        H5Database(campaign, "r")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "hards_h5.cli", "tree", str(campaign), "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _say(writer, "close", "CLOSED")
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert out.startswith(f"{campaign}\n")


def _totals(out: str) -> list[int]:
    return [int(m.replace(",", "")) for m in re.findall(r"│ total\s+│\s+([\d,]+) │", out)]


def test_watch_follows_a_live_writer_for_count_updates(
    campaign: Path, writer: subprocess.Popen[str]
) -> None:
    _say(writer, "live", "LIVE")
    done = hards("watch", str(campaign), "--interval", "0.5", "--count", "3")
    assert done.returncode == 0, done.stderr
    totals = _totals(done.stdout)
    assert len(totals) == 3
    assert totals == sorted(totals)
    assert totals[-1] > totals[0]  # the writer adds a datapoint every 20 ms
    assert "random/extended" in done.stdout
    assert "new/s" in done.stdout
    assert f"pid {writer.pid}" in done.stdout


def _watching_live(campaign: Path, writer: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Put ``writer`` in live mode and start ``hards-h5 watch``; return it after one table."""
    _say(writer, "live", "LIVE")
    watching = subprocess.Popen(
        [sys.executable, "-m", "hards_h5.cli", "watch", str(campaign), "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watching.stdout is not None
    assert "total" in "".join(watching.stdout.readline() for _ in range(12))  # one table
    return watching


def test_watch_ends_when_the_writer_closes(campaign: Path, writer: subprocess.Popen[str]) -> None:
    watching = _watching_live(campaign, writer)
    _say(writer, "close", "CLOSED")
    out, err = watching.communicate(timeout=300)
    assert watching.returncode == 0, err
    assert "the writer closed the file (" in out
    with H5Database(campaign, "r") as db:
        total = sum(len(d.datapoints) for d in (db.get_dataset("random"),))
    assert f"{total:,}" in out  # the final counts, read from the closed file


def test_watch_a_closed_file_shows_it_once(campaign: Path) -> None:
    done = hards("watch", str(campaign), "--count", "5")
    assert done.returncode == 0, done.stderr
    assert len(_totals(done.stdout)) == 1
    assert "no writer is running; nothing to follow" in done.stdout


def test_tree_counts_the_files_of_datapoints(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    sizes = {"own.bin": 1000, "a.bin": 1500, "b.bin": 2000}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("runs")
        ds.add_file(tmp_path / "own.bin")
        ds.create_datapoint("p0").add_file(tmp_path / "a.bin")
        p1 = ds.create_datapoint("p1")
        p1.add_file(tmp_path / "b.bin")
        p1.add_file(tmp_path / "a.bin")
        ds.create_dataset("empty")
    out = hards("tree", str(path)).stdout.splitlines()
    total = (sizes["own.bin"] + 2 * sizes["a.bin"] + sizes["b.bin"]) / 1000
    assert out[1] == f"└── runs  2 datapoints, 4 files ({total:.1f} kB)"
    assert out[2] == "    └── empty  0 datapoints"


def test_errors_have_one_prefix(campaign: Path, tmp_path: Path) -> None:
    usage = hards("tree", str(campaign), "--depth", "x")
    assert usage.returncode == 2
    assert usage.stderr.splitlines()[-1].startswith("hards-h5: error: Invalid value")
    missing = _one_error_line(hards("tree", str(tmp_path / "none.h5")))
    assert "no such campaign file" in missing
    (tmp_path / "junk.h5").write_bytes(b"not hdf5" * 100)
    check = hards("check", str(tmp_path / "junk.h5"))
    assert check.returncode == 1
    assert check.stderr.startswith("hards-h5: error: ")


def test_watch_ends_cleanly_on_ctrl_c(campaign: Path, writer: subprocess.Popen[str]) -> None:
    watching = _watching_live(campaign, writer)
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=300)
    assert watching.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped watching (Ctrl-C); the writer is still running" in out
    assert writer.poll() is None


def test_a_sidecar_of_another_file_or_garbage_is_ignored(campaign: Path) -> None:
    st = campaign.stat()
    side = sidecar_path(campaign)
    body = {"pid": os.getpid(), "host": socket.gethostname(), "since": 0.0, "mode": "plain"}
    side.write_text(json.dumps({**body, "file": [st.st_dev, st.st_ino]}))
    info = read(campaign)
    assert info is not None
    assert info.pid == os.getpid()
    side.write_text(json.dumps({**body, "file": [st.st_dev, st.st_ino + 1]}))  # a replaced file
    assert read(campaign) is None
    side.write_text("{not json")
    assert read(campaign) is None
    # another host's writer cannot be checked from here: it is believed
    side.write_text(json.dumps({**body, "pid": 1 << 30, "host": "elsewhere", "file": None}))
    info = read(campaign)
    assert info is not None
    assert info.describe().startswith(f"pid {1 << 30} on host elsewhere since ")
    # a reader never writes or removes one
    with H5Database(campaign, "r") as db:
        assert db.children
    assert side.exists()


def test_what_hdf5_said_only_with_verbose(campaign: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "t.h5"
    truncated.write_bytes(campaign.read_bytes()[:3000])
    plain = _one_error_line(hards("tree", str(truncated)))
    assert plain == f"hards-h5: error: {truncated}: damaged or truncated HDF5 file, cannot open it"
    verbose = hards("--verbose", "tree", str(truncated))
    assert verbose.stderr.startswith(plain + ": ")  # then HDF5's own words
    assert "truncated file" in verbose.stderr
