"""The Monte Carlo estimate of pi: sampling datasets, an extension, quasi-random points.

The application notebook of the HARDS docs, on one HDF5 file::

    python docs/examples/monte_carlo_pi.py pi.h5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hards.api import AbstractDatabase, AbstractDataset

from hards_h5 import H5Database


def halton(index: int, base: int) -> float:
    """Return element ``index`` of the van der Corput sequence in ``base``."""
    result, fraction = 0.0, 1.0
    while index > 0:
        fraction /= base
        index, digit = divmod(index, base)
        result += digit * fraction
    return result


def add_samples(dataset: AbstractDataset, points: np.ndarray, start: int) -> None:
    """Store each (x, y) as a datapoint with whether it lies in the quarter circle."""
    for i, (x, y) in enumerate(points.tolist(), start=start):
        inside = x * x + y * y <= 1.0
        dataset.create_datapoint(f"s{i:06d}").add_data({"x": x, "y": y, "inside": inside})


def estimate(dataset: AbstractDataset) -> tuple[int, float]:
    """Return (samples, pi estimate) over the dataset's own and inherited datapoints."""
    points = dataset.recursively_get_datapoints()
    inside = sum(1 for p in points if p.data["inside"])
    return len(points), 4 * inside / len(points)


def run(db: AbstractDatabase, n: int = 2000) -> dict[str, tuple[int, float]]:
    """Write the three sampling datasets and return their pi estimates."""
    rng = np.random.default_rng(2024)
    uniform = db.create_dataset("random")
    uniform.add_data({"sampler": "numpy default_rng", "seed": 2024})
    add_samples(uniform, rng.random((n, 2)), 0)
    more = uniform.create_dataset("more_samples")
    more.add_data({"extends": "random"})
    add_samples(more, rng.random((3 * n, 2)), n)
    quasi = db.create_dataset("quasi_random")
    quasi.add_data({"sampler": "halton", "bases": [2, 3]})
    add_samples(quasi, np.array([(halton(i, 2), halton(i, 3)) for i in range(1, n + 1)]), 0)
    return {d.fullname(): estimate(d) for d in (uniform, more, quasi)}


def main() -> None:
    """Write the pi campaign to the file named on the command line and print estimates."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("pi.h5")
    with H5Database.create_database(path) as db:
        for name, (samples, value) in run(db).items():
            print(f"{name:<20} {samples:>6} samples  pi ~ {value:.4f}")


if __name__ == "__main__":
    main()
