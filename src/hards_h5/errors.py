"""Errors raised by hards-h5.

Every error is a :class:`hards.api.HARDSError`, so code written against the HARDS
API catches them unchanged.  Where a built-in exception describes the same problem
the error inherits it too (as zarr does), so ``except FileNotFoundError`` or
``except ValueError`` also work.
"""

from __future__ import annotations

from hards.api import AlreadyExistsError, DoesNotExistError, HARDSError, InvalidNameError

__all__ = [
    "AlreadyExistsError",
    "AutoRecoveryWarning",
    "CacheError",
    "CorruptFileError",
    "DatabaseClosedError",
    "DatabaseExistsError",
    "DatabaseLockedError",
    "DoesNotExistError",
    "FileIntegrityError",
    "FormatVersionError",
    "HARDSError",
    "InvalidDataError",
    "InvalidFilterError",
    "InvalidNameError",
    "LiveModeError",
    "MergeConflictError",
    "MergeSourceError",
    "MissingDependencyError",
    "NameValidationError",
    "NodeNotFoundError",
    "NotAHardsFileError",
    "OpenInThisProcessError",
    "ReadOnlyError",
    "RecoveryNeededError",
    "SourceFileError",
    "StorageFullError",
    "StoreFileNotFoundError",
    "TruncatedFileError",
]


class NameValidationError(InvalidNameError, ValueError):
    """A dataset, datapoint or file name breaks the naming rule.

    Names are non-empty, use only ``[A-Za-z0-9._-]`` and are not ``.`` or ``..``.
    """


class NodeNotFoundError(DoesNotExistError, LookupError):
    """A dataset, datapoint or attached file that was asked for does not exist."""


class SourceFileError(DoesNotExistError, FileNotFoundError):
    """A path given to ``add_file`` is missing, not a regular file, or the campaign file."""


class StoreFileNotFoundError(DoesNotExistError, FileNotFoundError):
    """The campaign file to open does not exist."""


class DatabaseExistsError(AlreadyExistsError, FileExistsError):
    """``create_database`` was given a path that already exists (it is not touched)."""


class InvalidDataError(HARDSError, ValueError):
    """Data given to ``add_data`` cannot be stored (nothing was written)."""


class InvalidFilterError(HARDSError, ValueError):
    """A filter is malformed, or compares with a type no datapoint holds.

    Malformed: an unknown operator, a wrong operand type, bad JSON.  A type
    mismatch: ``{"x": {"$gt": "a"}}`` where every ``x`` searched is a number.
    """


class CorruptFileError(HARDSError, OSError):
    """The campaign file is truncated, damaged or otherwise unreadable."""


class TruncatedFileError(CorruptFileError):
    """The campaign file is shorter than its own records say (cut short, or still growing)."""


class NotAHardsFileError(CorruptFileError):
    """The path is not an HDF5 file, or is an HDF5 file not written by hards-h5."""


class FormatVersionError(CorruptFileError):
    """The file was written in a newer hards-h5 format than this version reads."""


class RecoveryNeededError(CorruptFileError):
    """The file needs ``hards-h5 recover PATH``, and opening it could not do that itself.

    A file whose writer died is recovered by the next open; this error remains for
    damage that needs the full rewrite when the opener may not do it (no write
    permission, or a read-only opener of a file HDF5 cannot read).
    """


class AutoRecoveryWarning(UserWarning):
    """Opening a file recovered it automatically from a writer that stopped without closing.

    Issued once per recovery (the next open finds a clean file), naming the file
    and what was done; nothing flushed was lost.  Not an error: silence it with
    ``warnings.filterwarnings("ignore", category=AutoRecoveryWarning)``.
    """


class FileIntegrityError(CorruptFileError):
    """An attached file's bytes do not match the SHA-256 recorded for them."""


class ReadOnlyError(HARDSError, PermissionError):
    """A write was attempted on a database opened read-only."""


class DatabaseClosedError(HARDSError, ValueError):
    """The database (or an object taken from it) was used after ``close()``."""


class DatabaseLockedError(HARDSError, BlockingIOError):
    """Another process holds the campaign file in a conflicting mode."""


class OpenInThisProcessError(DatabaseLockedError):
    """The file is open in another mode in this very process (HDF5 allows one).

    A :class:`DatabaseLockedError` that waiting for other processes cannot end.
    """


class StorageFullError(HARDSError, OSError):
    """The disk (or quota) is full; nothing flushed is lost.

    The disk holding the campaign file, or the one holding the extraction cache
    (``get_file``: the message names the cache; nothing is left half-written there).
    """


class CacheError(HARDSError, OSError):
    """The extraction cache cannot be used: not a directory, not writable, read-only.

    ``get_file`` extracts into ``$HARDS_H5_CACHE`` (or ``cache_dir``); point it at
    a writable directory.
    """


class LiveModeError(HARDSError, RuntimeError):
    """The operation is not possible while the file is in SWMR live mode."""


class MergeConflictError(HARDSError, ValueError):
    """Merge sources disagree about a value; nothing was written.

    Parameters
    ----------
    output : str
        The campaign file being merged into.
    conflicts : list[str]
        One line per conflict, naming the node, the key or file and the sources.

    Attributes
    ----------
    conflicts : list[str]
        One line per conflict.

    """

    _SHOWN = 20

    def __init__(self, output: str, conflicts: list[str]) -> None:
        self.conflicts = conflicts
        shown = "\n  ".join(conflicts[: self._SHOWN])
        hidden = len(conflicts) - self._SHOWN
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        super().__init__(
            f"{output}: {len(conflicts)} merge conflict(s), nothing written:\n  {shown}{more}"
        )


class MergeSourceError(HARDSError, ValueError):
    """A merge input cannot be used (for example, it is the output file itself)."""


class MissingDependencyError(HARDSError, ImportError):
    """An optional dependency (pandas, mpi4py or an MPI library) is not installed.

    The message says what to install.
    """
