"""The hards-h5 command line: every verb, its help, and one-line errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import h5py
import pytest

from cli_runner import hards, python_child
from hards_h5 import H5Database, H5Dataset
from hards_h5.cli import cli

VERBS = [
    "demo",
    "tree",
    "info",
    "show",
    "get",
    "find",
    "export",
    "import",
    "merge",
    "check",
    "compact",
    "recover",
    "watch",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demo.h5"
    done = hards("demo", str(path), "--samples", "300")
    assert done.returncode == 0, done.stderr
    assert "pi from random/extended" in done.stdout
    return path


def test_every_verb_has_help_with_an_example() -> None:
    assert sorted(cli.commands) == sorted(VERBS)
    for verb in VERBS:
        done = hards(verb, "--help")
        assert done.returncode == 0
        assert "Example: hards-h5" in done.stdout, verb


def _files_of(dataset: H5Dataset) -> tuple[int, int]:
    """Files on ``dataset`` and its own datapoints, and their bytes, through the API."""
    nodes = [dataset, *(dataset.get_datapoint(n) for n in dataset.datapoints)]
    paths = [node.get_file(name) for node in nodes for name in node.files]
    return len(paths), sum(p.stat().st_size for p in paths)


def test_tree_and_depth(demo: Path) -> None:
    with H5Database(demo, "r") as db:
        random_files = _files_of(db.get_dataset("random"))
        extended_files = _files_of(db.recursively_get_dataset("random/extended"))
    assert random_files[0] > 1  # the demo attaches files to datapoints too
    out = hards("tree", str(demo)).stdout
    assert f"random  300 datapoints, {random_files[0]} files ({random_files[1]} bytes)" in out
    assert f"extended  600 datapoints, {extended_files[0]} files" in out
    shallow = hards("tree", str(demo), "--depth", "1").stdout
    assert "extended" not in shallow
    sub = hards("tree", str(demo), "random").stdout
    assert "quasi_random" not in sub
    assert sub.splitlines()[0].startswith("random  300 datapoints, ")  # PATH's own counts


def test_info_show_get_find(demo: Path, tmp_path: Path) -> None:
    info = hards("info", str(demo)).stdout
    assert "format version         2" in info
    assert "datapoints             1200" in info
    assert "writer                 none: closed cleanly" in info
    assert "status flags" not in info  # HDF5 details only with --verbose
    shown = hards("show", str(demo), "random/sample-000000").stdout
    assert shown.startswith("datapoint random/sample-000000")
    assert '"inside"' in shown
    assert "file sample.txt" in shown
    target = tmp_path / "got.txt"
    got = hards("get", str(demo), "random/sample-000000", "sample.txt", "-o", str(target))
    assert got.returncode == 0
    assert target.read_text().startswith("sample sample-000000 of random")
    again = hards("get", str(demo), "random/sample-000000", "sample.txt", "-o", str(target))
    assert again.returncode != 0
    assert "--force" in again.stderr
    found = hards("find", str(demo), "random/extended", '{"x": {"$gt": 0.99}}', "--data")
    assert found.returncode == 0
    lines = found.stdout.splitlines()
    assert lines
    for line in lines:
        name, data = line.split("\t")
        assert json.loads(data)["x"] > 0.99
        assert name.startswith("random/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tree", "missing.h5"], "no such campaign file"),
        (["info", "notes.txt"], "not an HDF5 file"),
        (["show", "DEMO", "no/such"], "no dataset or datapoint"),
        (["find", "DEMO", "random", "{bad"], "not valid JSON"),
        (["find", "DEMO", "random", '{"x": {"$nope": 1}}'], "unknown operator"),
        (["tree", "foreign.h5"], "not a hards-h5 campaign file"),
        (["import", ".", "out.h5"], "not a hards.filesystem database"),
        (["demo", "DEMO"], "already exists"),
        (["tree", "DEMO", "no/such"], "has no dataset 'no'"),
        (["get", "DEMO", "random", "nope.txt"], "has no file 'nope.txt'"),
        (["find", "DEMO", "nope", "{}"], "has no dataset 'nope'"),
        (["export", "DEMO", "."], "already exists"),
        (["import", "no-such-dir", "out.h5"], "no such directory"),
        (["import", "notes.txt", "out.h5"], "not a directory"),
        (["import", ".", "DEMO"], "give a new file name"),
        (["check", "notes.txt"], "not an HDF5 file"),
        (["check", "foreign.h5"], "not a hards-h5 campaign file"),
        (["check", "missing.h5"], "no such campaign file"),
        (["compact", "foreign.h5"], "not a hards-h5 campaign file"),
        (["recover", "foreign.h5"], "not a hards-h5 campaign file"),
        (["recover", "notes.txt"], "not an HDF5 file"),
        (["merge", "out.h5", "DEMO", "missing.h5"], "no such campaign file"),
        (["get", "DEMO", "random", "demo.txt", "-o", "no-dir/x.txt"], "does not exist"),
        (["find", "DEMO", "random", '{"x": {"$type": ["int"]}}'], "$type must be one of"),
    ],
)
def test_errors_are_one_line(demo: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = [1, 2]
    done = hards(*[str(demo) if a == "DEMO" else a for a in args], cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.h5").exists()  # a failed command leaves nothing behind


def test_usage_errors_show_usage_not_a_traceback(demo: Path) -> None:
    done = hards("tree", str(demo), "--depth", "-1")
    assert done.returncode == 2
    assert "Invalid value for '--depth'" in done.stderr
    assert "Try 'hards-h5 tree --help'" in done.stderr
    assert "Traceback" not in done.stderr


def test_get_into_a_directory_and_existing_target(demo: Path, tmp_path: Path) -> None:
    args = ("get", str(demo), "random/sample-000000", "sample.txt")
    assert hards(*args, "-o", str(tmp_path)).returncode == 0  # like cp: DIR/NAME
    assert (tmp_path / "sample.txt").read_text().startswith("sample sample-000000")
    again = hards(*args, "-o", str(tmp_path))
    assert again.returncode == 1
    assert again.stderr.startswith("hards-h5: error:")
    assert "--force" in again.stderr
    assert hards(*args, "-o", str(tmp_path), "--force").returncode == 0


def test_recover_leaves_a_healthy_file_alone_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    assert hards("demo", str(path), "--samples", "10").returncode == 0
    before = path.stat()
    done = hards("recover", str(path))
    assert done.returncode == 0
    assert "nothing to recover" in done.stdout
    assert path.stat().st_ino == before.st_ino
    assert not list(tmp_path.glob("c.h5.bak-*"))
    forced = hards("recover", str(path), "--force")
    assert forced.returncode == 0
    assert "recovered 3 datasets, 40 datapoints" in forced.stdout
    assert len(list(tmp_path.glob("c.h5.bak-*"))) == 1


def test_maintenance_keeps_the_files_permissions(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    old = os.umask(0o022)
    try:
        assert hards("demo", str(path), "--samples", "10").returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the umask's, not mkstemp's 0o600
    path.chmod(0o664)
    for verb in ("compact", "recover"):
        assert hards(verb, str(path), "--force" if verb == "recover" else "--help").returncode == 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, verb


HOLD_OPEN = """
import sys, time
from hards_h5 import H5Database
db = H5Database(sys.argv[1])
print("OPEN", flush=True)
sys.stdin.readline()
db.close()
"""


def test_info_tells_a_running_writer_from_a_dead_one(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    assert hards("demo", str(path), "--samples", "10").returncode == 0
    writer = python_child(HOLD_OPEN, str(path))
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "OPEN"
        for verb in ("info", "check"):
            done = hards(verb, str(path))
            assert done.returncode == 1
            assert done.stderr.startswith(
                f"hards-h5: error: {path} is being written by a writer (pid {writer.pid} on host "
            ), verb
            assert "recover" not in done.stdout + done.stderr
            assert "status flags" not in done.stdout + done.stderr
    finally:
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(timeout=60)
    # (its stdin a pipe never written to: an inherited stdin at end of file, as under
    # CI, would let it close the file cleanly before the kill)
    writer = python_child(HOLD_OPEN, str(path))
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "OPEN"
    writer.kill()
    writer.wait()
    done = hards("check", str(path))  # check never writes: it names the stopped writer
    assert done.returncode == 1
    assert (
        f"{path} was left open by a writer that stopped; the next open recovers it "
        f"automatically (H5Database(path), or 'hards-h5 recover {path}')"
    ) in done.stderr
    done = hards("info", str(path))  # opens it: recovered, said once on stderr
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        f"hards-h5: warning: {path}: the previous writer (pid {writer.pid} on host "
    )
    assert "recovered automatically" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "none: closed cleanly" in done.stdout
    again = hards("info", str(path))
    assert again.returncode == 0
    assert again.stderr == ""
