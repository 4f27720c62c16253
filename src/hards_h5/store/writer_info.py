"""Who is writing a campaign file: a small sidecar file a writer leaves next to it.

HDF5's locks say *that* a process has a file open for writing, not *which* one.
A writer (an :class:`~hards_h5.H5Database` opened read-write) therefore writes
``.NAME.writer`` beside the campaign file ``NAME``: one JSON object

``{"pid": 123, "host": "node7", "since": 1764412345.6, "mode": "plain", "file": [dev, ino]}``

written atomically (a temporary file renamed over it) when a process opens the
file to write, rewritten with ``"mode": "swmr"`` when it starts SWMR live mode, and
removed when it closes the file (with its last handle, see :mod:`hards_h5.store.store`).
The campaign file itself is never touched, so the file format and SWMR are
unaffected.  The sidecar is advisory, for messages only: it is written on a
best-effort basis (a read-only directory simply has none) and a reader ignores
one that is stale — a writer on this host whose process is gone, or a sidecar
left beside an earlier file of the same name.  Whether a file is in use
is always decided by the locks (:mod:`hards_h5.store.live`), never by the sidecar.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "WriterInfo",
    "announce",
    "being_written",
    "read",
    "sidecar_path",
    "went_live",
    "withdraw",
]

PLAIN = "plain"
SWMR = "swmr"


@dataclass(frozen=True, slots=True)
class WriterInfo:
    """What a writer said about itself in its sidecar file.

    Attributes
    ----------
    pid : int
        The writer's process id.
    host : str
        The host it runs on.
    since : float
        When it opened the file (seconds since the epoch).
    mode : str
        ``"plain"`` (an ordinary writer) or ``"swmr"`` (SWMR live mode).

    """

    pid: int
    host: str
    since: float
    mode: str

    @property
    def live(self) -> bool:
        """Whether the writer is in SWMR live mode (readers may watch)."""
        return self.mode == SWMR

    def describe(self) -> str:
        """``pid 123 on host node7 since 10:42``: who, for a message."""
        when = time.localtime(self.since)
        same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d")
        stamp = time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", when)
        return f"pid {self.pid} on host {self.host} since {stamp}"


def sidecar_path(path: Path) -> Path:
    """Return the sidecar of campaign file ``path``: ``DIR/.NAME.writer``."""
    return path.with_name(f".{path.name}.writer")


def _identity(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OSError:
        return False
    return True


def read(path: Path) -> WriterInfo | None:
    """Return who is writing campaign file ``path``, or None if unknown or stale.

    None when there is no sidecar, it cannot be read, it was written for another
    file of the same name, or its writer ran on this host and is gone.
    """
    try:
        raw = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        info = WriterInfo(
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            since=float(raw["since"]),
            mode=str(raw["mode"]),
        )
        file_id = raw.get("file")
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if file_id is not None and file_id != _identity(path):
        return None
    if info.host == socket.gethostname() and not _pid_alive(info.pid):
        return None
    return info


_announced: dict[Path, float] = {}  # campaign file -> when this process opened it to write
_guard = threading.Lock()


def announce(path: Path) -> None:
    """Write the sidecar of ``path`` for this process, which opened it to write.

    Idempotent: a file this process already announced keeps its sidecar and time.
    """
    with _guard:
        if path in _announced:
            return
        _announced[path] = time.time()
    _write(path, PLAIN)


def went_live(path: Path) -> None:
    """Record that this process's writer of ``path`` is now in SWMR live mode."""
    if path in _announced:
        _write(path, SWMR)


def withdraw(path: Path) -> None:
    """Remove the sidecar of ``path`` (its writer is closing it); safe to call twice."""
    with _guard:
        if _announced.pop(path, None) is None:
            return
    side = sidecar_path(path)
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
        if raw.get("pid") == os.getpid() and raw.get("host") == socket.gethostname():
            side.unlink()  # (not a later writer's, nor a parent process's)
    except (OSError, ValueError, AttributeError):
        return


def _write(path: Path, mode: str) -> None:
    since = _announced.get(path)
    if since is None:
        return
    body = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": since,
        "mode": mode,
        "file": _identity(path),
    }
    side = sidecar_path(path)
    tmp = side.with_name(f"{side.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(body), encoding="utf-8")
        tmp.replace(side)
    except OSError:  # advisory only: e.g. a directory this user cannot write
        with contextlib.suppress(OSError):
            tmp.unlink()


def being_written(path: Path, *, live: bool | None = None) -> str:
    """``campaign.h5 is being written by a live (SWMR) writer (pid 123 on host x since 10:42)``.

    The shared wording for a file some process has open for writing.  ``live``
    says what the locks found when no sidecar names the writer (None: unknown).
    """
    info = read(path)
    if info is not None:
        live = info.live
    kind = {True: "a live (SWMR) writer", False: "a writer", None: "another process"}[live]
    who = f" ({info.describe()})" if info is not None else ""
    return f"{path} is being written by {kind}{who}"
