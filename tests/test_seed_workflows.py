"""Code written for the seed runs unchanged on H5Database.

The workflows below are written the way the seed's documentation writes them (the
HARDS API page's coil-optimisation campaign: a top-level Monte Carlo dataset per
simulator version, sub-datasets of optimiser samples that train on everything they
inherit, and its parallel workflow: datasets created first, one process per batch of
datapoints, analysis afterwards).  They use nothing but ``hards.api`` names, and run
on both ``hards.filesystem.FilesystemDatabase`` and ``H5Database``; the answers must
agree.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hards import api
from hards.filesystem import FilesystemDatabase

from hards_h5 import H5Database, H5Datapoint, H5Dataset

Opener = Callable[[Path], api.AbstractDatabase]


def _open_h5(path: Path) -> api.AbstractDatabase:
    return H5Database(path, timeout=120)  # writer processes take turns


BACKENDS: dict[str, tuple[Opener, Opener]] = {
    "seed": (FilesystemDatabase.create_database, FilesystemDatabase),
    "hards-h5": (H5Database.create_database, _open_h5),
}


def _close(db: api.AbstractDatabase) -> None:
    close = getattr(db, "close", None)  # the seed has nothing to close
    if close is not None:
        close()


def test_h5_objects_are_hards_api_objects(tmp_path: Path) -> None:
    assert issubclass(H5Database, api.AbstractDatabase)
    assert issubclass(H5Dataset, api.AbstractDataset)
    assert issubclass(H5Datapoint, api.AbstractDatapoint)
    with H5Database.create_database(tmp_path / "c.h5") as db:
        ds = db.create_dataset("mc")
        sub = ds.create_dataset("opt")
        point = sub.create_datapoint("p")
        assert isinstance(db, api.AbstractDatabase)
        assert isinstance(ds, api.AbstractDataset)
        assert isinstance(sub, api.AbstractDataset)
        assert isinstance(point, api.AbstractDatapoint)
        assert db.is_database
        assert not ds.is_database
        assert point.database() is db
        assert point.parent == sub
        assert sub.parent == ds
        assert point.path_to_database() == ["mc", "opt", "p"]
        assert point.fullname() == "mc/opt/p"
        with pytest.raises(api.DoesNotExistError):
            db.get_dataset("nope")
        with pytest.raises(api.AlreadyExistsError):
            db.create_dataset("mc")
        with pytest.raises(api.InvalidNameError):
            ds.create_datapoint("a/b")
        with pytest.raises(api.HARDSError):
            point.get_file("missing.txt")


def coil_campaign(db: api.AbstractDatabase, scratch: Path) -> dict[str, Any]:
    """The HARDS API page's campaign: Monte Carlo samples, then optimisers on top."""
    for version in ("v1", "v2"):  # no dots: the seed truncates "1.0" to "1"
        mc = db.create_dataset(f"simulator-{version}")
        mc.add_data({"simulator": version, "coils": 18})
        for i in range(6):
            sample = mc.create_datapoint(f"mc{i}")
            sample.add_data({"current": 1.0 + i, "ripple": 0.5 / (1 + i)})
            report = scratch / "report.txt"
            report.write_text(f"{version} sample {i}\n")
            sample.add_file(report)

    # An optimiser sub-dataset trains on everything it can see, then adds samples.
    mc = db.get_dataset("simulator-v2")
    bo = mc.create_dataset("bayesian_optimisation")
    bo.add_data({"acquisition": "EI"})
    for step in range(3):
        seen = bo.recursively_get_datapoints()
        best = min(p.data["ripple"] for p in seen)
        proposal = bo.create_datapoint(f"bo{step}")
        proposal.add_data({"current": 10.0 + step, "ripple": best / 2, "step": step})
    refine = bo.create_dataset("refine")
    refine.create_datapoint("r0").add_data({"current": 20.0, "ripple": 0.001})

    deep = db.recursively_get_dataset("simulator-v2/bayesian_optimisation/refine")
    inherited = deep.recursively_get_datapoints()
    own_only = deep.recursively_get_datapoints(parents=False)
    best = min(inherited, key=lambda p: p.data["ripple"])
    first = db.recursively_get_datapoint("simulator-v1/mc0")
    return {
        "datasets": sorted(db.children),
        "has": (db.has_dataset("simulator-v1"), mc.has_datapoint("mc3"), mc.has_dataset("x")),
        "sub": list(mc.children),
        "seen_by_refine": sorted(p.fullname() for p in inherited),
        "own_refine": [p.name for p in own_only],
        "best": (best.fullname(), best.data),
        "meta": mc.data,
        "file": (sorted(first.files), first.get_file("report.txt").read_text()),
        "has_file": (first.has_file("report.txt"), first.has_file("other.txt")),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_coil_campaign_runs_unchanged(tmp_path: Path, backend: str) -> None:
    create, _ = BACKENDS[backend]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    db = create(tmp_path / "campaign")
    try:
        result = coil_campaign(db, scratch)
    finally:
        _close(db)
    assert result["datasets"] == ["simulator-v1", "simulator-v2"]
    assert result["has"] == (True, True, False)
    assert result["sub"] == ["bayesian_optimisation"]
    assert len(result["seen_by_refine"]) == 1 + 3 + 6
    assert result["own_refine"] == ["r0"]
    assert result["best"] == (
        "simulator-v2/bayesian_optimisation/refine/r0",
        {"current": 20.0, "ripple": 0.001},
    )
    assert result["meta"] == {"simulator": "v2", "coils": 18}
    assert result["file"] == (["report.txt"], "v1 sample 0\n")
    assert result["has_file"] == (True, False)
    if backend == "hards-h5":
        seed_db = FilesystemDatabase.create_database(tmp_path / "seed-ref")
        assert coil_campaign(seed_db, scratch) == result


def _worker(backend: str, path: str, worker: int, count: int) -> None:
    """One parallel process: open the database, add its own datapoints, close."""
    _, open_db = BACKENDS[backend]
    db = open_db(Path(path))
    try:
        dataset = db.recursively_get_dataset("mc/batch")
        for i in range(count):
            point = dataset.create_datapoint(f"w{worker}-{i}")
            point.add_data({"worker": worker, "i": i, "value": worker * 100 + i})
    finally:
        _close(db)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_workflow_of_the_api_page(tmp_path: Path, backend: str) -> None:
    """Datasets first, then one real process per worker, then analysis in one."""
    create, open_db = BACKENDS[backend]
    path = tmp_path / "campaign"
    db = create(path)
    db.create_dataset("mc").create_dataset("batch")
    _close(db)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(backend, str(path), w, 25)) for w in range(4)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=240)
        assert proc.exitcode == 0
    db = open_db(path)
    try:
        points = db.recursively_get_dataset("mc/batch").recursively_get_datapoints()
        values = sorted(p.data["value"] for p in points)
    finally:
        _close(db)
    assert values == sorted(w * 100 + i for w in range(4) for i in range(25))
