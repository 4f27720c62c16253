"""H5Database: a HARDS database on one campaign file, and its handle on the store."""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from hards.api import AbstractDatabase

from hards_h5.api.nodes import Parent, _Children
from hards_h5.errors import (
    DatabaseClosedError,
    DatabaseExistsError,
    LiveModeError,
    ReadOnlyError,
)
from hards_h5.store import layout as _layout
from hards_h5.store import store as _store
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.cache import ExtractionCache, default_cache_root
from hards_h5.store.log import DatasetLog, FileRef
from hards_h5.store.store import Store

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["H5Database", "Handle"]

Mode = Literal["r", "r+", "a"]
_MODES: dict[str, str] = {"r": "r", "r+": "r+", "a": "r+"}


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


class H5Database(_Children, AbstractDatabase):
    """A HARDS database stored in one HDF5 file.

    Parameters
    ----------
    location : str or os.PathLike
        An existing campaign file (use :meth:`create_database` for a new one).
    mode : {"r+", "r", "a"}
        ``"r+"`` (default) opens read-write, ``"r"`` read-only (any number of
        processes at once), ``"a"`` creates the file if missing, else opens it
        read-write.
    swmr : bool
        With ``mode="r"``: open as a SWMR reader of a file whose writer has called
        :meth:`start_swmr`; call :meth:`refresh` to see what it has flushed since.
    timeout : float, optional
        Seconds to wait for another process's conflicting access (a writer, or
        readers when opening for writing) to end before raising
        :class:`DatabaseLockedError`.  Default: fail at once.
    cache_dir : str or os.PathLike, optional
        Where attached files are extracted; default ``$HARDS_H5_CACHE`` or
        ``~/.cache/hards-h5``.

    Raises
    ------
    StoreFileNotFoundError
        If the file does not exist (modes ``"r"`` and ``"r+"``).
    NotAHardsFileError, FormatVersionError, CorruptFileError, RecoveryNeededError
        If the file is not a readable hards-h5 campaign file.
    DatabaseLockedError
        If another process holds the file in a conflicting mode (after
        ``timeout`` seconds, if given).

    Notes
    -----
    Opening a file this process already has open (a notebook cell re-run) gives
    another handle on the same open file and record logs: each handle sees every
    change made through the others at once, and nothing either writes is lost.
    ``mode``, ``swmr`` and ``cache_dir`` are per handle; a writer opened beside
    read-only handles switches the file to read-write under them.  The file is
    closed with its last handle (see ``docs/concurrency.md``).

    Examples
    --------
    >>> with H5Database.create_database("campaign.h5") as db:  # doctest: +SKIP
    ...     mc = db.create_dataset("monte_carlo")
    ...     mc.create_datapoint("0").add_data({"x": 0.3, "y": 0.8})

    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        mode: Mode = "r+",
        *,
        swmr: bool = False,
        timeout: float | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if mode not in _MODES:
            msg = f"mode must be 'r', 'r+' or 'a', not {mode!r} (hards-h5 never truncates a file)"
            raise ValueError(msg)
        if swmr and mode != "r":
            msg = "swmr=True is for readers (mode='r'); a writer calls start_swmr() instead"
            raise ValueError(msg)
        self._path = Path(location)
        self._names = ()
        self._mode: str = _MODES[mode]
        if mode == "a" and not os.path.lexists(self._path):
            with contextlib.suppress(DatabaseExistsError):  # another process was first
                _layout.create_file(self._path)
        # Every H5Database of one file in this process is a handle on one Store
        # (the open file and record logs, see hards_h5.store.store): a notebook
        # cell re-run opens the same file again, and both objects see, and keep,
        # each other's changes.
        store = _store.attach(self._path, self._mode, swmr=swmr, timeout=timeout)
        self._handle = Handle(store, self._path, self._mode, swmr_reader=swmr)
        if self._mode != "r":  # say who writes the file, for other processes' messages
            _writer_info.announce(store.path)
        # Code written for the seed never calls close(): pending records are written
        # and the file closed when the last handle on it is collected or the
        # interpreter exits (weakref.finalize, not __del__); close() runs the same
        # finalizer.
        self._finalizer = weakref.finalize(self, _store.detach, store)
        self._handle.cache = ExtractionCache(Path(cache_dir) if cache_dir else default_cache_root())

    @classmethod
    def create_database(
        cls, location: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
    ) -> Self:
        """Create a new, empty campaign file and open it read-write.

        Parameters
        ----------
        location : str or os.PathLike
            Path of the new file; it must not exist (it is never overwritten).
        cache_dir : str or os.PathLike, optional
            As for :class:`H5Database`.

        Returns
        -------
        H5Database
            The open database.

        Raises
        ------
        DatabaseExistsError
            If ``location`` already exists.

        """
        _layout.create_file(Path(location))
        return cls(location, "r+", cache_dir=cache_dir)

    # ----------------------------------------------------------------- identity
    @property
    def name(self) -> str:
        """The file's name without its suffix (``campaign.h5`` -> ``campaign``)."""
        return self._path.stem

    @property
    def parent(self) -> None:
        """Always None, as the database is the root of the tree."""
        return None

    def database(self) -> H5Database:
        """Return this database (the root of the tree)."""
        return self

    @property
    def path(self) -> Path:
        """The campaign file's path."""
        return self._path

    @property
    def mode(self) -> str:
        """``"r"`` or ``"r+"``."""
        return self._mode

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._handle.closed

    @property
    def store(self) -> Store:
        """The storage engine beneath this database, for hards-h5's own tools.

        Not part of the HARDS API: :mod:`hards_h5.tools` and the command line
        reach the file's record logs and blobs through it.

        Raises
        ------
        DatabaseClosedError
            If the database is closed.

        """
        return self._handle.live()

    def __repr__(self) -> str:
        """Return a short description naming the node and its file."""
        state = "closed" if self._handle.closed else f"mode={self._mode!r}"
        return f"<H5Database {str(self._path)!r} {state}>"

    # ----------------------------------------------------------------- SWMR
    @property
    def swmr_mode(self) -> bool:
        """True for a writer after :meth:`start_swmr` and for a ``swmr=True`` reader."""
        return self._handle.store.live or self._handle.swmr_reader

    def start_swmr(self) -> None:
        """Switch this writer to SWMR live mode: readers may now watch the file.

        Everything pending is written first.  Afterwards datapoints, data and
        files can still be added to existing datasets; creating a dataset raises
        :class:`LiveModeError`.  Readers open the file with
        ``H5Database(path, mode="r", swmr=True)`` and see what this writer has
        :meth:`flush`-ed after they call :meth:`refresh`.  Closing the writer ends
        live mode; the file is then an ordinary campaign file.

        Raises
        ------
        ReadOnlyError
            On a database opened with ``mode="r"``.

        """
        self._handle.check_writable()
        self._handle.live().start_swmr()

    def refresh(self) -> None:
        """Make this reader see what the SWMR writer has flushed since the last call.

        Without SWMR (a closed file has no writer) there is nothing new to see and
        this does nothing.  Objects taken from the database before the call see the
        new datapoints, data and files too.  A reader beside a writer in the same
        process shares the writer's file and sees its changes without refreshing.
        """
        self._handle.live().refresh()

    # ---------------------------------------------------------------- lifecycle
    def flush(self) -> None:
        """Write everything pending to the file and fsync it (a durability barrier).

        When ``flush`` returns, every datapoint, data change and file added before
        it is on stable storage.
        """
        store = self._handle.live()
        if self._mode == "r":
            return
        store.write_through(closing=False)

    def close(self) -> None:
        """Flush (see :meth:`flush`) and close the file; safe to call twice.

        Other :class:`H5Database` objects this process has open on the same file
        keep it open (and keep working); the file is closed with the last of them.
        """
        if self._handle.closed:
            return
        try:
            if self._handle.store.handles > 1:  # (the last handle's finalizer writes all)
                self.flush()
        finally:
            self._handle.closed = True  # a closed handle finds no log: it says it is closed
            self._finalizer()

    def __enter__(self) -> Self:
        """Return this database, closed again when the ``with`` block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the database (see :meth:`close`)."""
        self.close()

    # ----------------------------------------------------------------- internals
    def _as_parent(self) -> Parent:
        return self
