"""The docs tell the truth: getting-started runs as written, h5ls shows what inspect.md shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def _blocks(page: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((DOCS / page).read_text())]


def _hards_h5(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("hards-h5")
    cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "hards_h5.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _shell_words(line: str) -> list[str]:
    import shlex

    return shlex.split(line, comments=True)


def test_getting_started_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    blocks = _blocks("getting-started.md")
    script = "\n".join(code for lang, code in blocks if lang == "python")
    assert "to_dataframe" in script
    assert "find(" in script
    (tmp_path / "walkthrough.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "walkthrough.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr
    assert "50 own datapoints, 250 with inherited ones" in done.stdout
    assert "pi is about" in done.stdout
    assert (tmp_path / "campaign.png").stat().st_size > 0

    commands = [
        _shell_words(line)
        for lang, code in blocks
        if lang == "bash"
        for line in code.splitlines()
        if line.startswith("hards-h5 ")
    ]
    assert len(commands) >= 6
    for words in commands:
        result = _hards_h5(words[1:], tmp_path)
        assert result.returncode == 0, (words, result.stderr)
        assert "Traceback" not in result.stderr
    assert (tmp_path / "settings-copy.toml").read_text() == "samples = 200\nseed = 1\n"

    shown_tree = next(code for lang, code in blocks if lang == "text" and "└──" in code)
    assert _hards_h5(["tree", "campaign.h5"], tmp_path).stdout == shown_tree


def _shown_output(page: str, command: str) -> str:
    """The text block of ``page`` that starts with ``$ command``, without that line."""
    for lang, code in _blocks(page):
        if lang == "text" and code.startswith(f"$ {command}\n"):
            return code.split("\n", 1)[1]
    pytest.fail(f"{page} shows no output of {command!r}")


@pytest.mark.skipif(
    shutil.which("h5ls") is None, reason="h5ls missing (apt-get install hdf5-tools)"
)
def test_inspect_page_shows_real_h5ls_output(tmp_path: Path) -> None:
    assert _hards_h5(["demo", "--samples", "100", "campaign.h5"], tmp_path).returncode == 0
    listing = subprocess.run(
        ["h5ls", "-r", "campaign.h5"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert listing.startswith(_shown_output("inspect.md", "h5ls -r campaign.h5 | head"))
    # The whole tree of a small demo campaign (3 samples per dataset).
    assert _hards_h5(["demo", "--samples", "3", "small.h5"], tmp_path).returncode == 0
    listing = subprocess.run(
        ["h5ls", "-r", "small.h5"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert listing == _shown_output("inspect.md", "h5ls -r small.h5")
    info = _hards_h5(["info", "campaign.h5"], tmp_path).stdout
    shown = _shown_output("inspect.md", "hards-h5 info campaign.h5")

    def stable(text: str) -> list[str]:
        return [line for line in text.splitlines() if "file size" not in line]

    assert stable(info) == stable(shown)


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    readme = (DOCS.parent / "README.md").read_text()
    (code,) = [m.group(2) for m in FENCE.finditer(readme) if m.group(1) == "python"][:1]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HARDS_H5_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    assert "'monte_carlo/bayes_opt/step.1', 'monte_carlo/run.0001'" in done.stdout
