"""Attached files stream into ``/blobs`` at every alignment, on every write path.

Whole HDF5 chunks are written directly (``write_direct_chunk``) and partial
chunks through slice assignment; a ``/blobs`` with a filter pipeline (a file
``h5repack``-ed with gzip, say) takes slice assignment only.  Whatever the path,
the stored bytes, ``get_file`` and ``check`` must agree with the source.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hards_h5 import H5Database, check, compact
from hards_h5.errors import CorruptFileError, FileIntegrityError
from hards_h5.store import blobs as _blobs
from hards_h5.store import layout as _layout
from hards_h5.store.log import FileRef

MIB = 1 << 20


def _source(directory: Path, name: str, size: int, seed: int) -> Path:
    path = directory / name
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def _stored_bytes(path: Path) -> bytes:
    with h5py.File(path, "r") as f:
        return bytes(f[_layout.BLOBS][()])


def _add_all(db_path: Path, sources: list[Path], first: int = 0) -> None:
    with H5Database(db_path) as db:
        ds = db.get_dataset("ds")
        for i, src in enumerate(sources, start=first):
            ds.create_datapoint(f"p{i}").add_file(src, name="f.bin")


def _assert_round_trip(db_path: Path, sources: list[Path]) -> None:
    # the bytes lie in /blobs back to back, in order, exactly as the sources
    assert _stored_bytes(db_path) == b"".join(src.read_bytes() for src in sources)
    with H5Database(db_path, "r") as db:
        ds = db.get_dataset("ds")
        for i, src in enumerate(sources):
            assert ds.get_datapoint(f"p{i}").get_file("f.bin").read_bytes() == src.read_bytes()
    report = check(db_path)
    assert report.ok, report.problems
    assert report.files == len(sources)


# Sizes chosen so that files start and end mid-chunk, on a chunk boundary, one
# byte either side of one, and span several chunks (17 MiB + 3 also takes the
# two-buffer pipeline of files of 16 MiB or more).
SIZES = [3, MIB - 3, MIB, 2 * MIB + 5, 0, MIB - 1, 1, 17 * MIB + 3, 3 * MIB]


def test_files_at_every_alignment_with_the_real_chunk(db_path: Path, tmp_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
        assert _blobs._direct_chunk_size(db.store.blobs()) == _layout.BLOBS_CHUNK
    sources = [_source(tmp_path, f"s{i}", size, i) for i, size in enumerate(SIZES)]
    _add_all(db_path, sources[:4])  # two sessions: the second starts mid-chunk
    _add_all(db_path, sources[4:], first=4)
    _assert_round_trip(db_path, sources)


def test_compact_copies_blobs_through_the_same_paths(db_path: Path, tmp_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    sources = [_source(tmp_path, f"s{i}", size, i) for i, size in enumerate(SIZES[:5])]
    _add_all(db_path, [_source(tmp_path, "dropped", MIB + 11, 99)])
    with H5Database(db_path) as db:
        ds = db.get_dataset("ds")
        # overwritten: the first file's bytes are left for compact to drop
        ds.get_datapoint("p0").add_file(sources[0], name="f.bin")
        for i, src in enumerate(sources[1:], start=1):
            ds.create_datapoint(f"p{i}").add_file(src, name="f.bin")
    compact(db_path)
    _assert_round_trip(db_path, sources)


def test_a_filtered_blobs_array_takes_slice_writes(db_path: Path, tmp_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
    with h5py.File(db_path, "r+") as f:  # as h5repack -f GZIP=1 would leave it
        del f[_layout.BLOBS]
        f.create_dataset(
            _layout.BLOBS,
            shape=(0,),
            maxshape=(None,),
            dtype="u1",
            chunks=(64 * 1024,),
            compression="gzip",
            compression_opts=1,
        )
    with H5Database(db_path) as db:
        assert _blobs._direct_chunk_size(db.store.blobs()) == 0
    sources = [_source(tmp_path, f"s{i}", size, i) for i, size in enumerate(SIZES[:5])]
    _add_all(db_path, sources)
    _assert_round_trip(db_path, sources)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=8),
    sessions=st.integers(min_value=1, max_value=3),
)
def test_any_sequence_of_sizes_round_trips_with_small_chunks(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    sizes: list[int],
    sessions: int,
) -> None:
    # Small HDF5 chunks and I/O buffers, so that a few KiB cross many boundaries
    # and the two-buffer pipeline runs.
    monkeypatch.setattr(_layout, "BLOBS_CHUNK", 4096)
    monkeypatch.setattr(_blobs, "CHUNK", 6000)
    monkeypatch.setattr(_blobs, "_PIPELINE_FROM", 12000)
    directory = tmp_path_factory.mktemp("small")
    db_path = directory / "c.h5"
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds")
        assert _blobs._direct_chunk_size(db.store.blobs()) == 4096
    sources = [_source(directory, f"s{i}", size, size) for i, size in enumerate(sizes)]
    cut = [len(sources) * k // sessions for k in range(sessions + 1)]
    for k in range(sessions):
        with H5Database(db_path) as db:
            ds = db.get_dataset("ds")
            for i in range(cut[k], cut[k + 1]):
                ds.create_datapoint(f"p{i}").add_file(sources[i], name="f.bin")
    _assert_round_trip(db_path, sources)


def test_a_source_that_grows_while_read_is_stored_whole(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file still being appended to (a running simulation's log): the bytes read
    # are stored and hashed consistently, whatever their alignment.
    src = _source(tmp_path, "growing", 3 * MIB + 17, 1)
    extra = np.random.default_rng(2).bytes(MIB + 5)
    with H5Database.create_database(db_path) as db:
        point = db.create_dataset("ds").create_datapoint("p")
        real_readv = os.readv
        appended = False

        def readv_then_grow(fd: int, buffers: list[memoryview]) -> int:
            nonlocal appended
            n = real_readv(fd, buffers)
            if not appended:
                appended = True
                with src.open("ab") as fh:
                    fh.write(extra)
            return n

        monkeypatch.setattr(os, "readv", readv_then_grow)
        point.add_file(src, name="f.bin")
        monkeypatch.undo()
        got = point.get_file("f.bin").read_bytes()
    assert got == src.read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(src.read_bytes()).hexdigest()
    assert check(db_path).ok
    assert src.stat().st_size == 4 * MIB + 22


def _small_blobs(path: Path) -> h5py.Dataset:
    f = h5py.File(path, "w", libver="latest")
    return f.create_dataset("b", shape=(0,), maxshape=(None,), dtype="u1", chunks=(4096,))


def test_an_unallocated_chunk_reads_as_zeros_and_fails_the_hash(tmp_path: Path) -> None:
    blobs = _small_blobs(tmp_path / "u.h5")
    blobs.resize((3 * 4096,))
    blobs[:4096] = 7  # the other two chunks are never written
    as_stored = bytes([7]) * 4096 + bytes(2 * 4096)
    out = tmp_path / "out.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        _blobs.read_blob_into(
            blobs, FileRef(0, len(as_stored), hashlib.sha256(as_stored).digest()), fd
        )
        assert out.read_bytes() == as_stored
        with pytest.raises(FileIntegrityError, match="SHA-256"):
            _blobs.read_blob_into(blobs, FileRef(0, 3 * 4096, bytes(32)), fd)
    finally:
        os.close(fd)
        blobs.file.close()


def test_dirty_cached_chunks_are_read_as_written(tmp_path: Path) -> None:
    # Slice writes leave chunks dirty in HDF5's chunk cache; whole-chunk reads
    # must see them (HDF5 flushes the cached copy before H5Dread_chunk).
    blobs = _small_blobs(tmp_path / "d.h5")
    data = np.random.default_rng(3).integers(0, 256, 5 * 4096 + 100, dtype=np.uint8)
    blobs.resize((len(data),))
    for at in range(0, len(data), 1000):  # small pieces: every chunk partial first
        blobs[at : at + 1000] = data[at : at + 1000]
    fill = _blobs._reader(blobs, 50, len(data))
    buf = np.zeros(len(data), dtype=np.uint8)
    assert fill(buf) == len(data) - 50
    assert bytes(buf[: len(data) - 50]) == data[50:].tobytes()
    blobs.file.close()


@given(
    pos=st.integers(min_value=0, max_value=10**12),
    n=st.integers(min_value=0, max_value=50_000),
    chunk=st.sampled_from([0, 1, 7, 4096, 1 << 20]),
)
def test_pieces_cover_the_range_and_whole_ones_are_aligned_chunks(
    pos: int, n: int, chunk: int
) -> None:
    pieces = list(_blobs._pieces(pos, n, chunk))
    assert sum(length for _, length, _ in pieces) == n
    at = 0
    for start, length, whole in pieces:
        assert start == at
        assert length > 0
        if whole:
            assert length == chunk
            assert (pos + start) % chunk == 0
        at += length
    # only the first and the last piece can be partial chunks
    assert all(whole for _, _, whole in pieces[1:-1])


class _Counting:
    """Stands in for a dataset's low-level id, counting whole-chunk calls."""

    def __init__(self, real: h5py.h5d.DatasetID) -> None:
        self.real = real
        self.calls = {"write_direct_chunk": 0, "read_direct_chunk": 0}

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.real, name)
        if name in self.calls:

            def counted(*args: object, **kwargs: object) -> object:
                result = attr(*args, **kwargs)  # counted only when it succeeds
                self.calls[name] += 1
                return result

            return counted
        return attr


class _Spied:
    """A /blobs dataset whose whole-chunk calls are counted."""

    def __init__(self, real: h5py.Dataset) -> None:
        self.real = real
        self.id = _Counting(real.id)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def __setitem__(self, key: object, value: object) -> None:
        self.real[key] = value


def test_whole_chunks_take_the_direct_paths(tmp_path: Path) -> None:
    # Wrong bytes are caught above; this catches the fast paths silently falling
    # back to slice I/O (a future h5py raising on every direct call, say).
    blobs = _small_blobs(tmp_path / "s.h5")
    spied = _Spied(blobs)
    src = _source(tmp_path, "src", 10 * 4096 + 123, 5)
    blobs.resize((100,))
    blobs[:100] = 1  # the file starts mid-chunk
    fd = _blobs.open_source(src)
    try:
        ref = _blobs.write_blob(spied, fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    # 100 + 40963 bytes: a 3996-byte head, 9 whole chunks, a 1063-byte tail
    assert spied.id.calls["write_direct_chunk"] == 9
    fill = _blobs._reader(spied, ref.offset, ref.offset + ref.size)  # type: ignore[arg-type]
    buf = np.empty(ref.size, dtype=np.uint8)
    assert fill(buf) == ref.size
    assert bytes(buf) == src.read_bytes()
    assert spied.id.calls["read_direct_chunk"] == 9
    blobs.file.close()


def test_a_blobs_array_of_another_type_is_refused(db_path: Path, tmp_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds").create_datapoint("p")
    with h5py.File(db_path, "r+") as f:  # as another tool might have left it
        del f[_layout.BLOBS]
        f.create_dataset(_layout.BLOBS, shape=(0,), maxshape=(None,), dtype="i1", chunks=(4096,))
    src = _source(tmp_path, "s", 3 * MIB, 1)
    with H5Database(db_path) as db:
        point = db.get_dataset("ds").get_datapoint("p")
        with pytest.raises(CorruptFileError, match="not 1-D bytes"):
            point.add_file(src, name="f.bin")
        assert point.files == []
        assert db.store.blobs().shape == (0,)


def test_a_file_with_an_old_superblock_checks_and_compacts(db_path: Path, tmp_path: Path) -> None:
    # h5repack without -L writes superblock version 0, which keeps no status flags
    src = _source(tmp_path, "s", MIB + 3, 1)
    with H5Database.create_database(db_path) as db:
        point = db.create_dataset("ds").create_datapoint("p")
        point.add_data({"a": 1})
        point.add_file(src, name="f.bin")
    old = tmp_path / "old.h5"
    with h5py.File(db_path, "r") as f, h5py.File(old, "w", libver="earliest") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        for name in f:
            f.copy(f[name], g, name=name)
    assert old.read_bytes()[8] == 0  # superblock version 0
    report = check(old)
    assert report.ok, report.problems
    compact(old)
    with H5Database(old, "r") as db:
        point = db.get_dataset("ds").get_datapoint("p")
        assert point.data == {"a": 1}
        assert point.get_file("f.bin").read_bytes() == src.read_bytes()
