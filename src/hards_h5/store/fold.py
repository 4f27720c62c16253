"""The fold: bring the HDF5 tree at rest up to date from the record logs.

The record logs are the journal *in flight*: fast appends, SWMR live readers,
crash recovery.  At rest, the file also holds the design card's tree, which any
HDF5 tool reads without hards-h5 (see ``docs/format.md``)::

    <dataset group>/                     attrs: data = the dataset's JSON text,
                                                folded_records = rows folded so far
        datapoints/                      group, creation order tracked
            <name>/                      attrs: data = the datapoint's JSON text
                files/<file name>        uint8 dataset (the file's bytes)
        files/<file name>                the dataset's own files, likewise

The journal is authoritative; the tree is derived from it.  :func:`fold_file`
folds only the records after each log's ``folded_records`` mark, and writes the
marks only after the groups and attributes they vouch for are flushed, so a fold
killed midway is simply done again (existing groups are reused, attributes are
written in place) by the next writer's close, ``compact`` or ``recover``.

A file's dataset is a same-file *virtual* dataset mapped onto its range of
``/blobs``, so folding never copies a file's bytes.  A JSON attribute is written
in place when it exists: HDF5 keeps a rewritten variable-length attribute's old
value as dead space when the attribute is deleted and created again (2,000
rewrites of a 2.5 KB text: 4.5 MB against 6 KB in place).
"""

from __future__ import annotations

import ctypes
import mimetypes
from collections.abc import Callable
from typing import Final, TypeVar

import h5py
import numpy as np
from h5py._objects import phil

from hards_h5._version import __version__
from hards_h5.store import index as _index
from hards_h5.store import layout as _layout
from hards_h5.store.log import DatasetLog
from hards_h5.store.progress import Tally
from hards_h5.store.records import FileRef

__all__ = [
    "ATTR_DATA",
    "ATTR_FOLDED",
    "DATAPOINTS",
    "FILES",
    "file_range",
    "fold_file",
    "fold_log",
    "folded_rows",
    "set_mark",
    "stamp_root",
    "tree_problems",
    "tree_sound",
]

DATAPOINTS: Final = "datapoints"
FILES: Final = "files"
ATTR_DATA: Final = "data"
ATTR_FOLDED: Final = "folded_records"
DOCUMENTATION: Final = "https://pypi.org/project/hards-h5/ (docs/format.md)"

_FOLD_STEP = 1024  # nodes folded between progress reports (and between takes of h5py's lock)
_NODE_BYTES = 512  # HDF5 metadata of one folded node (group, link, attribute), generously
_STR = h5py.string_dtype()
_STR_TYPE = h5py.h5t.py_create(_STR, logical=True)
_DATA = ATTR_DATA.encode()
_FILES = FILES.encode()
_ORDER = h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED


_SCALAR = h5py.h5s.create(h5py.h5s.SCALAR)
_HID = ctypes.c_int64  # hid_t (HDF5 >= 1.10)
_DEFAULT = 0  # H5P_DEFAULT
_T = TypeVar("_T")


class _NewPoint:
    """A new datapoint group with its ``data`` attribute, in five calls into libhdf5.

    The fold's hot path: h5py's low-level wrappers cost about as much as HDF5's own
    work for a group and a small attribute (a Python object, a weak-reference entry
    and a lock per call: ~42 us of CPU per datapoint against ~20 us this way; see
    ``benchmarks/README.md``).  The functions are h5py's own libhdf5 (looked up
    through an h5py extension module, so no second copy of HDF5 is loaded), called
    with the GIL held (``ctypes.PyDLL``) and under h5py's lock, like h5py's calls.
    The same group and attribute as :func:`_set_text` writes (variable-length
    UTF-8 text, scalar); any failure leaves the node to that slower path, which
    reuses what was created and raises h5py's error (a full disk among them).
    """

    def __init__(self) -> None:
        lib = ctypes.PyDLL(h5py.h5g.__file__)  # dlsym also searches its libhdf5
        self._gcreate = lib.H5Gcreate2
        self._gcreate.restype = _HID
        self._gcreate.argtypes = [_HID, ctypes.c_char_p, _HID, _HID, _HID]
        self._acreate = lib.H5Acreate2
        self._acreate.restype = _HID
        self._acreate.argtypes = [_HID, ctypes.c_char_p, _HID, _HID, _HID, _HID]
        self._awrite = lib.H5Awrite
        self._awrite.restype = ctypes.c_int
        self._awrite.argtypes = [_HID, _HID, ctypes.c_void_p]
        self._aclose = lib.H5Aclose
        self._aclose.restype = ctypes.c_int
        self._aclose.argtypes = [_HID]
        self._gclose = lib.H5Gclose
        self._gclose.restype = ctypes.c_int
        self._gclose.argtypes = [_HID]
        self._type = _STR_TYPE.id
        self._space = _SCALAR.id

    def __call__(self, parent: int, name: bytes, text: bytes) -> bool:
        """Create ``parent/name`` with ``text`` as its ``data``; False if anything failed.

        The caller holds h5py's lock.  A text with a NUL byte (not JSON) is left to
        the slower path (a C string would end there).
        """
        if not isinstance(text, bytes) or b"\0" in text:  # a C string: bytes up to a NUL
            return False
        gid = self._gcreate(parent, name, _DEFAULT, _DEFAULT, _DEFAULT)
        if gid < 0:
            return False
        aid = self._acreate(gid, _DATA, self._type, self._space, _DEFAULT, _DEFAULT)
        done = aid >= 0 and self._awrite(aid, self._type, ctypes.byref(ctypes.c_char_p(text))) >= 0
        if aid >= 0:
            done = self._aclose(aid) >= 0 and done
        return bool(self._gclose(gid) >= 0) and done


def _direct(api: Callable[[], _T]) -> _T | None:
    """Return ``api()``, or None if libhdf5's functions cannot be found (h5py's calls then)."""
    try:
        return api()
    except (OSError, AttributeError):
        return None


_new_point = _direct(_NewPoint)


def _c_function(
    lib: ctypes.PyDLL, name: str, restype: type, *argtypes: type
) -> ctypes._FuncPointer:
    function: ctypes._FuncPointer = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


class _PointText:
    """Read a datapoint's ``data`` text with direct libhdf5 calls (``check`` reads all).

    Like :class:`_NewPoint`, for the same reason (~60 us per node through h5py's
    wrappers).  Only the usual node is read this way: a group whose ``data``
    attribute has exactly the fold's type (variable-length UTF-8 text) and one
    element; anything else, or any failure, is left to the slower path.
    """

    def __init__(self) -> None:
        lib = ctypes.PyDLL(h5py.h5g.__file__)  # dlsym also searches its libhdf5
        hid, name, status = _HID, ctypes.c_char_p, ctypes.c_int
        self._gopen = _c_function(lib, "H5Gopen2", hid, hid, name, hid)
        self._lexists = _c_function(lib, "H5Lexists", status, hid, name, hid)
        self._aopen = _c_function(lib, "H5Aopen", hid, hid, name, hid)
        self._aget_type = _c_function(lib, "H5Aget_type", hid, hid)
        self._aget_space = _c_function(lib, "H5Aget_space", hid, hid)
        self._npoints = _c_function(lib, "H5Sget_simple_extent_npoints", ctypes.c_int64, hid)
        self._tequal = _c_function(lib, "H5Tequal", status, hid, hid)
        self._aread = _c_function(lib, "H5Aread", status, hid, hid, ctypes.c_void_p)
        self._reclaim = _c_function(lib, "H5Treclaim", status, hid, hid, hid, ctypes.c_void_p)
        self._tclose = _c_function(lib, "H5Tclose", status, hid)
        self._sclose = _c_function(lib, "H5Sclose", status, hid)
        self._aclose = _c_function(lib, "H5Aclose", status, hid)
        self._gclose = _c_function(lib, "H5Gclose", status, hid)
        self._type = _STR_TYPE.id
        self._space = _SCALAR.id

    def __call__(self, parent: int, name: bytes) -> tuple[bytes, bool] | None:
        """Return ``parent/name``'s text and whether it has a ``files`` link, or None.

        None: not the usual node (no such group, another attribute type, a
        failure): the caller looks the slower way.  The caller holds h5py's lock.
        """
        gid = self._gopen(parent, name, _DEFAULT)
        if gid < 0:
            return None
        try:
            files = self._lexists(gid, _FILES, _DEFAULT)
            aid = self._aopen(gid, _DATA, _DEFAULT) if files >= 0 else -1
            if aid < 0:
                return None
            try:
                text = self._read(aid)
            finally:
                self._aclose(aid)
        finally:
            self._gclose(gid)
        return None if text is None else (text, files > 0)

    def _read(self, aid: int) -> bytes | None:
        tid = self._aget_type(aid)
        if tid < 0:
            return None
        same = self._tequal(tid, self._type)
        self._tclose(tid)
        sid = self._aget_space(aid) if same > 0 else -1
        if sid < 0:
            return None
        one = self._npoints(sid) == 1
        self._sclose(sid)
        pointer = ctypes.c_char_p()
        if not one or self._aread(aid, self._type, ctypes.byref(pointer)) < 0:
            return None
        text = pointer.value or b""
        self._reclaim(self._type, self._space, _DEFAULT, ctypes.byref(pointer))
        return text


_point_text = _direct(_PointText)


_DATA_DIFFERS: Final = "the tree's 'data' attribute differs from the journal"


def _tree_text(log: DatasetLog, node: int) -> bytes:
    """Return the JSON text the tree holds for ``node`` (the journal's; ``{}`` if none)."""
    return log.data_json(node) or b"{}"


def _tracked_gcpl() -> h5py.h5p.PropGCID:
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(_ORDER)
    gcpl.set_attr_creation_order(_ORDER)
    return gcpl


def folded_rows(group: h5py.Group) -> int:
    """Return how many records of a dataset group's log the tree reflects."""
    return int(np.asarray(group.attrs.get(ATTR_FOLDED, 0)).item())


def _set_text(oid: h5py.h5o.ObjectID, text: str, *, new: bool = False) -> None:
    """Write the JSON text as the object's ``data`` attribute, in place if it exists.

    ``new``: the object was just created (it has no attribute yet).
    """
    if not new and h5py.h5a.exists(oid, _DATA):
        attr = h5py.h5a.open(oid, _DATA)
        if attr.get_type().get_class() != h5py.h5t.STRING or attr.shape != ():
            attr = None
            h5py.h5a.delete(oid, _DATA)
    else:
        attr = None
    if attr is None:
        attr = h5py.h5a.create(oid, _DATA, _STR_TYPE, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(text, dtype=_STR))


def file_range(dataset: h5py.Dataset) -> tuple[int, int] | None:
    """Return ``(offset, size)`` of ``/blobs`` a file's dataset maps, or None if none."""
    if not dataset.is_virtual:
        return None if dataset.shape != (0,) else (0, 0)
    sources = dataset.virtual_sources()
    if len(sources) != 1 or sources[0].dset_name != "/" + _layout.BLOBS:
        return None
    if sources[0].file_name != ".":
        return None
    lo, hi = sources[0].src_space.get_select_bounds()
    return int(lo[0]), int(hi[0]) - int(lo[0]) + 1


def _file_matches(dataset: h5py.Dataset, ref: FileRef) -> bool:
    want = (ref.offset, ref.size) if ref.size else (0, 0)
    return file_range(dataset) == want and dataset.attrs.get("sha256") == ref.sha256.hex()


def _write_file(files: h5py.Group, name: str, ref: FileRef, blobs_len: int) -> None:
    if ref.size:
        layout = h5py.VirtualLayout(shape=(ref.size,), dtype=np.uint8)
        source = h5py.VirtualSource(".", "/" + _layout.BLOBS, shape=(blobs_len,))
        layout[:] = source[ref.offset : ref.offset + ref.size]
        dataset = files.create_virtual_dataset(name, layout)
    else:
        dataset = files.create_dataset(name, shape=(0,), dtype=np.uint8)
    attrs = dataset.attrs
    attrs["file_name"] = name
    attrs["size"] = np.int64(ref.size)
    attrs["sha256"] = ref.sha256.hex()
    attrs["algorithm"] = "sha256"
    attrs["type"] = mimetypes.guess_type(name)[0] or "application/octet-stream"


def _fold_files(node: h5py.Group, refs: dict[str, FileRef], blobs_len: int) -> None:
    """Make ``node/files`` hold one dataset per file, in the files' order."""
    if not refs:
        return
    files = node.get(FILES)
    if files is None:
        files = h5py.Group(h5py.h5g.create(node.id, FILES.encode(), gcpl=_tracked_gcpl()))
    names = list(refs)
    present = list(files)
    # Keep the longest prefix that already matches; rebuild the rest in order (a
    # replaced file's dataset is re-pointed, and the list keeps the HARDS order).
    keep = 0
    while (
        keep < len(names)
        and keep < len(present)
        and present[keep] == names[keep]
        and _file_matches(files[names[keep]], refs[names[keep]])
    ):
        keep += 1
    for name in present[keep:]:
        del files[name]
    for name in names[keep:]:
        _write_file(files, name, refs[name], blobs_len)


def _point_group(
    points: h5py.h5g.GroupID, key: bytes, *, old: bool, text: bytes | None
) -> tuple[h5py.h5g.GroupID, bool] | None:
    """Open or create the group of datapoint ``key``; also return whether it is new.

    ``old``: the group may exist.  ``text``: the JSON text of a new datapoint without
    files, written with its new group the fast way (then None is returned).
    """
    if not old and text is not None and _new_point is not None:
        if _new_point(points.id, key, text):
            return None
        old = True  # the slower way, reusing what the fast one created
    if old and points.links.exists(key):
        return h5py.h5g.open(points, key), False
    return h5py.h5g.create(points, key), True


def fold_log(
    group: h5py.Group, log: DatasetLog, *, blobs_len: int, tally: Tally | None = None
) -> int | None:
    """Fold the records of ``log`` after ``group``'s mark into the tree.

    Returns the new mark to write (after a flush) with :func:`set_mark`, or None
    if the tree is already up to date.  ``blobs_len`` is the length of ``/blobs``.
    ``tally``: counts the records folded (see :func:`fold_file`), a slice of nodes
    at a time.
    """
    applied = log.applied
    done = folded_rows(group)
    if done == applied and DATAPOINTS in group:
        return None
    if done > applied:  # a mark from a longer log (cannot happen; start over)
        done = 0
    data_nodes, file_nodes = log.touched_masks(done)  # (numpy: no sets of a million ints)
    if done == 0:
        data_nodes[_layout.DATASET_NODE] = True
    points = group.get(DATAPOINTS)
    if points is None:
        points = h5py.Group(h5py.h5g.create(group.id, DATAPOINTS.encode(), gcpl=_tracked_gcpl()))
    pid = points.id
    existing = pid.get_num_objs()
    nodes = np.flatnonzero(data_nodes | file_nodes)
    rows, counted = applied - done, 0
    for lo in range(0, len(nodes), _FOLD_STEP):
        part = nodes[lo : lo + _FOLD_STEP]
        with phil:  # h5py's own lock, held for the calls of _NewPoint
            for node, has_data, has_files in zip(
                part.tolist(), data_nodes[part].tolist(), file_nodes[part].tolist(), strict=True
            ):
                _fold_node(
                    group,
                    pid,
                    log,
                    node,
                    (has_data, has_files),
                    existing=existing,
                    blobs_len=blobs_len,
                )
        if tally is not None:
            share = rows * (lo + len(part)) // len(nodes)
            tally.add(share - counted)
            counted = share
    if tally is not None:
        tally.add(rows - counted)
    return applied


def _fold_node(
    group: h5py.Group,
    pid: h5py.h5g.GroupID,
    log: DatasetLog,
    node: int,
    what: tuple[bool, bool],
    *,
    existing: int,
    blobs_len: int,
) -> None:
    """Fold ``node``'s data and/or files (``what``) into ``group`` (``pid``: its datapoints).

    ``existing``: how many datapoint groups there were before this fold.
    """
    has_data, has_files = what
    if node == _layout.DATASET_NODE:
        gid, new = group.id, False
    else:
        old = node <= existing  # beyond the groups present, a node's group is new
        text = None if old or has_files else _tree_text(log, node)
        name = log.names[node - 1].encode()
        made = _point_group(pid, name, old=old, text=text)
        if made is None:
            return
        gid, new = made
    if has_data:
        _set_text(gid, _tree_text(log, node).decode(), new=new)
    if has_files:
        _fold_files(h5py.Group(gid), log.files(node), blobs_len)


def set_mark(group: h5py.Group, rows: int) -> None:
    """Record that ``group``'s tree reflects its first ``rows`` records."""
    group.attrs[ATTR_FOLDED] = np.int64(rows)


def stamp_root(f: h5py.File) -> None:
    """Write the root attributes that say what the file is (format version 2)."""
    attrs = f.attrs
    if int(np.asarray(attrs.get(_layout.ATTR_FORMAT, 0)).item()) != _layout.FORMAT_VERSION:
        attrs[_layout.ATTR_FORMAT] = np.int64(_layout.FORMAT_VERSION)
    for key, value in (
        ("format", "hards-h5"),
        ("documentation", DOCUMENTATION),
        (_layout.ATTR_CREATOR, f"hards-h5 {__version__}"),
    ):
        if attrs.get(key) != value:
            attrs[key] = value
    if attrs.get("format_version") != _layout.FORMAT_VERSION:
        attrs["format_version"] = np.int64(_layout.FORMAT_VERSION)


def tree_sound(f: h5py.File) -> bool:
    """Whether every dataset's tree reflects its whole log and agrees with it.

    For ``compact``, which keeps an already compact file as it is only when its
    tree needs nothing (a live writer's close leaves it behind; a tree edited by
    hand differs from the journal): reads every node's ``data`` attribute.
    """
    for _, group in _layout.walk_datasets(f):
        rows = _layout.log_rows(group)
        if folded_rows(group) != rows or DATAPOINTS not in group:
            return False
        if not _index.current(group, rows):
            return False
        try:
            log = DatasetLog(group, writable=False)
        except (KeyError, OSError, RuntimeError, ValueError):
            return False
        if log.torn_rows or tree_problems(group, log) or _index.index_problems(group, log):
            return False
    return True


def _to_fold(
    f: h5py.File, logs: dict[tuple[str, ...], DatasetLog]
) -> tuple[list[tuple[h5py.Group, DatasetLog]], int, int]:
    """Return the datasets :func:`fold_file` folds, the bytes it may add, the records."""
    todo: list[tuple[h5py.Group, DatasetLog]] = []
    needed = to_fold = 0
    for names, group in _layout.walk_datasets(f):
        rows = _layout.log_rows(group)
        done = folded_rows(group)
        if done == rows and DATAPOINTS in group and _index.current(group, rows):
            continue
        log = logs.get(names)
        if log is None:
            try:
                log = DatasetLog(group, writable=True)
            except (KeyError, OSError, RuntimeError, ValueError):
                continue
        if log.torn_rows or log.has_pending:
            continue
        todo.append((group, log))
        new_rows = log.applied - (done if done <= log.applied else 0)  # (as fold_log counts)
        to_fold += new_rows
        heap = int(group[_layout.HEAP].shape[0])
        needed += heap * new_rows // max(log.applied, 1) + _NODE_BYTES * (new_rows + 1)
        needed += _index.space_needed(group, log)
    return todo, needed, to_fold


def fold_file(
    f: h5py.File,
    logs: dict[tuple[str, ...], DatasetLog] | None = None,
    *,
    tally: Tally | None = None,
) -> int:
    """Fold every dataset whose log has records beyond its mark; return how many.

    ``logs`` are logs already replayed (by dataset names), reused instead of
    replaying again.  A log that does not replay to its end (damage, for
    ``hards-h5 check`` and ``recover``) is left unfolded.  The marks are written
    after a flush of everything they vouch for.  ``tally``: the fold's progress,
    in records folded; its total is first set to what has been counted so far
    plus the records to fold (:meth:`Tally.expect`).

    Raises
    ------
    StorageFullError
        Before anything is written, if the disk has no room for the tree (its
        JSON texts are copies of the journal's): the tree then waits.

    """
    todo, needed, to_fold = _to_fold(f, logs or {})
    _layout.check_space(f.filename, needed)
    if tally is not None:
        tally.expect(to_fold)
    stamp_root(f)
    blobs_len = int(f[_layout.BLOBS].shape[0])
    marks: list[tuple[h5py.Group, int]] = []
    for group, log in todo:
        mark = fold_log(group, log, blobs_len=blobs_len, tally=tally)
        _index.update(group, log)  # the column index (store/index.py)
        if mark is not None:
            marks.append((group, mark))
    if marks:
        f.flush()
        for group, mark in marks:
            set_mark(group, mark)
    return len(marks)


def tree_problems(group: h5py.Group, log: DatasetLog) -> list[str]:
    """Return how ``group``'s tree differs from its (completely replayed) journal.

    Nodes changed by records after the ``folded_records`` mark are only "not yet
    folded" (the next writer's close folds them), not damage, and are skipped.
    """
    mark = folded_rows(group)
    if mark > log.applied:
        return [f"tree marked as folded up to record {mark}, but the log has {log.applied}"]
    if mark == 0 and DATAPOINTS not in group:
        return []  # never folded (a version-1 file, or a live writer's): nothing to compare
    pending_data, pending_files = log.touched_masks(mark)
    skip = (pending_data | pending_files).tolist()
    points = group.get(DATAPOINTS)
    problems: list[str] = []
    tree_order = [] if points is None else list(points)
    folded_names = [n for k, n in enumerate(log.names, start=1) if not skip[k]]
    folded = set(folded_names)  # once: built inside the test below, it made check quadratic
    if [n for n in tree_order if n in folded] != folded_names:
        problems.append("datapoint groups missing or out of creation order")
    for node in range(len(log.names) + 1):
        if skip[node]:
            continue
        if node == _layout.DATASET_NODE:
            obj: h5py.Group | None = group
            where = "the dataset"
        else:
            name = log.names[node - 1]
            where = f"datapoint {name!r}"
            quick = None if points is None else _quick_problems(points, name, where, log, node)
            if quick is not None:
                problems.extend(quick)
                continue
            obj = None if points is None else points.get(name)
        if not isinstance(obj, h5py.Group):
            problems.append(f"{where}: no group in the tree")
            continue
        problems.extend(_node_problems(obj, where, log, node))
    return problems


def _quick_problems(
    points: h5py.Group, name: str, where: str, log: DatasetLog, node: int
) -> list[str] | None:
    """Check a datapoint without files with :class:`_PointText`; None: the slower way."""
    if _point_text is None or log.files(node):
        return None
    with phil:  # h5py's own lock, held for the calls of _PointText
        read = _point_text(points.id.id, name.encode())
    if read is None or read[1]:
        return None
    if read[0] != _tree_text(log, node):
        return [f"{where}: {_DATA_DIFFERS}"]
    return []


def _node_problems(obj: h5py.Group, where: str, log: DatasetLog, node: int) -> list[str]:
    problems = []
    want = _tree_text(log, node).decode()
    have = obj.attrs.get(ATTR_DATA)  # text, or anything a hand edit left (bytes, an array)
    if not isinstance(have, str) or have != want:
        problems.append(f"{where}: {_DATA_DIFFERS}")
    refs = log.files(node)
    files = obj.get(FILES)
    have = [] if files is None else list(files)
    if have != list(refs):
        problems.append(f"{where}: the tree's files {have} differ from the journal's")
        return problems
    problems.extend(
        f"{where}: the tree's file {fname!r} points at other bytes"
        for fname, ref in refs.items()
        if not _file_matches(files[fname], ref)
    )
    return problems
