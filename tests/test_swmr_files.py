"""SWMR live readers extracting attached files while the writer keeps adding them.

Real processes: one live writer adding a datapoint, its data and a file of 1 KB
to 3 MB per ``flush()``, and two readers following the documented ``refresh()``
loop and calling ``get_file`` on every new datapoint.  A reader must never call
an intact file damaged, and a file it was shown must read correctly.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cli_runner import hards, python_child
from hards_h5 import H5Database
from hards_h5.errors import FileIntegrityError
from hards_h5.store import blobs as _blobs
from hards_h5.store.log import FileRef

CONTENT = """
import random
def content(i):
    rng = random.Random(i)
    return rng.randbytes(int(1024 * 3072 ** rng.random()))  # 1 KiB to 3 MiB, log-uniform
"""

WRITER = """
import sys, time
from pathlib import Path
from hards_h5 import H5Database
path, seconds, tmp, readers = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
CONTENT
db = H5Database(path)
ds = db.get_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
deadline = time.monotonic() + 60  # start once every reader has opened the file
while len(list(tmp.glob("ready.*"))) < readers and time.monotonic() < deadline:
    time.sleep(0.01)
src = tmp / "source.bin"
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    point = ds.create_datapoint(f"p{i}")
    point.add_data({"i": i})
    src.write_bytes(content(i))
    point.add_file(src, name="f.bin")
    db.flush()
    i += 1
db.close()
(tmp / "done").write_text(str(i))
print(i)
""".replace("CONTENT\n", CONTENT)

# Failures are counted, not fatal: the reader keeps each error (as a caller
# reporting them later would) and retries the first through refresh() up to 100
# times, 5 s in all.
READER = """
import os, sys, time
from pathlib import Path
from hards_h5 import H5Database, HARDSError
path, tmp = sys.argv[1], Path(sys.argv[2])
CONTENT
db = H5Database(path, "r", swmr=True)
ds = db.get_dataset("ds")
(tmp / f"ready.{os.getpid()}").touch()
kept = []
def check(i):
    try:
        got = ds.get_datapoint(f"p{i}").get_file("f.bin").read_bytes()
    except HARDSError as exc:
        kept.append(exc)
        return f"p{i}: {type(exc).__name__}: {exc}"
    return None if got == content(i) else f"p{i}: wrong bytes"
seen = polls = 0
failures, persisted = [], []
deadline = time.monotonic() + 240
while time.monotonic() < deadline:
    finished = (tmp / "done").exists()
    db.refresh()
    names = ds.datapoints
    assert names == [f"p{i}" for i in range(len(names))], names[seen:]
    for i in reversed(range(seen, len(names))):  # the newest at once, then the rest
        error = check(i)
        if error is None:
            continue
        failures.append(error)
        if len(failures) > 1:  # (retried once: a stale view spoils every later read)
            continue
        for _ in range(100):
            time.sleep(0.05)
            db.refresh()
            if check(i) is None:
                break
        else:
            persisted.append(error)
    seen = len(names)
    polls += 1
    if finished and len(names) == int((tmp / "done").read_text()):
        break
print(seen, polls, len(failures), len(persisted))
for error in failures[:5]:
    print(error)
""".replace("CONTENT\n", CONTENT)


def _live_files_run(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "live.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(seconds), str(tmp_path), "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "LIVE"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HARDS_H5_CACHE": str(tmp_path / f"cache.{n}")},  # own copies
        )
        for n in range(2)
    ]
    try:
        written_out, err = writer.communicate(timeout=seconds + 300)
        assert writer.returncode == 0, err
        written = int(written_out)
        assert written > 1
        outputs = [reader.communicate(timeout=300) for reader in readers]
    finally:
        for proc in (writer, *readers):
            if proc.poll() is None:  # (a failed run leaves none behind)
                proc.kill()
                proc.wait()
    for reader, (out, err) in zip(readers, outputs, strict=True):
        assert reader.returncode == 0, err
        seen, polls, failures, persisted = (int(word) for word in out.split("\n")[0].split())
        assert (failures, persisted) == (0, 0), out
        assert seen == written
        assert polls > 1  # the reader followed live growth
    result = hards("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    with H5Database(path, "r") as db:
        assert len(db.get_dataset("ds").datapoints) == written


def test_live_readers_extract_every_file_intact(tmp_path: Path) -> None:
    _live_files_run(tmp_path, seconds=20)


@pytest.mark.slow
def test_live_readers_extract_every_file_intact_long(tmp_path: Path) -> None:
    _live_files_run(tmp_path, seconds=120)


# The writer appends a datapoint's FILE record and pushes the record log to the
# file while the new bytes of /blobs wait in HDF5's cache (the order HDF5 may
# write the metadata of two datasets in, within one flush), then flushes fully.
STEPPED_WRITER = """
import sys
from pathlib import Path
from hards_h5 import H5Database
path, src = sys.argv[1], Path(sys.argv[2])
db = H5Database(path)
ds = db.get_dataset("ds")
db.start_swmr()
print("LIVE", flush=True)
for i, line in enumerate(sys.stdin):
    src.write_bytes(bytes([i % 251]) * int(line))
    point = ds.create_datapoint(f"p{i}")
    point.add_file(src, name="f.bin")
    log, _ = ds._where()
    log.write_pending()
    for handle in log.handles():
        handle.flush()
    print("RECORDS", flush=True)
    sys.stdin.readline()
    db.flush()
    print("FLUSHED", flush=True)
db.close()
"""

STEPPED_READER = """
import sys
from hards_h5 import H5Database, FileIntegrityError
db = H5Database(sys.argv[1], "r", swmr=True)
ds = db.get_dataset("ds")
print("OPEN", flush=True)
kept = []  # errors kept to report later, as a caller may
for line in sys.stdin:
    db.refresh()
    i = len(ds.datapoints) - 1
    try:
        data = ds.get_datapoint(f"p{i}").get_file("f.bin").read_bytes()
    except FileIntegrityError as exc:
        kept.append(exc)
        print("DAMAGED", exc, flush=True)
    else:
        print("OK" if data == bytes([i % 251]) * len(data) else "WRONG", len(data), flush=True)
"""


def _ask(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def test_a_file_record_reaching_the_disk_first_never_reads_as_damaged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    writer = python_child(STEPPED_WRITER, str(path), str(tmp_path / "source.bin"))
    reader = None
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "LIVE"
        reader = python_child(STEPPED_READER, str(path))
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "OPEN"
        # 1 KB (inside one chunk of /blobs), then files spanning whole chunks
        for size in (1000, 3 << 20, 2_500_000, 3_000_000):
            assert _ask(writer, str(size)) == "RECORDS"
            # the record is there: the reader sees the datapoint and its file
            assert _ask(reader, "read") == f"OK {size}"
            assert _ask(writer, "go on") == "FLUSHED"
            assert _ask(reader, "read") == f"OK {size}"
    finally:
        for proc in (writer, reader):
            if proc is not None:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=120)
    assert writer.returncode == 0
    result = hards("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _blobs_file(path: Path, content: bytes) -> h5py.File:
    f = h5py.File(path, "w", libver="latest")
    f.create_dataset(
        "b", data=np.frombuffer(content, dtype=np.uint8), maxshape=(None,), chunks=(4096,)
    )
    return f


def test_a_live_read_tries_again_with_a_fresh_view(tmp_path: Path) -> None:
    content = np.random.default_rng(3).bytes(3 * 4096 + 100)
    ref = FileRef(0, len(content), hashlib.sha256(content).digest())
    views = [
        _blobs_file(tmp_path / "early.h5", content[:5000]),  # the extent not yet grown
        _blobs_file(tmp_path / "mixed.h5", bytes(len(content))),  # grown, bytes not seen
        _blobs_file(tmp_path / "now.h5", content),
    ]
    opened = []

    def open_blobs() -> h5py.Dataset:
        opened.append(len(opened))
        return views[min(len(opened) - 1, 2)]["b"]

    out = tmp_path / "out.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        _blobs.read_live_blob_into(open_blobs, ref, fd)
    finally:
        os.close(fd)
        for f in views:
            f.close()
    assert len(opened) == 3
    assert out.read_bytes() == content


def test_a_live_read_of_damaged_bytes_still_fails_and_holds_no_handle(tmp_path: Path) -> None:
    content = np.random.default_rng(4).bytes(2 * 4096)
    f = _blobs_file(tmp_path / "b.h5", content)
    datasets_open = h5py.h5f.get_obj_count(f.id, h5py.h5f.OBJ_DATASET)
    ref = FileRef(0, len(content), hashlib.sha256(b"other bytes").digest())
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    started = time.monotonic()
    try:
        with pytest.raises(FileIntegrityError, match="SHA-256") as raised:
            _blobs.read_live_blob_into(lambda: f["b"], ref, fd, patience=0.3)
        assert time.monotonic() - started >= 0.3  # read again before saying so
        # the error kept by a caller keeps no handle on the bytes open: one would
        # stop HDF5 from refreshing the view of a later read
        assert raised.value is not None
        assert h5py.h5f.get_obj_count(f.id, h5py.h5f.OBJ_DATASET) == datasets_open
    finally:
        os.close(fd)
        f.close()
