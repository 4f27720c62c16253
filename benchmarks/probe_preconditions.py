"""How fast are ``cp`` and a first ``get_file`` after each way of preparing memory?

On a VM that reports free memory to its host (virtio-balloon free page
reporting), page cache written into memory the host no longer backs fills
several times slower, and which free memory a write gets depends on the size of
its writes and on what was freed last.  This probe times ``cp`` + ``sync`` and a
first ``get_file`` (extraction + ``sync``) of the same random file after each
preparation, in alternation, every step after the reporter has been quiet for
2.5 s (``_memory_state.py``):

* ``nothing``;
* ``cp deleted``: an untimed ``cp`` of the source, its copy deleted at once;
* ``touched (huge pages)`` / ``touched (4 KiB pages)``: a separate process writes
  to three times the file's size of memory (at least 64 MiB), then exits;
* ``touched, then cp deleted``: both -- what ``run.py`` does before every timed step.

Usage::

    python benchmarks/probe_preconditions.py --workdir /tmp       # 1 GiB, 3 rounds
    python benchmarks/probe_preconditions.py --mib 256 --rounds 5

benchmarks/README.md ("Measuring 1 GiB on this VM") has its results here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _memory_state import (
    REPORT_DELAY,
    MemoryState,
    copy_and_delete,
    timed_to_disk,
    touch_and_free,
    touch_bytes,
)
from hards_h5 import H5Database


def _preparations(src: Path, scratch: Path) -> dict[str, Callable[[], None]]:
    touch = touch_bytes(src.stat().st_size)

    def both() -> None:
        touch_and_free(touch)
        copy_and_delete(src, scratch)

    return {
        "nothing": lambda: None,
        "cp deleted": lambda: copy_and_delete(src, scratch),
        "touched (huge pages)": lambda: touch_and_free(touch),
        "touched (4 KiB pages)": lambda: touch_and_free(touch, huge_pages=False),
        "touched, then cp deleted": both,
    }


def main() -> None:
    """Time cp and get_file after each preparation and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all preparations")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--settle",
        type=float,
        default=REPORT_DELAY,
        help="seconds to wait after a big free before each step (0: none, for a smoke test)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.mib < 1:
        parser.error("--rounds and --mib must be at least 1")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        src = work / "src.bin"
        with src.open("wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(1 << 20))
        campaign = work / "campaign.h5"
        with H5Database.create_database(campaign) as db:
            db.create_dataset("ds").create_datapoint("p").add_file(src, name="big.bin")
        memory = MemoryState(args.settle)
        preparations = _preparations(src, work / "prep.bin")
        times: dict[tuple[str, str], list[float]] = {}
        reported = 0.0

        def timed(name: str, step: str, run: Callable[[], None]) -> None:
            nonlocal reported
            os.sync()
            memory.settle()
            preparations[name]()
            seconds, mib = timed_to_disk(run)
            times.setdefault((name, step), []).append(seconds)
            reported = max(reported, mib)

        copy, cache = work / "copy.bin", work / "cache"
        for _ in range(args.rounds):
            for name in preparations:
                timed(name, "cp", lambda: subprocess.run(["cp", str(src), str(copy)], check=True))
                copy.unlink()
                memory.freed()
                with H5Database(campaign, mode="r", cache_dir=cache) as db:
                    point = db.get_dataset("ds").get_datapoint("p")
                    timed(name, "get_file", lambda p=point: p.get_file("big.bin"))
                shutil.rmtree(cache)
                memory.freed()

        print(f"{args.mib} MiB, {args.rounds} rounds: min-max (median) seconds, each step synced")
        print(f"{'before the step':>26}  {'cp':>20}  {'first get_file':>20}")
        for name in preparations:
            cells = []
            for step in ("cp", "get_file"):
                t = times[(name, step)]
                cells.append(f"{min(t):.2f}-{max(t):.2f} ({statistics.median(t):.2f})")
            print(f"{name:>26}  {cells[0]:>20}  {cells[1]:>20}")
        print(f"most memory reported to the host during one timed step: {reported:.0f} MiB")


if __name__ == "__main__":
    main()
