"""Many short-lived writer processes on one file, waiting for each other."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hards_h5 import DatabaseLockedError, H5Database

WORKER = """
import sys
from hards_h5 import H5Database
path, worker, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for start in range(0, total, batch):
    with H5Database(path, timeout=120) as db:
        ds = db.get_dataset("runs")
        for i in range(start, min(start + batch, total)):
            ds.create_datapoint(f"w{worker}-{i}").add_data({"worker": worker, "i": i})
"""

HOLD = """
import sys, time
from hards_h5 import H5Database
db = H5Database(sys.argv[1], sys.argv[2])
print("HOLDING", flush=True)
time.sleep(float(sys.argv[3]))
db.close()
"""


def test_eight_writers_thousand_each(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("runs")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db_path), str(w), "1000", "100"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    with H5Database(db_path, "r") as db:
        ds = db.get_dataset("runs")
        names = ds.datapoints
        assert len(names) == 8000
        assert len(set(names)) == 8000
        for point in ds.recursively_get_datapoints():
            worker, i = point.name[1:].split("-")
            assert point.data == {"worker": int(worker), "i": int(i)}


def _hold(path: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "HOLDING"
    return proc


@pytest.mark.parametrize(("held", "wanted"), [("r+", "r+"), ("r+", "r"), ("r", "r+")])
def test_conflict_is_a_clear_error(db_path: Path, held: str, wanted: str) -> None:
    H5Database.create_database(db_path).close()
    proc = _hold(db_path, held, 30)
    try:
        who = rf"is being written by a writer \(pid {proc.pid} on host " if held == "r+" else ""
        with pytest.raises(DatabaseLockedError, match=who or "another process") as info:
            H5Database(db_path, wanted)  # type: ignore[arg-type]
        assert "errno" not in str(info.value).lower()
    finally:
        proc.kill()
        proc.wait()


def test_timeout_waits_for_the_other_writer(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    proc = _hold(db_path, "r+", 1.5)
    start = time.monotonic()
    with H5Database(db_path, timeout=60) as db:
        waited = time.monotonic() - start
        db.create_dataset("after")
    proc.wait()
    assert waited > 0.5
    other = _hold(db_path, "r+", 30)
    try:
        with pytest.raises(DatabaseLockedError, match=r"waited 0\.3 s"):
            H5Database(db_path, timeout=0.3)
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_parallel_benchmark_runs(tmp_path: Path) -> None:
    """Keep benchmarks/bench_parallel.py working (tiny sizes; figures not checked)."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_parallel.py"
    out = tmp_path / "parallel.json"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "200", "--swmr-count", "10", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    for key in ("write_1", "write_2", "write_4", "read_1", "read_2", "read_4"):
        assert figures[key] > 0, key
    assert 0 <= figures["swmr_latency_median_s"] <= figures["swmr_latency_max_s"]


WAITER = """
import sys, time, warnings
from hards_h5 import AutoRecoveryWarning, H5Database
start = time.monotonic()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    H5Database(sys.argv[1], timeout=60).close()
said = [str(w.message) for w in caught if issubclass(w.category, AutoRecoveryWarning)]
print(f"{time.monotonic() - start:.2f}", *said)
"""


def test_waiting_writer_opens_once_the_holder_dies(db_path: Path) -> None:
    H5Database.create_database(db_path).close()
    holder = _hold(db_path, "r+", 60)
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAITER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    assert waiter.poll() is None  # waiting for the holder
    holder.kill()  # SIGKILL: HDF5's "open for writing" flags stay set
    holder.wait()
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    waited, message = out.split(" ", 1)
    assert float(waited) < 30  # opened soon after the death, not at the timeout
    assert "recovered automatically" in message
