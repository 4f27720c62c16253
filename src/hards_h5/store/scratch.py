"""Scratch files: the one naming scheme of the files hards-h5 builds beside a campaign file.

A new file is built under a hidden scratch name in the campaign file's directory
and moved or linked into place when complete, so that it appears whole or not at
all: ``create`` (a new campaign file), ``compact`` and ``recover`` (the rewrite),
``merge`` (a new merge output).  Each name starts with ``.<campaign name>.`` and
carries a random part, so that concurrent builders never collide.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

__all__ = ["Kind", "existing", "remove_stale", "scratch_path"]

Kind = Literal["create", "compact", "recover", "merge"]


def scratch_path(path: Path, kind: Kind) -> Path:
    """Return a new scratch name for building ``path`` (see the module docstring)."""
    if kind == "create":
        return path.with_name(f".{path.name}.{secrets.token_hex(6)}.creating")
    return path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")


def remove_stale(path: Path, kinds: Iterable[Kind]) -> None:
    """Remove the scratch files of ``kinds`` left beside ``path`` by killed builders.

    Only for kinds whose builders hold a lock the caller now holds (compact and
    recover: the campaign file's exclusive lock), so that no running one's is
    removed.
    """
    for kind in kinds:
        for stale in existing(path, kind):
            with contextlib.suppress(OSError):
                stale.unlink()


def existing(path: Path, kind: Kind) -> list[Path]:
    """Return the scratch files of ``kind`` beside ``path`` (running builders' too)."""
    pattern = f".{path.name}.*.creating" if kind == "create" else f".{path.name}.{kind}-*"
    return list(path.parent.glob(pattern))
