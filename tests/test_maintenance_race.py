"""Overlapping maintenance runs (compact, recover, merge) and writers, in real processes.

Cron jobs overlap: two ``compact`` runs, and writers taking turns with a timeout,
must never lose an acknowledged datapoint nor crash each other.  Scratch files of
runs that were killed are removed by the next run; those of live runs never are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import python_child
from hards_h5 import DatabaseExistsError, DatabaseLockedError, H5Database, compact, merge, recover

COMPACTOR = """
import fcntl, random, sys, time, traceback
from pathlib import Path
from hards_h5 import DatabaseLockedError
from hards_h5 import compact, recover
path, stop, verb, pause = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])

def preempted(event, args):
    # A loaded machine may stop a process between opening the file and probing
    # its locks; here it is stopped at that point often, so that the race shows quickly.
    if event == "fcntl.fcntl" and args[1] == fcntl.F_OFD_GETLK:
        time.sleep(random.uniform(0, 0.01))

sys.addaudithook(preempted)
done = busy = crashed = 0
while not stop.exists():
    try:
        if verb == "compact":
            compact(path)
        else:
            recover(path, force=True)
    except DatabaseLockedError:
        busy += 1
    except Exception:
        crashed += 1
        traceback.print_exc()
    else:
        done += 1
    time.sleep(random.uniform(0, pause))  # (a tight loop would starve the writers)
print(done, busy, crashed, flush=True)
"""

WRITER = """
import sys, time
from hards_h5 import H5Database
path, worker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    name = f"w{worker}-{i}"
    with H5Database(path, timeout=60) as db:
        db.get_dataset("runs").create_datapoint(name).add_data({"w": worker, "i": i})
    print(name, flush=True)  # closed: flushed, fsynced, acknowledged
    i += 1
"""


# Writers run under strace, which holds every flock call back for 10 ms: HDF5 then
# locks the file it opened 10 ms later, as on a loaded machine, so that a writer
# that opened the file just before a compact replaced it would lock the old one.
SLOW_LOCKS = ["strace", "-f", "-qq", "--seccomp-bpf", "-o", os.devnull, "-e", "trace=flock"]
SLOW_LOCKS += ["-e", "inject=flock:delay_enter=30000"]


def _can_slow_locks() -> bool:
    if shutil.which("strace") is None:
        return False
    done = subprocess.run([*SLOW_LOCKS, "true"], capture_output=True, check=False, timeout=60)
    return done.returncode == 0


def _stress(
    tmp_path: Path, verb: str, seconds: float, *, slow_locks: bool = False, pause: float = 0.02
) -> None:
    path = tmp_path / "c.h5"
    stop = tmp_path / "stop"
    with H5Database.create_database(path) as db:
        db.create_dataset("runs")
    compactors = [
        subprocess.Popen(
            [sys.executable, "-c", COMPACTOR, str(path), str(stop), verb, str(pause)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    writers = [
        subprocess.Popen(
            [
                *(SLOW_LOCKS if slow_locks else []),
                *[sys.executable, "-c", WRITER, str(path), str(w), str(seconds)],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    acked: list[str] = []
    for proc in writers:
        out, err = proc.communicate(timeout=seconds + 600)
        acked += out.split()
        assert proc.returncode == 0, err
    stop.touch()
    counts = []
    errors = []
    for proc in compactors:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        counts.append([int(n) for n in out.split()])
        errors.append(err)
    with H5Database(path, "r") as db:
        stored = {p.name: p.data for p in db.get_dataset("runs").recursively_get_datapoints()}
    lost = [name for name in acked if name not in stored]
    crashed = sum(c[2] for c in counts)
    summary = (
        f"{len(lost)} of {len(acked)} acknowledged datapoints lost; {verb} runs "
        f"(done, refused as busy, crashed) per process: {counts}"
    )
    print(summary)
    assert not lost, summary + "\n" + "".join(errors)[-3000:]
    assert crashed == 0, summary + "\n" + "".join(errors)[-3000:]
    assert all(c[0] > 0 for c in counts), summary  # the runs really overlapped the writers
    for name in acked:
        worker, i = name[1:].split("-")
        assert stored[name] == {"w": worker, "i": int(i)}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["c.h5", "stop", *(p.name for p in tmp_path.glob("c.h5.bak-*"))]
    ), "scratch files were left behind"


def test_two_compacts_and_two_writers_lose_nothing(tmp_path: Path) -> None:
    _stress(tmp_path, "compact", 20.0)


@pytest.mark.skipif(not _can_slow_locks(), reason="needs strace (with ptrace allowed)")
def test_writers_slow_to_lock_never_write_to_a_replaced_file(tmp_path: Path) -> None:
    _stress(tmp_path, "compact", 20.0, slow_locks=True, pause=0.3)


@pytest.mark.slow
def test_two_compacts_and_two_writers_lose_nothing_long(tmp_path: Path) -> None:
    _stress(tmp_path, "compact", float(os.environ.get("HARDS_H5_RACE_SECONDS", "180")))


@pytest.mark.slow
def test_two_recovers_and_two_writers_lose_nothing(tmp_path: Path) -> None:
    _stress(tmp_path, "recover", 60.0)


# A maintenance run stopped in the middle of its work (by a progress callback, or
# at the moment a new file is linked into place), to be killed there with SIGKILL.
STOPPED = """
import sys, time
from hards_h5 import H5Database
from hards_h5 import merge
from hards_h5 import compact, recover
verb, path, other = sys.argv[1], sys.argv[2], sys.argv[3]

def stop(*_args):
    print("STOPPED", flush=True)
    time.sleep(600)

def at_link(event, args):
    if event == "os.link":
        stop()

if verb == "merge":
    merge(path, [other], progress=stop)
elif verb == "compact":
    compact(path, progress=stop)
elif verb == "recover":
    recover(path, force=True, progress=stop)
else:
    sys.addaudithook(at_link)
    H5Database.create_database(path)
"""


def _campaign(path: Path, points: int = 20) -> None:
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("runs")
        for i in range(points):
            ds.create_datapoint(f"p{i}").add_data({"i": i})


def _stopped(verb: str, path: Path, other: Path) -> subprocess.Popen[str]:
    proc = python_child(STOPPED, verb, str(path), str(other))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "STOPPED"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)  # (reaped: a zombie would still count as alive)


def _scratch_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def _points(path: Path) -> dict[str, object]:
    with H5Database(path, "r") as db:
        return {p.name: p.data for p in db.get_dataset("runs").recursively_get_datapoints()}


NEXT_RUNS = ["merge", "compact", "recover", "writer", "create"]


def _next_run(verb: str, path: Path, other: Path) -> None:
    if verb == "merge":
        merge(path, [other])
    elif verb == "compact":
        compact(path)
    elif verb == "recover":
        recover(path, force=True)
    elif verb == "writer":
        H5Database(path).close()
    else:
        with contextlib.suppress(DatabaseExistsError):
            H5Database.create_database(path).close()


@pytest.mark.parametrize("killed", ["merge", "compact", "recover", "create"])
@pytest.mark.parametrize("next_run", NEXT_RUNS)
def test_a_killed_runs_scratch_file_is_removed_by_the_next_run(
    tmp_path: Path, killed: str, next_run: str
) -> None:
    path, shard = tmp_path / "out.h5", tmp_path / "shard.h5"
    _campaign(shard)
    if killed in {"compact", "recover"}:
        _campaign(path)
    proc = _stopped(killed, path, shard)
    _kill(proc)
    left = _scratch_files(path)
    assert len(left) == 1, left
    assert left[0].startswith(f".out.h5.{killed}-")
    if next_run in {"compact", "recover", "writer"} and not path.exists():
        _campaign(path)  # these need the file: made afresh (which cleans up, too)
    _next_run(next_run, path, shard)
    assert _scratch_files(path) == []
    assert path.exists()


@pytest.mark.parametrize("running", ["merge", "compact", "recover", "create"])
def test_a_running_runs_scratch_file_is_left_alone(tmp_path: Path, running: str) -> None:
    path, shard = tmp_path / "out.h5", tmp_path / "shard.h5"
    _campaign(shard)
    if running in {"compact", "recover"}:
        _campaign(path)
    proc = _stopped(running, path, shard)
    try:
        live = _scratch_files(path)
        assert len(live) == 1, live
        for verb in NEXT_RUNS:  # each cleans up (a merge creates OUTPUT if missing)
            with contextlib.suppress(DatabaseLockedError):  # (the running one's lock)
                _next_run(verb, path, shard)
        assert _scratch_files(path) == live  # the running one's is still there
        assert proc.poll() is None
    finally:
        _kill(proc)
    H5Database(path).close()
    assert _scratch_files(path) == []
    assert _points(path) == {f"p{i}": {"i": i} for i in range(20)}


def test_a_writer_through_a_symlink_cleans_up_after_its_targets_killed_compact(
    tmp_path: Path,
) -> None:
    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    _campaign(real)
    link.symlink_to(real.name)
    _kill(_stopped("compact", link, real))
    left = _scratch_files(real)
    assert len(left) == 1, left
    assert left[0].startswith(".real.h5.compact-")
    H5Database(link).close()
    assert _scratch_files(real) == []
    assert _points(link) == {f"p{i}": {"i": i} for i in range(20)}


OPEN_SLOWLY = """
import sys
from hards_h5 import H5Database
print("OPENING", flush=True)
with H5Database(sys.argv[1], timeout=60) as db:
    db.get_dataset("runs").create_datapoint("late").add_data({"late": True})
print("CLOSED", flush=True)
"""


@pytest.mark.skipif(not _can_slow_locks(), reason="needs strace (with ptrace allowed)")
def test_a_file_grown_between_hdf5s_open_and_its_lock_is_not_called_truncated(
    tmp_path: Path,
) -> None:
    path, big = tmp_path / "c.h5", tmp_path / "big.bin"
    _campaign(path)
    big.write_bytes(os.urandom(4 << 20))
    slow = [*SLOW_LOCKS[:-1], "inject=flock:delay_enter=3000000"]  # 3 s
    proc = subprocess.Popen(
        [*slow, sys.executable, "-c", OPEN_SLOWLY, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "OPENING"
    time.sleep(0.5)  # HDF5 in the child has read the file's size, and waits to lock
    with H5Database(path) as db:  # meanwhile the file grows by 4 MiB
        db.get_dataset("runs").get_datapoint("p0").add_file(big, name="big.bin")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "CLOSED"
    with H5Database(path, "r") as db:
        assert db.get_dataset("runs").get_datapoint("late").data == {"late": True}
        assert db.get_dataset("runs").get_datapoint("p0").get_file("big.bin").read_bytes() == (
            big.read_bytes()
        )
