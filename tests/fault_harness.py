"""Fault injection: SIGKILL a writer (and recover itself) at random moments.

Each trial starts a writer process that creates datapoints with data, attaches
files (some of them large), calls ``flush()`` — or closes and reopens the file,
which seals long record logs — at random points and prints what each
acknowledged.  The harness kills it with SIGKILL at a random moment,
then — without running ``recover`` (in some trials after starting ``recover``
and killing it too) — opens copies of the file directly, each in a fresh
process: read-only, for writing (which recovers it automatically), and
read-only as a user who may not write the file.  Each checks that every
acknowledged datapoint and file is present and intact.

Usage::

    python tests/fault_harness.py --trials 200          # prints a summary line
    python tests/fault_harness.py writer PATH SEED      # (the writer process)
    python tests/fault_harness.py verify PATH HOW POINTS FILES   # (an opener)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from hards_h5 import AutoRecoveryWarning, H5Database, RecoveryNeededError

BIG = 48 << 20


def point_data(i: int) -> dict[str, object]:
    """Return the data the writer gives datapoint ``i``."""
    return {"i": i, "x": i * 0.5, "text": "v" * (i % 50), "nested": {"even": i % 2 == 0}}


def file_bytes(k: int) -> bytes:
    """Return the content of the ``k``-th attached file (every 7th one is large)."""
    size = BIG if k % 7 == 3 else random.Random(k).randrange(0, 200_000)
    return random.Random(-k).randbytes(size)


def _scratch(path: Path) -> Path:
    """Return the directory where the writer for ``path`` stages its source files."""
    return path.with_name(f"{path.stem}-src")


def writer(path: Path, seed: int) -> None:
    """Write forever, printing ``ACK points files`` after every completed flush."""
    rng = random.Random(seed)
    scratch = _scratch(path)  # inside the trial's directory: removed with it
    scratch.mkdir(exist_ok=True)
    db = H5Database(path)
    ds = db.get_dataset("ds")
    points = files = 0
    print("READY", flush=True)
    while True:
        point = ds.create_datapoint(f"p{points}")
        point.add_data(point_data(points))
        points += 1
        if rng.random() < 0.02:
            src = scratch / "src.bin"
            src.write_bytes(file_bytes(files))
            point.add_file(src, name=f"f{files}.bin")
            files += 1
        if rng.random() < 0.01:
            db.flush()
            print(f"ACK {points} {files}", flush=True)
        elif rng.random() < 0.003:  # close (which seals long logs) and open again
            db.close()
            print(f"ACK {points} {files}", flush=True)
            db = H5Database(path)
            ds = db.get_dataset("ds")


@dataclass
class Summary:
    """Counts over all trials."""

    trials: int = 0
    opened: int = 0
    recover_killed: int = 0
    lost_points: int = 0
    lost_files: int = 0
    reader_opened: int = 0  # a read-only open, no recover run before
    writer_opened: int = 0  # a writer's open, no recover run before
    light: int = 0  # recovered by clearing the writer marks
    rewritten: int = 0  # recovered by the automatic recover rewrite
    already_clean: int = 0  # nothing to recover: the killed recover had got far enough
    no_write_permission_read: int = 0  # read through the view by a reader who may not write
    no_write_permission_refused: int = 0  # ... or refused: the file needed the rewrite
    failures: list[str] = field(default_factory=list)


def _acknowledged(out: str) -> tuple[int, int]:
    acks = [line.split() for line in out.splitlines() if line.startswith("ACK")]
    return (int(acks[-1][1]), int(acks[-1][2])) if acks else (0, 0)


def _verify(path: Path, points: int, files: int) -> tuple[int, int]:
    """Return (lost points, lost files) among the acknowledged ones."""
    lost_points = lost_files = 0
    with H5Database(path, "r") as db:
        ds = db.get_dataset("ds")
        present = set(ds.datapoints)
        for i in range(points):
            if f"p{i}" not in present or ds.get_datapoint(f"p{i}").data != point_data(i):
                lost_points += 1
        owners = {}
        for name in ds.datapoints:
            for fname in ds.get_datapoint(name).files:
                owners[fname] = name
        for k in range(files):
            owner = owners.get(f"f{k}.bin")
            if owner is None:
                lost_files += 1
                continue
            got = ds.get_datapoint(owner).get_file(f"f{k}.bin").read_bytes()
            if hashlib.sha256(got).digest() != hashlib.sha256(file_bytes(k)).digest():
                lost_files += 1
    return lost_points, lost_files


def _recover_in_child(path: Path, kill_after: float) -> bool:
    """Run recover in a child process; kill it after ``kill_after`` s. True if killed."""
    code = "import sys; from hards_h5.tools.maintenance import recover; recover(sys.argv[1])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


def _forbid_writing(path: Path) -> None:
    """Make this process unable to open ``path`` for writing (as if it were not the owner)."""
    real_open = os.open

    def no_write(file: object, flags: int, *args: object, **kwargs: object) -> int:
        if Path(str(file)) == path and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    os.open = no_write  # type: ignore[assignment]


def verify_child(path: Path, how: str, points: int, files: int) -> dict[str, object]:
    """Open ``path`` as ``how`` (reader, writer, no-write-permission) and verify it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if how == "no-write-permission":
            _forbid_writing(path)
            try:
                lost = _verify(path, points, files)
            except RecoveryNeededError as exc:
                return {"refused": str(exc)}
        elif how == "writer":
            with H5Database(path) as db:  # recovers, then writes on
                db.get_dataset("ds").create_datapoint("after")
            lost = _verify(path, points, files)
            with H5Database(path, "r") as db:
                assert db.get_dataset("ds").datapoints[-1] == "after"
        else:
            lost = _verify(path, points, files)
    said = [str(w.message) for w in caught if issubclass(w.category, AutoRecoveryWarning)]
    return {"lost": lost, "warnings": said}


def _open_directly(path: Path, how: str, points: int, files: int) -> dict[str, object]:
    """Run :func:`verify_child` in a fresh process on a copy of ``path``."""
    copy = path.with_name(f"{path.name}.{how}")
    shutil.copyfile(path, copy)
    try:
        done = subprocess.run(
            [sys.executable, __file__, "verify", str(copy), how, str(points), str(files)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        for leftover in path.parent.glob(f"{copy.name}*"):
            leftover.unlink()
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        msg = f"{how} open failed ({done.returncode}): {tail}"
        raise RuntimeError(msg)
    outcome: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return outcome


def _tally(
    summary: Summary, how: str, outcome: dict[str, object], label: str, *, recover_ran: bool
) -> None:
    if "refused" in outcome:
        summary.no_write_permission_refused += 1
        return
    lost = outcome["lost"]
    warned = outcome["warnings"]
    assert isinstance(lost, list)
    assert isinstance(warned, list)
    if len(warned) != 1 and not (recover_ran and not warned):  # (recover may have finished)
        summary.failures.append(f"{label} ({how}): {len(warned)} recovery warnings, not one")
    if any(lost):
        summary.failures.append(f"{label} ({how}): lost {lost[0]} datapoints, {lost[1]} files")
    summary.lost_points += lost[0]
    summary.lost_files += lost[1]
    if how == "reader":
        summary.reader_opened += 1
    elif how == "writer":
        summary.writer_opened += 1
        rewritten = "into a clean file" in str(warned)
        summary.rewritten += rewritten
        summary.light += bool(warned) and not rewritten
        summary.already_clean += not warned  # a recover run before had finished
    else:
        summary.no_write_permission_read += 1


def trial(work: Path, number: int, rng: random.Random, summary: Summary) -> None:
    """Run one kill-and-verify trial."""
    path = work / f"trial{number}.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    proc = subprocess.Popen(
        [sys.executable, __file__, "writer", str(path), str(rng.randrange(1 << 30))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # READY
    time.sleep(rng.uniform(0.0, 2.5))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    points, files = _acknowledged(out)
    summary.trials += 1
    recover_ran = rng.random() < 0.3
    if recover_ran:  # an interrupted manual recover must not stand in the way
        summary.recover_killed += _recover_in_child(path, rng.uniform(0.0, 0.3))
    failed = len(summary.failures)
    for how in ("reader", "writer", "no-write-permission"):
        try:
            outcome = _open_directly(path, how, points, files)
        except Exception as exc:  # every failure is reported
            summary.failures.append(f"trial {number} ({how}): {type(exc).__name__}: {exc}")
            continue
        _tally(summary, how, outcome, f"trial {number}", recover_ran=recover_ran)
    summary.opened += len(summary.failures) == failed
    for leftover in work.glob(f"trial{number}.h5*"):
        leftover.unlink()
    shutil.rmtree(_scratch(path), ignore_errors=True)


def run(trials: int, seed: int, work: Path) -> Summary:
    """Run ``trials`` trials in ``work``; return the summary."""
    rng = random.Random(seed)
    summary = Summary()
    for number in range(trials):
        trial(work, number, rng, summary)
    return summary


def main() -> int:
    """Command line: run trials (default) or be the writer process."""
    if len(sys.argv) > 1 and sys.argv[1] == "writer":
        writer(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        path, how, points, files = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
        print(json.dumps(verify_child(path, how, int(points), int(files))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fault-") as tmp:
        os.environ.setdefault("HARDS_H5_CACHE", str(Path(tmp) / "cache"))
        summary = run(args.trials, args.seed, Path(tmp))
    print(json.dumps(summary.__dict__, indent=1))
    print(
        f"{summary.opened}/{summary.trials} killed writers' files opened directly, no recover "
        f"run (read-only {summary.reader_opened}, writer {summary.writer_opened}: "
        f"{summary.light} by clearing the writer marks, {summary.rewritten} rewritten, "
        f"{summary.already_clean} already clean; "
        f"recover killed {summary.recover_killed} times); without write permission "
        f"{summary.no_write_permission_read} read, {summary.no_write_permission_refused} "
        f"refused; acknowledged datapoints lost: {summary.lost_points}, files lost: "
        f"{summary.lost_files}"
    )
    return 0 if summary.opened == summary.trials and not summary.failures else 1


if __name__ == "__main__":
    sys.exit(main())
