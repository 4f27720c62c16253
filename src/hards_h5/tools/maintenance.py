"""check, compact and recover: the maintenance of one campaign file.

check reads every record and file through the store without changing anything;
compact and recover write the file's committed state into a new file with the
store's rewrite (:mod:`hards_h5.store.rewrite`) and swap it in atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from hards_h5.api.nodes import H5Database
from hards_h5.errors import HARDSError, RecoveryNeededError
from hards_h5.store import audit as _audit
from hards_h5.store import layout as _layout
from hards_h5.store import progress as _progress
from hards_h5.store.audit import CheckReport
from hards_h5.store.progress import Progress
from hards_h5.store.rewrite import (
    RewriteReport,
    exclusive,
    fold_in_place,
    left_open_problem,
    open_unlocked,
    preflight,
    remove_stale_scratch,
    rewrite_in_place,
    rewrite_target,
)
from hards_h5.store.superblock import clear_status_flags, status_flags

__all__ = ["CheckReport", "RewriteReport", "check", "compact", "recover"]


def compact(path: str | os.PathLike[str], *, progress: Progress | None = None) -> RewriteReport:
    """Rewrite ``path`` without dead space, atomically (temp file, fsync, rename).

    Dead space is superseded data records, replaced or orphaned file bytes and
    duplicated file contents.  The file must not be open in any other process.
    A file is never made bigger: if the rewrite is not smaller (the file is
    already compact), the original is kept and ``rewritten`` is False — unless
    its tree at rest is incomplete or disagrees with the journal, which the
    rewrite builds afresh (adding the tree's bytes if a live writer left it out).
    A file left open by a writer that stopped is first recovered as the next
    writer's open would (with an :class:`~hards_h5.errors.AutoRecoveryWarning`).

    Parameters
    ----------
    path : str or os.PathLike
        The campaign file.
    progress : callable, optional
        Called as ``progress(done, total)`` in record-log rows: each row counted
        twice, copied and then folded into the HDF5 tree (the total is corrected
        when the fold starts).

    Returns
    -------
    RewriteReport
        Counts, and the file's size before and after.

    Raises
    ------
    DatabaseLockedError
        If another process has the file open.
    RecoveryNeededError
        If a writer stopped with the file open and the automatic recovery that
        compact runs first (the one any writer's open runs) could not be done.
    CorruptFileError
        If the file has damaged records or files (run ``hards-h5 check``).

    """
    path = rewrite_target(path)
    preflight(path)
    if status_flags(path):
        # Left open by a writer that stopped (or one at work: the open says which):
        # recover it as any writer's open does (AutoRecoveryWarning says how).
        H5Database(path).close()
    with exclusive(path):
        remove_stale_scratch(path)  # only under the lock: not a running one's
        if status_flags(path):  # (a writer opened and stopped again meanwhile)
            raise RecoveryNeededError(left_open_problem(path, status_flags(path)))
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
        Called as ``progress(done, total)`` in record-log rows: each row counted
        twice, copied and then folded into the HDF5 tree (the total is corrected
        when the fold starts).

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
                _audit.audit(f, healthy, progress)
                audited = _layout.total_log_rows(f) if progress else 0
            if healthy.ok:
                # The tree at rest, if a live writer left it behind (its progress
                # follows the audit's).
                fold_in_place(path, _progress.after(progress, audited))
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
        _audit.audit(f, report, progress)
    return report
