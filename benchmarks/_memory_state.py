"""Put a VM's free memory in one known state before a timed large write.

On a VM whose balloon device reports free pages to the host (virtio-balloon free
page reporting), memory freed in the guest is handed back 2 s later, and page
cache written into handed-back memory fills several times slower, whatever the
code doing the writing.  Which free memory a write gets depends on the size of
its writes and on what was freed last, so two writers timed one after the other
can meet different memory (benchmarks/README.md, "Measuring 1 GiB on this VM").

:meth:`MemoryState.prepare` gives every timed step the same start: no report
pending, then memory touched and freed (so the host backs it), then an untimed
``cp`` whose copy is deleted at once.  On a machine without free page reporting it
costs a short wait and changes nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")
REPORT_DELAY = 2.5
"""Seconds to wait after a big free: the kernel's ``PAGE_REPORTING_DELAY`` is 2 s."""

_TOUCH = """
import mmap, sys
n, huge = int(sys.argv[1]), sys.argv[2] == "1"
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_HUGEPAGE if huge else mmap.MADV_NOHUGEPAGE)
for at in range(0, n, 4096):
    m[at] = 1
"""


def reported_kib() -> int:
    """Return the KiB of memory reported to the host so far (0 where not reported)."""
    try:
        return int(REPORTED.read_text())
    except (OSError, ValueError):
        return 0


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

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until no report is pending; return False if ``timeout`` ran out."""
        if self.report_delay <= 0:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = reported_kib()
            time.sleep(max(0.5, self.report_delay - (time.monotonic() - self.last_free)))
            quiet = time.monotonic() - self.last_free >= self.report_delay
            if quiet and reported_kib() == before:
                return True
        return False

    def prepare(self, src: Path, scratch: Path, touch_bytes: int) -> None:
        """Sync, settle, touch and free ``touch_bytes``, then copy ``src`` and delete it."""
        os.sync()
        self.settle()
        touch_and_free(touch_bytes)
        copy_and_delete(src, scratch)
