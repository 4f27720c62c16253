"""The demo campaign: the seed's Monte Carlo estimate of pi, written to one file."""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hards_h5.api.nodes import H5Database, H5Dataset

__all__ = ["PiEstimate", "estimate_pi", "write_demo"]


@dataclass(frozen=True)
class PiEstimate:
    """A pi estimate from one dataset's (inherited) samples."""

    dataset: str
    samples: int
    inside: int

    @property
    def value(self) -> float:
        """Four times the fraction of samples inside the quarter circle."""
        return 4.0 * self.inside / self.samples if self.samples else float("nan")


def _halton(index: int, base: int) -> float:
    result, fraction = 0.0, 1.0
    while index > 0:
        fraction /= base
        index, digit = divmod(index, base)
        result += digit * fraction
    return result


def _sample(dataset: H5Dataset, start: int, points: list[tuple[float, float]]) -> None:
    for i, (x, y) in enumerate(points, start=start):
        point = dataset.create_datapoint(f"sample-{i:06d}")
        point.add_data({"x": x, "y": y, "inside": x * x + y * y <= 1.0})


def write_demo(path: Path, *, samples: int = 1000, seed: int = 12345) -> None:
    """Write the Monte Carlo pi campaign to a new file at ``path``.

    Datasets: ``random`` (uniform samples), ``random/extended`` (more uniform
    samples that inherit ``random``'s), and ``quasi_random`` (a Halton sequence).
    Every hundredth sample carries a small text file, each dataset a JSON summary.

    Parameters
    ----------
    path : Path
        The new campaign file; it must not exist.
    samples : int
        Samples per dataset (``random/extended`` adds twice as many).
    seed : int
        Seed of the uniform generator, so the demo is reproducible.

    """
    rng = random.Random(seed)  # noqa: S311 - reproducible samples, not cryptography
    with H5Database.create_database(path) as db, tempfile.TemporaryDirectory() as tmp:
        note = Path(tmp) / "note.txt"
        uniform = db.create_dataset("random")
        uniform.add_data({"sampler": "uniform", "seed": seed})
        _sample(uniform, 0, [(rng.random(), rng.random()) for _ in range(samples)])
        extended = uniform.create_dataset("extended")
        extended.add_data({"sampler": "uniform", "extends": "random"})
        _sample(extended, samples, [(rng.random(), rng.random()) for _ in range(2 * samples)])
        halton = db.create_dataset("quasi_random")
        halton.add_data({"sampler": "halton", "bases": [2, 3]})
        _sample(halton, 0, [(_halton(i + 1, 2), _halton(i + 1, 3)) for i in range(samples)])
        for dataset in (uniform, extended, halton):
            for name in dataset.datapoints[::100]:
                point = dataset.get_datapoint(name)
                note.write_text(f"sample {name} of {dataset.fullname()}: {point.data}\n")
                point.add_file(note, name="sample.txt")
            estimate = estimate_pi(dataset)
            summary = Path(tmp) / "summary.json"
            summary.write_text(json.dumps({"samples": estimate.samples, "pi": estimate.value}))
            dataset.add_file(summary)


def estimate_pi(dataset: H5Dataset) -> PiEstimate:
    """Estimate pi from ``dataset``'s samples, inherited ones included."""
    points = dataset.recursively_get_datapoints()
    inside = sum(1 for point in points if point.data.get("inside"))
    return PiEstimate(dataset.fullname(), len(points), inside)
