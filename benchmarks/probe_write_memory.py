"""Does a large write's speed here depend on the memory its page cache lands in?

On a VM whose balloon device reports free pages to the host (virtio-balloon free
page reporting), memory freed in the guest is handed back a couple of seconds
later, and page cache written into handed-back memory is filled at a fraction of
the usual speed, whatever the code doing the writing.  A benchmark comparing two
writers there measures where each one's pages came from unless every step finds
the same conditions; ``run.py`` therefore prepares the memory the same way before
every timed step (``_memory_state.py``; ``probe_preconditions.py`` compares the
ways of doing so).

This script shows the effect with ``cp`` alone, in two chains of ``cp SRC copy``
+ ``sync`` (each timed):

* ``delete at once``: each copy is deleted right after it is timed, so the next
  copy writes into the memory just freed;
* ``keep every 4th``: every fourth copy is kept, so the copy after it must find
  new memory.

Usage::

    python benchmarks/probe_write_memory.py            # 1 GiB, 12 copies per chain
    python benchmarks/probe_write_memory.py --mib 256 --steps 8

On the machine of benchmarks/README.md the first chain's copies all take ~0.55 s;
in the second, each copy after a kept one takes 2.2-2.9 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path


def _timed_copy(src: Path, dst: Path) -> float:
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    os.sync()
    return time.perf_counter() - start


def main() -> None:
    """Run the two chains and print each copy's time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="source size in MiB")
    parser.add_argument("--steps", type=int, default=12, help="copies per chain")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        src = work / "src.bin"
        block = os.urandom(1 << 20)
        with src.open("wb") as fh:
            for _ in range(args.mib):
                fh.write(block)
        os.sync()
        for label, keep_every in (("delete at once", 0), ("keep every 4th", 4)):
            times = []
            for i in range(args.steps):
                dst = work / f"copy{i}.bin"
                seconds = _timed_copy(src, dst)
                kept = keep_every and i % keep_every == 0
                if not kept:
                    dst.unlink()
                times.append(f"{seconds:.2f}{'k' if kept else ''}")
            for leftover in work.glob("copy*.bin"):
                leftover.unlink()
            print(f"{label:>15}: {' '.join(times)}   (s per {args.mib} MiB copy; k = kept)")


if __name__ == "__main__":
    main()
