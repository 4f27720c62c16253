"""Parallel scenarios: several writer processes, several readers, SWMR latency.

Usage::

    python benchmarks/bench_parallel.py            # N = 20000 datapoints
    python benchmarks/bench_parallel.py --n 4000   # quicker

- write: P processes each add N/P datapoints in batches of 500, opening the file
  with ``timeout=`` (they take turns on HDF5's lock) — total datapoints/s;
- read: P processes each open the closed file read-only and read their share of
  the datapoints' data (as ``hards_h5.mpi.split`` would) — total datapoints/s;
- SWMR: a live writer flushes one datapoint at a time; a reader polls
  ``refresh()`` and records how long after the start of ``flush()`` it saw the
  datapoint (flush includes an fsync).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = """
import sys, time
from hards_h5 import H5Database
path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for start in range(0, count, 500):
    with H5Database(path, timeout=600) as db:
        ds = db.get_dataset("runs")
        for i in range(start, min(start + 500, count)):
            ds.create_datapoint(f"w{worker}-{i}").add_data({"w": worker, "i": i, "x": i * 0.1, "ok": True})
"""

READER = """
import sys
from hards_h5 import H5Database
path, rank, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with H5Database(path, "r") as db:
    points = db.get_dataset("runs").recursively_get_datapoints()
    mine = points[rank::size]
    total = sum(p.data["i"] for p in mine)
print(len(mine))
"""

LIVE_WRITER = """
import sys, time
from pathlib import Path
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
ds = db.get_dataset("live")
db.start_swmr()
print("LIVE", flush=True)
ready = Path(sys.argv[1] + ".reader-ready")
while not ready.exists():  # measure from the first poll of a running reader
    time.sleep(0.005)
for i in range(int(sys.argv[2])):
    time.sleep(0.02)
    ds.create_datapoint(f"p{i}").add_data({"t": time.time()})
    started = time.time()
    db.flush()
    print(f"FLUSHED {i} {started}", flush=True)
db.close()
"""

LIVE_READER = """
import sys, time, json
from pathlib import Path
from hards_h5 import H5Database
db = H5Database(sys.argv[1], "r", swmr=True)
ds = db.get_dataset("live")
n = int(sys.argv[2]); seen = {}
Path(sys.argv[1] + ".reader-ready").touch()
while len(seen) < n:
    db.refresh()
    now = time.time()
    for name in ds.datapoints[len(seen):]:
        seen[name] = now
print(json.dumps(seen))
"""


MPI_WRITE = """
import sys, time
from mpi4py import MPI
from hards_h5 import H5Database, merge, mpi
how, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
def compute(i):
    return f"s{i:07d}", {"i": i, "x": i * 0.5, "rank": rank, "ok": True}, {}
comm.Barrier()
start = time.perf_counter()
if how == "gather":
    mpi.write_campaign(comm, out, "runs", range(n), compute)
else:
    shard = f"{out}.rank{rank}"
    with H5Database.create_database(shard) as db:
        ds = db.create_dataset("runs")
        for i in range(rank, n, size):
            name, data, _ = compute(i)
            ds.create_datapoint(name).add_data(data)
    comm.Barrier()
    if rank == 0:
        merge(out, [f"{out}.rank{r}" for r in range(size)])
    comm.Barrier()
if rank == 0:
    print(time.perf_counter() - start)
"""


MPI_READ = """
import operator, sys, time
from mpi4py import MPI
from hards_h5 import mpi
comm = MPI.COMM_WORLD
comm.Barrier()
start = time.perf_counter()
total = mpi.map_reduce(comm, sys.argv[1], "runs", lambda p: p.data["i"], operator.add, initial=0)
elapsed = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
if comm.Get_rank() == 0:
    print(total, elapsed)
"""


def _mpiexec() -> str | None:
    bin_dir = Path(sys.executable).parent
    return shutil.which("mpiexec", path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def bench_mpi_write(work: Path, n: int, how: str, ranks: int = 4) -> float | None:
    """Return datapoints/s for ``ranks`` MPI ranks storing ``n`` results ``how``."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        return None
    script = work / "mpi_write.py"
    script.write_text(MPI_WRITE)
    out = work / f"mpi-{how}.h5"
    done = subprocess.run(
        [mpiexec, "-n", str(ranks), sys.executable, str(script), how, str(out), str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return n / float(done.stdout.split()[-1])


def bench_mpi_read(work: Path, path: Path, n: int, ranks: int) -> float | None:
    """Return datapoints/s for ``mpi.map_reduce`` over ``n`` datapoints on ``ranks`` ranks.

    Timed inside the job (after start-up and imports), from a barrier to the result.
    """
    mpiexec = _mpiexec()
    if mpiexec is None:
        return None
    script = work / "mpi_read.py"
    script.write_text(MPI_READ)
    done = subprocess.run(
        [mpiexec, "-n", str(ranks), sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    total, elapsed = done.stdout.split()
    if int(total) != n * (n - 1) // 2:  # the single writer's "i" values are 0..n-1
        msg = f"map_reduce gave {total}, expected {n * (n - 1) // 2}"
        raise RuntimeError(msg)
    return n / float(elapsed)


def _run(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
    )


def bench_write(work: Path, n: int, procs: int) -> float:
    """Return datapoints/s for ``procs`` writer processes adding ``n`` in total."""
    from hards_h5 import H5Database  # noqa: PLC0415 - keep the parent light

    path = work / f"write-{procs}.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("runs")
    start = time.perf_counter()
    running = [_run(WRITER, path, w, n // procs) for w in range(procs)]
    for proc in running:
        proc.communicate()
    return n / (time.perf_counter() - start)


def bench_read(path: Path, n: int, procs: int) -> float:
    """Return datapoints/s for ``procs`` reader processes sharing ``n`` datapoints."""
    start = time.perf_counter()
    running = [_run(READER, path, r, procs) for r in range(procs)]
    total = sum(int(proc.communicate()[0]) for proc in running)
    if total != n:
        msg = f"readers saw {total} datapoints, expected {n}"
        raise RuntimeError(msg)
    return n / (time.perf_counter() - start)


def bench_swmr(work: Path, count: int) -> list[float]:
    """Return the delays (s) between a live writer's flush and a reader seeing it."""
    from hards_h5 import H5Database  # noqa: PLC0415

    path = work / "live.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("live")
    writer = _run(LIVE_WRITER, path, count)
    if writer.stdout is None or writer.stdout.readline().strip() != "LIVE":
        msg = "live writer did not start"
        raise RuntimeError(msg)
    reader = _run(LIVE_READER, path, count)
    out, _ = writer.communicate()
    flushed = {f"p{line.split()[1]}": float(line.split()[2]) for line in out.splitlines()}
    seen = json.loads(reader.communicate()[0])
    return [seen[name] - flushed[name] for name in flushed]


def main() -> int:
    """Run the three parallel scenarios and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--swmr-count", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, object] = {"n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"# parallel benchmarks, N = {args.n}")
        for procs in (1, 2, 4):
            rate = bench_write(work, args.n, procs)
            results[f"write_{procs}"] = rate
            print(f"write  {procs} process(es): {rate:10.0f} datapoints/s")
        read_path = work / "write-1.h5"
        for procs in (1, 2, 4):
            rate = bench_read(read_path, args.n, procs)
            results[f"read_{procs}"] = rate
            print(f"read   {procs} process(es): {rate:10.0f} datapoints/s")
        for ranks in (1, 2, 4):
            mpi_read = bench_mpi_read(work, read_path, args.n, ranks)
            results[f"mpi_read_{ranks}"] = mpi_read
            shown = "skipped (no mpiexec)" if mpi_read is None else f"{mpi_read:10.0f} datapoints/s"
            print(f"mpi map_reduce, {ranks} rank(s): {shown} (timed inside the job)")
        for how in ("gather", "shards"):
            mpi_rate = bench_mpi_write(work, args.n, how)
            results[f"mpi_write_4_{how}"] = mpi_rate
            shown = "skipped (no mpiexec)" if mpi_rate is None else f"{mpi_rate:10.0f} datapoints/s"
            print(f"mpi write, 4 ranks, {how:6}: {shown}")
        delays = bench_swmr(work, args.swmr_count)
        results["swmr_latency_median_s"] = statistics.median(delays)
        results["swmr_latency_max_s"] = max(delays)
        print(
            f"SWMR flush -> reader sees it: median {statistics.median(delays) * 1e3:.1f} ms, "
            f"max {max(delays) * 1e3:.1f} ms over {len(delays)} datapoints"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
