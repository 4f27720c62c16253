"""The extraction cache: attached files handed out as read-only paths.

Layout: ``<root>/<sha[:2]>/<sha256>/<name>``.  Content-addressed, so a path once
handed out never changes under a reader; shared by every process of the user.
Each extraction writes a private temporary file in the final directory, makes it
read-only (0o444) and renames it into place, so a path is either absent or
complete (a power loss may cut one short: it is then found by its hash, below).
Every directory is entered with ``O_NOFOLLOW`` relative to its parent's
descriptor, so a planted symlink can neither redirect a write out of the cache
nor be handed out; an existing cached file is hashed once per process before it
is first handed out and replaced when it does not match.  Temporaries of
extractions that were killed are removed by the next extraction of the same
content.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hards_h5.errors import CacheError, FileIntegrityError, HARDSError, StorageFullError

__all__ = ["ExtractionCache", "default_cache_root"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def default_cache_root() -> Path:
    """Return ``$HARDS_H5_CACHE``, else ``$XDG_CACHE_HOME/hards-h5``, else ``~/.cache/hards-h5``."""
    env = os.environ.get("HARDS_H5_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "hards-h5"


class ExtractionCache:
    """A content-addressed directory of extracted attached files.

    Parameters
    ----------
    root : Path
        The cache directory; created (mode 0o700) if missing.

    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._handed: dict[tuple[bytes, str], Path] = {}

    def get(self, sha256: bytes, size: int, name: str, extract: Callable[[int], None]) -> Path:
        """Return a read-only path holding the content ``sha256`` under ``name``.

        Parameters
        ----------
        sha256 : bytes
            The content's digest.
        size : int
            The content's size in bytes.
        name : str
            The file name (already validated: no ``/``, not ``.`` or ``..``).
        extract : Callable[[int], None]
            Writes the content to the given file descriptor, raising
            :class:`FileIntegrityError` if it does not match ``sha256``.

        Returns
        -------
        Path
            ``<root>/<sha[:2]>/<sha>/<name>``.

        """
        key = (sha256, name)
        known = self._handed.get(key)
        if known is not None and _is_plain_file(known, size):
            return known
        hexdigest = sha256.hex()
        try:
            with self._directory(hexdigest[:2], hexdigest) as dfd:
                if not self._valid_existing(dfd, name, sha256, size):
                    self._check_space(dfd, name, size)
                    self._extract(dfd, name, extract)
        except OSError as exc:
            # errno None: an error of HDF5 reading the campaign file, not of the cache
            if isinstance(exc, HARDSError) or exc.errno is None:
                raise
            raise self._error(exc, name) from exc
        path = self.root / hexdigest[:2] / hexdigest / name
        self._handed[key] = path
        return path

    def _check_space(self, dfd: int, name: str, size: int) -> None:
        st = os.fstatvfs(dfd)
        free = st.f_bavail * st.f_frsize
        if size > free and st.f_blocks:  # (no blocks: a filesystem that does not say)
            msg = (
                f"{self.root}: the extraction cache's disk is full: {name!r} needs "
                f"{size:,} bytes, {free:,} are free; {_FREE_SPACE}"
            )
            raise StorageFullError(msg)

    def _error(self, exc: OSError, name: str) -> HARDSError:
        """Say what went wrong with the cache, as the hards-h5 error of that kind."""
        where = f"{self.root}: cannot extract {name!r} into the extraction cache"
        if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            return StorageFullError(f"{where}: its disk (or quota) is full; {_FREE_SPACE}")
        if exc.errno in {errno.EEXIST, errno.ENOTDIR}:
            why = "the cache path (or a folder above it) is not a directory"
        else:
            why = exc.strerror or str(exc)
        return CacheError(f"{where}: {why} ({exc.filename or self.root}); {_ELSEWHERE}")

    @contextlib.contextmanager
    def _directory(self, *parts: str) -> Iterator[int]:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:  # a symlink or file planted where a dir belongs
                    _remove_entry(fd, part)
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    del exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _valid_existing(dfd: int, name: str, sha256: bytes, size: int) -> bool:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISREG(st.st_mode) and st.st_size == size:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                digest = hashlib.sha256()
                while chunk := os.read(fd, 8 << 20):
                    digest.update(chunk)
            finally:
                os.close(fd)
            if digest.digest() == sha256:
                return True
        return False

    @staticmethod
    def _extract(dfd: int, name: str, extract: Callable[[int], None]) -> None:
        _remove_stale_temporaries(dfd, name)
        # Not named after ``name``: any name the filesystem holds can be extracted.
        tmp = f"{_TMP_PREFIX}{_HOST}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        fd = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dfd,
        )
        try:
            try:
                extract(fd)
                # No fsync: a cached file is a copy, checked against its SHA-256
                # before any process first hands it out, so one cut short by a
                # power loss is extracted again rather than trusted.
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


_FREE_SPACE = "free space there, or point $HARDS_H5_CACHE (or cache_dir=) at another disk"
_ELSEWHERE = "make it a writable directory, or point $HARDS_H5_CACHE (or cache_dir=) elsewhere"
_STALE_AFTER = 3600.0  # seconds without a write: an extraction that is no more
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# "~" is no name character, so a temporary never collides with an attached file's name.
_TMP_PREFIX = ".~"
_TMP_ID = r"([0-9a-f]{8})\.([0-9]{1,10})\.[0-9a-f]{16}\.tmp"  # host, pid, random
_TMP_RE = re.compile(re.escape(_TMP_PREFIX) + _TMP_ID)


def _remove_stale_temporaries(dfd: int, name: str) -> None:
    """Remove temporaries left in a content's directory by extractions that were killed.

    A temporary is ``.~<host>.<pid>.<random>.tmp`` (earlier releases named it
    ``.<name>.<host>.<pid>.<random>.tmp``: those of ``name`` go too): stale when it was made
    on this machine by a process that is gone, or when nothing has written to it
    for an hour (a cache shared between machines).
    """
    named = re.compile(rf"\.{re.escape(name)}\." + _TMP_ID)
    for entry in os.listdir(dfd):
        match = _TMP_RE.fullmatch(entry) or named.fullmatch(entry)
        if match is None:
            continue
        try:
            st = os.stat(entry, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        stale = time.time() - st.st_mtime > _STALE_AFTER
        host, pid = match.group(1), int(match.group(2))
        if not stale and host == _HOST and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stale = True
            except (PermissionError, OverflowError):  # alive (another user's), or absurd
                pass
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=dfd)


def _is_plain_file(path: Path, size: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _remove_entry(dfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        msg = f"cache entry {name} is a directory that cannot be entered"
        raise FileIntegrityError(msg)
    os.unlink(name, dir_fd=dfd)
