"""The HARDS contract, run against the seed's directory tree and against hards-h5.

The seed's known bugs run as strict expected failures, so this file documents
exactly where hards-h5 deliberately differs from ``hards.filesystem``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from hards.api import AbstractDatabase
from hards.filesystem import FilesystemDatabase

from hards_h5 import H5Database
from hards_h5.testing import HardsConformance

SEED_BUGS = {
    **{
        f"test_valid_names_round_trip[{name}]": "seed lists directories by Path.stem: "
        "'run.v2' comes back as 'run'"
        for name in ("run.v2", "A-1_b.c", "..a")
    },
    "test_creation_order": "seed lists children and datapoints in directory (glob) order",
    "test_objects_see_the_file_as_it_is_now": "seed caches child lists per object; other objects go stale",
    "test_data_is_a_fresh_dict": "seed returns its internal dict; mutating it changes the object",
    "test_add_data_is_atomic": "seed truncates data.json before json.dump fails: the old data is lost",
    "test_numpy_values_accepted": "seed's json.dump rejects numpy scalars and arrays",
    "test_taken_file_name_is_checked": "seed checks only an explicitly given file name",
    "test_overwritten_file_gives_new_content": "seed lists an overwritten file name twice",
    "test_directory_is_not_a_file": "seed tests `file.is_file` without calling it, then copy fails",
    "test_fifo_is_not_a_file": "seed tests `file.is_file` without calling it and blocks/copies a FIFO",
    **{
        f"test_invalid_names_rejected[{name}]": "seed accepts '', '.' and '..' as names"
        for name in ("", ".", "..")
    },
}


class TestSeedFilesystem(HardsConformance):
    known_failures: ClassVar[dict[str, str]] = SEED_BUGS

    def create(self, path: Path) -> AbstractDatabase:
        return FilesystemDatabase.create_database(path)

    def reopen(self, db: AbstractDatabase, path: Path) -> AbstractDatabase:
        return FilesystemDatabase(path)


class TestH5Database(HardsConformance):
    def create(self, path: Path) -> AbstractDatabase:
        return H5Database.create_database(path.with_suffix(".h5"))

    def reopen(self, db: AbstractDatabase, path: Path) -> AbstractDatabase:
        assert isinstance(db, H5Database)
        db.close()
        return H5Database(path.with_suffix(".h5"))
