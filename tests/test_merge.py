"""Merging shard files into one campaign."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database, MergeConflictError, merge


def _shard(path: Path, worker: int, src: Path) -> None:
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("mc")
        mc.add_data({"sampler": "uniform"})
        sub = mc.create_dataset("sub")
        for i in range(100):
            point = sub.create_datapoint(f"w{worker}-{i}")
            point.add_data({"worker": worker, "i": i})
        src.write_text(f"worker {worker} log\n" * 1000)
        sub.get_datapoint(f"w{worker}-0").add_file(src, name="log.txt")


def test_merge_shards(tmp_path: Path) -> None:
    shards = [tmp_path / f"shard{w}.h5" for w in range(3)]
    for w, shard in enumerate(shards):
        _shard(shard, w, tmp_path / "log.txt")
    out = tmp_path / "campaign.h5"
    report = merge(out, shards)
    assert report.datapoints == 300
    assert report.files == 3
    with H5Database(out, "r") as db:
        sub = db.recursively_get_dataset("mc/sub")
        assert len(sub.datapoints) == 300
        assert db.get_dataset("mc").data == {"sampler": "uniform"}
        for w in range(3):
            point = sub.get_datapoint(f"w{w}-0")
            assert point.data == {"worker": w, "i": 0}
            assert point.get_file("log.txt").read_text() == f"worker {w} log\n" * 1000
    again = merge(out, shards)  # identical content: nothing new, no conflict
    assert again.datapoints == 0
    assert again.skipped_identical > 0


def test_conflicts_are_reported_and_nothing_written(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "out.h5"
    src = tmp_path / "f.txt"
    for path, value, text in ((a, 1, "one"), (b, 2, "two")):
        with H5Database.create_database(path) as db:
            point = db.create_dataset("ds").create_datapoint("p")
            point.add_data({"x": value, "same": True})
            src.write_text(text)
            point.add_file(src)
            db.create_dataset(f"only_{path.stem}")
    with pytest.raises(MergeConflictError) as info:
        merge(out, [a, b])
    assert len(info.value.conflicts) == 2
    assert "data key 'x' is 1" in str(info.value)
    assert "file 'f.txt' differs" in str(info.value)
    assert not out.exists()  # a new output is not left behind, empty
    H5Database.create_database(out).close()
    with pytest.raises(MergeConflictError, match=r"out\.h5: 2 merge conflict\(s\)"):
        merge(out, [a, b])
    with H5Database(out, "r") as db:  # an existing output is left untouched
        assert db.children == []
    done = subprocess.run(
        [sys.executable, "-m", "hards_h5.cli", "merge", str(out), str(a), str(b)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "2 merge conflict(s), nothing written" in done.stderr


def test_merge_cli(tmp_path: Path) -> None:
    shards = [tmp_path / f"s{w}.h5" for w in range(2)]
    for w, shard in enumerate(shards):
        _shard(shard, w, tmp_path / "log.txt")
    out = tmp_path / "all.h5"
    done = subprocess.run(
        [sys.executable, "-m", "hards_h5.cli", "merge", str(out), *map(str, shards)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "+200 datapoints" in done.stdout
