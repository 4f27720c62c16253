"""Move campaigns between hards-h5 files and the seed's directory format.

Export writes through the seed's own ``FilesystemDatabase``, so the result is
exactly what the seed opens.  Import walks the seed's directories itself:
``FilesystemDatabase`` lists entries by ``Path.stem`` and would turn ``run.v2``
into ``run``.

A directory has no creation order, so export also writes an order file
(:data:`ORDER_FILE`) into the database directory and every dataset and
datapoint directory that holds two names or more, next to ``children``,
``datapoints``, ``files`` and ``data.json``.  The seed reads only those four
names there (every dataset, datapoint and file name lives one level down,
inside them), so the order file cannot clash with a name and the seed ignores
it.  Import creates the names the order file lists first, in its order, then
any others (e.g. added later by the seed, or all of them in a directory the
seed wrote) in sorted name order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hards.filesystem import FilesystemDatabase

from hards_h5.api.names import check_name
from hards_h5.api.nodes import H5Database, H5Datapoint, H5Dataset, iter_datasets
from hards_h5.errors import HARDSError, InvalidDataError, NotAHardsFileError
from hards_h5.store.progress import Progress, Tally

__all__ = ["ORDER_FILE", "MigrationReport", "export_seed", "import_seed"]

_CHILDREN, _DATAPOINTS, _FILES, _DATA = "children", "datapoints", "files", "data.json"
ORDER_FILE = "hards-h5-order.json"
"""Written by export next to ``children``/``datapoints``/``files``; the seed ignores it.

A JSON object mapping ``"children"``, ``"datapoints"`` and ``"files"`` (those the
node has) to its names in creation order."""


@dataclass
class MigrationReport:
    """What an import or export moved."""

    datasets: int = 0
    datapoints: int = 0
    files: int = 0


def export_seed(
    source: str | os.PathLike[str] | H5Database,
    directory: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> MigrationReport:
    """Write the campaign file ``source`` as a seed-format directory ``directory``.

    Creation order is kept in :data:`ORDER_FILE` files, which the seed ignores and
    :func:`import_seed` follows.

    Parameters
    ----------
    source : str, os.PathLike or H5Database
        A hards-h5 campaign file (opened read-only), or a database already open
        (for example a SWMR reader of a live campaign; it is left open).
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
    opened: contextlib.AbstractContextManager[H5Database] = (
        contextlib.nullcontext(source)
        if isinstance(source, H5Database)
        else H5Database(source, "r")
    )
    with opened as db:  # a bad source fails before anything is made
        total = sum(len(ds.datapoints) for ds in iter_datasets(db)) if progress else 0
        tally = Tally(progress, total)

        def copy(node: Any, into: Any, folder: Path) -> None:
            for name in node.children:
                src: H5Dataset = node.get_dataset(name)
                dst = into.create_dataset(name)
                report.datasets += 1
                where = folder / _CHILDREN / name
                _copy_node(src, dst, report)
                points = src.recursively_get_datapoints(parents=False)
                for point in points:
                    _copy_node(point, dst.create_datapoint(point.name), report)
                    _write_order(where / _DATAPOINTS / point.name, files=point.files)
                    report.datapoints += 1
                    tally.add()
                names = [point.name for point in points]
                _write_order(where, children=src.children, datapoints=names, files=src.files)
                copy(src, dst, where)

        seed = FilesystemDatabase.create_database(target)
        try:
            _write_order(target, children=db.children)
            copy(db, seed, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # no half-written directory
            raise
    return report


def _write_order(folder: Path, **lists: Sequence[str]) -> None:
    """Write ``folder``'s order file, if any of its lists has two names or more."""
    if any(len(names) > 1 for names in lists.values()):
        text = json.dumps({key: list(names) for key, names in lists.items() if names})
        (folder / ORDER_FILE).write_text(text + "\n", encoding="utf-8")


def _read_order(folder: Path) -> dict[str, list[str]]:
    """Return ``folder``'s order file (empty if it has none); refuse a damaged one."""
    path = folder / ORDER_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and all(
        isinstance(names, list) and all(isinstance(n, str) for n in names)
        for names in value.values()
    ):
        return {str(key): list(names) for key, names in value.items()}
    msg = (
        f"{path}: not an order file written by 'hards-h5 export' (a JSON object of"
        " name lists); remove it to import this folder's entries in sorted name order"
    )
    raise InvalidDataError(msg)


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


def _entries(folder: Path, order: dict[str, list[str]]) -> list[Path]:
    """List ``folder`` (``children``, ``datapoints`` or ``files`` of a node) in order.

    The names ``order`` lists for it come first, in that order; the rest follow in
    sorted name order (code-point order, so ``B`` before ``a``).
    """
    if not folder.is_dir():
        return []
    found = {path.name: path for path in folder.iterdir()}  # hidden names too: ".config"
    first = [found.pop(name) for name in dict.fromkeys(order.get(folder.name, ())) if name in found]
    return first + [found[name] for name in sorted(found)]


def _import_node(
    folder: Path,
    node: H5Dataset | H5Datapoint,
    report: MigrationReport,
    order: dict[str, list[str]],
) -> None:
    data = _read_data(folder / _DATA)
    if data:
        try:
            node.add_data(data)
        except InvalidDataError as exc:
            msg = f"{folder / _DATA}: {exc}"
            raise InvalidDataError(msg) from None
    for file in _entries(folder / _FILES, order):
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
    if given, is called as ``progress(done, total)`` in datapoints, then in the
    record-log rows folded into the HDF5 tree at close (counted as many as the
    datapoints until the fold starts and corrects the total).  Children,
    datapoints and files are created in the order of the folder's
    :data:`ORDER_FILE` (written by :func:`export_seed`), then, for names it does
    not list, in sorted name order.

    Raises
    ------
    NotAHardsFileError
        If ``directory`` is not a seed database (no ``children`` folder).
    InvalidDataError
        If a ``data.json`` cannot be stored (e.g. it holds a string that is not
        valid Unicode), or an order file is damaged; the message names the file.
        NaN and the infinities Python's json writes are stored as they are.

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
    tally = Tally(progress, 2 * _count_seed_datapoints(source) if progress else 0)
    out = Path(target)
    db = H5Database.create_database(out)
    try:

        def walk(folder: Path, parent: H5Database | H5Dataset, order: dict[str, list[str]]) -> None:
            for child in _entries(folder / _CHILDREN, order):
                if not child.is_dir():
                    continue
                dataset = parent.create_dataset(child.name)
                report.datasets += 1
                own = _read_order(child)
                _import_node(child, dataset, report, own)
                for point_dir in _entries(child / _DATAPOINTS, own):
                    if point_dir.is_dir():
                        point = dataset.create_datapoint(point_dir.name)
                        _import_node(point_dir, point, report, _read_order(point_dir))
                        report.datapoints += 1
                        tally.add()
                walk(child, dataset, own)

        walk(source, db, _read_order(source))
        db.store.fold_tally = tally  # (the fold at close goes on the same bar)
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
    for child in _entries(folder / _CHILDREN, {}):
        if child.is_dir():
            total += sum(1 for p in _entries(child / _DATAPOINTS, {}) if p.is_dir())
            total += _count_seed_datapoints(child)
    return total
