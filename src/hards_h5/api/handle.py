"""Handle: one H5Database's access to the store, shared by all of its nodes."""

from __future__ import annotations

from pathlib import Path

from hards_h5.errors import DatabaseClosedError, LiveModeError, ReadOnlyError
from hards_h5.store.cache import ExtractionCache
from hards_h5.store.log import DatasetLog, FileRef
from hards_h5.store.store import Store

__all__ = ["Handle"]


class Handle:
    """One :class:`H5Database`'s access to its :class:`~hards_h5.store.store.Store`.

    The store is shared by every database object of the file in this process;
    the handle adds what is each object's own: the path it was opened by (named
    in messages), its mode, whether it was opened as a SWMR reader, its
    extraction cache and whether it is closed.  Every node of the database
    reaches the store through it.

    Attributes
    ----------
    store : Store
        The open file.
    path : Path
        The path the database was opened by.
    mode : str
        ``"r"`` or ``"r+"``.
    swmr_reader : bool
        Whether it was opened with ``swmr=True``.
    cache : ExtractionCache
        Where attached files are extracted.
    closed : bool
        Whether the database was closed.

    """

    __slots__ = ("cache", "closed", "mode", "path", "store", "swmr_reader")

    cache: ExtractionCache  # (set once the file is open)

    def __init__(self, store: Store, path: Path, mode: str, *, swmr_reader: bool) -> None:
        self.store = store
        self.path = path
        self.mode = mode
        self.swmr_reader = swmr_reader
        self.closed = False

    def live(self) -> Store:
        """Return the store, checking that this handle is open and the file not lost.

        Raises
        ------
        DatabaseClosedError
            If the database is closed (or its file lost).

        """
        if self.closed:
            msg = f"{self.path}: the database is closed"
            raise DatabaseClosedError(msg)
        self.store.file()
        return self.store

    def log(self, names: tuple[str, ...]) -> DatasetLog:
        """Return the record log of the dataset at ``names``."""
        if self.closed:
            msg = f"{self.path}: the database is closed"
            raise DatabaseClosedError(msg)
        return self.store.log(names, label=self.path)

    def children(self, names: tuple[str, ...]) -> list[str]:
        """Return the child dataset names of ``names``."""
        return self.live().children(names, label=self.path)

    def has_child(self, names: tuple[str, ...], name: str) -> bool:
        """Return whether the dataset at ``names`` has a child dataset ``name``."""
        return self.live().has_child(names, name, label=self.path)

    def new_dataset(self, names: tuple[str, ...], name: str) -> bool:
        """Create the child dataset ``name`` of ``names``; False if it exists."""
        return self.live().new_dataset(names, name, label=self.path)

    def write_file(self, fd: int) -> FileRef:
        """Store the bytes read from ``fd``; return their reference."""
        return self.live().write_file(fd)

    def read_file(self, ref: FileRef, fd: int) -> None:
        """Write the stored bytes of ``ref`` to ``fd`` (a SWMR reader waits for the writer)."""
        self.live().read_file(ref, fd, wait_for_writer=self.swmr_reader)

    def check_writable(self) -> None:
        """Raise ReadOnlyError if the database was opened read-only."""
        self.live()
        if self.mode == "r":
            msg = f"{self.path}: opened read-only (mode='r'); open with mode='r+' to write"
            raise ReadOnlyError(msg)

    def check_structural(self, action: str) -> None:
        """Refuse structural changes in modes that forbid them (SWMR live mode)."""
        if self.store.live:
            msg = (
                f"{self.path}: cannot {action} in SWMR live mode: HDF5 lets a SWMR "
                "writer only append to existing objects. Create every dataset before "
                "start_swmr() (datapoints, data and files can still be added)"
            )
            raise LiveModeError(msg)
