"""Seed migration: import and export round-trip a hards.filesystem directory exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hards.filesystem import FilesystemDatabase

from hards_h5 import H5Database, H5Dataset, InvalidDataError
from hards_h5.tools.migrate import ORDER_FILE, export_seed, import_seed


def _snapshot(root: Path) -> dict[str, bytes | object]:
    """Every file under a seed directory: data.json parsed, other files as bytes.

    Export's order files are left out (a directory the seed wrote has none).
    """
    out: dict[str, bytes | object] = {}
    for path in sorted(root.rglob("*")):
        if path.name == ORDER_FILE and path.parent.name not in ("children", "datapoints", "files"):
            continue
        if path.is_file():
            rel = str(path.relative_to(root))
            out[rel] = (
                json.loads(path.read_text()) if path.name == "data.json" else path.read_bytes()
            )
        elif path.is_dir():
            out[str(path.relative_to(root)) + "/"] = None
    return out


def _seed_campaign(root: Path, tmp_path: Path) -> None:
    db = FilesystemDatabase.create_database(root)
    run = db.create_dataset("run.v2")  # a dotted name the seed itself lists as "run"
    run.add_data({"simulator": "v2", "nested": {"a": [1, 2]}})
    sub = run.create_dataset("opt.bayes")
    src = tmp_path / "out.csv"
    for i in range(20):
        point = (run if i % 2 else sub).create_datapoint(f"p.{i:03d}")
        point.add_data({"i": i, "x": i / 3, "label": "ünïcode"})
        if i % 5 == 0:
            src.write_bytes(bytes(range(256)) * (i + 1))
            point.add_file(src, name=f"result.{i}.csv")
    run.add_file(src, name="summary.tar.gz")
    db.create_dataset("empty")
    hidden = db.create_dataset(".hidden")  # names may start with a dot: kept too
    hidden.create_datapoint(".dot").add_file(src, name=".config")


def test_import_then_export_is_exact(tmp_path: Path) -> None:
    seed_dir = tmp_path / "seed"
    _seed_campaign(seed_dir, tmp_path)
    h5 = tmp_path / "campaign.h5"
    report = import_seed(seed_dir, h5)
    assert (report.datasets, report.datapoints, report.files) == (4, 21, 6)
    with H5Database(h5, "r") as db:
        assert sorted(db.children) == [".hidden", "empty", "run.v2"]
        assert db.recursively_get_datapoint(".hidden/.dot").files == [".config"]
        run = db.get_dataset("run.v2")
        assert run.children == ["opt.bayes"]
        assert run.get_datapoint("p.001").data == {"i": 1, "x": 1 / 3, "label": "ünïcode"}
        assert run.files == ["summary.tar.gz"]
    back = tmp_path / "back"
    export_seed(h5, back)
    assert _snapshot(back) == _snapshot(seed_dir)
    # and the seed opens the export (through its own, dot-truncating listing)
    seed = FilesystemDatabase(back)
    assert seed.get_dataset("run.v2").get_datapoint("p.001").data["i"] == 1


def test_import_refuses_non_seed_and_bad_data(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"not a hards\.filesystem database"):
        import_seed(tmp_path, tmp_path / "x.h5")
    seed_dir = tmp_path / "seed"
    db = FilesystemDatabase.create_database(seed_dir)
    db.create_dataset("ds").create_datapoint("bad").add_data({"x": "\ud800"})  # lone surrogate
    target = tmp_path / "bad.h5"
    with pytest.raises(InvalidDataError, match=r"data\.json.*not valid Unicode"):
        import_seed(seed_dir, target)
    assert not target.exists()


def test_cli_import_export(tmp_path: Path) -> None:
    from hards_h5.cli import main

    seed_dir = tmp_path / "seed"
    _seed_campaign(seed_dir, tmp_path)
    h5 = tmp_path / "c.h5"
    assert main(["import", str(seed_dir), str(h5)]) == 0
    assert main(["export", str(h5), str(tmp_path / "again")]) == 0
    assert _snapshot(tmp_path / "again") == _snapshot(seed_dir)
    assert main(["export", str(h5), str(tmp_path / "again")]) == 1  # exists: refused


def test_large_file_and_hand_made_directory(tmp_path: Path) -> None:
    """A file larger than the 8 MiB streaming chunk, and folders without data.json."""
    seed_dir = tmp_path / "seed"
    point_dir = seed_dir / "children" / "hand.made" / "datapoints" / "p.1"
    (point_dir / "files").mkdir(parents=True)
    big = bytes(range(251)) * (20 * 2**20 // 251 + 1)  # ~20 MiB, no repeating chunk
    (point_dir / "files" / "field.v3.bin").write_bytes(big)
    (seed_dir / "children" / "hand.made" / ".hidden").write_text("ignored")
    h5 = tmp_path / "c.h5"
    report = import_seed(seed_dir, h5)
    assert (report.datasets, report.datapoints, report.files) == (1, 1, 1)
    with H5Database(h5, "r") as db:
        point = db.recursively_get_datapoint("hand.made/p.1")
        assert point.data == {}
        assert point.files == ["field.v3.bin"]
        assert point.get_file("field.v3.bin").read_bytes() == big
    back = tmp_path / "back"
    export_seed(h5, back)
    exported = back / "children" / "hand.made" / "datapoints" / "p.1"
    assert (exported / "files" / "field.v3.bin").read_bytes() == big
    assert FilesystemDatabase(back).get_dataset("hand.made").data == {}


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    with pytest.raises(Exception, match=r"notes\.h5"):
        export_seed(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    good = tmp_path / "c.h5"
    with H5Database.create_database(good) as db:
        src = tmp_path / "f.bin"
        src.write_bytes(b"x" * 10)
        db.create_dataset("ds").create_datapoint("p").add_file(src)
    full = tmp_path / "full"
    calls: list[int] = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        assert total == 1
        if done:  # the first datapoint is written: stop half-way through
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_seed(good, full, progress=interrupt)
    assert calls == [0, 1]
    assert not full.exists()


def _shuffled_campaign(path: Path, tmp_path: Path) -> dict[str, list[str]]:
    """A campaign whose names are created out of sorted order; returns every listing."""
    src = tmp_path / "payload.bin"
    src.write_bytes(b"payload")
    with H5Database.create_database(path) as db:
        for name in ("zeta", "Beta", "alpha", ORDER_FILE, "mid.v2"):
            db.create_dataset(name)
        zeta = db.get_dataset("zeta")
        for name in ("sub.z", "sub.a", ORDER_FILE):
            zeta.create_dataset(name).add_data({"child": name})
        for name in ("p9", "p10", "P1", ORDER_FILE, "p.0"):
            point = zeta.create_datapoint(name)
            point.add_data({"name": name})
            for file_name in ("z.txt", "a.txt", ORDER_FILE):
                point.add_file(src, name=file_name)
        for file_name in ("z.csv", ORDER_FILE, "b.csv"):
            zeta.add_file(src, name=file_name)
        zeta.get_dataset("sub.a").create_datapoint("only").add_file(src, name="one.txt")
        return _listings(db)


def _listings(db: H5Database) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"/": list(db.children)}

    def walk(node: H5Dataset, prefix: str) -> None:
        out[prefix + "children"] = list(node.children)
        out[prefix + "datapoints"] = list(node.datapoints)
        out[prefix + "files"] = list(node.files)
        for name in node.datapoints:
            out[f"{prefix}{name}/files"] = list(node.get_datapoint(name).files)
        for name in node.children:
            walk(node.get_dataset(name), f"{prefix}{name}/")

    for name in db.children:
        walk(db.get_dataset(name), f"{name}/")
    return out


def test_export_then_import_keeps_creation_order(tmp_path: Path) -> None:
    """Children, datapoints and files come back in creation order, not sorted."""
    original = tmp_path / "original.h5"
    listed = _shuffled_campaign(original, tmp_path)
    assert listed["/"] != sorted(listed["/"])  # the test means something
    assert listed["zeta/datapoints"] != sorted(listed["zeta/datapoints"])
    exported = tmp_path / "exported"
    export_seed(original, exported)
    again = tmp_path / "again.h5"
    report = import_seed(exported, again)
    assert (report.datasets, report.datapoints, report.files) == (8, 6, 19)
    with H5Database(again, "r") as db:
        assert _listings(db) == listed
        zeta = db.get_dataset("zeta")
        assert zeta.get_datapoint(ORDER_FILE).data == {"name": ORDER_FILE}
        assert zeta.get_datapoint("p9").get_file(ORDER_FILE).read_bytes() == b"payload"
    # the seed reads the exported tree, order files unseen (its own listing is unordered,
    # and lists datasets and datapoints by Path.stem)
    seed = FilesystemDatabase(exported)
    assert sorted(seed.children) == sorted(Path(n).stem for n in listed["/"])
    seed_zeta = seed.get_dataset("zeta")
    assert sorted(seed_zeta.children) == sorted(Path(n).stem for n in listed["zeta/children"])
    assert sorted(seed_zeta.datapoints) == sorted(Path(n).stem for n in listed["zeta/datapoints"])
    assert sorted(seed_zeta.files) == sorted(listed["zeta/files"])
    assert sorted(seed_zeta.get_datapoint("p9").files) == sorted(listed["zeta/p9/files"])
    assert seed_zeta.get_datapoint("p9").data == {"name": "p9"}
    assert seed_zeta.get_dataset("sub.z").data == {"child": "sub.z"}
    # a second round trip changes nothing either
    export_seed(again, tmp_path / "twice")
    import_seed(tmp_path / "twice", tmp_path / "twice.h5")
    with H5Database(tmp_path / "twice.h5", "r") as db:
        assert _listings(db) == listed


def test_import_without_order_files_is_sorted(tmp_path: Path) -> None:
    """A directory the seed wrote has no order file: names come in code-point order."""
    seed_dir = tmp_path / "seed"
    seed = FilesystemDatabase.create_database(seed_dir)
    src = tmp_path / "f.txt"
    src.write_text("x")
    for name in ("b", "a", "B", "_c"):
        ds = seed.create_dataset(name)
    for name in ("p2", "p10", "P3"):
        ds.create_datapoint(name).add_file(src, name=f"{name}.txt")
    for name in ("y.txt", "X.txt"):
        ds.add_file(src, name=name)
    import_seed(seed_dir, tmp_path / "c.h5")
    with H5Database(tmp_path / "c.h5", "r") as db:
        assert db.children == ["B", "_c", "a", "b"]
        assert db.get_dataset("_c").datapoints == ["P3", "p10", "p2"]
        assert db.get_dataset("_c").files == ["X.txt", "y.txt"]


def test_names_added_by_the_seed_after_export_come_last_sorted(tmp_path: Path) -> None:
    original = tmp_path / "original.h5"
    listed = _shuffled_campaign(original, tmp_path)
    exported = tmp_path / "exported"
    export_seed(original, exported)
    seed = FilesystemDatabase(exported)
    seed.create_dataset("new.b")
    seed.create_dataset("new.a")
    zeta = seed.get_dataset("zeta")
    zeta.create_datapoint("q2")
    zeta.create_datapoint("q1")
    import_seed(exported, tmp_path / "again.h5")
    with H5Database(tmp_path / "again.h5", "r") as db:
        assert db.children == [*listed["/"], "new.a", "new.b"]
        assert db.get_dataset("zeta").datapoints == [*listed["zeta/datapoints"], "q1", "q2"]


def test_damaged_order_file_is_refused(tmp_path: Path) -> None:
    original = tmp_path / "original.h5"
    _shuffled_campaign(original, tmp_path)
    exported = tmp_path / "exported"
    export_seed(original, exported)
    order = exported / "children" / "zeta" / ORDER_FILE
    order.write_text('{"datapoints": "p9"}')
    target = tmp_path / "again.h5"
    with pytest.raises(InvalidDataError, match=r"zeta/hards-h5-order\.json.*remove it"):
        import_seed(exported, target)
    assert not target.exists()
    order.unlink()  # as the message says: then that folder imports in sorted order
    import_seed(exported, target)
    with H5Database(target, "r") as db:
        zeta = db.get_dataset("zeta")
        assert zeta.datapoints == sorted(zeta.datapoints)
        assert zeta.get_datapoint("p9").files == ["z.txt", "a.txt", ORDER_FILE]
