"""Scratch files next to a campaign file: one naming scheme, one cleaner, for every kind.

Creating a campaign file, merging into a new output, compacting and recovering each
build a file under a scratch name in the campaign file's directory and move it into
place when it is complete.  A process killed meanwhile leaves its scratch file
behind; the next run of any of them, or the next writer to open the file, removes it.

A scratch file is ``.<campaign name>.<kind>-<host>-<pid>-<random>``: ``<host>``
hashes the machine's name and ``<pid>`` is the process that owns it.  It is stale
only when its owner is gone — made on this machine by a process that no longer
exists — so two live runs never remove each other's scratch files.  Scratch files
made on another machine (a shared filesystem) are left alone: whether their owner
still runs cannot be told from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Final

from hards_h5.store.writer_info import sidecar_path

__all__ = ["KINDS", "remove_stale", "scratch_path"]

KINDS: Final = ("create", "merge", "compact", "recover")
"""Every kind of scratch file, as it appears in the name."""

_HOST: Final = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def scratch_path(target: Path, kind: str) -> Path:
    """Return a new scratch name for building ``target`` (a ``kind`` from :data:`KINDS`)."""
    if kind not in KINDS:
        msg = f"unknown scratch kind {kind!r}"
        raise ValueError(msg)
    return target.with_name(f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale(target: Path, *, legacy: bool = False) -> list[Path]:
    """Remove scratch files of ``target`` whose owner is gone; return what was removed.

    ``target``'s own name and, for a symbolic link, its target's are both cleaned.
    With ``legacy`` (only while holding the file's exclusive lock), the scratch
    files earlier releases named without their owner go too.
    Errors are ignored: cleaning never stops the run that does it.
    """
    removed = _remove_stale_of(target, legacy=legacy)
    with contextlib.suppress(OSError):
        if target.is_symlink():
            removed += _remove_stale_of(target.resolve(), legacy=legacy)
    return removed


def _remove_stale_of(target: Path, *, legacy: bool) -> list[Path]:
    name = re.escape(target.name)
    owned = re.compile(
        rf"\.{name}\.(?:{'|'.join(KINDS)})-([0-9a-f]{{8}})-([0-9]{{1,10}})-[0-9a-f]{{8}}"
    )
    # Earlier releases: ".<name>.compact-<hex>", ".<name>.<hex>.creating" and the
    # ".creating" file of a compact's scratch file, "..<name>.compact-<hex>.<hex>.creating".
    old = re.compile(
        rf"(\.?\.{name}\.(?:compact|recover)-[0-9a-f]{{8}})?"
        rf"(?(1)(?:\.[0-9a-f]{{12}}\.creating)?|\.{name}\.[0-9a-f]{{12}}\.creating)"
    )
    directory = target.parent
    removed: list[Path] = []
    try:
        entries = [e.name for e in os.scandir(directory) if target.name in e.name]
    except OSError:
        return removed
    for entry in entries:
        match = owned.fullmatch(entry)
        if match is not None:
            stale = _owner_gone(match.group(1), int(match.group(2)))
        else:
            stale = legacy and old.fullmatch(entry) is not None
        if stale:
            with contextlib.suppress(OSError):
                (directory / entry).unlink()
                removed.append(directory / entry)
            with contextlib.suppress(OSError):  # the killed writer's note (a merge's)
                sidecar_path(directory / entry).unlink()
    return removed


def _owner_gone(host: str, pid: int) -> bool:
    """Whether the process ``pid`` of machine ``host`` (hashed) is known to be gone."""
    if host != _HOST:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # alive (another user's), or absurd
        return False
    return False
