"""Before/after: hards-h5 from several source trees, interleaved, in one run.

For refactors and fixes that must not slow the hot paths: each round runs run.py's
hards-h5 write (N datapoints with data, including ``close()``) and fresh-process
read (``recursively_get_datapoints()`` + ``.data``) once per source tree, in turn,
each in a fresh interpreter with that tree's ``src`` first on ``PYTHONPATH``; the
seed (``hards.filesystem``) and raw h5py are timed in the same rounds, so the
ratios of every tree are measured side by side on the same (noisy) machine.

Usage::

    git worktree add --detach /tmp/before <rev>
    python benchmarks/compare_trees.py /tmp/before/src src --n 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from run import READ, WRITE, _child


def _seconds(code: str, src: Path | None, *args: object) -> float:
    return float(_child(code, *args, pythonpath=src)["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path, help="src directories to compare")
    parser.add_argument("--n", type=int, default=100_000, help="datapoints")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median)")
    parser.add_argument("--no-seed", action="store_true", help="skip hards.filesystem")
    args = parser.parse_args(argv)
    stores: list[tuple[str, str, Path | None]] = [(str(t), "hards-h5", t) for t in args.trees]
    stores.append(("raw-h5py", "raw-h5py", None))
    if not args.no_seed:
        stores.append(("filesystem", "filesystem", None))
    times: dict[str, dict[str, list[float]]] = {s[0]: {"write": [], "read": []} for s in stores}
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            for i, (label, kind, src) in enumerate(stores):
                target = Path(work) / f"r{r}-{i}"
                times[label]["write"].append(_seconds(WRITE[kind], src, target, args.n))
                times[label]["read"].append(_seconds(READ[kind], src, target))
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: {op: statistics.median(v) for op, v in ops.items()} for k, ops in times.items()}
    print(f"# N = {args.n}, {args.rounds} rounds, medians (min-max)")
    print(f"{'tree':<40} {'write s':>18} {'read s':>18}  vs raw write  vs seed write/read")
    for label, ops in times.items():
        w, rd = ops["write"], ops["read"]
        line = f"{label:<40} {med[label]['write']:7.3f} ({min(w):.2f}-{max(w):.2f})"
        line += f" {med[label]['read']:7.3f} ({min(rd):.2f}-{max(rd):.2f})"
        line += f"  {med[label]['write'] / med['raw-h5py']['write']:10.2f}x"
        if "filesystem" in med:
            seed = med["filesystem"]
            line += f"  {seed['write'] / med[label]['write']:8.1f}x"
            line += f" / {seed['read'] / med[label]['read']:.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
