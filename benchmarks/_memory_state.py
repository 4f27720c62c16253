"""Put a VM's free memory in one known state before a timed large write.

On a VM whose balloon device reports free pages to the host (virtio-balloon free
page reporting), memory freed in the guest is handed back from 2 s after it is
freed, in passes about 2 s apart, and page cache written into handed-back memory
fills several times slower, whatever the code doing the writing.  Which free
memory a write gets depends on the size of its writes and on what was freed last,
so two writers timed one after the other can meet different memory
(benchmarks/README.md, "Measuring 1 GiB on this VM").

:meth:`MemoryState.prepare` gives every timed step the same start: the reporter
quiet, then memory touched and freed (so the host backs it), then an untimed
``cp`` whose copy is deleted at once.  Where the kernel has no free page reporting
(no counter to read) nothing is touched: the wait is the delay alone and the
``cp`` is the only preparation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")
REPORT_DELAY = 2.5
"""Seconds of quiet that count as settled: the kernel's ``PAGE_REPORTING_DELAY`` is 2 s,
and the passes reporting one big free come about 2 s apart."""

TOUCH_FLOOR = 64 << 20

_TOUCH = """
import mmap, sys
n, huge = int(sys.argv[1]), sys.argv[2] == "1"
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
if advice is not None:
    m.madvise(advice)
for at in range(0, n, 4096):
    m[at] = 1
"""


def _read_reported() -> int | None:
    try:
        return int(REPORTED.read_text())
    except (OSError, ValueError):
        return None


def reported_kib() -> int:
    """Return the KiB of memory reported to the host so far (0 where not reported)."""
    return _read_reported() or 0


def reporting() -> bool:
    """Whether this kernel reports free memory to a host (its counter is readable)."""
    return _read_reported() is not None


def timed_to_disk(step: Callable[[], object]) -> tuple[float, float]:
    """Run ``step``, then ``sync``; return the seconds taken and the MiB reported meanwhile."""
    before = reported_kib()
    start = time.perf_counter()
    step()
    os.sync()  # a step is timed until its bytes are on the disk
    return time.perf_counter() - start, (reported_kib() - before) / 1024


def touch_bytes(size: int) -> int:
    """Memory to touch and free before a step writing ``size`` bytes: 3x, at least 64 MiB."""
    return max(3 * size, TOUCH_FLOOR)


def touch_and_free(nbytes: int, *, huge_pages: bool = True) -> None:
    """Have a separate process write to ``nbytes`` of memory, then exit (freeing it)."""
    flag = "1" if huge_pages else "0"
    subprocess.run([sys.executable, "-c", _TOUCH, str(nbytes), flag], check=True)


def copy_and_delete(src: Path, scratch: Path) -> None:
    """``cp`` ``src`` to ``scratch``, sync, and delete the copy."""
    subprocess.run(["cp", str(src), str(scratch)], check=True)
    os.sync()
    scratch.unlink()


class MemoryState:
    """Tracks the last big free and prepares the memory before each timed step."""

    def __init__(self, report_delay: float = REPORT_DELAY) -> None:
        self.last_free = time.monotonic()
        self.report_delay = report_delay

    def freed(self) -> None:
        """Note that a big file or buffer was just freed (a report may follow)."""
        self.last_free = time.monotonic()

    def settle(self, timeout: float = 60.0) -> bool:
        """Wait until ``report_delay`` has passed since the last big free and since the
        reported counter last moved; return False if ``timeout`` ran out first."""
        if self.report_delay <= 0:
            return True
        deadline = time.monotonic() + timeout
        seen, moved = reported_kib(), time.monotonic()
        while True:
            now = time.monotonic()
            if now - max(self.last_free, moved) >= self.report_delay:
                return True
            if now >= deadline:
                return False
            time.sleep(0.1)
            if (current := reported_kib()) != seen:
                seen, moved = current, time.monotonic()

    def prepare(self, src: Path, scratch: Path, size: int) -> bool:
        """Sync and settle, touch and free memory, then copy ``src`` and delete the copy.

        ``size`` is the number of bytes the timed step will write.  Returns whether
        the reporter was quiet before the preparation began (see :meth:`settle`).
        """
        os.sync()
        settled = self.settle()
        if reporting():
            touch_and_free(touch_bytes(size))
        copy_and_delete(src, scratch)
        self.freed()
        return settled
