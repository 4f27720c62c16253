"""Sub-datasets: a child dataset sees its own datapoints and its ancestors'.

The workflow of the HARDS sub-datasets notebook: initial Monte Carlo samples in a
dataset, then an optimiser's samples in a child dataset that builds on them::

    python docs/examples/sub_datasets.py subdatasets.h5
"""

from __future__ import annotations

import sys
from pathlib import Path

from hards.api import AbstractDatabase

from hards_h5 import H5Database


def objective(x: float) -> float:
    """A toy figure of merit to maximise."""
    return -((x - 0.3) ** 2)


def run(db: AbstractDatabase) -> dict[str, object]:
    """Sample, optimise in a sub-dataset, and read the inherited datapoints back."""
    initial = db.create_dataset("initial")
    initial.add_data({"method": "monte carlo"})
    for i, x in enumerate([0.05, 0.5, 0.95, 0.7]):
        initial.create_datapoint(f"mc-{i}").add_data({"x": x, "f": objective(x)})
    optimiser = initial.create_dataset("optimiser")
    optimiser.add_data({"method": "golden section"})
    lo, hi = 0.0, 1.0
    for step in range(6):
        a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
        if objective(a) > objective(b):
            hi = b
        else:
            lo = a
        x = (lo + hi) / 2
        optimiser.create_datapoint(f"opt-{step}").add_data({"x": x, "f": objective(x)})
    everything = optimiser.recursively_get_datapoints()
    best = max(everything, key=lambda p: p.data["f"])
    return {
        "own": [p.name for p in optimiser.recursively_get_datapoints(parents=False)],
        "inherited": [p.name for p in everything if p.parent.name == "initial"],
        "best": (best.fullname(), round(best.data["x"], 4)),
        "path": db.recursively_get_datapoint("initial/optimiser/opt-0").fullname(),
    }


def main() -> None:
    """Write the sub-datasets campaign to the file named on the command line."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("subdatasets.h5")
    with H5Database.create_database(path) as db:
        result = run(db)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
