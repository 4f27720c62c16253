"""Progress of long operations: library callbacks, and bars on a terminal only."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest
from hards.filesystem import FilesystemDatabase

from cli_runner import hards
from hards_h5 import H5Database, check, compact, export_seed, import_seed, merge, recover
from hards_h5.store import layout as _layout
from hards_h5.store.progress import Tally

N = 1200  # above the CLI's "big enough for a bar" threshold of 1000 units


def _campaign(path: Path, tmp_path: Path, *, prefix: str = "p") -> Path:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(4096))
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("many")
        child = ds.create_dataset("child")
        for i in range(N):
            point = (ds if i % 2 else child).create_datapoint(f"{prefix}{i}")
            point.add_data({"i": i})
            if i % 100 == 0:
                point.add_file(blob, name="out.bin")
    return path


def _log_rows(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return _layout.total_log_rows(f)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def check_complete(self) -> None:
        assert self.calls, "progress was never reported"
        dones = [d for d, _ in self.calls]
        assert dones == sorted(dones), "progress went backwards"
        done, total = self.calls[-1]
        assert total > 0
        assert done == total, f"ended at {done}/{total}"
        assert len(self.calls) < N, "reported per unit, not throttled"


def test_tally_throttles_and_always_reports_the_start_and_end() -> None:
    seen: list[tuple[int, int]] = []
    tally = Tally(lambda d, t: seen.append((d, t)), 1000, every=300, seconds=float("inf"))
    for _ in range(1000):
        tally.add()
    tally.add(0)
    assert seen == [(0, 1000), (300, 1000), (600, 1000), (900, 1000), (1000, 1000)]
    Tally(None, 5).add(5)  # silent: no callback, no error


def test_tally_reports_slow_units_by_time() -> None:
    seen: list[tuple[int, int]] = []
    tally = Tally(lambda d, t: seen.append((d, t)), 10, every=1000, seconds=0.0)
    tally.add(3)
    tally.add(3)
    assert seen == [(0, 10), (3, 10), (6, 10)]


def test_tally_never_reports_an_empty_total() -> None:
    seen: list[tuple[int, int]] = []
    tally = Tally(lambda d, t: seen.append((d, t)), 0)
    tally.add()
    tally.add_rest(0, 0)
    assert seen == []  # a callback computing done / total never sees total == 0


def test_no_progress_calls_for_a_file_with_nothing_to_count(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("nothing")
    recorder = _Recorder()
    check(path, progress=recorder)
    merge(tmp_path / "out.h5", [path], progress=recorder)
    assert recorder.calls == []


def test_import_total_counts_what_import_creates(tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"
    db = FilesystemDatabase.create_database(seed_dir)
    ds = db.create_dataset("a")
    for i in range(3):
        ds.create_datapoint(f"p{i}")
    points = seed_dir / "children" / "a" / "datapoints"
    (points / ".hidden").mkdir()  # a valid name: imported (the seed lists it too)
    (points / "stray.txt").write_text("not a datapoint")  # skipped, as the seed does
    recorder = _Recorder()
    report = import_seed(seed_dir, tmp_path / "a.h5", progress=recorder)
    assert report.datapoints == 4
    rows = _log_rows(tmp_path / "a.h5")  # what the fold at close folds (a new file: all)
    assert recorder.calls[0] == (0, 8)  # the datapoints, and as many for the fold
    assert recorder.calls[-1] == (4 + rows, 4 + rows)


@pytest.mark.parametrize("operation", ["check", "compact", "recover"])
def test_maintenance_reports_progress_to_the_end(tmp_path: Path, operation: str) -> None:
    path = _campaign(tmp_path / "c.h5", tmp_path)
    recorder = _Recorder()
    run: dict[str, Callable[..., object]] = {"check": check, "compact": compact, "recover": recover}
    report = run[operation](path, progress=recorder)
    recorder.check_complete()
    assert getattr(report, "datapoints", None) == N
    if operation == "check":
        assert check(path).ok


def test_merge_import_export_report_progress_to_the_end(tmp_path: Path) -> None:
    a = _campaign(tmp_path / "a.h5", tmp_path, prefix="a")
    b = _campaign(tmp_path / "b.h5", tmp_path, prefix="b")
    recorder = _Recorder()
    merge(tmp_path / "out.h5", [a, b], progress=recorder)
    recorder.check_complete()
    recorder = _Recorder()
    export_seed(a, tmp_path / "seed", progress=recorder)
    recorder.check_complete()
    assert recorder.calls[-1] == (N, N)
    recorder = _Recorder()
    import_seed(tmp_path / "seed", tmp_path / "back.h5", progress=recorder)
    recorder.check_complete()
    total = N + _log_rows(tmp_path / "back.h5")  # the datapoints, then the rows folded
    assert recorder.calls[-1] == (total, total)


def _run_on_a_terminal(cmd: list[str]) -> bytes:
    """Run ``cmd`` with stderr on a real pty; return what it drew there."""
    master, slave = pty.openpty()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave) as proc:
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=120) == 0, seen.decode(errors="replace")
    os.close(master)
    return seen


@pytest.mark.parametrize("verb", ["import", "export", "check", "compact", "merge"])
def test_cli_bar_on_a_terminal_quiet_when_piped(tmp_path: Path, verb: str) -> None:
    campaign = _campaign(tmp_path / "c.h5", tmp_path)
    seed_dir = tmp_path / "seed"
    if verb == "import":
        db = FilesystemDatabase.create_database(seed_dir)
        ds = db.create_dataset("many")
        for i in range(N):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
    base = [sys.executable, "-m", "hards_h5.cli", verb]

    def args(run: int) -> list[str]:
        target = tmp_path / f"out{run}"
        if verb == "import":
            return [str(seed_dir), str(target.with_suffix(".h5"))]
        if verb == "export":
            return [str(campaign), str(target)]
        if verb == "merge":
            return [str(target.with_suffix(".h5")), str(campaign)]
        copy = target.with_suffix(".h5")
        shutil.copyfile(campaign, copy)
        return [str(copy)]

    piped = hards(verb, *args(1))
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""  # not a terminal: no bar, no lines
    drawn = _run_on_a_terminal([*base, *args(2)])
    assert verb.encode() in drawn  # the bar's label, drawn on the terminal
    assert b"100%" in drawn or b"\xe2\x94\x81" in drawn  # rich's bar glyphs or percentage
