"""Fresh-process read of a sealed file against the same file without its seals.

Writes the workload of ``run.py`` (a dataset ``mc`` of 100 datapoints and a
sub-dataset ``mc/sub`` of N, each with a 4-key dict) with hards-h5, copies the file
and deletes the copy's ``seals`` arrays (as a file written in SWMR live mode, or by
hards-h5 before seals, has none), then reads every datapoint's data through
``recursively_get_datapoints()`` in fresh processes, alternating the two files.

Usage::

    python benchmarks/bench_seals.py [--n 100000] [--repeat 7] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import h5py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PARENT_POINTS, READ, WRITE, _child  # the harness's own scenarios


def _strip_seals(path: Path) -> int:
    """Delete every ``seals`` array of ``path``; return how many there were."""
    found: list[str] = []
    with h5py.File(path, "r+") as f:
        f.visit(lambda name: found.append(name) if name.endswith("/seals") else None)
        for name in found:
            del f[name]
    return len(found)


def main(argv: list[str] | None = None) -> int:
    """Write, strip, read alternately; print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="datapoints in mc/sub")
    parser.add_argument("--repeat", type=int, default=7, help="reads of each file (median)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        sealed, unsealed = Path(tmp) / "sealed.h5", Path(tmp) / "unsealed.h5"
        _child(WRITE["hards-h5"], sealed, args.n)
        shutil.copyfile(sealed, unsealed)
        stripped = _strip_seals(unsealed)
        times: dict[str, list[float]] = {"sealed": [], "unsealed": []}
        for _ in range(args.repeat):
            for label, path in (("sealed", sealed), ("unsealed", unsealed)):
                result = _child(READ["hards-h5"], path)
                if result["count"] != args.n + PARENT_POINTS:
                    msg = f"{label}: read {result['count']} datapoints"
                    raise RuntimeError(msg)
                times[label].append(result["seconds"])
    med = {label: statistics.median(values) for label, values in times.items()}
    print(f"N={args.n}: {stripped} seal array(s) removed from the copy")
    for label, values in times.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {label:<9} read median {med[label]:.3f} s  (runs {runs})")
    print(f"  sealed reads {med['unsealed'] / med['sealed']:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
