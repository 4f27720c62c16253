"""Salvage a damaged record log: every record that passes its CRC, not just a prefix.

Replay (:class:`~hards_h5.store.log.DatasetLog`) stops at the first record that fails its
CRC: after a crash that is the torn tail, and nothing after it was committed.
Damage in the *middle* of a log (a flipped bit on disk) would make that prefix rule
drop every record behind the damaged one.  ``hards-h5 recover`` therefore reads a
damaged log with :func:`salvage_log`, which checks each record on its own:

- a record whose CRC fails is dropped, and counted;
- CREATE records keep their order; datapoints get new, consecutive node numbers,
  and the other records are mapped to them by the node number they were written
  with;
- records about a datapoint whose CREATE record was lost, and CREATE records that
  repeat a name, are dropped and counted too;
- a damaged DATA or FILE record that no later intact record supersedes held the
  newest state of its node: the node is listed in ``lost`` (it falls back to the
  state before).  The node is told by the damaged record's own node number, which
  the damage may have hit too; records whose kind or node make no sense are
  counted in ``unattributed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py

from hards_h5.store import codec as _codec
from hards_h5.store import records as _records
from hards_h5.store.layout import (
    CREATE,
    DATA,
    DATASET_NODE,
    FILE,
    HEAP,
    RECORDS,
    read_bytes,
    read_rows,
)
from hards_h5.store.records import FileRef

__all__ = ["SalvagedLog", "salvage_log"]


@dataclass
class SalvagedLog:
    """What :func:`salvage_log` kept, with the read interface the rewrite uses.

    Attributes
    ----------
    names : list of str
        Datapoint names in creation order.
    damaged : int
        Records that failed their CRC (or pointed outside the heap).
    orphaned : int
        Intact records about a datapoint whose CREATE record was lost, or that
        repeat a datapoint name.
    lost : list of (int, str)
        ``(node, what)`` for every node whose newest data (``what`` is ``"data"``)
        or newest version of a file (``"version of file 'name'"``; ``"version of a
        file"`` when the name is unreadable) was in a damaged record.
    unattributed : int
        Damaged records whose kind or node number is not a valid one.
    bodies : list of bytes
        Each node's JSON data text (node 0: the dataset).
    file_maps : list of dict
        Each node's files by name.

    """

    names: list[str] = field(default_factory=list)
    damaged: int = 0
    orphaned: int = 0
    lost: list[tuple[int, str]] = field(default_factory=list)
    unattributed: int = 0
    bodies: list[bytes] = field(default_factory=lambda: [_codec.EMPTY])
    file_maps: list[dict[str, FileRef]] = field(default_factory=lambda: [{}])

    def data_json(self, node: int) -> bytes:
        """Return the JSON text of ``node``'s data (node 0: the dataset)."""
        return self.bodies[node]

    def files(self, node: int) -> dict[str, FileRef]:
        """Return ``node``'s files by name."""
        return self.file_maps[node]


def salvage_log(group: h5py.Group) -> SalvagedLog:
    """Read every intact record of the dataset ``group``'s log (see the module doc)."""
    records, heap_ds = group[RECORDS], group[HEAP]
    rows = read_rows(records, 0, int(records.shape[0]))
    heap = read_bytes(heap_ds, 0, int(heap_ds.shape[0]))
    out = SalvagedLog()
    nodes = {DATASET_NODE: DATASET_NODE}  # node number written -> node number kept
    seen: set[str] = set()
    newest: dict[tuple[int, str | None], int] = {}  # (node kept, file or None) -> row
    damaged: list[tuple[int, int, int, str | None]] = []  # row, kind, node, file name
    for i, record in enumerate(_records.decode(rows, heap, 0, stop_at_bad=False)):
        kind, node, name, body = record.kind, record.node, record.name, record.body
        whole = len(name) == record.name_len and (kind == FILE or len(body) == record.body_len)
        try:
            text = name.decode() if whole else None
        except UnicodeDecodeError:
            text = None
        if text is None or not record.intact:
            out.damaged += 1
            damaged.append((i, kind, node, text))
            continue
        if kind == CREATE and node not in nodes and text not in seen:
            seen.add(text)
            out.names.append(text)
            nodes[node] = len(out.names)
            out.bodies.append(body or _codec.EMPTY)
            out.file_maps.append({})
            newest[nodes[node], None] = i
        elif kind == DATA and node in nodes:
            out.bodies[nodes[node]] = body
            newest[nodes[node], None] = i
        elif kind == FILE and node in nodes:
            out.file_maps[nodes[node]][text] = FileRef(
                record.body_off, record.body_len, record.sha256
            )
            newest[nodes[node], text] = i
        else:
            out.orphaned += 1
    _find_lost(out, nodes, newest, damaged)
    return out


def _find_lost(
    out: SalvagedLog,
    nodes: dict[int, int],
    newest: dict[tuple[int, str | None], int],
    damaged: list[tuple[int, int, int, str | None]],
) -> None:
    """Fill ``out.lost``: damaged DATA/FILE records that no later intact one supersedes."""
    lost: dict[tuple[int, str], None] = {}  # (an ordered set)
    for row, kind, node, text in damaged:
        kept = nodes.get(node)
        if kind == CREATE and kept is not None:
            continue  # (its datapoint was kept: a damaged copy, nothing lost)
        if kind not in {DATA, FILE} or kept is None:
            if kind != CREATE:
                out.unattributed += 1
            continue
        if kind == DATA and newest.get((kept, None), -1) < row:
            lost[kept, "data"] = None
        elif kind == FILE and text is None:
            lost[kept, "version of a file"] = None
        elif kind == FILE and newest.get((kept, text), -1) < row:
            lost[kept, f"version of file {text!r}"] = None
    out.lost = list(lost)
