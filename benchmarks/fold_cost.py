"""The fold's cost: write N datapoints into one dataset and close, before vs after the fold.

Not a test.  Runs each case in a fresh process with the given source tree first on
``PYTHONPATH`` (``--before``: a tree without the fold, e.g. main's ``src``)::

    python benchmarks/fold_cost.py --before /path/to/main/src --after src -n 100000

Prints, per tree: the write loop, the close (for the fold: flush + seal + fold),
the file size; and the fold alone (a file written by the ``before`` tree, opened
and closed by the ``after`` tree: the close folds all N datapoints).
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
import json, sys, time
from pathlib import Path
from hards_h5 import H5Database
path, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if mode == "write":
    t0 = time.perf_counter()
    db = H5Database.create_database(path)
    ds = db.create_dataset("d")
    for i in range(n):
        ds.create_datapoint(f"sample-{i:07d}").add_data({"i": i, "x": i * 0.5, "ok": True, "s": "abc"})
    t1 = time.perf_counter()
    db.close()
    t2 = time.perf_counter()
    print(json.dumps({"write": t1 - t0, "close": t2 - t1, "size": path.stat().st_size}))
else:
    t0 = time.perf_counter()
    H5Database(path).close()
    print(json.dumps({"reopen_close": time.perf_counter() - t0, "size": path.stat().st_size}))
"""


def _run(tree: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))


def main() -> None:
    """Run the measurement and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        for label, tree in (("before", args.before), ("after", args.after)):
            path = Path(tmp) / f"{label}.h5"
            r = _run(tree, str(path), str(n), "write")
            print(
                f"{label:6s} n={n}: write {r['write']:.2f} s, close {r['close']:.2f} s, "
                f"total {r['write'] + r['close']:.2f} s, size {r['size'] / 2**20:.1f} MiB"
            )
        path = Path(tmp) / "before.h5"
        r = _run(args.after, str(path), str(n), "fold")
        print(
            f"fold alone n={n}: {r['reopen_close']:.2f} s "
            f"({r['reopen_close'] / n * 1e6:.1f} us per datapoint), size {r['size'] / 2**20:.1f} MiB"
        )


if __name__ == "__main__":
    main()
