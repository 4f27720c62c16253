"""Move campaigns between hards-h5 files and the seed's directory format.

Export writes through the seed's own ``FilesystemDatabase``, so the result is
exactly what the seed opens.  Import walks the seed's directories itself:
``FilesystemDatabase`` lists entries by ``Path.stem`` and would turn ``run.v2``
into ``run``.  A directory has no creation order, so imported children,
datapoints and files are created in sorted name order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hards.filesystem import FilesystemDatabase

from hards_h5._names import check_name
from hards_h5._nodes import H5Database, H5Datapoint, H5Dataset, iter_datasets
from hards_h5._progress import Progress, Tally
from hards_h5.errors import HARDSError, InvalidDataError, NotAHardsFileError

__all__ = ["MigrationReport", "export_seed", "import_seed"]

_CHILDREN, _DATAPOINTS, _FILES, _DATA = "children", "datapoints", "files", "data.json"


@dataclass
class MigrationReport:
    """What an import or export moved."""

    datasets: int = 0
    datapoints: int = 0
    files: int = 0


def export_seed(
    source: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> MigrationReport:
    """Write the campaign file ``source`` as a seed-format directory ``directory``.

    Parameters
    ----------
    source : str or os.PathLike
        A hards-h5 campaign file (opened read-only).
    directory : str or os.PathLike
        Must not exist; ``hards.filesystem.FilesystemDatabase(directory)`` opens it.
    progress : callable, optional
        Called as ``progress(done, total)`` in datapoints.

    Returns
    -------
    MigrationReport
        Counts.

    """
    report = MigrationReport()
    target = Path(directory)
    if target.exists():
        msg = f"{target}: already exists; export writes a new directory"
        raise HARDSError(msg)
    with H5Database(source, "r") as db:  # a bad source fails before anything is made
        total = sum(len(ds.datapoints) for ds in iter_datasets(db)) if progress else 0
        tally = Tally(progress, total)

        def copy(node: Any, into: Any) -> None:
            for name in node.children:
                src: H5Dataset = node.get_dataset(name)
                dst = into.create_dataset(name)
                report.datasets += 1
                _copy_node(src, dst, report)
                for point in src.recursively_get_datapoints(parents=False):
                    _copy_node(point, dst.create_datapoint(point.name), report)
                    report.datapoints += 1
                    tally.add()
                copy(src, dst)

        seed = FilesystemDatabase.create_database(target)
        try:
            copy(db, seed)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # no half-written directory
            raise
    return report


def _copy_node(src: Any, dst: Any, report: MigrationReport) -> None:
    data = src.data
    if data:
        dst.add_data(data)
    for name in src.files:
        dst.add_file(src.get_file(name), name=name)
        report.files += 1


def _read_data(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise InvalidDataError(msg) from None
    if not isinstance(value, dict):
        msg = f"{path}: holds a JSON {type(value).__name__}, HARDS data is an object"
        raise InvalidDataError(msg)
    return value


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(folder.iterdir())  # hidden names too: ".config" is a valid HARDS name


def _import_node(folder: Path, node: H5Dataset | H5Datapoint, report: MigrationReport) -> None:
    data = _read_data(folder / _DATA)
    if data:
        try:
            node.add_data(data)
        except InvalidDataError as exc:
            msg = f"{folder / _DATA}: {exc}"
            raise InvalidDataError(msg) from None
    for file in _entries(folder / _FILES):
        if file.is_file():
            node.add_file(file, name=check_name(file.name, "file"))
            report.files += 1


def import_seed(
    directory: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> MigrationReport:
    """Read the seed-format directory ``directory`` into a new campaign file ``target``.

    Nothing is left behind on failure: the new file is removed.  ``progress``,
    if given, is called as ``progress(done, total)`` in datapoints.

    Raises
    ------
    NotAHardsFileError
        If ``directory`` is not a seed database (no ``children`` folder).
    InvalidDataError
        If a ``data.json`` cannot be stored (e.g. it holds a string that is not
        valid Unicode); the message names the file.  NaN and the infinities
        Python's json writes are stored as they are.

    """
    source = Path(directory)
    if not source.is_dir():
        what = "not a directory" if source.exists() else "no such directory"
        msg = f"{source}: {what}"
        raise NotAHardsFileError(msg)
    if not (source / _CHILDREN).is_dir():
        msg = f"{source}: not a hards.filesystem database (no '{_CHILDREN}' folder)"
        raise NotAHardsFileError(msg)
    report = MigrationReport()
    tally = Tally(progress, _count_seed_datapoints(source) if progress else 0)
    out = Path(target)
    db = H5Database.create_database(out)
    try:

        def walk(folder: Path, parent: H5Database | H5Dataset) -> None:
            for child in _entries(folder / _CHILDREN):
                if not child.is_dir():
                    continue
                dataset = parent.create_dataset(child.name)
                report.datasets += 1
                _import_node(child, dataset, report)
                for point_dir in _entries(child / _DATAPOINTS):
                    if point_dir.is_dir():
                        point = dataset.create_datapoint(point_dir.name)
                        _import_node(point_dir, point, report)
                        report.datapoints += 1
                        tally.add()
                walk(child, dataset)

        walk(source, db)
        db.close()
    except BaseException:
        db.close()
        with contextlib.suppress(FileNotFoundError):
            out.unlink()
        raise
    return report


def _count_seed_datapoints(folder: Path) -> int:
    """Return how many datapoints :func:`import_seed` will create (the progress total)."""
    total = 0
    for child in _entries(folder / _CHILDREN):
        if child.is_dir():
            total += sum(1 for p in _entries(child / _DATAPOINTS) if p.is_dir())
            total += _count_seed_datapoints(child)
    return total
