"""Introduction: a database, a dataset, datapoints with data and files.

The workflow of the HARDS introduction notebook, on one HDF5 file::

    python docs/examples/introduction.py intro.h5
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hards.api import AbstractDatabase

from hards_h5 import H5Database


def run(db: AbstractDatabase, scratch: Path) -> dict[str, object]:
    """Build and read back a small campaign in ``db``; return what was read."""
    coils = db.create_dataset("coil_design_v1")
    coils.add_data({"simulator": "magnetics-1.4", "units": "SI"})
    for i, current in enumerate([1.0e5, 1.5e5, 2.0e5]):
        point = coils.create_datapoint(f"run-{i:03d}")
        point.add_data({"current": current})
        point.add_data({"field": current * 2.5e-5, "converged": True})  # merges keys
        log = scratch / "solver.log"
        log.write_text(f"run {i}: current {current} A -> converged\n")
        point.add_file(log)
    first = coils.get_datapoint("run-000")
    return {
        "datasets": list(db.children),
        "datapoints": list(coils.datapoints),
        "metadata": coils.data,
        "first": first.data,
        "log": first.get_file("solver.log").read_text(),
        "files": list(first.files),
    }


def main() -> None:
    """Write the introduction campaign to the file named on the command line."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("intro.h5")
    with H5Database.create_database(path) as db, tempfile.TemporaryDirectory() as tmp:
        result = run(db, Path(tmp))
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
