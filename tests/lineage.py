"""A two-level campaign for the column-index tests: ``mc`` (datapoints ``t<i>``) and
its child ``mc/opt`` (datapoints ``p<i>``), each datapoint with the data given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hards_h5 import H5Database


def write_lineage(path: Path, top: list[dict[str, Any]], sub: list[dict[str, Any]]) -> None:
    """Create ``path`` holding ``mc`` with ``top``'s data and ``mc/opt`` with ``sub``'s."""
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("mc")
        for i, data in enumerate(top):
            mc.create_datapoint(f"t{i}").add_data(data)
        opt = mc.create_dataset("opt")
        for i, data in enumerate(sub):
            opt.create_datapoint(f"p{i}").add_data(data)
