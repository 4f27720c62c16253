"""Auditing a campaign file: every record, seal, JSON text and attached file checked.

The reading half of ``hards-h5 check`` (:func:`hards_h5.tools.maintenance.check`),
and of recover's test whether a cleanly closed file needs rewriting at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from hards_h5.errors import FileIntegrityError, HARDSError
from hards_h5.store import blobs as _blobs
from hards_h5.store import fold as _fold
from hards_h5.store import index as _index
from hards_h5.store import layout as _layout
from hards_h5.store import seal as _seal
from hards_h5.store.log import DatasetLog
from hards_h5.store.progress import Progress, Tally
from hards_h5.store.records import FileRef
from hards_h5.store.salvage import salvage_log

__all__ = ["CheckReport", "audit"]


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


def audit(f: h5py.File, report: CheckReport, progress: Progress | None) -> None:
    """Check the open campaign file ``f`` record by record into ``report``.

    Every record's CRC, the seals, each node's JSON data and each attached
    file's SHA-256; every problem becomes a line in ``report.problems``.
    """
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
    else:
        report.problems.extend(
            f"dataset {label!r}: tree differs from the journal: {problem}"
            for problem in _fold.tree_problems(group, log)
        )
        report.problems.extend(
            f"dataset {label!r}: column index differs from the journal: {problem}"
            for problem in _index.index_problems(group, log)
        )
    for node in range(len(log.names) + 1):
        where = label if node == _layout.DATASET_NODE else f"{label}/{log.names[node - 1]}"
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
        if node != _layout.DATASET_NODE:
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
