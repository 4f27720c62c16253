"""check, compact and recover: the maintenance of one campaign file.

check reads every record and file through the store without changing anything;
compact and recover write the file's committed state into a new file with the
store's rewrite (:mod:`hards_h5.store.rewrite`) and swap it in atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from hards_h5.errors import FileIntegrityError, HARDSError, RecoveryNeededError
from hards_h5.store import blobs as _blobs
from hards_h5.store import layout as _layout
from hards_h5.store import seal as _seal
from hards_h5.store.log import DatasetLog, FileRef
from hards_h5.store.progress import Progress, Tally
from hards_h5.store.rewrite import (
    RewriteReport,
    exclusive,
    left_open_problem,
    open_unlocked,
    preflight,
    remove_stale_scratch,
    rewrite_in_place,
    rewrite_target,
)
from hards_h5.store.salvage import salvage_log
from hards_h5.store.superblock import clear_status_flags, status_flags

__all__ = ["CheckReport", "RewriteReport", "check", "compact", "recover"]


@dataclass
class CheckReport:
    """What ``check`` found: counts, and every problem as one line.

    Attributes
    ----------
    path : Path
        The file checked.
    format_version : int
        Its format version (0 if it could not be read).
    datasets, datapoints, files : int
        What it holds.
    file_bytes : int
        The bytes of all attached files (each reference counted).
    problems : list of str
        Every problem found, one line each.

    """

    path: Path
    format_version: int = 0
    datasets: int = 0
    datapoints: int = 0
    files: int = 0
    file_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def compact(path: str | os.PathLike[str], *, progress: Progress | None = None) -> RewriteReport:
    """Rewrite ``path`` without dead space, atomically (temp file, fsync, rename).

    Dead space is superseded data records, replaced or orphaned file bytes and
    duplicated file contents.  The file must not be open in any other process.

    Parameters
    ----------
    path : str or os.PathLike
        The campaign file.
    progress : callable, optional
        Called as ``progress(done, total)`` in record-log rows.

    Returns
    -------
    RewriteReport
        Counts, and the file's size before and after.

    Raises
    ------
    DatabaseLockedError
        If another process has the file open.
    RecoveryNeededError
        If a writer died with the file open (run :func:`recover` instead).
    CorruptFileError
        If the file has damaged records or files (run ``hards-h5 check``).

    """
    path = rewrite_target(path)
    preflight(path)
    with exclusive(path):
        remove_stale_scratch(path)  # only under the lock: not a running one's
        if status_flags(path):
            msg = f"{path}: left open by a writer that died; run 'hards-h5 recover {path}' first"
            raise RecoveryNeededError(msg)
        return rewrite_in_place(path, "compact", strict=True, backup=False, progress=progress)


def recover(
    path: str | os.PathLike[str], *, force: bool = False, progress: Progress | None = None
) -> RewriteReport:
    """Bring back a campaign file whose writer died, keeping the original as a backup.

    Clears the stale writer flag (as ``h5clear -s`` would), salvages every
    committed dataset, datapoint, data value and intact file into a clean new
    file, keeps the original bytes as ``<name>.bak-<time>`` and moves the clean
    file into place with one atomic rename.  Safe to interrupt and run again.
    A file that was closed cleanly and passes :func:`check` is left alone
    (``rewritten`` is False in the report) unless ``force`` is given.

    Parameters
    ----------
    path : str or os.PathLike
        The campaign file.
    force : bool
        Rewrite (and back up) the file even when it is closed cleanly and undamaged.
    progress : callable, optional
        Called as ``progress(done, total)`` in record-log rows.

    Returns
    -------
    RewriteReport
        Counts, the backup's path and a line for everything that could not be saved.

    Raises
    ------
    StoreFileNotFoundError, NotAHardsFileError
        If ``path`` is missing or not a campaign file.
    DatabaseLockedError
        If another process still has the file open (a writer may be alive).
    CorruptFileError
        If HDF5 cannot read the file's structure at all.

    """
    path = rewrite_target(path)
    preflight(path)
    with exclusive(path):
        remove_stale_scratch(path)  # only under the lock: not a running one's
        if not force and not status_flags(path):
            healthy = CheckReport(path)  # closed cleanly: anything to salvage?
            with open_unlocked(path) as f:
                _check_open(f, healthy, progress)
            if healthy.ok:
                size = path.stat().st_size
                return RewriteReport(
                    datasets=healthy.datasets,
                    datapoints=healthy.datapoints,
                    files=healthy.files,
                    bytes_before=size,
                    bytes_after=size,
                    rewritten=False,
                )
        cleared = clear_status_flags(path)
        report = rewrite_in_place(path, "recover", strict=False, backup=True, progress=progress)
    report.cleared_flags = cleared
    return report


def check(path: str | os.PathLike[str], *, progress: Progress | None = None) -> CheckReport:
    """Verify structure, format version, every record's CRC, seals, JSON and file SHA-256s.

    Never raises for a damaged file: every problem becomes a line in
    :attr:`CheckReport.problems`.

    Parameters
    ----------
    path : str or os.PathLike
        The campaign file.
    progress : callable, optional
        Called as ``progress(done, total)`` in record-log rows.

    Returns
    -------
    CheckReport
        Counts and problems; :attr:`CheckReport.ok` is true when there are none.

    """
    path = Path(path)
    report = CheckReport(path)
    try:
        flags = preflight(path)
    except (HARDSError, OSError) as exc:
        report.problems.append(str(exc))
        return report
    if flags:
        report.problems.append(left_open_problem(path, flags))
        return report
    try:
        f = _layout.open_file(path, "r")
    except HARDSError as exc:
        report.problems.append(str(exc))
        return report
    with f:
        _check_open(f, report, progress)
    return report


def _check_open(f: h5py.File, report: CheckReport, progress: Progress | None) -> None:
    report.format_version = int(f.attrs[_layout.ATTR_FORMAT])
    tally = Tally(progress, _layout.total_log_rows(f) if progress else 0)
    for names, group in _layout.walk_datasets(f):
        _check_dataset(report, f[_layout.BLOBS], "/".join(names), group, tally)


def _check_dataset(
    report: CheckReport, blobs: h5py.Dataset, label: str, group: h5py.Group, tally: Tally
) -> None:
    try:
        log = DatasetLog(group, writable=False, use_seal=False)  # every record's own CRC
        seal_problem = _seal.audit(group)
    except (KeyError, OSError, ValueError) as exc:
        report.problems.append(f"dataset {label!r}: unreadable record log ({exc})")
        tally.add_rest(_layout.log_rows(group), 0)
        return
    if seal_problem:
        report.problems.append(f"dataset {label!r}: {seal_problem}")
    report.datasets += 1
    report.datapoints += len(log.names)
    if log.torn_rows:
        lost = salvage_log(group)
        report.problems.append(
            f"dataset {label!r}: {lost.damaged} torn or damaged record(s), "
            f"{log.torn_rows} unread from the first on ('hards-h5 recover' keeps every "
            f"intact one: {len(lost.names)} datapoints)"
        )
    for node in range(len(log.names) + 1):
        where = label if node == 0 else f"{label}/{log.names[node - 1]}"
        try:
            log.data(node)
        except (ValueError, HARDSError) as exc:
            report.problems.append(f"{where}: data is not a valid JSON object ({exc})")
        for name, ref in log.files(node).items():
            report.files += 1
            report.file_bytes += ref.size
            problem = _verify_blob(blobs, ref)
            if problem:
                report.problems.append(f"{where}: file {name!r}: {problem}")
        if node:
            tally.add()
    tally.add_rest(_layout.log_rows(group), len(log.names))


def _verify_blob(blobs: h5py.Dataset, ref: FileRef) -> str | None:
    with Path(os.devnull).open("wb") as sink:
        try:
            _blobs.read_blob_into(blobs, ref, sink.fileno())
        except FileIntegrityError as exc:
            return str(exc)
        except OSError as exc:
            return f"unreadable ({exc})"
    return None
