"""Small campaigns stay small, and ``compact`` never makes a file bigger."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hards.filesystem import FilesystemDatabase
from tests.cli_runner import hards

from hards_h5 import H5Database, compact


def _fill(db: object, datasets: int, attach: Path | None = None) -> None:
    """Write ``datasets`` datasets of 5 datapoints with a 4-key dict each (the same API for both)."""
    for d in range(datasets):
        ds = db.create_dataset(f"d{d}")  # type: ignore[attr-defined]
        for i in range(5):
            ds.create_datapoint(f"p{i}").add_data({"a": i, "b": 1.5, "c": "x", "d": True})
        if attach is not None and d == 0:
            ds.add_file(attach)


def _du_bytes(path: Path) -> int:
    """Bytes allocated on disk to ``path`` and everything under it (like ``du``)."""
    out = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout.split()[0])


def _h5(path: Path, datasets: int, attach: Path | None = None) -> int:
    with H5Database.create_database(path) as db:
        _fill(db, datasets, attach)
    return path.stat().st_size


def test_100_datasets_of_5_datapoints_are_no_larger_than_the_seeds_tree(tmp_path: Path) -> None:
    attach = tmp_path / "settings.toml"
    attach.write_text("samples = 200\nseed = 1\n")
    for with_file in (None, attach):
        tree = tmp_path / f"seed-{with_file is not None}"
        seed = FilesystemDatabase.create_database(tree)
        _fill(seed, 100, with_file)
        seed_bytes = _du_bytes(tree)
        h5_bytes = _h5(tmp_path / f"c-{with_file is not None}.h5", 100, with_file)
        assert h5_bytes <= seed_bytes, (h5_bytes, seed_bytes, with_file)


def test_a_dataset_costs_a_few_kib(tmp_path: Path) -> None:
    one = _h5(tmp_path / "one.h5", 1)
    many = _h5(tmp_path / "many.h5", 101)
    per_dataset = (many - one) / 100
    assert per_dataset < 16 * 1024, per_dataset  # 5 datapoints each, records and heap included


def test_the_first_attached_file_does_not_cost_a_mebibyte(tmp_path: Path) -> None:
    attach = tmp_path / "settings.toml"
    attach.write_text("samples = 200\n")
    bare = _h5(tmp_path / "bare.h5", 1)
    with_file = _h5(tmp_path / "file.h5", 1, attach)
    assert with_file - bare < 512 * 1024, with_file - bare


def test_compact_never_grows_a_file(tmp_path: Path) -> None:
    attach = tmp_path / "settings.toml"
    attach.write_text("samples = 200\n")
    for datasets, with_file in ((0, None), (1, None), (100, None), (100, attach)):
        path = tmp_path / f"c-{datasets}-{with_file is not None}.h5"
        before = _h5(path, datasets, with_file)
        for _ in range(2):  # the second time, the file is already compact
            original = path.read_bytes()
            report = compact(path)
            after = path.stat().st_size
            assert after <= before, (datasets, with_file, before, after)
            assert report.bytes_before == before
            assert report.bytes_after == after
            if not report.rewritten:
                assert path.read_bytes() == original  # kept exactly as it was
            before = after
        with H5Database(path, mode="r") as db:  # still the same campaign
            assert len(db.children) == datasets
            if datasets:
                assert db.get_dataset("d0").get_datapoint("p4").data == {
                    "a": 4,
                    "b": 1.5,
                    "c": "x",
                    "d": True,
                }


def test_compact_still_drops_dead_space(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        point = db.create_dataset("d").create_datapoint("p")
        for i in range(200):
            point.add_data({"blob": "x" * 500, "i": i})  # superseded 200 times
            db.flush()
    before = path.stat().st_size
    report = compact(path)
    assert report.rewritten
    assert path.stat().st_size == report.bytes_after < before / 5
    with H5Database(path, mode="r") as db:
        assert db.get_dataset("d").get_datapoint("p").data["i"] == 199


def test_compact_cli_says_when_it_kept_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _h5(path, 3)
    assert hards("compact", str(path)).returncode == 0
    size = path.stat().st_size
    result = hards("compact", str(path))
    assert result.returncode == 0, result.stderr
    assert "already compact, kept as it is" in result.stdout
    assert f"({size} bytes;" in result.stdout
    assert path.stat().st_size == size
