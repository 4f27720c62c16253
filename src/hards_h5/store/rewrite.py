"""Rewriting a campaign file: its committed state copied into a new file, swapped in.

The rewrite reads the file through the record logs (CRC-checked replay, or a
salvage of every intact record) and writes it into a *new* file that replaces the
original with one atomic ``os.replace``, so a crash at any moment leaves either
the old file or the new one, never a mixture.  Used by compact and recover
(:mod:`hards_h5.tools.maintenance`) and by the automatic recovery at open
(:mod:`hards_h5.store.autorecover`); it lives in the store so that the store's
open path needs nothing from the tools.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h5py

from hards_h5.errors import (
    CorruptFileError,
    DatabaseLockedError,
    FileIntegrityError,
    NotAHardsFileError,
    StoreFileNotFoundError,
)
from hards_h5.store import blobs as _blobs
from hards_h5.store import codec as _codec
from hards_h5.store import fold as _fold
from hards_h5.store import layout as _layout
from hards_h5.store import scratch as _scratch
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.live import claim_exclusive, in_use, live_lock_on, live_lock_present
from hards_h5.store.log import DatasetLog
from hards_h5.store.progress import Progress, Tally
from hards_h5.store.salvage import SalvagedLog, salvage_log
from hards_h5.store.superblock import status_flags

__all__ = [
    "RewriteReport",
    "exclusive",
    "fold_in_place",
    "left_open_problem",
    "open_unlocked",
    "preflight",
    "remove_stale_scratch",
    "rewrite_in_place",
    "rewrite_locked",
    "rewrite_target",
]


@dataclass
class RewriteReport:
    """What a compact or recover wrote, and what it could not save.

    Attributes
    ----------
    datasets, datapoints, files : int
        What the new file holds.
    bytes_before, bytes_after : int
        The file's size before and after.
    dropped : list of str
        One line for every record or file that could not be saved (recover only).
    lost_newest : list of str
        The datasets and datapoints (``"ds/sub/point"``) whose newest data or
        newest version of a file was in a damaged record (recover only): they hold
        their state from before that change now.  Each has a line in ``dropped``.
    backup : Path or None
        Where recover kept the original bytes.
    cleared_flags : bool
        Whether recover cleared a dead writer's status flags.
    rewritten : bool
        False when recover found a cleanly closed, undamaged file and left it alone,
        or when compact's rewrite would not have been smaller than the file (already
        compact) and the original was kept.

    """

    datasets: int = 0
    datapoints: int = 0
    files: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    dropped: list[str] = field(default_factory=list)
    lost_newest: list[str] = field(default_factory=list)
    backup: Path | None = None
    cleared_flags: bool = False
    rewritten: bool = True


def preflight(path: Path) -> int:
    """Classify ``path`` as opening it would, and return its superblock status flags.

    Raises
    ------
    StoreFileNotFoundError, NotAHardsFileError
        If ``path`` is missing, not a regular file, empty, not HDF5, or an HDF5
        file that is not a campaign file (with the same message as opening it).
    CorruptFileError
        If the superblock is damaged.

    """
    _layout.check_is_hdf5(path)
    try:
        return status_flags(path)
    except NotAHardsFileError:
        # A superblock version hards-h5 never writes: a foreign HDF5 file, which
        # opening it names precisely.
        _layout.open_file(path, "r").close()
        raise


def left_open_problem(path: Path, flags: int) -> str:
    """Say what set status ``flags`` mean: a writer at work now, or one that died."""
    if in_use(path):
        live = live_lock_present(path) or bool(flags & 0x04)  # bit 2: SWMR writing
        watch = f" (watch it with 'hards-h5 watch {path}')" if live else ""
        return f"{_writer_info.being_written(path, live=live)}; wait for it to close{watch}"
    return (
        f"{path} was left open by a writer that stopped; the next open recovers it "
        f"automatically (H5Database(path), or 'hards-h5 recover {path}')"
    )


_REPLACED_TRIES = 20  # times the file may be replaced under a run before it gives up


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (HDF5's own lock), or raise if in use.

    The lock is on the file that is at ``path`` while it is held: a file that
    another compact or recover replaced between our open and our lock (ours would
    then be the old, unlinked one) is let go and the new one locked instead.
    """
    for _ in range(_REPLACED_TRIES):
        fd = _lock_exclusive(path)
        if _layout.same_file(fd, path):
            break
        os.close(fd)
    else:
        msg = (
            f"{path}: the file was replaced {_REPLACED_TRIES} times while this run tried "
            "to lock it (other compact or recover runs?); try again later"
        )
        raise DatabaseLockedError(msg)
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_exclusive(path: Path) -> int:
    """Open the file at ``path`` and lock it exclusively; return the descriptor."""
    try:
        # (an OFD write lock needs a writable descriptor; O_NONBLOCK: a FIFO does not wait)
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        writable = True
    except FileNotFoundError:
        msg = f"{path}: no such campaign file"
        raise StoreFileNotFoundError(msg) from None
    except PermissionError:  # a read-only file: rewriting needs the directory only
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        writable = False
    locked = False
    try:
        busy = (
            f"{path}: another process has the file open; close it (or wait for "
            "the writer to finish) before running this"
        )
        if live_lock_on(fd):  # checked first: leave HDF5's flock alone then
            raise DatabaseLockedError(busy)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in {errno.EWOULDBLOCK, errno.EAGAIN}:
                raise DatabaseLockedError(busy) from None
            raise
        # a SWMR live writer, which HDF5's lock no longer shows
        live = not claim_exclusive(fd) if writable else live_lock_on(fd)
        if live:
            raise DatabaseLockedError(busy)
        locked = True
    finally:
        if not locked:
            os.close(fd)
    return fd


def open_unlocked(path: Path) -> h5py.File:
    """Open ``path`` read-only without HDF5's lock (the caller holds it)."""
    try:
        f = h5py.File(path, "r", libver=_layout.LIBVER, locking=False)
    except OSError as exc:
        msg = f"{path}: HDF5 cannot open the file even with its writer flag cleared: {exc}"
        raise CorruptFileError(msg) from exc
    try:
        _layout.validate_root(f, path)
    except BaseException:
        f.close()
        raise
    return f


class _Copier:
    """Copies one source file's datasets into a new file, storing each content once."""

    def __init__(
        self, src: h5py.File, dst: h5py.File, report: RewriteReport, *, strict: bool, tally: Tally
    ) -> None:
        self.src, self.dst, self.report, self.strict = src, dst, report, strict
        self.tally = tally
        self.blobs = _blobs.BlobCopier(src[_layout.BLOBS], dst[_layout.BLOBS])

    def dataset(self, names: tuple[str, ...], group: h5py.Group) -> int:
        label = "/".join(names)
        parent = self.dst[_layout.dataset_path(names[:-1])][_layout.DATASETS]
        replayed = DatasetLog(group, writable=False)
        old: DatasetLog | SalvagedLog = replayed
        if replayed.torn_rows:
            if self.strict:
                msg = f"dataset {label!r}: {replayed.torn_rows} records after the last valid one"
                raise CorruptFileError(msg)
            old = salvage_log(group)  # every intact record, not only those before the damage
            self.report.dropped.append(
                f"dataset {label!r}: {old.damaged} incomplete or damaged record(s) dropped"
            )
            if old.orphaned:
                self.report.dropped.append(
                    f"dataset {label!r}: {old.orphaned} record(s) of datapoints whose "
                    "creation record was damaged, dropped"
                )
            self._report_lost(label, old)
        new = DatasetLog(_layout.new_dataset_group(parent, names[-1]), writable=True)
        dataset = _layout.DATASET_NODE
        if old.data_json(dataset) != _codec.EMPTY:
            new.set_data(dataset, old.data_json(dataset))
        self.files(old, new, dataset, label)
        for node, name in enumerate(old.names, start=1):
            new.create(name)
            if old.data_json(node) != _codec.EMPTY:
                new.set_data(node, old.data_json(node))
            self.files(old, new, node, f"{label}/{name}")
            self.tally.add()
        new.write_pending()
        new.seal()
        self.tally.add_rest(_layout.log_rows(group), len(old.names))
        return len(old.names)

    def _report_lost(self, label: str, old: SalvagedLog) -> None:
        """Name the nodes whose newest state was in a damaged record."""
        for node, what in old.lost:
            who = label if node == _layout.DATASET_NODE else f"{label}/{old.names[node - 1]}"
            if who not in self.report.lost_newest:
                self.report.lost_newest.append(who)
            self.report.dropped.append(
                f"{who}: its newest {what} was in a damaged record and is lost; it holds "
                "what it had before that change (if anything)"
            )
        if old.unattributed:
            self.report.dropped.append(
                f"dataset {label!r}: {old.unattributed} damaged record(s) too damaged to "
                "tell which datapoint they changed; some may hold older data now"
            )

    def files(self, old: DatasetLog | SalvagedLog, new: DatasetLog, node: int, label: str) -> None:
        for name, ref in old.files(node).items():
            try:
                target = self.blobs.copy(ref)
            except FileIntegrityError as exc:
                if self.strict:
                    msg = f"{label}: file {name!r}: {exc}"
                    raise FileIntegrityError(msg) from exc
                self.report.dropped.append(f"{label}: file {name!r} ({exc})")
                continue
            new.set_file(node, name, target)
            self.report.files += 1


def _rewrite(
    src: h5py.File, dst_path: Path, *, strict: bool, progress: Progress | None
) -> RewriteReport:
    """Write the committed state of ``src`` into a new, compact campaign file."""
    report = RewriteReport()
    _layout.new_file(dst_path)
    with h5py.File(
        dst_path,
        "r+",
        libver=_layout.LIBVER,
        locking=False,
        rdcc_nbytes=_layout.WRITER_CHUNK_CACHE,
    ) as dst:
        # Rows counted twice: copied, then folded into the tree (corrected by the fold).
        tally = Tally(progress, 2 * _layout.total_log_rows(src) if progress else 0)
        copier = _Copier(src, dst, report, strict=strict, tally=tally)
        for names, group in _layout.walk_datasets(src):
            report.datapoints += copier.dataset(names, group)
            report.datasets += 1
        dst.flush()
        _fold.fold_file(dst, tally=tally)  # the tree at rest (after the flush: records first)
    _layout.fsync_file(dst_path)
    return report


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` over ``path`` keeping ``path``'s permissions and owner (where allowed)."""
    st = path.stat()
    tmp.chmod(stat.S_IMODE(st.st_mode))
    try:
        os.chown(tmp, st.st_uid, st.st_gid)  # root rewriting a user's file
    except OSError:
        with contextlib.suppress(OSError):
            os.chown(tmp, -1, st.st_gid)
    tmp.replace(path)
    _layout.fsync_dir(path.parent)


def rewrite_target(path: str | os.PathLike[str]) -> Path:
    """Return the file to rewrite: a symlink's target, so the link keeps pointing at it."""
    target = Path(path)
    return target.resolve() if target.is_symlink() else target


def remove_stale_scratch(path: Path) -> None:
    """Remove scratch files of killed runs, old releases' names too (caller holds the lock)."""
    _scratch.remove_stale(path, legacy=True)  # (legacy: only under the lock)


def rewrite_in_place(
    path: Path,
    what: Literal["compact", "recover"],
    *,
    strict: bool,
    backup: bool,
    progress: Progress | None,
    source: h5py.File | None = None,
) -> RewriteReport:
    """Rewrite ``path``'s committed state into a scratch file and swap it in atomically.

    With ``backup``, the original is first hard-linked (or copied) to
    ``<name>.bak-<time>``.  The caller holds the exclusive lock.  ``source``, if
    given, is ``path`` already open (and stays open).
    """
    tmp = _scratch.scratch_path(path, what)
    try:
        with open_unlocked(path) if source is None else contextlib.nullcontext(source) as src:
            report = _rewrite(src, tmp, strict=strict, progress=progress)
            report.bytes_before = path.stat().st_size
            report.bytes_after = tmp.stat().st_size
            # Nothing to gain keeps the original only if it needs nothing else: the
            # current format, and a tree that is complete and agrees with the journal
            # (a live writer's close leaves it behind; the rewrite folds it afresh).
            keep = (
                what == "compact"
                and report.bytes_after >= report.bytes_before
                and _format_version(src) == _layout.FORMAT_VERSION
                and _fold.tree_sound(src)
            )
        if keep:
            # Nothing to gain (an already compact file): keep the original bytes.
            report.bytes_after = report.bytes_before
            report.rewritten = False
            return report
        if backup:
            report.backup = _backup(path)
        _replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return report


def _format_version(f: h5py.File) -> int | None:
    """Return the format version ``f`` says it has, or None if it cannot be read."""
    try:
        return int(f.attrs[_layout.ATTR_FORMAT])
    except (KeyError, OSError, TypeError, ValueError):
        return None


def fold_in_place(path: Path, progress: Progress | None = None) -> int:
    """Fold the tree at rest of a cleanly closed file in place; return how many datasets.

    For ``recover`` of a file it leaves alone (whose last writer may have been a
    live one, which does not fold).  The caller holds the exclusive lock.
    ``progress``: called with the records folded.
    """
    with h5py.File(
        path, "r+", libver=_layout.LIBVER, locking=False, rdcc_nbytes=_layout.WRITER_CHUNK_CACHE
    ) as f:
        folded = _fold.fold_file(f, tally=Tally(progress, 0))
    _layout.fsync_file(path)
    return folded


def _backup(path: Path) -> Path:
    target = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%dT%H%M%S')}")
    while target.exists():
        target = target.with_name(target.name + "x")
    try:
        os.link(path, target)  # the same bytes under a second name: no copy
    except OSError:
        shutil.copyfile(path, target)
    return target


def rewrite_locked(path: Path, source: h5py.File) -> RewriteReport:
    """Run recover's rewrite of ``path`` from ``source``, ``path`` open; the caller holds its locks.

    For the automatic recovery of a file whose writer died (``_autorecover``),
    which reads it through a view with the writer's marks cleared: the original
    is left as it was (killed midway, the next open starts again).
    """
    remove_stale_scratch(path)
    return rewrite_in_place(
        path, "recover", strict=False, backup=True, progress=None, source=source
    )
