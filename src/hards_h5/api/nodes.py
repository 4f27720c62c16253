"""H5Database, H5Dataset and H5Datapoint: the HARDS objects, on the store."""

from __future__ import annotations

import contextlib
import gc
import os
import weakref
from collections.abc import Iterator, Mapping
from itertools import count, repeat
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union

from hards.api import AbstractDatabase, AbstractDatapoint, AbstractDataset

from hards_h5.api import frame as _frame
from hards_h5.api import query as _query
from hards_h5.api import vquery as _vquery
from hards_h5.api.handle import Handle
from hards_h5.api.names import check_file_name, check_name, is_valid_name
from hards_h5.errors import (
    AlreadyExistsError,
    DatabaseExistsError,
    NameValidationError,
    NodeNotFoundError,
    SourceFileError,
)
from hards_h5.store import blobs as _blobs
from hards_h5.store import codec as _codec
from hards_h5.store import index as _index
from hards_h5.store import layout as _layout
from hards_h5.store import scratch as _scratch
from hards_h5.store import store as _store
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.cache import ExtractionCache, default_cache_root
from hards_h5.store.layout import DATASET_NODE
from hards_h5.store.log import DatasetLog
from hards_h5.store.store import Store

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["H5Database", "H5Datapoint", "H5Dataset", "iter_datasets"]

Mode = Literal["r", "r+", "a"]
_MODES: dict[str, str] = {"r": "r", "r+": "r+", "a": "r+"}

Parent = Union["H5Database", "H5Dataset"]


class _Children:
    """Child-dataset access shared by the database and datasets."""

    _handle: Handle
    _names: tuple[str, ...]

    def _as_parent(self) -> Parent:
        """Return this node as the parent of its child datasets."""
        raise NotImplementedError

    @property
    def children(self) -> list[str]:
        """Names of the child datasets, in creation order.

        Returns
        -------
        list[str]
            A new list; read from the file on every call.

        """
        return self._handle.children(self._names)

    def has_dataset(self, name: str) -> bool:
        """Return whether a child dataset called ``name`` exists.

        Parameters
        ----------
        name : str
            The dataset name.

        Returns
        -------
        bool
            True if it exists.

        """
        if not is_valid_name(name):
            return False
        return self._handle.has_child(self._names, name)

    def get_dataset(self, name: str) -> H5Dataset:
        """Return the child dataset called ``name``.

        Parameters
        ----------
        name : str
            The dataset name.

        Returns
        -------
        H5Dataset
            The dataset.

        Raises
        ------
        NodeNotFoundError
            If there is no such child dataset.

        """
        if not self.has_dataset(name):
            where = "/".join(self._names) or "the database"
            msg = f"{self._handle.path}: {where} has no dataset {name!r}"
            raise NodeNotFoundError(msg)
        parent = self._as_parent()
        return H5Dataset(parent.database(), self._handle, (*self._names, name), parent)

    def recursively_get_dataset(self, name: str) -> H5Dataset:
        """Follow ``a/b/c`` down the tree of datasets and return the last one.

        Parameters
        ----------
        name : str
            Dataset names joined by ``/`` (leading and trailing ``/`` ignored).

        Returns
        -------
        H5Dataset
            The dataset.

        Raises
        ------
        NodeNotFoundError
            If any dataset on the way does not exist.

        """
        return self._follow(self._path_parts(name, "dataset"))

    def recursively_get_datapoint(self, name: str) -> H5Datapoint:
        """Follow ``a/b/point`` down the tree and return the datapoint.

        Parameters
        ----------
        name : str
            Dataset names and the datapoint name joined by ``/``.

        Returns
        -------
        H5Datapoint
            The datapoint.

        Raises
        ------
        NodeNotFoundError
            If a dataset on the way or the datapoint does not exist.

        """
        *path, point = self._path_parts(name, "datapoint")
        if not path:
            msg = (
                f"{self._handle.path}: datapoint path {name!r} names no dataset; "
                "give 'dataset/.../datapoint'"
            )
            raise NodeNotFoundError(msg)
        return self._follow(path).get_datapoint(point)

    def _follow(self, parts: list[str]) -> H5Dataset:
        """Return the dataset reached by the (non-empty) names ``parts``."""
        node: _Children = self
        for part in parts:
            node = node.get_dataset(part)
        assert isinstance(node, H5Dataset)  # noqa: S101 - at least one part
        return node

    def _path_parts(self, name: object, what: str) -> list[str]:
        """Split ``a/b/c`` into names; empty parts (``a//b``, ``/a/``) are ignored."""
        if not isinstance(name, str):
            msg = f"a {what} path is a str such as 'a/b', not {type(name).__name__}"
            raise NameValidationError(msg)
        parts = [part for part in name.split("/") if part]
        if not parts:
            msg = f"{self._handle.path}: empty {what} path {name!r}"
            raise NodeNotFoundError(msg)
        return parts

    def create_dataset(self, name: str) -> H5Dataset:
        """Create a child dataset called ``name`` and return it.

        Parameters
        ----------
        name : str
            The new dataset's name: ``[A-Za-z0-9._-]``, not ``.`` or ``..``.

        Returns
        -------
        H5Dataset
            The new, empty dataset.

        Raises
        ------
        NameValidationError
            If the name breaks the naming rule.
        AlreadyExistsError
            If a child dataset with that name exists.
        ReadOnlyError
            If the database was opened read-only.

        """
        check_name(name, "dataset")
        self._handle.check_writable()
        self._handle.check_structural("create a dataset")
        if not self._handle.new_dataset(self._names, name):
            where = "/".join(self._names) or "the database"
            msg = f"{self._handle.path}: {where} already has a dataset {name!r}"
            raise AlreadyExistsError(msg)
        parent = self._as_parent()
        return H5Dataset(parent.database(), self._handle, (*self._names, name), parent)


class _DataAndFiles:
    """Data and attached files of a node (node 0 of a log = the dataset itself)."""

    _db: H5Database
    _handle: Handle

    def _where(self) -> tuple[DatasetLog, int]:
        raise NotImplementedError

    def _label(self) -> str:
        raise NotImplementedError

    def database(self) -> H5Database:
        """Return the database this node belongs to.

        Returns
        -------
        H5Database
            The open campaign file holding this dataset or datapoint.

        """
        return self._db

    @property
    def data(self) -> dict[str, Any]:
        """The node's JSON data, as a new dict on every access.

        Returns
        -------
        dict[str, Any]
            A fresh copy: mutating it changes nothing stored.

        """
        log, node = self._where()
        return log.data(node)

    def add_data(self, new_data: dict[str, Any]) -> None:
        """Merge ``new_data`` into the node's data (top-level keys replace old ones).

        The whole of ``new_data`` is validated before anything is written: a value
        that cannot be stored raises and leaves the stored data unchanged.

        Parameters
        ----------
        new_data : dict[str, Any]
            String keys; values are JSON types, numpy scalars or numpy arrays.

        Raises
        ------
        InvalidDataError
            If ``new_data`` cannot be stored as strict JSON.
        ReadOnlyError
            If the database was opened read-only.

        """
        converted = _codec.encode_data(new_data)
        self._handle.check_writable()
        log, node = self._where()
        if converted:
            log.set_data(node, _codec.merge(log.data(node), converted))

    @property
    def files(self) -> list[str]:
        """Names of the attached files, in the order they were first added.

        Returns
        -------
        list[str]
            A new list.

        """
        log, node = self._where()
        return list(log.files(node))

    def has_file(self, name: str) -> bool:
        """Return whether a file called ``name`` is attached.

        Parameters
        ----------
        name : str
            The file name, extension included.

        Returns
        -------
        bool
            True if attached.

        """
        log, node = self._where()
        return name in log.files(node)

    def get_file(self, name: str) -> Path:
        """Return a read-only path holding the attached file ``name``.

        The bytes are extracted (checked against their SHA-256) into the
        extraction cache on first access; later calls return the same path.

        Parameters
        ----------
        name : str
            The file name, extension included.

        Returns
        -------
        Path
            A read-only (0o444) file whose name is ``name``.

        Raises
        ------
        NodeNotFoundError
            If no such file is attached.
        FileIntegrityError
            If the stored bytes do not match their SHA-256 (a SWMR reader reads
            them again for up to 2 s first: a live writer may still be writing).

        """
        log, node = self._where()
        ref = log.files(node).get(name)
        if ref is None:
            msg = f"{self._handle.path}: {self._label()} has no file {name!r}"
            raise NodeNotFoundError(msg)
        handle = self._handle

        def extract(fd: int) -> None:
            handle.read_file(ref, fd)

        return handle.cache.get(ref.sha256, ref.size, name, extract)

    def add_file(self, file: Path | str, *, name: str | None = None) -> None:
        """Copy ``file`` into the database under ``name`` (default: its own name).

        The file is streamed in chunks (memory use does not grow with its size).
        Adding a name that exists replaces that file's content; the name keeps
        its place in :attr:`files`.

        Parameters
        ----------
        file : Path or str
            A regular file (symlinks to regular files are followed).
        name : str, optional
            The name to store it under, extension included.

        Raises
        ------
        SourceFileError
            If ``file`` does not exist or is not a regular file (a directory, FIFO...).
        NameValidationError
            If the name (given, or taken from ``file``) breaks the naming rule,
            or is longer than 255 characters (no filesystem could hand it out).
        ReadOnlyError
            If the database was opened read-only.

        """
        src = Path(file)
        self._handle.check_writable()
        log, node = self._where()
        fd = _blobs.open_source(src)  # a missing path or a directory fails first
        try:
            stored = check_file_name(src.name if name is None else name)
            if os.path.samestat(os.fstat(fd), self._handle.path.stat()):
                msg = (
                    f"cannot add file {src}: it is the campaign file itself "
                    "(copy it first to attach a snapshot)"
                )
                raise SourceFileError(msg)
            ref = self._handle.write_file(fd)
        finally:
            os.close(fd)
        log.set_file(node, stored, ref)


class H5Dataset(_Children, _DataAndFiles, AbstractDataset):
    """A dataset: an HDF5 group holding child datasets and a datapoint log.

    Obtain datasets from :class:`H5Database` (``create_dataset``, ``get_dataset``,
    ``recursively_get_dataset``), not by constructing them.
    """

    def __init__(
        self, db: H5Database, handle: Handle, names: tuple[str, ...], parent: Parent
    ) -> None:
        self._db = db
        self._handle = handle
        self._names = names
        self._parent = parent

    def __repr__(self) -> str:
        """Return a short description naming the node and its file."""
        return f"<H5Dataset {'/'.join(self._names)!r} in {self._handle.path}>"

    def __eq__(self, other: object) -> bool:
        """Return whether ``other`` is the same node of the same open database."""
        return isinstance(other, H5Dataset) and (other._db, other._names) == (self._db, self._names)

    def __hash__(self) -> int:
        """Hash consistently with ``__eq__``."""
        return hash((id(self._db), self._names))

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self._names[-1]

    @property
    def parent(self) -> Parent:
        """The parent dataset, or the database for a top-level dataset."""
        return self._parent

    def _where(self) -> tuple[DatasetLog, int]:
        return self._handle.log(self._names), DATASET_NODE

    def _as_parent(self) -> Parent:
        return self

    def _label(self) -> str:
        return f"dataset {'/'.join(self._names)!r}"

    @property
    def datapoints(self) -> list[str]:
        """Names of this dataset's own datapoints, in creation order.

        Returns
        -------
        list[str]
            A new list.

        """
        return list(self._handle.log(self._names).names)

    def has_datapoint(self, name: str) -> bool:
        """Return whether this dataset has a datapoint called ``name``.

        Parameters
        ----------
        name : str
            The datapoint name.

        Returns
        -------
        bool
            True if it exists.

        """
        return self._handle.log(self._names).node_of(name) is not None

    def get_datapoint(self, name: str) -> H5Datapoint:
        """Return this dataset's datapoint called ``name``.

        Parameters
        ----------
        name : str
            The datapoint name.

        Returns
        -------
        H5Datapoint
            The datapoint.

        Raises
        ------
        NodeNotFoundError
            If this dataset has no such datapoint (inherited ones are not searched).

        """
        node = self._handle.log(self._names).node_of(name)
        if node is None:
            msg = f"{self._handle.path}: {self._label()} has no datapoint {name!r}"
            raise NodeNotFoundError(msg)
        return H5Datapoint(self, self._handle, self._names, node, name)

    def create_datapoint(self, name: str) -> H5Datapoint:
        """Create a datapoint called ``name`` in this dataset and return it.

        Parameters
        ----------
        name : str
            The new datapoint's name: ``[A-Za-z0-9._-]``, not ``.`` or ``..``.

        Returns
        -------
        H5Datapoint
            The new datapoint, with empty data and no files.

        Raises
        ------
        NameValidationError
            If the name breaks the naming rule.
        AlreadyExistsError
            If this dataset already has a datapoint with that name.
        ReadOnlyError
            If the database was opened read-only.

        """
        check_name(name, "datapoint")
        self._handle.check_writable()
        log = self._handle.log(self._names)
        if log.node_of(name) is not None:
            msg = f"{self._handle.path}: {self._label()} already has a datapoint {name!r}"
            raise AlreadyExistsError(msg)
        return H5Datapoint(self, self._handle, self._names, log.create(name), name)

    def recursively_get_datapoints(
        self, *, reconstruct: bool = True, parents: bool = True
    ) -> list[AbstractDatapoint]:
        """Return this dataset's datapoints, then (``parents=True``) its ancestors'.

        Parameters
        ----------
        reconstruct : bool
            Accepted for API compatibility; every hards-h5 object already reads the
            file as it is now, so nothing needs rebuilding.
        parents : bool
            If False, return only this dataset's own datapoints.

        Returns
        -------
        list[AbstractDatapoint]
            Own datapoints first (creation order), then the parent's, and so on up
            to the top-level dataset.

        """
        del reconstruct
        out: list[AbstractDatapoint] = []
        dataset: H5Dataset = self
        while True:
            handle, path = dataset._handle, dataset._names
            names = handle.log(path).names
            with _no_gc():
                out.extend(
                    map(H5Datapoint, repeat(dataset), repeat(handle), repeat(path), count(1), names)
                )
            if not parents or not isinstance(dataset._parent, H5Dataset):
                return out
            dataset = dataset._parent

    def _lineage(self, *, parents: bool) -> list[tuple[H5Dataset, tuple[str, ...]]]:
        """Return this dataset, then (``parents``) its ancestors up to the top level.

        Each with its dataset names from the top of the file down.
        """
        dataset: H5Dataset = self
        names = self._names
        chain = [(dataset, names)]
        while parents and isinstance(dataset._parent, H5Dataset):
            dataset, names = dataset._parent, names[:-1]
            chain.append((dataset, names))
        return chain

    def find(self, spec: Mapping[str, Any], *, parents: bool = True) -> list[H5Datapoint]:
        """Return the datapoints whose data match the filter ``spec``.

        Parameters
        ----------
        spec : Mapping
            A filter dict: ``{"x": 0.5}``, ``{"x": {"$gt": 0.5}}``, dotted keys for
            nested data (``{"opt.lr": 0.1}``), ``$and``/``$or``/``$not``; operators
            ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $type``.  A list
            value matches when any element does (MongoDB's rule): ``{"tags": "a"}``
            matches ``["a", "b"]``; ``$gt`` and the like compare each element.
        parents : bool
            Also search inherited datapoints (as ``recursively_get_datapoints``).

        Returns
        -------
        list[H5Datapoint]
            Matches, in ``recursively_get_datapoints`` order.

        Raises
        ------
        InvalidFilterError
            If ``spec`` is malformed (checked before reading any datapoint), or
            if ``$gt``/``$gte``/``$lt``/``$lte`` met only values of another type
            than its operand (``{"x": {"$gt": "a"}}`` where every ``x`` is a
            number): the message names the key and both types.

        Examples
        --------
        >>> hits = dataset.find({"inside": True, "x": {"$lt": 0.1}})  # doctest: +SKIP

        """
        search = _vquery.Search(spec)
        matches, check_types = search.matches, search.check_types
        keys = _query.top_keys(spec)
        out: list[H5Datapoint] = []
        for dataset, names in self._lineage(parents=parents):
            indexed = _index.for_store(self._handle.live(), names, exact=True)
            rows = None if indexed is None else search.rows(indexed)
            if rows is not None:  # the filter evaluated column-wise on the index
                assert indexed is not None  # noqa: S101 - (rows found in it)
                with _no_gc():
                    out.extend(
                        map(
                            H5Datapoint,
                            repeat(dataset),
                            repeat(self._handle),
                            repeat(names),
                            (rows + 1).tolist(),
                            indexed.names_of(rows),
                        )
                    )
                continue
            if indexed is not None:  # the column index: no journal to replay and parse
                out.extend(
                    H5Datapoint(dataset, self._handle, names, node, name)
                    for node, (name, data) in enumerate(
                        zip(indexed.names.tolist(), indexed.rows(keys), strict=True), start=1
                    )
                    if matches(data)
                )
                continue
            log = self._handle.log(names)
            for node, name in enumerate(log.names, start=1):
                if matches(log.data(node)):
                    out.append(H5Datapoint(dataset, self._handle, names, node, name))
        check_types()
        return out

    def to_dataframe(
        self, *, parents: bool = True, origin: str = "dataset", files: bool | str = False
    ) -> Any:
        """Return the datapoints' data as a pandas DataFrame (needs ``[pandas]``).

        One row per datapoint (inherited ones too when ``parents``), indexed by
        datapoint name (names repeat when two datasets use the same one); an
        ``origin`` column (``dataset``) names the dataset each row comes from, then
        one column per data key, in first-seen order.  Nested dicts are flattened
        into dotted columns (``{"opt": {"lr": 0.1}}`` gives ``opt.lr``, the name
        ``find`` accepts).  Integer, boolean and string columns use pandas'
        nullable ``Int64``, ``boolean`` and ``string`` types, so a key some rows
        lack (or hold as null) is ``<NA>`` and the others keep their type; other
        numbers are ``float64`` (missing is NaN, as is a stored NaN); lists, mixed
        types and integers beyond 64 bits are ``object`` (missing is None).

        Parameters
        ----------
        parents : bool
            Include the datapoints inherited from ancestor datasets.
        origin : str
            Name of the column saying which dataset each row comes from.
        files : bool or str
            Add a last column (``files``, or the name given) holding each
            datapoint's list of file names, in creation order (``[]`` for none):
            ``df[df.files.map(lambda f: "log.txt" in f)]`` selects the rows that
            have ``log.txt``.

        Returns
        -------
        pandas.DataFrame
            The table.

        Raises
        ------
        MissingDependencyError
            If pandas is not installed.
        InvalidDataError
            If a data column is also named ``origin`` or ``files`` (pass another
            name), or two keys of one datapoint give the same dotted column.

        Examples
        --------
        >>> df = dataset.to_dataframe()  # doctest: +SKIP
        >>> df[df.dataset == "monte_carlo"].x.mean()  # doctest: +SKIP

        """
        lineage = self._lineage(parents=parents)
        if not files:  # the column indexes, when all are current: no journal to replay
            store = self._handle.live()
            indexes = [_index.for_store(store, names) for _, names in lineage]
            if all(index is not None for index in indexes):
                indexed = [
                    (d.fullname(), index)
                    for (d, _), index in zip(lineage, indexes, strict=True)
                    if index is not None
                ]
                table = _frame.indexed_frame(indexed, origin=origin)
                if table is not None:
                    return table
        sources = [(d.fullname(), self._handle.log(names)) for d, names in lineage]
        return _frame.frame(sources, origin=origin, files=files)


class H5Datapoint(_DataAndFiles, AbstractDatapoint):
    """A datapoint: a named record in its dataset's log, with data and files.

    Obtain datapoints from a :class:`H5Dataset`, not by constructing them.
    """

    __slots__ = ("_dataset", "_handle", "_name", "_names", "_node")

    def __init__(
        self, dataset: H5Dataset, handle: Handle, names: tuple[str, ...], node: int, name: str
    ) -> None:
        self._dataset = dataset
        self._handle = handle
        self._names = names  # the dataset's
        self._node = node
        self._name = name

    def __repr__(self) -> str:
        """Return a short description naming the node and its file."""
        return f"<H5Datapoint {self.fullname()!r} in {self._handle.path}>"

    def __eq__(self, other: object) -> bool:
        """Return whether ``other`` is the same node of the same open database."""
        return (
            isinstance(other, H5Datapoint)
            and other._dataset == self._dataset
            and other._node == self._node
        )

    def __hash__(self) -> int:
        """Hash consistently with ``__eq__``."""
        return hash((hash(self._dataset), self._node))

    @property
    def name(self) -> str:
        """The datapoint's name."""
        return self._name

    @property
    def parent(self) -> H5Dataset:
        """The dataset that holds this datapoint."""
        return self._dataset

    def database(self) -> H5Database:
        """Return the database this datapoint belongs to.

        Returns
        -------
        H5Database
            The open campaign file holding this datapoint.

        """
        return self._dataset.database()

    @property
    def data(self) -> dict[str, Any]:
        """The datapoint's JSON data, a fresh dict on every access (see ``H5Dataset.data``)."""
        # (_DataAndFiles.data without the _where tuple: the bulk read path)
        return self._handle.log(self._names).data(self._node)

    def _where(self) -> tuple[DatasetLog, int]:
        return self._handle.log(self._names), self._node

    def _label(self) -> str:
        return f"datapoint {self.fullname()!r}"


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
            _scratch.remove_stale(self._path)  # clean up after killed maintenance runs
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


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many objects are made at once.

    Each datapoint object is tracked by the collector, which runs a pass every few
    hundred new objects and, in a process with large libraries imported, spends
    about as long as making the objects does.  Pausing it only postpones collection
    (Mercurial's ``nogc`` does the same for the same reason).  A collector already
    paused is left paused; one paused by another thread during these milliseconds
    is running again afterwards (the interpreter has one switch, not a count).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def iter_datasets(node: H5Database | H5Dataset) -> Iterator[H5Dataset]:
    """Yield every dataset below ``node``, depth first, children in creation order."""
    for name in node.children:
        child = node.get_dataset(name)
        yield child
        yield from iter_datasets(child)
