"""Damaged and foreign files: each gives a clear HARDSError — never a crash or a hang.

Every damaged file is opened and read completely in a child process with a time
limit, so a segfault or a hang in HDF5 is caught and reported as a failure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hards_h5 import H5Database
from hards_h5.store.layout import ATTR_FORMAT

READ_ALL = """
import sys
from hards.api import HARDSError
from hards_h5 import H5Database
try:
    with H5Database(sys.argv[1], "r") as db:
        def walk(node):
            for name in node.children:
                child = node.get_dataset(name)
                child.data
                for f in child.files:
                    child.get_file(f).read_bytes()
                for p in child.recursively_get_datapoints(parents=False):
                    p.data
                    for f in p.files:
                        p.get_file(f).read_bytes()
                walk(child)
        walk(db)
    print("OK")
except HARDSError as exc:
    print("HARDSError", type(exc).__name__, str(exc).splitlines()[0])
"""


@pytest.fixture(scope="module")
def pristine(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[bytes, dict[str, list[tuple[int, int]]]]:
    path = tmp_path_factory.mktemp("pristine") / "c.h5"
    src = path.parent / "f.bin"
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("mc")
        mc.add_data({"meta": "x" * 100})
        sub = mc.create_dataset("sub")
        for i in range(300):
            point = (mc if i % 3 else sub).create_datapoint(f"p{i}")
            point.add_data({"i": i, "s": "y" * (i % 40)})
            if i % 50 == 0:
                src.write_bytes(random.Random(i).randbytes(20_000))
                point.add_file(src)
    return path.read_bytes(), _used_regions(path)


def _used_regions(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges (offset, length) of the record logs, heaps and file bytes."""
    regions: dict[str, list[tuple[int, int]]] = {"records": [], "heap": [], "blobs": []}

    def visit(name: str, obj: object) -> None:
        kind = name.rsplit("/", 1)[-1]
        # (the tree's file datasets are virtual or empty: no chunks of their own)
        if isinstance(obj, h5py.Dataset) and kind in regions and obj.chunks is not None:
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                start = info.chunk_offset[0] * obj.dtype.itemsize  # past the end: unused
                used = min(info.size, obj.shape[0] * obj.dtype.itemsize - start)
                if used > 0:
                    regions[kind].append((info.byte_offset, used))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return regions


def _cases(pristine: bytes, regions: dict[str, list[tuple[int, int]]]) -> list[tuple[str, bytes]]:
    rng = random.Random(5)
    size = len(pristine)
    cases = [("empty", b""), ("text", b"just some text\n" * 100), ("signature-only", pristine[:8])]
    cases += [(f"truncated-{n}", pristine[: rng.randrange(8, size)]) for n in range(20)]
    for n in range(12):  # superblock damage
        data = bytearray(pristine)
        data[rng.randrange(8, 48)] ^= 1 << rng.randrange(8)
        cases.append((f"superblock-flip-{n}", bytes(data)))
    for n in range(20):  # damage anywhere: metadata, record logs, heaps, blobs
        data = bytearray(pristine)
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(48, size)] = rng.randrange(256)
        cases.append((f"random-bytes-{n}", bytes(data)))
    for kind, spans in regions.items():  # damage inside live data: CRC / SHA-256 must see it
        for n in range(6):
            data = bytearray(pristine)
            offset, length = spans[rng.randrange(len(spans))]
            data[offset + rng.randrange(length)] ^= 0xFF
            cases.append((f"{kind}-flip-{n}", bytes(data)))
    for n in range(6):  # a zeroed block, as a lost disk sector would leave
        data = bytearray(pristine)
        at = rng.randrange(48, size - 4096)
        data[at : at + 4096] = bytes(4096)
        cases.append((f"zeroed-block-{n}", bytes(data)))
    return cases


def test_fifty_plus_damaged_files(
    pristine: tuple[bytes, dict[str, list[tuple[int, int]]]], tmp_path: Path
) -> None:
    cases = _cases(*pristine)
    assert len(cases) >= 50
    failures = []
    outcomes: dict[str, int] = {}
    for name, content in cases:
        path = tmp_path / f"{name}.h5"
        path.write_bytes(content)
        try:
            # A fresh extraction cache per case: a correct copy cached from another
            # case would (rightly) be served without reading the damaged bytes.
            env = {**os.environ, "HARDS_H5_CACHE": str(tmp_path / f"cache-{name}")}
            done = subprocess.run(
                [sys.executable, "-c", READ_ALL, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: hang (over 60 s)")
            continue
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            failures.append(f"{name}: crashed ({done.returncode}): {tail[0]}")
            continue
        verdict = done.stdout.split()[:2]
        outcomes[" ".join(verdict)] = outcomes.get(" ".join(verdict), 0) + 1
        if verdict[0] not in {"OK", "HARDSError"}:
            failures.append(f"{name}: {done.stdout}")
        if name.split("-flip-")[0] in {"records", "heap", "blobs"} and verdict[0] == "OK":
            failures.append(f"{name}: damage to live data went unnoticed")
    assert not failures, "\n".join(failures)


def _foreign(path: Path, kind: str) -> None:
    with h5py.File(path, "w", libver="earliest" if kind == "old" else "latest") as f:
        if kind == "fake-marker":
            f.attrs[ATTR_FORMAT] = np.int64(1)
        elif kind == "newer":
            f.attrs[ATTR_FORMAT] = np.int64(99)
            f.create_group("datasets")
        else:
            f["data"] = np.arange(100)
            f.create_group("datasets")


@pytest.mark.parametrize("kind", ["old", "latest", "fake-marker", "newer"])
def test_foreign_hdf5_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.h5"
    _foreign(path, kind)
    done = subprocess.run(
        [sys.executable, "-c", READ_ALL, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HARDSError"), done.stdout
    expected = {
        "old": "NotAHardsFileError",
        "latest": "NotAHardsFileError",
        "fake-marker": "CorruptFileError",
        "newer": "FormatVersionError",
    }[kind]
    assert expected in done.stdout
