"""Hostile paths: a FIFO as the campaign file, long file names, a faulty extraction cache."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hards_h5 import CacheError, H5Database, NameValidationError, StorageFullError

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


# --------------------------------------------------------------- extraction cache faults
def _campaign(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    """A closed campaign file with ``ds/p`` holding ``big.bin`` of ``size`` bytes."""
    content = os.urandom(size)
    source = tmp_path / "big.bin"
    source.write_bytes(content)
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds").create_datapoint("p").add_file(source)
    return path, content


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if not p.is_dir()]


@contextlib.contextmanager
def _tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_cache_path_that_is_a_regular_file_is_a_cache_error(tmp_path: Path) -> None:
    path, content = _campaign(tmp_path, 1000)
    cache = tmp_path / "cache"
    cache.write_text("not a directory")
    with H5Database(path, "r", cache_dir=cache) as db:
        point = db.recursively_get_datapoint("ds/p")
        with pytest.raises(CacheError, match="not a directory") as caught:
            point.get_file("big.bin")
        assert str(cache) in str(caught.value)
        assert "HARDS_H5_CACHE" in str(caught.value)
    assert cache.read_text() == "not a directory"
    with H5Database(path, "r", cache_dir=tmp_path / "cache2") as db:
        assert db.recursively_get_datapoint("ds/p").get_file("big.bin").read_bytes() == content


def test_cache_disk_full_while_writing_is_storage_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, content = _campaign(tmp_path, 20 << 20)
    cache = tmp_path / "cache"
    real_write = os.write
    calls = []

    def write_until_full(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) > 1:  # the first piece goes through, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    with H5Database(path, "r", cache_dir=cache) as db:
        point = db.recursively_get_datapoint("ds/p")
        monkeypatch.setattr(os, "write", write_until_full)
        with pytest.raises(StorageFullError) as caught:
            point.get_file("big.bin")
        monkeypatch.undo()
        assert len(calls) == 2
        assert str(cache) in str(caught.value)
        assert "full" in str(caught.value)
        assert _files_under(cache) == []  # no temporary left behind
        assert point.get_file("big.bin").read_bytes() == content


def test_real_full_cache_disk_is_storage_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, content = _campaign(tmp_path, 20 << 20)
    with _tmpfs(tmp_path / "small", "size=8m") as cache:
        with H5Database(path, "r", cache_dir=cache) as db:
            point = db.recursively_get_datapoint("ds/p")
            with pytest.raises(StorageFullError, match="needs 20,971,520 bytes") as caught:
                point.get_file("big.bin")  # refused before writing (free space checked)
            assert str(cache) in str(caught.value)
            assert _files_under(cache) == []

            class Roomy:  # a disk that claims room: writing then meets the real ENOSPC
                f_bavail = f_blocks = 1 << 40
                f_frsize = 4096

            monkeypatch.setattr(os, "fstatvfs", lambda fd: Roomy())
            with pytest.raises(StorageFullError, match="full") as caught:
                point.get_file("big.bin")
            monkeypatch.undo()
            assert str(cache) in str(caught.value)
            assert _files_under(cache) == []
        with H5Database(path, "r", cache_dir=tmp_path / "roomy") as db:
            got = db.recursively_get_datapoint("ds/p").get_file("big.bin")
            assert got.read_bytes() == content


def test_unwritable_cache_is_a_cache_error(tmp_path: Path) -> None:
    path, _ = _campaign(tmp_path, 1000)
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:  # root writes through any mode bits: a read-only mount
            cache = stack.enter_context(_tmpfs(tmp_path / "ro", "ro", "size=1m"))
        else:
            cache = tmp_path / "ro"
            cache.mkdir(mode=0o500)
            stack.callback(cache.chmod, 0o700)
        with H5Database(path, "r", cache_dir=cache) as db:
            point = db.recursively_get_datapoint("ds/p")
            with pytest.raises(CacheError) as caught:
                point.get_file("big.bin")
            assert str(cache) in str(caught.value)
            assert "writable directory" in str(caught.value)
            assert _files_under(cache) == []


def test_temporaries_of_killed_extractions_under_any_name_are_cleaned_up(
    tmp_path: Path,
) -> None:
    from hards_h5.store.cache import _HOST, _TMP_PREFIX

    path, content = _campaign(tmp_path, 1000)
    cache = tmp_path / "cache"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with H5Database(path, "r", cache_dir=cache) as db:
        got = db.recursively_get_datapoint("ds/p").get_file("big.bin")
        stale = got.parent / f"{_TMP_PREFIX}{_HOST}.{dead}.{'ab' * 8}.tmp"
        alive = got.parent / f"{_TMP_PREFIX}{_HOST}.{os.getppid()}.{'cd' * 8}.tmp"
        stale.write_bytes(b"partial")
        alive.write_bytes(b"partial")
        got.unlink()
    with H5Database(path, "r", cache_dir=cache) as db:
        assert db.recursively_get_datapoint("ds/p").get_file("big.bin").read_bytes() == content
    assert not stale.exists()
    assert alive.exists()
