"""Fold shard files (one per worker or node) into one campaign file.

Datasets are matched by path, datapoints by name within their dataset.  Data merge
key by key and files by name; a key or file that two sources give *different*
values is a conflict.  All conflicts are found before anything is written, and
reported together: a merge either happens completely or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hards_h5.api.nodes import H5Database, H5Dataset, iter_datasets
from hards_h5.errors import (
    DatabaseExistsError,
    DoesNotExistError,
    FileIntegrityError,
    MergeConflictError,
    MergeSourceError,
)
from hards_h5.store import blobs as _blobs
from hards_h5.store import codec as _codec
from hards_h5.store import layout as _layout
from hards_h5.store import scratch as _scratch
from hards_h5.store.log import DatasetLog, FileRef
from hards_h5.store.progress import Progress, Tally

__all__ = ["MergeConflictError", "MergeReport", "merge"]

_Key = tuple[tuple[str, ...], str]  # (dataset path, datapoint name; "" = the dataset)


@dataclass
class MergeReport:
    """What a merge added."""

    datasets: int = 0
    datapoints: int = 0
    files: int = 0
    skipped_identical: int = 0
    sources: list[Path] = field(default_factory=list)


@dataclass
class _Planned:
    data: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # name -> sha256
    origin: dict[str, str] = field(default_factory=dict)  # key or file -> source


class _Planner:
    """Simulates the merge in memory to find every conflict before writing."""

    def __init__(self, out: H5Database) -> None:
        self.out = out
        self.state: dict[_Key, _Planned] = {}
        self.conflicts: list[str] = []
        self._logs: dict[tuple[str, ...], DatasetLog | None] = {}  # output's, by path

    def _out_log(self, names: tuple[str, ...]) -> DatasetLog | None:
        if names not in self._logs:
            try:
                ds = self.out.recursively_get_dataset("/".join(names))
            except DoesNotExistError:
                self._logs[names] = None
            else:
                self._logs[names] = _log(self.out, _names(ds))
        return self._logs[names]

    def _current(self, key: _Key) -> _Planned:
        planned = self.state.get(key)
        if planned is None:
            planned = _Planned()
            names, point = key
            log = self._out_log(names)
            if log is not None:
                node = _layout.DATASET_NODE if not point else log.node_of(point)
                if node is not None:
                    planned.data = log.data(node)
                    planned.files = {n: r.sha256 for n, r in log.files(node).items()}
                    planned.origin = dict.fromkeys([*planned.data, *planned.files], "output")
            self.state[key] = planned
        return planned

    def add(self, key: _Key, data: dict[str, Any], files: dict[str, FileRef], source: str) -> None:
        planned = self._current(key)
        where = "/".join((*key[0], key[1])) if key[1] else "/".join(key[0]) + " (dataset)"
        for k, value in data.items():
            if k in planned.data and not _codec.same_value(planned.data[k], value, nan_equal=True):
                self.conflicts.append(
                    f"{where}: data key {k!r} is {planned.data[k]!r} in "
                    f"{planned.origin.get(k, '?')} but {value!r} in {source}"
                )
            else:
                planned.data[k] = value
                planned.origin.setdefault(k, source)
        for name, ref in files.items():
            if name in planned.files and planned.files[name] != ref.sha256:
                self.conflicts.append(
                    f"{where}: file {name!r} differs between "
                    f"{planned.origin.get(name, '?')} and {source} (SHA-256)"
                )
            else:
                planned.files[name] = ref.sha256
                planned.origin.setdefault(name, source)


def merge(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> MergeReport:
    """Fold the campaign files ``inputs`` into ``output`` (created if missing).

    Parameters
    ----------
    output : str or os.PathLike
        The campaign file to merge into; created if it does not exist.
    inputs : sequence of str or os.PathLike
        Shard files, merged in order.
    timeout : float, optional
        Seconds to wait for another process's lock on ``output``.
    progress : callable, optional
        Called as ``progress(done, total)`` while the inputs are read and
        copied and the output is folded into its HDF5 tree at close (units:
        record-log rows, each input's counted three times; the total is
        corrected when the fold starts).

    Returns
    -------
    MergeReport
        Counts of what was added.

    Raises
    ------
    MergeSourceError
        If an input is the output file itself.
    StoreFileNotFoundError, NotAHardsFileError, CorruptFileError, DatabaseLockedError
        If an input is missing, not a readable campaign file or open by a writer
        (checked before the output is touched).
    DatabaseExistsError
        If the output did not exist and another process created it meanwhile.
    MergeConflictError
        If two sources give different values to one data key or file name
        (nothing is written then).

    """
    sources = [Path(p) for p in inputs]
    report = MergeReport(sources=sources)
    out = Path(output)
    exists = os.path.lexists(out)
    for src in sources:
        if exists and src.exists() and out.exists() and src.samefile(out):
            msg = f"{src}: cannot merge a campaign file into itself (it is the output)"
            raise MergeSourceError(msg)
    for src in sources:  # a missing or unreadable input fails before OUTPUT is touched
        H5Database(src, "r").close()
    _scratch.remove_stale(out)  # left by killed runs (merges', compacts'...)
    if exists:  # an existing output is rolled back if the merge fails part way
        _merge_into(out, sources, report, timeout=timeout, progress=progress)
        return report
    # A new output is built under a scratch name and linked into place when done:
    # it appears complete or not at all, and a failure never removes a file that
    # another process created meanwhile.
    scratch = _scratch.scratch_path(out, "merge")
    try:
        _layout.new_file(scratch)
        _merge_into(scratch, sources, report, timeout=None, progress=progress)
        try:
            os.link(scratch, out)
        except FileExistsError:
            msg = (
                f"{out}: another process created it during the merge; nothing was "
                "written to it (merge into it again)"
            )
            raise DatabaseExistsError(msg) from None
        _layout.fsync_dir(out.parent)
    finally:
        scratch.unlink(missing_ok=True)
    return report


def _merge_into(
    output: str | os.PathLike[str],
    sources: list[Path],
    report: MergeReport,
    *,
    timeout: float | None,
    progress: Progress | None,
) -> None:
    with H5Database(output, "a", timeout=timeout) as out:
        planner = _Planner(out)
        tally = Tally(progress, _total_rows(sources) if progress else 0)
        for src_path in sources:
            with H5Database(src_path, "r") as src:
                for ds in iter_datasets(src):
                    names = _names(ds)
                    log = _log(src, names)
                    planner.add(
                        (names, ""), ds.data, log.files(_layout.DATASET_NODE), str(src_path)
                    )
                    for node, name in enumerate(log.names, start=1):
                        data = log.data(node)
                        planner.add((names, name), data, log.files(node), str(src_path))
                        tally.add()
                    _finish_dataset(tally, src, ds)
        if planner.conflicts:
            raise MergeConflictError(str(output), planner.conflicts)
        known = _blob_index(out)
        mark = out.store.mark()  # (flushes first: nothing of the merge is pending yet)
        try:
            for src_path in sources:
                with H5Database(src_path, "r") as src:
                    for ds in iter_datasets(src):
                        _copy_dataset(out, src, ds, known, report, tally=tally)
                        _finish_dataset(tally, src, ds)
        except BaseException:
            out.store.roll_back(mark)  # an existing output is left as it was
            raise
        out.store.fold_tally = tally  # (the fold at close goes on the same bar)


def _names(ds: H5Dataset) -> tuple[str, ...]:
    """Return the dataset names from the top of the file down to ``ds``."""
    return tuple(ds.path_to_database())


def _log(db: H5Database, names: tuple[str, ...]) -> DatasetLog:
    """Return the record log of the dataset at ``names`` in ``db``'s store."""
    return db.store.log(names, label=db.path)


def _total_rows(sources: list[Path]) -> int:
    """Return the progress total: every source's record rows, thrice (plan, copy, fold)."""
    total = 0
    for src_path in sources:
        with H5Database(src_path, "r") as src:
            total += 3 * _layout.total_log_rows(src.store.file())
    return total


def _finish_dataset(tally: Tally, src: H5Database, ds: H5Dataset) -> None:
    """Count the rest of ``ds``'s record rows once its datapoints are done."""
    names = _names(ds)
    rows = _layout.log_rows(src.store.group(names, label=src.path))
    tally.add_rest(rows, len(_log(src, names).names))


def _blob_index(out: H5Database) -> dict[bytes, FileRef]:
    index: dict[bytes, FileRef] = {}
    for ds in iter_datasets(out):
        log = _log(out, _names(ds))
        for node in range(len(log.names) + 1):
            for ref in log.files(node).values():
                index.setdefault(ref.sha256, ref)
    return index


def _copy_dataset(
    out: H5Database,
    src: H5Database,
    ds: H5Dataset,
    known: dict[bytes, FileRef],
    report: MergeReport,
    *,
    tally: Tally,
) -> None:
    names = _names(ds)
    parent: H5Database | H5Dataset = out
    for name in names:
        if parent.has_dataset(name):
            parent = parent.get_dataset(name)
        else:
            parent = parent.create_dataset(name)
            report.datasets += 1
    old = _log(src, names)
    new = _log(out, names)
    label = "/".join(names)
    copier = _blobs.BlobCopier(src.store.blobs(), out.store.blobs(), known)

    def fold(node_old: int, node_new: int) -> None:
        incoming = old.data(node_old)
        current = new.data(node_new)
        if any(
            not _codec.same_value(current.get(k, _MISSING), v, nan_equal=True)
            for k, v in incoming.items()
        ):
            current.update(incoming)
            new.set_data(node_new, _codec.dumps(current))
        for fname, ref in old.files(node_old).items():
            have = new.files(node_new).get(fname)
            if have is not None and have.sha256 == ref.sha256:
                report.skipped_identical += 1
                continue
            try:
                target = copier.copy(ref)
            except FileIntegrityError as exc:
                where = (
                    "/".join((*names, old.names[node_old - 1]))
                    if node_old != _layout.DATASET_NODE
                    else label
                )
                msg = f"{src.path}: {where}: {fname!r}: {exc}; nothing was merged"
                raise FileIntegrityError(msg) from exc
            new.set_file(node_new, fname, target)
            report.files += 1

    fold(_layout.DATASET_NODE, _layout.DATASET_NODE)
    for node, name in enumerate(old.names, start=1):
        existing = new.node_of(name)
        if existing is None:
            existing = new.create(name)
            report.datapoints += 1
        else:
            report.skipped_identical += 1
        fold(node, existing)
        tally.add()


_MISSING = object()
