"""How the fold scales: N datapoints in one dataset, written, then folded by ``close()``.

Not a test.  Runs in a fresh process with the given source tree first on
``PYTHONPATH``::

    python benchmarks/fold_scale.py --src src -n 1000000 --slice 200000

Prints the write loop (the journal), the close (flush, seals and the fold), the
fold's rate per slice of datapoints (first against last: does creating groups
slow down as the ``datapoints`` group grows?), the peak RSS before and after the
close, and the file size; then, in a second fresh process, a writer that changes
one datapoint's data (so that its close rebuilds the whole column index): its
times and peak RSS.  The slices are timed by counting the fold's new
datapoint groups (a wrapper around ``fold._new_point``: ~0.2 us per datapoint).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from hards_h5 import H5Database
from hards_h5.store import fold

path, n, step = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
laps = []
inner = fold._new_point
if inner is not None:
    def counted(parent, key, text):
        done = inner(parent, key, text)
        counted.calls += 1
        if counted.calls % step == 0:
            laps.append(time.perf_counter())
        return done
    counted.calls = 0
    fold._new_point = counted
marks = {}
outer = fold.fold_file
def timed(*a, **k):
    marks["fold_start"] = time.perf_counter()
    try:
        return outer(*a, **k)
    finally:
        marks["fold_end"] = time.perf_counter()
fold.fold_file = timed
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
db = H5Database.create_database(path)
ds = db.create_dataset("d")
for i in range(n):
    ds.create_datapoint(f"sample-{i:07d}").add_data({"i": i, "x": i * 0.5, "ok": True, "s": "abc"})
t1 = time.perf_counter()
rss_write = rss()
db.close()
t2 = time.perf_counter()
print(json.dumps({
    "write": t1 - t0, "close": t2 - t1, "start": t1, "end": t2, "laps": laps, **marks,
    "rss_write": rss_write, "rss_close": rss(), "size": path.stat().st_size,
}))
"""

REBUILD = r"""
import json, resource, sys, time
from hards_h5 import H5Database

rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
db = H5Database(sys.argv[1], "a")
db.get_dataset("d").get_datapoint("sample-0000000").add_data({"i": -1})
t1 = time.perf_counter()
rss_open = rss()
db.close()  # an indexed datapoint's data changed: the index is rebuilt
t2 = time.perf_counter()
print(json.dumps({"open": t1 - t0, "close": t2 - t1, "rss_open": rss_open, "rss_close": rss()}))
"""


def main() -> None:
    """Run the measurement and print its table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--slice", type=int, default=200_000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scale.h5"
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(args.n), str(args.slice)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rebuilt = subprocess.run(
            [sys.executable, "-c", REBUILD, str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    r, rb = json.loads(out), json.loads(rebuilt)
    n, mib = args.n, 2**20
    print(f"# {n:,} datapoints in one dataset (seed example workload), one run")
    total = r["write"] + r["close"]
    fold_s = r["fold_end"] - r["fold_start"]
    rows = [
        ("write loop (journal)", r["write"]),
        ("close: flush and seals", r["fold_start"] - r["start"]),
        ("close: the fold (`fold_file`)", fold_s),
        ("close: HDF5 closes the file", r["end"] - r["fold_end"]),
        ("**write incl. close**", total),
    ]
    prev = r["fold_start"]
    for k, t in enumerate(r["laps"]):
        lo, hi = k * args.slice, (k + 1) * args.slice
        rows.append((f"fold slice {lo:,}-{hi:,}", t - prev))
        prev = t
    print("| step | seconds | us per datapoint |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        per = seconds / (args.slice if label.startswith("fold slice") else n) * 1e6
        print(f"| {label} | {seconds:.2f} | {per:.1f} |")
    print()
    print(
        f"peak RSS after the write loop {r['rss_write'] / mib:.0f} MiB, "
        f"after close {r['rss_close'] / mib:.0f} MiB "
        f"({r['rss_close'] / r['rss_write']:.2f}x); file {r['size'] / mib:.1f} MiB"
    )
    print(
        f"index rebuild (fresh writer: open, change datapoint 1's data, close): "
        f"open {rb['open']:.1f} s, close {rb['close']:.1f} s; peak RSS after open "
        f"{rb['rss_open'] / mib:.0f} MiB, after close {rb['rss_close'] / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
