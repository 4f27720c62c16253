"""Hostile paths: a FIFO as the campaign file, long file names, a faulty extraction cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database, NameValidationError

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


@pytest.mark.parametrize("length", [215, 216, 244, 255])
def test_every_file_name_a_filesystem_holds_is_extracted(tmp_path: Path, length: int) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 1000 + str(length).encode())
    name = "n" * (length - 4) + ".txt"
    with H5Database.create_database(tmp_path / "c.h5") as db:
        point = db.create_dataset("ds").create_datapoint("p")
        point.add_file(source, name=name)
        got = point.get_file(name)
        assert got.name == name
        assert got.read_bytes() == source.read_bytes()
    with H5Database(tmp_path / "c.h5", "r") as db:
        point = db.recursively_get_datapoint("ds/p")
        assert point.files == [name]
        assert point.get_file(name).read_bytes() == source.read_bytes()
    leftovers = [p for p in got.parent.iterdir() if p.name != name]
    assert leftovers == []


def test_a_file_name_too_long_to_extract_is_refused_at_add_file(tmp_path: Path) -> None:
    import h5py

    source = tmp_path / "source.bin"
    source.write_bytes(b"y" * 5000)
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        point = db.create_dataset("ds").create_datapoint("p")
        point.add_file(source, name="ok.bin")
    with h5py.File(path, "r") as f:
        blobs_before = f["blobs"].shape
    with H5Database(path) as db:
        point = db.recursively_get_datapoint("ds/p")
        with pytest.raises(NameValidationError, match="at most 255") as caught:
            point.add_file(source, name="n" * 252 + ".bin")
        assert "256 characters" in str(caught.value)
        assert point.files == ["ok.bin"]
    with H5Database(path, "r") as db:
        assert db.recursively_get_datapoint("ds/p").files == ["ok.bin"]
    with h5py.File(path, "r") as f:
        assert f["blobs"].shape == blobs_before
