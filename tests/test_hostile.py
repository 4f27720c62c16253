"""Hostile input: bad names, data, file sources, a planted cache, a full disk.

Each gets a clear HARDSError (or TypeError/ValueError) and nothing is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hards_h5 import (
    DoesNotExistError,
    FileIntegrityError,
    H5Database,
    HARDSError,
    InvalidDataError,
    InvalidNameError,
    RecoveryNeededError,
    SourceFileError,
    StorageFullError,
)
from hards_h5.store.cache import ExtractionCache
from hards_h5.tools.maintenance import recover

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    database = H5Database.create_database(tmp_path_factory.mktemp("hostile") / "h.h5")
    point = database.create_dataset("ds").create_datapoint("p")
    point.add_data({"keep": 1})
    database.flush()
    yield database
    database.close()


def _unchanged(db: H5Database) -> None:
    ds = db.get_dataset("ds")
    assert ds.datapoints == ["p"]
    assert ds.children == []
    assert ds.get_datapoint("p").data == {"keep": 1}
    assert ds.get_datapoint("p").files == []
    assert not db.store.log(("ds",)).has_pending


class Weird:
    pass


bad_leaves = st.sampled_from(
    [
        Weird(),
        {1, 2},
        b"raw",
        1j,
        Path("/etc"),
        print,
    ]
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def poisoned(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON-looking dict with one bad thing buried somewhere inside."""
    bad: Any = draw(bad_leaves)
    kind = draw(st.sampled_from(["leaf", "key", "deep"]))
    if kind == "key":
        bad = {draw(st.sampled_from([1, 2.5, None, (1, 2), True])): "value"}
    elif kind == "deep":
        for _ in range(draw(st.integers(201, 400))):
            bad = [bad] if draw(st.booleans()) else {"k": bad}
    for _ in range(draw(st.integers(0, 4))):
        siblings = draw(st.dictionaries(st.text(max_size=5), json_leaves, max_size=3))
        bad = {**siblings, "x": bad} if draw(st.booleans()) else [*siblings.values(), bad]
    return {"fine": 1, "bad": bad}


@SETTINGS
@given(poisoned())
def test_poisoned_data_is_rejected_and_nothing_written(
    db: H5Database, value: dict[str, Any]
) -> None:
    with pytest.raises(InvalidDataError):
        db.get_dataset("ds").get_datapoint("p").add_data(value)
    _unchanged(db)


def test_cycles_huge_and_deep(db: H5Database) -> None:
    cyclic: dict[str, Any] = {"a": []}
    cyclic["a"].append(cyclic)
    point = db.get_dataset("ds").get_datapoint("p")
    with pytest.raises(InvalidDataError, match="refers to itself"):
        point.add_data(cyclic)
    with pytest.raises(InvalidDataError, match="data must be a dict"):
        point.add_data("not a dict")  # type: ignore[arg-type]
    _unchanged(db)


@SETTINGS
@given(
    st.text(max_size=30).filter(
        lambda n: (
            not n
            or not all(c.isascii() and (c.isalnum() or c in "._-") for c in n)
            or n in {".", ".."}
        )
    )
)
def test_bad_names_everywhere(
    db: H5Database, tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    src = tmp_path_factory.getbasetemp() / "src.txt"
    src.write_text("x")
    ds = db.get_dataset("ds")
    for action in (
        lambda: db.create_dataset(name),
        lambda: ds.create_dataset(name),
        lambda: ds.create_datapoint(name),
        lambda: ds.get_datapoint("p").add_file(src, name=name),
    ):
        with pytest.raises(InvalidNameError):
            action()
    _unchanged(db)


@pytest.mark.parametrize(
    "name", ["..", ".", "a/b", "../../etc/passwd", "nul\0byte", "", "/abs", "sp ace"]
)
def test_hostile_file_names(db: H5Database, tmp_path: Path, name: str) -> None:
    src = tmp_path / "ok.txt"
    src.write_text("x")
    with pytest.raises(InvalidNameError):
        db.get_dataset("ds").get_datapoint("p").add_file(src, name=name)
    _unchanged(db)


def test_hostile_file_sources(db: H5Database, tmp_path: Path) -> None:
    point = db.get_dataset("ds").get_datapoint("p")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    blobs_before = db.store.blobs().shape[0]
    for bad in ("dir", "fifo", "dangling", "to-dir", "missing"):
        with pytest.raises(SourceFileError):
            point.add_file(tmp_path / bad, name="x.bin")
    assert db.store.blobs().shape[0] == blobs_before
    _unchanged(db)
    # A symlink to a regular file elsewhere is followed: its content is copied in.
    outside = tmp_path / "outside.txt"
    outside.write_text("real content")
    (tmp_path / "link.txt").symlink_to(outside)
    other = db.get_dataset("ds").create_datapoint("linked")
    other.add_file(tmp_path / "link.txt")
    assert other.get_file("link.txt").read_text() == "real content"
    assert not other.get_file("link.txt").is_symlink()


def test_directory_or_missing_source_is_a_missing_file_not_a_bad_name(
    db: H5Database, tmp_path: Path
) -> None:
    point = db.get_dataset("ds").get_datapoint("p")
    blobs_before = db.store.blobs().shape[0]
    for bad in (".", Path(".."), Path("/"), tmp_path / "sub" / "..", tmp_path / "no such"):
        with pytest.raises(SourceFileError):  # a DoesNotExistError, as the API says
            point.add_file(bad)
    assert point.files == []
    assert db.store.blobs().shape[0] == blobs_before


def test_the_campaign_file_cannot_be_attached_to_itself(db: H5Database) -> None:
    blobs_before = db.store.blobs().shape[0]
    with pytest.raises(SourceFileError, match="campaign file itself"):
        db.get_dataset("ds").get_datapoint("p").add_file(db.path, name="snapshot.h5")
    assert db.store.blobs().shape[0] == blobs_before
    assert db.get_dataset("ds").get_datapoint("p").files == []


def test_lookups_with_odd_names_answer_plainly(db: H5Database) -> None:
    ds = db.get_dataset("ds")
    for odd in ("\ud800", "a b", "", ".", "..", "x/y"):
        assert not db.has_dataset(odd)
        assert not ds.has_datapoint(odd)
    with pytest.raises(InvalidNameError, match="is a str"):
        db.recursively_get_dataset(None)  # type: ignore[arg-type]
    with pytest.raises(DoesNotExistError, match="empty dataset path"):
        db.recursively_get_dataset("//")
    with pytest.raises(DoesNotExistError, match="names no dataset"):
        db.recursively_get_datapoint("p")
    # empty path components are ignored, like a shell's a//b
    assert db.recursively_get_datapoint("/ds//p/").fullname() == "ds/p"


def _planted_cache(tmp_path: Path) -> tuple[H5Database, Path, bytes]:
    src = tmp_path / "result.txt"
    src.write_text("the real result")
    db = H5Database.create_database(tmp_path / "c.h5", cache_dir=tmp_path / "cache")
    db.create_dataset("ds").create_datapoint("p").add_file(src)
    sha = db.store.log(("ds",)).files(1)["result.txt"].sha256
    return db, tmp_path / "cache", sha


def test_cache_never_follows_planted_symlinks(tmp_path: Path) -> None:
    db, cache, sha = _planted_cache(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    cache.mkdir(exist_ok=True)
    (cache / sha.hex()[:2]).symlink_to(victim)  # a directory symlink planted in the cache
    path = db.recursively_get_datapoint("ds/p").get_file("result.txt")
    assert path.read_text() == "the real result"
    assert list(victim.iterdir()) == []
    assert not (cache / sha.hex()[:2]).is_symlink()
    db.close()
    db2 = H5Database(tmp_path / "c.h5", "r", cache_dir=cache)
    final = cache / sha.hex()[:2] / sha.hex() / "result.txt"
    final.unlink()
    target = tmp_path / "elsewhere.txt"
    target.write_text("attacker content")
    final.symlink_to(target)  # a file symlink planted where the extraction goes
    got = db2.recursively_get_datapoint("ds/p").get_file("result.txt")
    assert got.read_text() == "the real result"
    assert not got.is_symlink()
    assert target.read_text() == "attacker content"
    db2.close()


def test_cache_replaces_a_tampered_file(tmp_path: Path) -> None:
    db, cache, _ = _planted_cache(tmp_path)
    path = db.recursively_get_datapoint("ds/p").get_file("result.txt")
    db.close()
    path.chmod(0o644)
    path.write_text("tampered content")  # same size would also be caught: checked by hash
    fresh = H5Database(tmp_path / "c.h5", "r", cache_dir=cache)  # a new process's view
    assert (
        fresh.recursively_get_datapoint("ds/p").get_file("result.txt").read_text()
        == "the real result"
    )
    fresh.close()
    cache_obj = ExtractionCache(cache)

    def wrong(fd: int) -> None:
        os.write(fd, b"not what the hash says")
        raise FileIntegrityError("mismatch")

    with pytest.raises(FileIntegrityError):
        cache_obj.get(b"\x01" * 32, 22, "x.txt", wrong)
    assert not (cache / "01" / ("01" * 32) / "x.txt").exists()
    assert not list((cache / "01" / ("01" * 32)).glob(".*tmp"))


def test_second_writer_is_refused_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("ds").create_datapoint("p").add_data({"a": 1})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from hards_h5 import H5Database; d=H5Database(sys.argv[1]); print('ok', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        before = path.read_bytes()
        with pytest.raises(HARDSError, match=rf"being written by a writer \(pid {holder.pid} "):
            H5Database(path)
        with pytest.raises(HARDSError, match="already exists"):
            H5Database.create_database(path)
        assert path.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


FILL = """
import os, sys
from pathlib import Path
from hards_h5 import H5Database, StorageFullError
path, big = Path(sys.argv[1]), Path(sys.argv[2])
db = H5Database.create_database(path)
ds = db.create_dataset("ds")
for i in range(500):
    ds.create_datapoint(f"p{i}").add_data({"i": i})
db.flush()
print("ACKED 500", flush=True)
try:
    ds.get_datapoint("p0").add_file(big)
except StorageFullError as exc:
    print("REFUSED", exc, flush=True)
db.close()
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root: skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_is_a_clear_error_and_flushed_data_survives(
    small_disk: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 << 20))
    out = subprocess.run(
        [sys.executable, "-c", FILL, str(small_disk / "c.h5"), str(big)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "ACKED 500" in out.stdout
    assert "REFUSED" in out.stdout
    assert "not enough free disk space" in out.stdout
    with H5Database(small_disk / "c.h5", "r") as db:
        points = db.get_dataset("ds").recursively_get_datapoints()
        assert [p.data["i"] for p in points] == list(range(500))
        assert points[0].files == []


FILL_DATA = """
import sys
from pathlib import Path
import hards_h5.store.log
from hards_h5 import H5Database, StorageFullError
path, checked = Path(sys.argv[1]), sys.argv[2] == "checked"
if not checked:  # let ENOSPC reach HDF5 itself, as when another process fills the disk
    hards_h5.store.log.check_space = lambda *args, **kwargs: None
ballast = path.with_name("ballast")
ballast.write_bytes(bytes(6 << 20))
db = H5Database.create_database(path)
ds = db.create_dataset("ds")
i = 0
try:
    while True:
        ds.create_datapoint(f"p{i}").add_data({"i": i, "pad": "x" * 5000})
        i += 1
        if i % 50 == 0:
            db.flush()
            print("ACKED", i, flush=True)
except StorageFullError as exc:
    print("REFUSED", exc, flush=True)
ballast.unlink()
try:
    db.flush()
    print("RETRIED", i, flush=True)
except StorageFullError as exc:
    print("RETRY REFUSED", exc, flush=True)
try:
    db.close()
except StorageFullError as exc:
    print("CLOSE REFUSED", exc, flush=True)
print("END", flush=True)
"""


@pytest.mark.parametrize("where", ["checked", "inside-hdf5"])
def test_disk_filling_during_datapoint_writes(small_disk: Path, where: str) -> None:
    """The disk fills while datapoints are written: a clear error, no crash, nothing
    flushed lost; after space is freed, flush() again writes what was refused.

    ``checked``: hards-h5's free-space check refuses before HDF5 writes.
    ``inside-hdf5``: the check is disabled, so HDF5 itself meets ENOSPC.
    """
    path = small_disk / "c.h5"
    out = subprocess.run(
        [sys.executable, "-c", FILL_DATA, str(path), where],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr  # above all: no segfault
    assert "END" in out.stdout, out.stdout[-2000:]
    acked = max(
        int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("ACKED")
    )
    assert acked >= 50
    assert "REFUSED" in out.stdout
    refused = next(line for line in out.stdout.splitlines() if line.startswith("REFUSED"))
    assert str(path) in refused
    assert "flush() again" in refused
    if where == "checked":
        assert "not enough free disk space" in refused
        retried = next(line for line in out.stdout.splitlines() if line.startswith("RETRIED"))
        expected = int(retried.split()[1])
        with H5Database(path, "r") as db:  # opens directly: the file was closed cleanly
            points = db.get_dataset("ds").recursively_get_datapoints()
            assert [p.data["i"] for p in points] == list(range(expected))
        return
    try:
        db = H5Database(path, "r")
    except RecoveryNeededError:
        recover(path)
        db = H5Database(path, "r")
    with db:
        got = [p.data["i"] for p in db.get_dataset("ds").recursively_get_datapoints()]
    assert got == list(range(len(got)))
    assert len(got) >= acked


def test_disk_full_while_spilling_keeps_the_change_for_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk met by an automatic spill (not a flush) loses nothing unflushed."""
    import hards_h5.store.log as log_module

    full = {"on": False}
    real_check = log_module.check_space

    def check(target: str, needed: int, *, reserve: int = 0) -> None:
        if full["on"]:
            msg = f"{target}: not enough free disk space (simulated)"
            raise StorageFullError(msg)
        real_check(target, needed, reserve=reserve)

    monkeypatch.setattr(log_module, "check_space", check)
    monkeypatch.setattr(log_module, "SPILL_ROWS", 10)
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("ds")
        for i in range(5):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
        db.flush()
        full["on"] = True
        for i in range(5, 14):  # 9 pending records: below the spill threshold
            ds.create_datapoint(f"p{i}").add_data({"i": i})
        with pytest.raises(StorageFullError, match="kept in memory"):
            ds.create_datapoint("p14")  # the 10th pending record spills
        assert ds.has_datapoint("p14")
        with pytest.raises(StorageFullError, match="flush\\(\\) again"):
            db.flush()
        full["on"] = False
        ds.get_datapoint("p14").add_data({"i": 14})
        db.flush()
    with H5Database(path, "r") as db:
        points = db.get_dataset("ds").recursively_get_datapoints()
        assert [p.data["i"] for p in points] == list(range(15))


FILL_BLOB = """
import os, sys
from pathlib import Path
import hards_h5.store.layout
from hards_h5 import H5Database, StorageFullError
hards_h5.store.layout.check_space = lambda *args, **kwargs: None  # let HDF5 meet ENOSPC itself
path, big, small = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ballast = path.with_name("ballast")
ballast.write_bytes(bytes(6 << 20))
db = H5Database.create_database(path)
point = db.create_dataset("ds").create_datapoint("p")
point.add_data({"i": 1})
db.flush()
try:
    point.add_file(big)
except StorageFullError as exc:
    print("REFUSED", exc, flush=True)
print("BLOBS", db.store.blobs().shape[0], flush=True)
ballast.unlink()  # the user frees space
point.add_file(small)
db.close()
print("END", flush=True)
"""


def test_disk_filling_inside_hdf5_during_add_file(small_disk: Path, tmp_path: Path) -> None:
    """ENOSPC met by HDF5 while a file streams in: a clear error, the space given
    back, the database still usable."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 << 20))
    small = tmp_path / "small.bin"
    small.write_bytes(b"fits")
    path = small_disk / "c.h5"
    out = subprocess.run(
        [sys.executable, "-c", FILL_BLOB, str(path), str(big), str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "END" in out.stdout, out.stdout
    assert "the file was not stored" in out.stdout
    assert "BLOBS 0" in out.stdout  # the half-written bytes were given back
    with H5Database(path, "r") as db:
        point = db.recursively_get_datapoint("ds/p")
        assert point.data == {"i": 1}
        assert point.files == ["small.bin"]
        assert point.get_file("small.bin").read_bytes() == b"fits"


def test_temporaries_of_killed_extractions_are_cleaned_up(tmp_path: Path) -> None:
    from hards_h5.store.cache import _HOST

    db, _, _ = _planted_cache(tmp_path)
    point = db.get_dataset("ds").get_datapoint("p")
    folder = point.get_file("result.txt").parent
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = done.stdout.strip()

    def temp(name: str, host: str, pid: object) -> Path:
        path = folder / f".{name}.{host}.{pid}.{'ab' * 8}.tmp"
        path.write_bytes(b"partial")
        return path

    stale = temp("result.txt", _HOST, dead)  # made here by a process that is gone
    old = temp("result.txt", "0badc0de", 1)  # another machine's, nothing written for long
    os.utime(old, (0, 0))
    alive = temp("result.txt", _HOST, os.getppid())  # a live extraction here
    elsewhere = temp("result.txt", "0badc0de", dead)  # another machine's, recent: kept
    other_name = temp("result.txt.v2", _HOST, dead)  # another name's: not ours to judge
    (folder / "result.txt").unlink()  # so the next get_file extracts again
    assert point.get_file("result.txt").read_text() == "the real result"
    assert not stale.exists()
    assert not old.exists()
    assert alive.exists()
    assert elsewhere.exists()
    assert other_name.exists()
    db.close()
