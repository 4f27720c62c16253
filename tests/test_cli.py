"""The hards-h5 command line: every verb, its help, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from cli_runner import hards
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


def test_tree_and_depth(demo: Path) -> None:
    out = hards("tree", str(demo)).stdout
    assert "random  (300 datapoints, 1 file)" in out
    assert "extended  (600 datapoints, 1 file)" in out
    shallow = hards("tree", str(demo), "--depth", "1").stdout
    assert "extended" not in shallow
    sub = hards("tree", str(demo), "random").stdout
    assert "quasi_random" not in sub


def test_info_show_get_find(demo: Path, tmp_path: Path) -> None:
    info = hards("info", str(demo)).stdout
    assert "format version         1" in info
    assert "datapoints             1200" in info
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


def test_usage_errors_show_usage_not_a_traceback(demo: Path) -> None:
    done = hards("tree", str(demo), "--depth", "-1")
    assert done.returncode == 2
    assert "Invalid value for '--depth'" in done.stderr
    assert "Try 'hards-h5 tree --help'" in done.stderr
    assert "Traceback" not in done.stderr
