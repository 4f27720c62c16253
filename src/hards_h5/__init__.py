"""hards-h5: the HARDS campaign-data API on one HDF5 file.

>>> from hards_h5 import H5Database
>>> db = H5Database.create_database("campaign.h5")  # doctest: +SKIP
"""

from __future__ import annotations

from hards_h5._version import __version__
from hards_h5.api.nodes import H5Database, H5Datapoint, H5Dataset
from hards_h5.api.query import InvalidFilterError
from hards_h5.errors import (
    AlreadyExistsError,
    AutoRecoveryWarning,
    CacheError,
    CorruptFileError,
    DatabaseClosedError,
    DatabaseExistsError,
    DatabaseLockedError,
    DoesNotExistError,
    FileIntegrityError,
    FormatVersionError,
    HARDSError,
    InvalidDataError,
    InvalidNameError,
    LiveModeError,
    MergeConflictError,
    MergeSourceError,
    MissingDependencyError,
    NameValidationError,
    NodeNotFoundError,
    NotAHardsFileError,
    ReadOnlyError,
    RecoveryNeededError,
    SourceFileError,
    StorageFullError,
    StoreFileNotFoundError,
    TruncatedFileError,
)
from hards_h5.tools.maintenance import CheckReport, RewriteReport, check, compact, recover
from hards_h5.tools.merge import MergeReport, merge
from hards_h5.tools.migrate import MigrationReport, export_seed, import_seed

__all__ = [
    "AlreadyExistsError",
    "AutoRecoveryWarning",
    "CacheError",
    "CheckReport",
    "CorruptFileError",
    "DatabaseClosedError",
    "DatabaseExistsError",
    "DatabaseLockedError",
    "DoesNotExistError",
    "FileIntegrityError",
    "FormatVersionError",
    "H5Database",
    "H5Datapoint",
    "H5Dataset",
    "HARDSError",
    "InvalidDataError",
    "InvalidFilterError",
    "InvalidNameError",
    "LiveModeError",
    "MergeConflictError",
    "MergeReport",
    "MergeSourceError",
    "MigrationReport",
    "MissingDependencyError",
    "NameValidationError",
    "NodeNotFoundError",
    "NotAHardsFileError",
    "ReadOnlyError",
    "RecoveryNeededError",
    "RewriteReport",
    "SourceFileError",
    "StorageFullError",
    "StoreFileNotFoundError",
    "TruncatedFileError",
    "__version__",
    "check",
    "compact",
    "export_seed",
    "import_seed",
    "merge",
    "recover",
]
