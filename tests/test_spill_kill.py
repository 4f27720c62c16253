"""An automatic spill followed by kill -9 keeps only whole datapoints.

Pending records are appended to the file unasked once 16k of them (or 16 MiB)
pile up.  HDF5 may write its metadata to the disk at any moment after that (its
cache evicts entries when it fills), so a writer killed before its next
``flush()`` can leave the spilled records in the file; ``recover`` keeps them.
A datapoint must then be there with all its data, or absent.  The child below
makes the worst case certain: it flushes HDF5 right after every spill.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import hards
from hards_h5 import H5Database

SPILLING_WRITER = """
import os, signal, sys
from pathlib import Path
from hards_h5 import H5Database
from hards_h5.store import log as _log
_log.SPILL_ROWS = int(sys.argv[3])
write_pending = _log.DatasetLog.write_pending
flushed = False
def write_pending_then_hdf5_flush(self, *count):
    write_pending(self, *count)
    if flushed:  # an automatic spill: HDF5's metadata reaches the disk, the writer dies
        self._group.file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
_log.DatasetLog.write_pending = write_pending_then_hdf5_flush
path, src = sys.argv[1], Path(sys.argv[2])
src.write_bytes(b"attached")
db = H5Database(path)
ds = db.get_dataset("ds")
for i in range(1000):
    point = ds.create_datapoint(f"p{i}")
    if i % 3 == 1:
        point.add_file(src, name="f.txt")  # a FILE record between CREATE and data
    point.add_data({"i": i, "text": "x" * (i % 50)})
    if i == 30:
        db.flush()
        flushed = True
        print("FLUSHED", i, flush=True)
"""


@pytest.mark.parametrize("spill_rows", [40, 41, 42, 43])  # spills met at each kind of record
def test_a_spill_never_leaves_a_datapoint_without_its_data(tmp_path: Path, spill_rows: int) -> None:
    path = tmp_path / "spill.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds")
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            SPILLING_WRITER,
            str(path),
            str(tmp_path / "f.txt"),
            str(spill_rows),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    assert writer.stdout.split() == ["FLUSHED", "30"]
    result = hards("recover", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    with H5Database(path, "r") as db:
        ds = db.get_dataset("ds")
        names = ds.datapoints
        # every flushed datapoint is kept; spilled ones may be (they reached the disk)
        assert names == [f"p{i}" for i in range(len(names))]
        assert len(names) > 31
        for i, name in enumerate(names):
            point = ds.get_datapoint(name)
            assert point.data == {"i": i, "text": "x" * (i % 50)}, json.dumps({name: point.data})
            assert point.files == (["f.txt"] if i % 3 == 1 else [])
