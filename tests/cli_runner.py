"""Run the ``hards-h5`` command line in a child process, as a user's shell would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hards(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``hards-h5 ARGS...`` (via ``python -m hards_h5.cli``); capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "hards_h5.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )
