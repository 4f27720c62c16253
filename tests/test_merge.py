"""Merging shard files into one campaign."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from cli_runner import hards
from hards_h5 import FileIntegrityError, H5Database, MergeConflictError, MergeSourceError, merge
from hards_h5.api.nodes import iter_datasets


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
    done = hards("merge", str(out), str(a), str(b))
    assert done.returncode == 1
    assert "2 merge conflict(s), nothing written" in done.stderr


def test_merge_cli(tmp_path: Path) -> None:
    shards = [tmp_path / f"s{w}.h5" for w in range(2)]
    for w, shard in enumerate(shards):
        _shard(shard, w, tmp_path / "log.txt")
    out = tmp_path / "all.h5"
    done = hards("merge", str(out), *map(str, shards))
    assert done.returncode == 0, done.stderr
    assert "+200 datapoints" in done.stdout


def test_merge_into_itself_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    _shard(out, 0, tmp_path / "log.txt")
    with pytest.raises(MergeSourceError, match="into itself"):
        merge(out, [tmp_path / "." / "c.h5"])
    with H5Database(out, "r") as db:
        assert len(db.recursively_get_dataset("mc/sub").datapoints) == 100


def test_conflict_with_the_existing_output_and_dataset_data(tmp_path: Path) -> None:
    out, shard = tmp_path / "out.h5", tmp_path / "shard.h5"
    _shard(out, 0, tmp_path / "log.txt")
    with H5Database.create_database(shard) as db:
        mc = db.create_dataset("mc")
        mc.add_data({"sampler": "sobol"})  # the output says "uniform"
        mc.create_dataset("sub").create_datapoint("w0-1").add_data({"worker": 0, "i": 99})
    before = out.read_bytes()
    with pytest.raises(MergeConflictError) as info:
        merge(out, [shard])
    text = str(info.value)
    assert "mc (dataset): data key 'sampler' is 'uniform' in output but 'sobol' in" in text
    assert "mc/sub/w0-1: data key 'i' is 1 in output but 99 in" in text
    assert out.read_bytes() == before  # not a byte written


def test_identical_files_are_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "same.bin"
    src.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, the same in every shard
    shards = [tmp_path / f"s{w}.h5" for w in range(3)]
    for w, shard in enumerate(shards):
        with H5Database.create_database(shard) as db:
            db.create_dataset("ds").create_datapoint(f"p{w}").add_file(src)
    out = tmp_path / "out.h5"
    report = merge(out, shards)
    assert report.files == 3
    with h5py.File(out, "r") as raw:
        assert raw["blobs"].shape[0] == src.stat().st_size  # one copy of the bytes
    with H5Database(out, "r") as db:
        for w in range(3):
            got = db.get_dataset("ds").get_datapoint(f"p{w}").get_file("same.bin")
            assert got.read_bytes() == src.read_bytes()


PEAK_MERGE = """
import sys
from hards_h5 import merge

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

before = peak_kib()
merge(sys.argv[1], [sys.argv[2]])
print(peak_kib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_files_are_copied_without_reading_them_into_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for i in range(96):  # 96 MiB, distinct blocks
            f.write(i.to_bytes(4, "little") * (1 << 18))
    shard = tmp_path / "shard.h5"
    with H5Database.create_database(shard) as db:
        db.create_dataset("ds").create_datapoint("p").add_file(big)
    out = tmp_path / "out.h5"
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MERGE, str(out), str(shard)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(done.stdout) < 48 * 1024  # KiB: chunked copy, far below the 96 MiB file
    with H5Database(out, "r") as db:
        got = db.get_dataset("ds").get_datapoint("p").get_file("big.bin")
        assert got.stat().st_size == big.stat().st_size
        assert got.read_bytes() == big.read_bytes()


def test_booleans_and_numbers_conflict(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "out.h5"
    for path, value in ((a, True), (b, 1)):
        with H5Database.create_database(path) as db:
            ds = db.create_dataset("ds")
            ds.add_data({"meta": value})
            ds.create_datapoint("p").add_data({"x": value, "n": [value], "same": 2.0})
    with pytest.raises(MergeConflictError) as info:
        merge(out, [a, b])
    assert len(info.value.conflicts) == 3  # ds meta, p x, p n; 'same' agrees
    assert not out.exists()


def test_a_bad_input_leaves_no_output_behind(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    _shard(good, 0, tmp_path / "log.txt")
    (tmp_path / "notes.txt").write_text("not a campaign")
    for bad in ("missing.h5", "notes.txt"):
        out = tmp_path / f"out-{bad}.h5"
        done = hards("merge", str(out), str(good), str(tmp_path / bad))
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert not out.exists(), bad


def test_a_failed_merge_leaves_an_existing_output_as_it_was(tmp_path: Path) -> None:
    """A damaged file found while copying (after automatic spills to the output)
    rolls the output back: a merge happens completely or not at all."""
    out, bad = tmp_path / "out.h5", tmp_path / "bad.h5"
    _shard(out, 0, tmp_path / "log.txt")
    src = tmp_path / "payload.bin"
    src.write_bytes(b"payload " * 4096)
    with H5Database.create_database(bad) as db:
        ds = db.create_dataset("mc").create_dataset("sub")
        for i in range(20_000):  # more than one spill of records into the output
            ds.create_datapoint(f"b{i}").add_data({"i": i})
        ds.get_datapoint("b19999").add_file(src)
        extra = db.create_dataset("extra")
        extra.create_datapoint("e").add_data({"x": 1})
    with h5py.File(bad, "r+") as f:  # flip one byte of the attached file
        f["blobs"][10] ^= 0xFF
    before = _contents(out)
    with pytest.raises(FileIntegrityError, match=r"bad\.h5: mc/sub/b19999: 'payload\.bin'"):
        merge(out, [bad])
    assert _contents(out) == before
    done = hards("check", str(out))
    assert done.returncode == 0, done.stderr


def _contents(path: Path) -> dict[str, object]:
    with H5Database(path, "r") as db:
        return {
            p.fullname(): (p.data, p.files)
            for d in iter_datasets(db)
            for p in d.recursively_get_datapoints(parents=False)
        } | {"children": db.children}


def test_a_new_output_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    _shard(good, 0, tmp_path / "log.txt")
    bad = tmp_path / "bad.h5"
    _shard(bad, 1, tmp_path / "log.txt")
    with h5py.File(bad, "r+") as f:  # damage w1-0's log.txt
        f["blobs"][5] ^= 0xFF
    out = tmp_path / "new.h5"
    with pytest.raises(FileIntegrityError):
        merge(out, [good, bad])
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if ".merge-" in p.name]  # no scratch left
    report = merge(out, [good])
    assert report.datapoints == 100
    with H5Database(out, "r") as db:
        assert len(db.recursively_get_dataset("mc/sub").datapoints) == 100


# Merges the shards given into a new output and hangs once the copy (the second
# half of the progress count) has started: its scratch file is then being written.
MERGE_AND_HANG = """
import sys, time
from hards_h5 import merge
def hang(done, total):
    if done * 2 > total:
        print("COPYING", flush=True)
        time.sleep(600)
merge(sys.argv[1], sys.argv[2:], progress=hang)
"""


def test_a_killed_merges_scratch_file_is_removed_by_a_later_merge(tmp_path: Path) -> None:
    import signal

    from cli_runner import python_child

    shards = [tmp_path / f"shard{w}.h5" for w in range(3)]
    for w, shard in enumerate(shards):
        _shard(shard, w, tmp_path / "log.txt")
    out = tmp_path / "campaign.h5"
    proc = python_child(MERGE_AND_HANG, str(out), *map(str, shards))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "COPYING"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    left = list(tmp_path.glob(".campaign.h5.merge-*"))
    assert len(left) == 1
    assert not out.exists()
    assert (tmp_path / f".{left[0].name}.writer").exists()  # the killed merge's writer note
    merge(out, shards)  # its owner (this host, that pid) is gone: removed at once
    assert not [p.name for p in tmp_path.iterdir() if ".merge-" in p.name]  # nor its .writer
    with H5Database(out, "r") as db:
        assert len(db.recursively_get_dataset("mc/sub").datapoints) == 300
