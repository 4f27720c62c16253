"""Side-by-side benchmarks: hards-h5 vs the seed's hards.filesystem vs raw h5py.

Every scenario runs each store in a fresh child process (so imports, caches and
memory are measured as a user sees them) and the three stores run in the same
invocation, so ratios are comparable even on a noisy machine.  Timings are medians
of ``--repeat`` runs.

Usage::

    python benchmarks/run.py                      # N = 1k, 10k, 100k; files 1 MiB..1 GiB
    python benchmarks/run.py --big                # also 1M datapoints: open, read, to_dataframe()
    python benchmarks/run.py --quick              # tiny sizes, for a smoke test
    python benchmarks/run.py --json out.json --plot docs/benchmarks.png

The workload is the seed's own example: a dataset ``mc`` holding 100 datapoints and
a sub-dataset ``mc/sub`` of N datapoints, each with a 4-key dict.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARENT_POINTS = 100

# ----------------------------------------------------------------- child code
# Each snippet runs in a fresh interpreter; it prints one JSON line.  Timing starts
# after the imports (an interpreter with h5py loaded is the user's starting point).

_PRELUDE = """
import json, os, resource, sys, time
from pathlib import Path
def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
def peak_mb():
    # VmHWM: this process image's peak RSS.  (ru_maxrss would include the parent's
    # RSS at fork time, which a forked child inherits across exec on Linux.)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
def data(i):
    return {"x": i * 1e-3, "y": (i * 7919 % 1000) * 1e-3, "inside": i % 4 != 0, "run": i}
"""

WRITE = {
    "filesystem": """
from hards.filesystem import FilesystemDatabase
path, n = Path(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
db = FilesystemDatabase.create_database(path)
mc = db.create_dataset("mc")
for i in range(PARENT):
    mc.create_datapoint(f"m{i}").add_data(data(i))
sub = mc.create_dataset("sub")
for i in range(n):
    sub.create_datapoint(f"p{i}").add_data(data(i))
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "hards-h5": """
from hards_h5 import H5Database
path, n = Path(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
db = H5Database.create_database(path)
mc = db.create_dataset("mc")
for i in range(PARENT):
    mc.create_datapoint(f"m{i}").add_data(data(i))
sub = mc.create_dataset("sub")
for i in range(n):
    sub.create_datapoint(f"p{i}").add_data(data(i))
db.close()
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
    "raw-h5py": """
import h5py
path, n = Path(sys.argv[1]), int(sys.argv[2])
t = time.perf_counter()
f = h5py.File(path, "w", libver="latest")
mc = f.create_group("mc")
for i in range(PARENT):
    mc.create_group(f"points/m{i}").attrs["data"] = json.dumps(data(i))
sub = mc.create_group("sub")
for i in range(n):
    sub.create_group(f"points/p{i}").attrs["data"] = json.dumps(data(i))
f.close()
print(json.dumps({"seconds": time.perf_counter() - t}))
""",
}

READ = {
    "filesystem": """
from hards.filesystem import FilesystemDatabase
t = time.perf_counter()
db = FilesystemDatabase(Path(sys.argv[1]))
points = db.recursively_get_dataset("mc/sub").recursively_get_datapoints()
total = sum(p.data["run"] for p in points)
print(json.dumps({"seconds": time.perf_counter() - t, "count": len(points)}))
""",
    "hards-h5": """
from hards_h5 import H5Database
t = time.perf_counter()
db = H5Database(sys.argv[1], "r")
points = db.recursively_get_dataset("mc/sub").recursively_get_datapoints()
total = sum(p.data["run"] for p in points)
print(json.dumps({"seconds": time.perf_counter() - t, "count": len(points)}))
""",
    "raw-h5py": """
import h5py
t = time.perf_counter()
f = h5py.File(sys.argv[1], "r")
count = 0
total = 0
for group in (f["mc/sub/points"], f["mc/points"]):
    for name in group:
        total += json.loads(group[name].attrs["data"])["run"]
        count += 1
print(json.dumps({"seconds": time.perf_counter() - t, "count": count}))
""",
}

RANDOM = {
    "filesystem": """
from hards.filesystem import FilesystemDatabase
import random
db = FilesystemDatabase(Path(sys.argv[1]))
n = int(sys.argv[2]); rng = random.Random(1)
names = [f"mc/sub/p{rng.randrange(n)}" for _ in range(1000)]
t = time.perf_counter()
total = sum(db.recursively_get_datapoint(name).data["run"] for name in names)
seconds = time.perf_counter() - t
warm = names[:100]  # (each lookup lists the directory: 100 are enough)
t = time.perf_counter()  # warm: the same lookups again, without reading data
for name in warm:
    db.recursively_get_datapoint(name)
print(json.dumps({"seconds": seconds, "warm_us": (time.perf_counter() - t) / len(warm) * 1e6}))
""",
    "hards-h5": """
from hards_h5 import H5Database
import random
db = H5Database(sys.argv[1], "r")
n = int(sys.argv[2]); rng = random.Random(1)
names = [f"mc/sub/p{rng.randrange(n)}" for _ in range(1000)]
t = time.perf_counter()
total = sum(db.recursively_get_datapoint(name).data["run"] for name in names)
seconds = time.perf_counter() - t
t = time.perf_counter()  # warm: the same 1k lookups again, without reading data
for name in names:
    db.recursively_get_datapoint(name)
print(json.dumps({"seconds": seconds, "warm_us": (time.perf_counter() - t) / len(names) * 1e6}))
""",
    "raw-h5py": """
import h5py, random
f = h5py.File(sys.argv[1], "r")
n = int(sys.argv[2]); rng = random.Random(1)
names = [f"mc/sub/points/p{rng.randrange(n)}" for _ in range(1000)]
t = time.perf_counter()
total = sum(json.loads(f[name].attrs["data"])["run"] for name in names)
seconds = time.perf_counter() - t
t = time.perf_counter()  # warm: the same 1k group opens again
for name in names:
    f[name]
print(json.dumps({"seconds": seconds, "warm_us": (time.perf_counter() - t) / len(names) * 1e6}))
""",
}

FRAME = """
import pandas
from hards_h5 import H5Database
t = time.perf_counter()
db = H5Database(sys.argv[1], "r")
frame = db.recursively_get_dataset("mc/sub").to_dataframe()
seconds = time.perf_counter() - t
assert len(frame) == int(sys.argv[2]) + PARENT
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb(), "rows": len(frame)}))
"""

OPEN = {
    "hards-h5": """
from hards_h5 import H5Database
base = rss_mb()
t = time.perf_counter()
db = H5Database(sys.argv[1], "r")
children = db.children
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rss_mb": rss_mb(), "rss_increase_mb": rss_mb() - base}))
""",
    "raw-h5py": """
import h5py
base = rss_mb()
t = time.perf_counter()
f = h5py.File(sys.argv[1], "r")
children = list(f)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rss_mb": rss_mb(), "rss_increase_mb": rss_mb() - base}))
""",
}

FILES = """
import shutil, statistics, subprocess
from hards_h5 import H5Database
src, work, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
size = src.stat().st_size

sys.path.insert(0, BENCHDIR)
from _memory_state import MemoryState, timed_to_disk

# What a 1 GiB write costs on a VM depends on whether the host still backs the
# free guest memory its page cache lands in, and which free memory a write gets
# depends on the size of its writes and on what was freed last (benchmarks/
# README.md, "Measuring 1 GiB on this VM"; _memory_state.py).  So every timed
# step, cp's and hards-h5's alike, starts from the same state, one where both run
# at their best: the reporter quiet for 2.5 s, three times the file's size of
# memory (at least 64 MiB) touched and freed, then an untimed cp deleted at once.
# Each hards-h5 step is compared with the cp timed just before it; the median of
# the rounds' ratios is reported, with how much memory went to the host during
# each timed step and whether the reporter was quiet before it.
memory = MemoryState()
reported_during, unsettled = [], []  # per timed step, in order


def timed(step):
    unsettled.append(not memory.prepare(src, work / "prep.bin", size))
    seconds, reported = timed_to_disk(step)
    reported_during.append(reported)
    return seconds


names = iter(range(1_000_000))


def cp(*, fresh_dir=False):
    # time cp of src (and its sync), then delete the copy
    n = next(names)
    if fresh_dir:  # like get_file's <cache>/<xx>/<sha256>/ directory
        top = work / f"tree{n}"
        target = top / "ab" / ("cd" * 32) / "copy.bin"
        target.parent.mkdir(parents=True)
    else:  # beside the campaign file, like add_file
        top = target = work / f"copy{n}.bin"
    seconds = timed(lambda: subprocess.run(["cp", str(src), str(target)], check=True))
    remove(top)
    return seconds


def remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    memory.freed()


def new_point(name):
    db = H5Database.create_database(work / name)
    return db, db.create_dataset("ds").create_datapoint("p")


adds, gets, repeated = [], [], []
add_vs, get_vs = [], []  # the cp timed just before each step
for r in range(rounds):
    cache = work / f"cache{r}"
    os.environ["HARDS_H5_CACHE"] = str(cache)
    before = cp()
    db, point = new_point(f"add{r}.h5")

    def add():
        point.add_file(src, name="big.bin")
        db.flush()

    adds.append(timed(add))
    db.close()
    remove(work / f"add{r}.h5")
    add_vs.append(before)

    db, point = new_point(f"get{r}.h5")  # untimed: the file get_file reads from
    point.add_file(src, name="big.bin")
    db.flush()
    before_get = cp(fresh_dir=True)
    gets.append(timed(lambda: point.get_file("big.bin")))
    get_vs.append(before_get)
    assert point.get_file("big.bin").stat().st_size == size
    reps = 10000
    t = time.perf_counter()
    for _ in range(reps):
        point.get_file("big.bin")
    repeated.append((time.perf_counter() - t) / reps)
    db.close()
    remove(cache)
    remove(work / f"get{r}.h5")
copies = [t for pair in zip(add_vs, get_vs) for t in pair]  # in the order timed
print(json.dumps({
    "cp": statistics.median(copies), "cp_runs": copies,
    "cp_for_add": statistics.median(add_vs), "cp_for_get": statistics.median(get_vs),
    "add_file": statistics.median(adds), "add_file_runs": adds,
    "first_get_file": statistics.median(gets), "first_get_file_runs": gets,
    "add_ratio": statistics.median(c / a for c, a in zip(add_vs, adds)),
    "get_ratio": statistics.median(c / g for c, g in zip(get_vs, gets)),
    "repeated_get_file_us": statistics.median(repeated) * 1e6, "peak_rss_mb": peak_mb(),
    "bytes": size, "rounds": rounds,
    "reported_to_host_mib": reported_during,  # per timed step: cp, add, cp, get, ...
    "unsettled": unsettled,  # per timed step: the reporter was still busy after 60 s
}))
"""


def _child(code: str, *args: object, pythonpath: Path | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (``pythonpath`` first on its path); its JSON line."""
    script = (_PRELUDE + code).replace("PARENT", str(PARENT_POINTS))
    script = script.replace("BENCHDIR", repr(str(HERE)))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath.resolve())
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        msg = f"benchmark child failed:\n{done.stderr}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _times(seconds: list[float]) -> str:
    return " ".join(f"{t:.2f}" for t in seconds)


def _du_kib(path: Path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _location(work: Path, store: str, n: int) -> Path:
    return work / f"{store}-{n}" if store == "filesystem" else work / f"{store}-{n}.h5"


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def bench_store_sizes(
    work: Path,
    sizes: list[int],
    big: list[int],
    repeat: int,
    log: Callable[[str], None],
    *,
    only: set[str] | None = None,
) -> dict[str, Any]:
    """Write, fresh-read, random-access, disk use and open for each store and N."""
    results: dict[str, Any] = {"write": {}, "read": {}, "random": {}, "disk_kib": {}, "open": {}}
    for n in [*sizes, *big]:
        stores = ["hards-h5", "raw-h5py"] if n in big else ["filesystem", "raw-h5py", "hards-h5"]
        stores = [s for s in stores if only is None or s in only]
        for store in stores:
            path = _location(work, store, n)
            writes = []
            reps = 1 if n in big else repeat
            for _ in range(reps):
                _clear(path)
                writes.append(_child(WRITE[store], path, n)["seconds"])
            reads = [_child(READ[store], path)["seconds"] for _ in range(repeat)]
            results["write"].setdefault(store, {})[n] = _median(writes)
            results["read"].setdefault(store, {})[n] = _median(reads)
            results["disk_kib"].setdefault(store, {})[n] = _du_kib(path)
            if n >= 100_000:
                # (the seed lists the 100k-entry directory on every lookup: ~3 min a run)
                runs = 1 if store == "filesystem" else repeat
                randoms = [_child(RANDOM[store], path, n) for _ in range(runs)]
                results["random"].setdefault(store, {})[n] = _median(
                    [r["seconds"] for r in randoms]
                )
                results.setdefault("warm_lookup_us", {}).setdefault(store, {})[n] = _median(
                    [r["warm_us"] for r in randoms]
                )
            if store == "hards-h5" and n >= 100_000:
                frames = [_child(FRAME, path, n) for _ in range(repeat)]
                results.setdefault("frame", {})[n] = {
                    key: _median([f[key] for f in frames]) for key in ("seconds", "peak_mb")
                }
            if store in OPEN:
                opens = [_child(OPEN[store], path) for _ in range(repeat)]
                results["open"].setdefault(store, {})[n] = {
                    key: _median([o[key] for o in opens]) for key in opens[0]
                }
            log(
                f"  {store:<10} N={n:>8}: write {results['write'][store][n]:8.3f} s  "
                f"read {results['read'][store][n]:8.3f} s  "
                f"disk {results['disk_kib'][store][n] / 1024:9.1f} MiB"
            )
            if store != "hards-h5" or n != max([*sizes, *big]):
                _clear(path)
    return results


def bench_files(
    work: Path, sizes_mib: list[int], repeat: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """add_file / first and repeated get_file against cp (``repeat`` rounds), with peak RSS."""
    results: dict[str, Any] = {}
    for mib in sizes_mib:
        src = work / f"src-{mib}.bin"
        # Random bytes throughout, like the compressed or binary outputs a campaign
        # attaches.  A 1 MiB block written 1024 times (as before) let this VM's host
        # merge the identical pages of the buffers that stream it, and breaking that
        # sharing on every refill made add_file and get_file up to 2x slower
        # (benchmarks/README.md, "Measuring 1 GiB on this VM"); cp, which copies in
        # the kernel, was not affected.
        with src.open("wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(1 << 20))
        run_dir = work / f"files-{mib}"
        run_dir.mkdir()
        results[mib] = _child(FILES, src, run_dir, repeat)
        r = results[mib]
        runs = _times(r["cp_runs"])
        log(
            f"  {mib:>5} MiB: add_file {r['add_file']:.3f} s vs cp {r['cp_for_add']:.3f} s "
            f"({r['add_ratio']:.2f}x)  first get_file {r['first_get_file']:.3f} s vs cp to a "
            f"new tree {r['cp_for_get']:.3f} s ({r['get_ratio']:.2f}x)  repeated "
            f"{r['repeated_get_file_us']:.1f} us  peak RSS {r['peak_rss_mb']:.0f} MB  (cp runs {runs})"
        )
        log(
            f"         per round: add_file {_times(r['add_file_runs'])}, first get_file "
            f"{_times(r['first_get_file_runs'])}; memory reported to the host during timed "
            f"steps: at most {max(r['reported_to_host_mib'], default=0):.0f} MiB"
            + (f"; {sum(r['unsettled'])} step(s) timed unsettled" if any(r["unsettled"]) else "")
        )
        shutil.rmtree(run_dir)
        src.unlink()
    return results


def verdicts(results: dict[str, Any]) -> list[tuple[bool, str]]:
    """Return (passed, line) for every target of the brief that these results cover."""
    out: list[tuple[bool, str]] = []
    write, read = results["write"], results["read"]
    n = 100_000 if 100_000 in write.get("hards-h5", {}) else max(write.get("hards-h5", {0: 0}))
    if n and all(n in write.get(s, {}) for s in ("filesystem", "raw-h5py")):
        h5, fs, raw = write["hards-h5"][n], write["filesystem"][n], write["raw-h5py"][n]
        out.append(
            (
                fs / h5 >= 8,
                f"write N={n}: {fs / h5:.1f}x faster than hards.filesystem (target >= 8x)",
            )
        )
        out.append(
            (h5 / raw <= 1.2, f"write N={n}: {h5 / raw:.2f}x the raw h5py loop (target <= 1.2x)")
        )
        h5r, fsr = read["hards-h5"][n], read["filesystem"][n]
        out.append(
            (
                fsr / h5r >= 30,
                f"fresh-process read N={n}: {fsr / h5r:.1f}x faster than hards.filesystem (target >= 30x)",
            )
        )
        h5d, fsd = results["disk_kib"]["hards-h5"][n], results["disk_kib"]["filesystem"][n]
        out.append(
            (
                fsd / h5d >= 25,
                f"disk N={n}: {fsd / h5d:.0f}x smaller than hards.filesystem (target >= 25x)",
            )
        )
    for n_frame, f in sorted(results.get("frame", {}).items()):
        out.append(
            (
                f["seconds"] < 0.5 and f["peak_mb"] < 400,
                (
                    f"fresh-process to_dataframe() N={n_frame}: {f['seconds']:.2f} s, peak RSS "
                    f"{f['peak_mb']:.0f} MB (target < 0.5 s, < 400 MB)"
                ),
            )
        )
    warm = results.get("warm_lookup_us", {}).get("hards-h5", {})
    if warm:
        n_warm = max(warm)
        out.append(
            (
                warm[n_warm] < 10,
                f"warm recursively_get_datapoint N={n_warm}: {warm[n_warm]:.1f} us (target < 10 us)",
            )
        )
    opens = results.get("open", {}).get("hards-h5", {})
    if opens:
        n_open = max(opens)
        o = opens[n_open]
        out.append(
            (
                o["seconds"] < 0.05,
                f"open N={n_open} + list datasets: {o['seconds'] * 1e3:.1f} ms (target < 50 ms)",
            )
        )
        out.append(
            (
                o["rss_increase_mb"] < 50,
                f"open N={n_open}: RSS +{o['rss_increase_mb']:.1f} MB over the imported interpreter, {o['rss_mb']:.0f} MB total (target < 50 MB)",
            )
        )
    files = results.get("files", {})
    if files:
        mib = max(files)
        f = files[mib]
        add_ratio, get_ratio = f["add_ratio"], f["get_ratio"]  # medians of the rounds
        out.append(
            (
                add_ratio >= 0.7,
                f"add_file {mib} MiB: {add_ratio:.2f}x cp throughput (target >= 0.7x)",
            )
        )
        out.append(
            (
                get_ratio >= 0.7,
                f"first get_file {mib} MiB: {get_ratio:.2f}x cp throughput (target >= 0.7x)",
            )
        )
        out.append(
            (
                f["peak_rss_mb"] < 100,
                f"file {mib} MiB: peak RSS {f['peak_rss_mb']:.0f} MB (target < 100 MB)",
            )
        )
        out.append(
            (
                f["repeated_get_file_us"] < 20,
                f"repeated get_file: {f['repeated_get_file_us']:.1f} us (target < 20 us)",
            )
        )
    return out


def plot(results: dict[str, Any], target: Path) -> None:
    """Write a log-log plot of write and read time against N for the three stores."""
    import matplotlib as mpl  # noqa: PLC0415 - optional, only for --plot

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in (
        (axes[0], "write", "write N datapoints"),
        (axes[1], "read", "fresh-process read of all data"),
    ):
        for store, series in results[key].items():
            ns = sorted(int(k) for k in series)
            ax.plot(
                ns, [series[n] if n in series else series[str(n)] for n in ns], "o-", label=store
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N datapoints")
        ax.set_title(title)
        ax.grid(visible=True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (median)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(target, dpi=120)


def _log_reads(results: dict[str, Any], log: Callable[[str], None]) -> None:
    for n, f in sorted(results.get("frame", {}).items()):
        log(
            f"  to_dataframe() N={n} (fresh process, open included): {f['seconds']:.3f} s, "
            f"peak RSS {f['peak_mb']:.0f} MB"
        )
    for store, series in results["random"].items():
        for n, secs in series.items():
            log(f"  random access 1k lookups in N={n}: {store:<10} {secs * 1e3:8.1f} ms")
    for store, series in results.get("warm_lookup_us", {}).items():
        for n, us in series.items():
            log(f"  warm lookup (same 1k names again) in N={n}: {store:<10} {us:8.2f} us each")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print results, ratios and PASS/FAIL lines."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="N values (comma-separated)")
    parser.add_argument("--big", action="store_true", help="also N=1M (hards-h5 and raw h5py)")
    parser.add_argument("--file-sizes", default="1,100,1024", help="attached file sizes in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--plot", type=Path, help="write the log-log plot here (needs matplotlib)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--stores",
        help="only these stores (comma-separated: filesystem,raw-h5py,hards-h5); "
        "ratios need hards-h5 and the other store in the same run",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    file_sizes = [int(s) for s in args.file_sizes.split(",") if s]
    big = [1_000_000] if args.big else []
    only = set(args.stores.split(",")) if args.stores else None
    repeat = args.repeat
    if args.quick:
        sizes, file_sizes, big, repeat = [50, 200], [1], [], 1

    def log(line: str) -> None:
        print(line, flush=True)

    log(f"# hards-h5 benchmarks  python {sys.version.split()[0]}  cores {os.cpu_count()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        log("## datapoints (write, fresh-process read, disk)")
        results = bench_store_sizes(work, sizes, big, repeat, log, only=only)
        log("## attached files (hards-h5 vs cp)")
        results["files"] = bench_files(work, file_sizes, repeat, log)
    log("## ratios")
    for store in ("filesystem", "raw-h5py"):
        for n, secs in sorted(results["write"].get(store, {}).items()):
            if n not in results["write"].get("hards-h5", {}):
                continue
            h5w = results["write"]["hards-h5"][n]
            h5r = results["read"]["hards-h5"][n]
            log(
                f"  N={n:>8} vs {store:<10}: write {secs / h5w:6.1f}x  "
                f"read {results['read'][store][n] / h5r:6.1f}x  "
                f"disk {results['disk_kib'][store][n] / results['disk_kib']['hards-h5'][n]:6.1f}x"
            )
    _log_reads(results, log)
    for store, series in results["open"].items():
        for n, o in series.items():
            log(
                f"  open N={n:>8} {store:<10}: {o['seconds'] * 1e3:6.1f} ms, "
                f"RSS {o['rss_mb']:.0f} MB (+{o['rss_increase_mb']:.1f} MB)"
            )
    log("## targets")
    checks = verdicts(results)
    for passed, line in checks:
        log(f"{'PASS' if passed else 'FAIL'}  {line}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
