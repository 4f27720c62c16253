"""MPI helpers: write a campaign from many ranks, post-process it across ranks.

Needs ``mpi4py`` and an MPI library: ``pip install 'hards-h5[mpi]'`` installs
both (the ``mpich`` wheel); without them importing this module raises
:class:`~hards_h5.MissingDependencyError` saying what to install.  Nothing else
in hards-h5 imports this module.

Writing: HDF5 without an MPI build allows one writer per file, and datapoints are
created one at a time, so :func:`write_campaign` lets every rank *compute* and
gathers the results, batch by batch, to one writer rank.  (The alternative — a
shard file per rank, then :func:`hards_h5.merge` — suits ranks on different nodes
without a shared filesystem; ``docs/concurrency.md`` compares the two.)

Reading: any number of processes may open a closed campaign file read-only, so
:func:`open_readonly` opens it on every rank and :func:`split` gives each rank its
contiguous share of a list of datapoints; reduce with ``comm.allreduce``, or let
:func:`map_reduce` do all three.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hards.api import AbstractDatapoint

from hards_h5.api.nodes import H5Database, H5Dataset
from hards_h5.errors import HARDSError, MissingDependencyError

try:
    from mpi4py import MPI
except ImportError as exc:
    msg = (
        "hards_h5.mpi needs mpi4py and an MPI library: pip install 'hards-h5[mpi]'"
        " (installs mpi4py and the mpich wheel)"
    )
    raise MissingDependencyError(msg) from exc
except RuntimeError as exc:  # mpi4py >= 4 loads libmpi at import
    if "cannot load MPI library" not in str(exc):
        raise
    msg = (
        "hards_h5.mpi: mpi4py is installed but finds no MPI library (libmpi.so):"
        " pip install mpich  (or, on a cluster, load its MPI first, e.g."
        " 'module load mpich', so that libmpi.so is on LD_LIBRARY_PATH)"
    )
    raise MissingDependencyError(msg) from exc

__all__ = ["Result", "map_reduce", "open_readonly", "split", "write_campaign"]

T = TypeVar("T")
R = TypeVar("R")
Result = tuple[str, Mapping[str, Any], Mapping[str, "str | os.PathLike[str]"]]
"""What ``compute`` returns for one task, ``(name, data, files)``, that is the
datapoint name, its data, and the files to attach (name -> path readable by the
writer rank, e.g. on a shared filesystem)."""


def split(comm: Any, items: Sequence[T]) -> list[T]:
    """Return this rank's contiguous share of ``items`` (shares differ by at most one).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator.
    items : Sequence
        What to share out, in the same order on every rank.

    Returns
    -------
    list
        ``items[start:stop]`` for this rank.

    """
    size, rank = comm.Get_size(), comm.Get_rank()
    base, extra = divmod(len(items), size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return list(items[start:stop])


@contextlib.contextmanager
def open_readonly(comm: Any, path: str | os.PathLike[str]) -> Iterator[H5Database]:
    """Open the campaign file read-only on every rank of ``comm``.

    Every rank waits until all have opened it, and again before the file is
    closed, so no rank starts writing it while another still reads.

    Raises
    ------
    HARDSError
        On every rank, if any rank could not open the file (its message included),
        rather than leaving the others waiting.

    """
    try:
        db: H5Database | None = H5Database(path, "r")
        error = None
    except (HARDSError, OSError) as exc:
        db, error = None, f"rank {comm.Get_rank()}: {type(exc).__name__}: {exc}"
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors or db is None:
        if db is not None:
            db.close()
        msg = f"cannot open {path} on every rank: {errors[0] if errors else '?'}"
        raise HARDSError(msg)
    try:
        yield db
        comm.Barrier()
    finally:
        db.close()


def map_reduce(
    comm: Any,
    path: str | os.PathLike[str],
    dataset: str,
    func: Callable[[AbstractDatapoint], R],
    combine: Callable[[R, R], R],
    *,
    initial: R,
    parents: bool = True,
) -> R:
    """Apply ``func`` to a dataset's datapoints across the ranks and combine the results.

    Every rank opens the file read-only (:func:`open_readonly`), takes its share
    (:func:`split`) of the datapoints, folds ``func`` of each into ``initial`` with
    ``combine``, and the per-rank results are combined the same way.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator; every rank must call this with the same arguments.
    path : str or os.PathLike
        The campaign file.
    dataset : str
        Dataset path such as ``"random"`` or ``"mc/optimiser"``.
    func : callable
        Maps one datapoint to a value (it must not write to the file).
    combine : callable
        Combines two values; associative, e.g. ``operator.add``.
    initial : object
        The identity of ``combine`` (``0`` for addition).
    parents : bool
        Include the datapoints of the dataset's ancestors, as
        ``recursively_get_datapoints(parents=...)``, ``find`` and ``to_dataframe``
        do; only its own when False.

    Returns
    -------
    object
        The combined value, the same on every rank.

    Raises
    ------
    HARDSError
        On every rank, if the file cannot be opened or ``func`` failed on any rank.

    """
    with open_readonly(comm, path) as db:
        error = None
        partial = initial
        try:
            ds = db.recursively_get_dataset(dataset)
            points = ds.recursively_get_datapoints(parents=parents)
            partial = functools.reduce(combine, map(func, split(comm, points)), initial)
        except Exception as exc:  # noqa: BLE001 - reported to every rank below
            error = f"rank {comm.Get_rank()}: {type(exc).__name__}: {exc}"
        gathered = comm.allgather((error, partial))
    errors = [e for e, _ in gathered if e is not None]
    if errors:
        msg = f"map_reduce over {dataset!r} in {path} failed: {errors[0]}"
        raise HARDSError(msg)
    return functools.reduce(combine, (value for _, value in gathered), initial)


def _dataset(db: H5Database, path: str) -> H5Dataset:
    node: H5Database | H5Dataset = db
    for name in path.strip("/").split("/"):
        node = node.get_dataset(name) if node.has_dataset(name) else node.create_dataset(name)
    assert isinstance(node, H5Dataset)  # noqa: S101 - the path has at least one part
    return node


def write_campaign(
    comm: Any,
    path: str | os.PathLike[str],
    dataset: str,
    tasks: Sequence[T],
    compute: Callable[[T], Result],
    *,
    root: int = 0,
    batch: int = 1000,
) -> int:
    """Compute ``tasks`` across the ranks and store the results from rank ``root``.

    Tasks are dealt round-robin; after every ``batch`` tasks per rank the results
    are gathered to ``root``, which creates the datapoints (data and files) in
    ``dataset`` (created, with its parents, if missing) in task order, whatever
    the number of ranks, and flushes, so a crash loses at most the batch in flight.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator; every rank must call this with the same arguments.
    path : str or os.PathLike
        The campaign file (created by ``root`` if missing).
    dataset : str
        Dataset path such as ``"random"`` or ``"mc/optimiser"``.
    tasks : Sequence
        Inputs to ``compute``, identical on every rank.
    compute : callable
        Maps one task to ``(name, data, files)``.
    root : int
        The rank that writes.
    batch : int
        Tasks per rank between two gathers.

    Returns
    -------
    int
        Datapoints written (on ``root``; 0 on the other ranks).

    Raises
    ------
    HARDSError
        On every rank, if ``compute`` failed on any rank or the writer failed
        (the failing rank and its message are included); what earlier rounds
        stored stays stored.

    """
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = list(tasks[rank::size])
    rounds = comm.allreduce((len(mine) + batch - 1) // batch, op=MPI.MAX)
    db, target, error = _open_target(path, dataset) if rank == root else (None, None, None)
    # a writer that cannot start stops every rank (rather than leave them waiting)
    error = comm.bcast(None if error is None else f"rank {root}: {error}", root=root)
    written = stored = 0
    try:
        for r in range(rounds if error is None else 0):
            results: list[Result] = []
            failed = None
            try:
                results = [compute(t) for t in mine[r * batch : (r + 1) * batch]]
            except Exception as exc:  # noqa: BLE001 - reported to every rank below
                failed = f"compute on rank {rank}: {type(exc).__name__}: {exc}"
            gathered = comm.gather((failed, results), root=root)
            if target is not None and db is not None:
                error = next((e for e, _ in gathered if e is not None), None)
                try:
                    if error is None:
                        written += _store(target, [res for _, res in gathered])
                        db.flush()
                except Exception as exc:  # noqa: BLE001 - every rank must hear of it
                    error = f"rank {root}: {type(exc).__name__}: {exc}"
            error, stored = comm.bcast((error, written), root=root)
            if error is not None:
                break
    finally:
        if db is not None:
            db.close()
    comm.Barrier()  # the writer has closed the file: others may open it now
    if error is not None:
        msg = f"write_campaign failed ({stored} datapoints stored before): {error}"
        raise HARDSError(msg)
    return written


def _open_target(
    path: str | os.PathLike[str], dataset: str
) -> tuple[H5Database | None, H5Dataset | None, str | None]:
    """Open the campaign and its dataset on the writer rank, or say why it cannot."""
    db = None
    try:
        db = H5Database(path, "a")
        return db, _dataset(db, dataset), None
    except Exception as exc:  # noqa: BLE001 - every rank must hear of it
        if db is not None:
            db.close()
        return None, None, f"opening {path}: {type(exc).__name__}: {exc}"


def _store(target: H5Dataset, gathered: list[list[Result]]) -> int:
    """Store one round's results in task order (rank k's j-th is task ``j * size + k``)."""
    count = 0
    longest = max((len(results) for results in gathered), default=0)
    in_order = (res[j] for j in range(longest) for res in gathered if j < len(res))
    for name, data, files in in_order:
        point = target.create_datapoint(name)
        if data:
            point.add_data(dict(data))
        for file_name, file_path in files.items():
            point.add_file(Path(file_path), name=file_name)
        count += 1
    return count
