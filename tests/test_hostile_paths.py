"""Hostile paths: a FIFO as the campaign file, long file names, a faulty extraction cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database

# A hang must fail the test, not the suite; generous for a loaded machine.
_HANG = 120.0

OPEN = """
import sys
from hards_h5 import H5Database, NotAHardsFileError
try:
    H5Database(sys.argv[1], mode=sys.argv[2])
except NotAHardsFileError as exc:
    print("REFUSED", exc)
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=_HANG, check=False
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "campaign.h5"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("mode", ["r", "r+", "a"])
def test_opening_a_fifo_is_refused_in_every_mode(fifo: Path, mode: str) -> None:
    done = _run("-c", OPEN, str(fifo), mode)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("REFUSED"), done.stdout
    assert "not a regular file" in done.stdout
    assert str(fifo) in done.stdout


@pytest.mark.parametrize("mode", ["r", "r+", "a"])
def test_opening_a_device_is_refused_in_every_mode(mode: str) -> None:
    done = _run("-c", OPEN, os.devnull, mode)
    assert done.stdout.startswith("REFUSED"), done.stdout + done.stderr
    assert "not a regular file" in done.stdout


@pytest.mark.parametrize(
    "verb",
    [
        ["check", "{fifo}"],
        ["info", "{fifo}"],
        ["recover", "{fifo}"],
        ["compact", "{fifo}"],
        ["tree", "{fifo}"],
        ["show", "{fifo}", "ds"],
        ["get", "{fifo}", "ds", "x.txt"],
        ["find", "{fifo}", "ds", "{{}}"],
        ["export", "{fifo}", "{tmp}/exported"],
        ["merge", "{tmp}/out.h5", "{fifo}"],
        ["merge", "{fifo}", "{good}"],
    ],
    ids=lambda verb: "-".join(v for v in verb if "{" not in v),
)
def test_every_cli_verb_refuses_a_fifo(fifo: Path, tmp_path: Path, verb: list[str]) -> None:
    good = tmp_path / "good.h5"
    H5Database.create_database(good).close()
    args = [v.format(fifo=fifo, tmp=tmp_path, good=good) for v in verb]
    done = _run("-m", "hards_h5.cli", *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{fifo}: not a regular file" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.h5").exists()
    assert not (tmp_path / "exported").exists()
