"""Monte Carlo estimate of pi, distributed with MPI, stored in one campaign file.

Run with::

    mpiexec -n 4 python docs/examples/mpi_pi.py pi.h5 --samples 20000

Every rank draws its share of the samples (each sample seeded by its index, so the
result does not depend on the number of ranks); rank 0 writes them all into the
dataset ``random`` of ``pi.h5``.  Then every rank opens the file read-only, takes its
share of the datapoints, counts those inside the quarter circle, and the counts are
summed across ranks.

The file must be new: if it exists (or anything else fails), rank 0 prints one
line saying so and every rank exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
from mpi4py import MPI

from hards_h5 import HARDSError, mpi


def sample(index: int) -> mpi.Result:
    """Draw sample ``index``: a point in the unit square, and whether it is inside."""
    # SeedSequence-seeded streams are independent for consecutive seeds (Python's
    # random.Random(index) is not: its first draws are visibly biased).
    x, y = np.random.default_rng(index).random(2).tolist()
    return f"sample-{index:07d}", {"x": x, "y": y, "inside": x * x + y * y <= 1.0}, {}


def main() -> None:
    """Write the samples from all ranks, then estimate pi from them across ranks."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    # rank 0 decides for all (were each rank to look, rank 0 might create it first)
    if comm.bcast(args.file.exists() if rank == 0 else None, root=0):
        stop(rank, f"{args.file} already exists; pass a new path or remove it")
    try:
        written = mpi.write_campaign(comm, args.file, "random", range(args.samples), sample)
        if rank == 0:
            print(f"rank 0 wrote {written} samples computed by {comm.Get_size()} ranks")

        with mpi.open_readonly(comm, args.file) as db:
            points = mpi.split(comm, db.get_dataset("random").recursively_get_datapoints())
            inside = comm.allreduce(sum(1 for p in points if p.data["inside"]), op=MPI.SUM)
            total = comm.allreduce(len(points), op=MPI.SUM)
    except HARDSError as exc:  # raised on every rank alike: say it once
        stop(rank, str(exc))
    if rank == 0:
        print(f"pi ~ {4 * inside / total:.5f} from {total} samples on {comm.Get_size()} ranks")


def stop(rank: int, message: str) -> NoReturn:
    """Print ``message`` once (from rank 0) and exit every rank with status 1."""
    if rank == 0:
        print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
