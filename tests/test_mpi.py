"""MPI: the distributed Monte Carlo pi example under a real mpiexec -n 4."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hards_h5 import H5Database

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "mpi_pi.py"
BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

pytestmark = pytest.mark.mpi
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None and not os.environ.get("HARDS_H5_REQUIRE_MPI"),  # .ci/run sets it
    reason="mpiexec not installed (pip install mpi4py mpich; .ci/run installs it)",
)


class FakeComm:
    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size


def test_split_covers_everything_once() -> None:
    mpi = pytest.importorskip("hards_h5.mpi")
    items = list(range(10))
    shares = [mpi.split(FakeComm(r, 4), items) for r in range(4)]
    assert [len(s) for s in shares] == [3, 3, 2, 2]
    assert [x for share in shares for x in share] == items


@needs_mpi
def test_mpi_pi_example_on_four_ranks(tmp_path: Path) -> None:
    out = tmp_path / "pi.h5"
    assert MPIEXEC is not None, "HARDS_H5_REQUIRE_MPI is set but mpiexec is not on PATH"
    done = subprocess.run(
        [MPIEXEC, "-n", "4", sys.executable, str(EXAMPLE), str(out), "--samples", "4000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rank 0 wrote 4000 samples computed by 4 ranks" in done.stdout
    assert "from 4000 samples on 4 ranks" in done.stdout
    estimate = float(done.stdout.split("pi ~ ")[1].split()[0])
    assert abs(estimate - 3.14159) < 0.15
    with H5Database(out, "r") as db:
        names = db.get_dataset("random").datapoints
        assert names == [f"sample-{i:07d}" for i in range(4000)]  # task order
        inside = sum(
            p.data["inside"] for p in db.get_dataset("random").recursively_get_datapoints()
        )
    assert estimate == pytest.approx(4 * inside / 4000)


CAMPAIGN = """
import operator, sys
from pathlib import Path
from mpi4py import MPI
from hards_h5 import HARDSError, mpi
out, scratch = sys.argv[1], Path(sys.argv[2])
comm = MPI.COMM_WORLD
rank = comm.Get_rank()

def compute(i):
    note = scratch / f"note-{i}.txt"
    note.write_text(f"task {i} on rank {rank}\\n" * (i + 1))
    return f"t{i:03d}", {"i": i, "rank": rank}, {"note.txt": note}

written = mpi.write_campaign(comm, out, "outer/inner", range(30), compute, batch=4)
print(f"rank {rank} wrote {written}", flush=True)
try:  # the same names again: the writer fails, and every rank hears about it
    mpi.write_campaign(comm, out, "outer/inner", range(3), compute)
except HARDSError as exc:
    print(f"rank {rank} error: {exc}", flush=True)

def flaky(i):
    if i == 9:
        raise ValueError("simulation diverged")
    return f"f{i:03d}", {"i": i}, {}

try:  # compute fails on rank 1 in round 2: every rank raises, rounds before stay
    mpi.write_campaign(comm, out, "flaky", range(40), flaky, batch=2)
except HARDSError as exc:
    print(f"rank {rank} compute-error: {exc}", flush=True)

try:  # the writer fails on a malformed result (files not a dict): every rank hears it
    mpi.write_campaign(comm, out, "malformed", range(4), lambda i: (f"m{i}", {}, ["x"]))
except HARDSError as exc:
    print(f"rank {rank} store-error: {exc}", flush=True)

try:  # the writer cannot even start (a bad dataset name): every rank raises at once
    mpi.write_campaign(comm, out, "bad name", range(8), compute)
except HARDSError as exc:
    print(f"rank {rank} start-error: {exc}", flush=True)

total = mpi.map_reduce(comm, out, "outer/inner", lambda p: p.data["i"], operator.add, initial=0)
print(f"rank {rank} sum {total}", flush=True)

def fragile(point):
    if rank == 2:
        raise ValueError("bad datapoint")
    return 1

try:  # one rank fails: every rank raises, none hangs
    mpi.map_reduce(comm, out, "outer/inner", fragile, operator.add, initial=0)
except HARDSError as exc:
    print(f"rank {rank} reduce-error: {exc}", flush=True)
try:  # a file one rank cannot open: every rank raises, none hangs
    with mpi.open_readonly(comm, out if rank else scratch / "missing.h5"):
        pass
except HARDSError as exc:
    print(f"rank {rank} open-error: {exc}", flush=True)
"""


@needs_mpi
def test_write_campaign_files_nested_dataset_and_errors(tmp_path: Path) -> None:
    assert MPIEXEC is not None, "HARDS_H5_REQUIRE_MPI is set but mpiexec is not on PATH"
    out = tmp_path / "campaign.h5"
    done = subprocess.run(
        [MPIEXEC, "-n", "4", sys.executable, "-c", CAMPAIGN, str(out), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rank 0 wrote 30" in done.stdout
    assert all(f"rank {r} wrote 0" in done.stdout for r in (1, 2, 3))
    # ranks print concurrently, so lines may interleave: match anywhere
    failed = re.findall(
        r"rank (\d) error: write_campaign failed \(0 datapoints stored before\): rank 0: (\w+)",
        done.stdout,
    )
    assert sorted(failed) == [(str(r), "AlreadyExistsError") for r in range(4)]
    failed = re.findall(
        r"rank (\d) compute-error: write_campaign failed \((\d+) datapoints stored before\): compute on rank 1: ValueError",
        done.stdout,
    )
    assert sorted(failed) == [(str(r), "8") for r in range(4)]
    started = re.findall(
        r"rank (\d) start-error: write_campaign failed \(0 datapoints stored before\): "
        r"rank 0: opening \S+: NameValidationError",
        done.stdout,
    )
    assert sorted(started) == ["0", "1", "2", "3"]
    stored = re.findall(r"rank (\d) store-error: .*?rank 0: AttributeError", done.stdout)
    assert sorted(stored) == ["0", "1", "2", "3"]
    assert sorted(re.findall(r"rank (\d) sum (\d+)", done.stdout)) == [
        (str(r), str(sum(range(30)))) for r in range(4)
    ]
    reduce_errors = re.findall(r"rank (\d) reduce-error: .*?rank 2: ValueError", done.stdout)
    assert sorted(reduce_errors) == ["0", "1", "2", "3"]
    open_errors = re.findall(r"rank (\d) open-error: .*?rank 0: \w+", done.stdout)
    assert sorted(open_errors) == ["0", "1", "2", "3"]
    with H5Database(out, "r") as db:
        inner = db.recursively_get_dataset("outer/inner")
        assert inner.datapoints == [f"t{i:03d}" for i in range(30)]  # task order
        assert db.get_dataset("flaky").datapoints == [f"f{i:03d}" for i in range(8)]
        for i in range(30):
            point = inner.get_datapoint(f"t{i:03d}")
            assert point.data == {"i": i, "rank": i % 4}
            text = point.get_file("note.txt").read_text()
            assert text == f"task {i} on rank {i % 4}\n" * (i + 1)


@needs_mpi
def test_mpi_pi_example_refuses_an_existing_file_in_one_line(tmp_path: Path) -> None:
    """Re-running the example on its own output: one clear line, every rank exits 1."""
    assert MPIEXEC is not None, "HARDS_H5_REQUIRE_MPI is set but mpiexec is not on PATH"
    out = tmp_path / "pi.h5"
    command = [MPIEXEC, "-n", "2", sys.executable, str(EXAMPLE), str(out), "--samples", "200"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 1
    assert "Traceback" not in again.stdout + again.stderr
    assert again.stderr.strip() == f"error: {out} already exists; pass a new path or remove it"
    assert out.read_bytes() == before  # not touched


def _import_mpi_in_child(
    env: dict[str, str], prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    code = (
        f"{prelude}\n"
        "from hards_h5 import MissingDependencyError\n"
        "try:\n"
        "    import hards_h5.mpi\n"
        "except MissingDependencyError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def test_missing_mpi_library_says_what_to_install(tmp_path: Path) -> None:
    """mpi4py without a loadable libmpi (pip install mpi4py on a bare machine)."""
    pytest.importorskip("mpi4py")
    done = _import_mpi_in_child({"MPI4PY_LIBMPI": str(tmp_path / "no" / "libmpi.so")})
    assert done.returncode == 0, done.stderr
    assert "mpi4py is installed but finds no MPI library (libmpi.so): pip install mpich" in (
        done.stdout
    )


def test_missing_mpi4py_says_what_to_install() -> None:
    done = _import_mpi_in_child({}, prelude="import sys; sys.modules['mpi4py'] = None")
    assert done.returncode == 0, done.stderr
    assert "needs mpi4py and an MPI library: pip install 'hards-h5[mpi]'" in done.stdout
