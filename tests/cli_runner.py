"""Child processes for tests: the ``hards-h5`` command line, and Python scripts to talk to."""

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


def python_child(script: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -c SCRIPT ARGS...`` with text pipes to its stdin and from its stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
