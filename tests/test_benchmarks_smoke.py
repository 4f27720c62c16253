"""The benchmark harness must keep running: a tiny, untimed smoke run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script; fail with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def _run_in(workdir: Path, script: str, options: str) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` with space-separated ``options`` and ``--workdir``."""
    return _run(HARNESS.parent / script, *options.split(), "--workdir", str(workdir))


def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = _run(HARNESS, "--quick", "--json", str(out))
    assert "## targets" in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) >= 8
    assert out.read_text().startswith("{")


def test_seal_benchmark_runs(tmp_path: Path) -> None:
    """bench_seals.py strips the seal from a copy and reads both (sizes too small to time)."""
    done = _run_in(tmp_path, "bench_seals.py", "--n 3000 --repeat 1")
    assert "1 seal array(s) removed" in done.stdout
    assert "sealed reads" in done.stdout


def test_write_memory_probe_runs(tmp_path: Path) -> None:
    """probe_write_memory.py runs both chains (sizes too small to show anything)."""
    done = _run_in(tmp_path, "probe_write_memory.py", "--mib 2 --steps 4")
    assert "delete at once:" in done.stdout
    assert "keep every 4th:" in done.stdout
    assert "k" in done.stdout.split("keep every 4th:")[1]


def test_preconditions_probe_runs(tmp_path: Path) -> None:
    """probe_preconditions.py times cp and get_file after every preparation (too small to show)."""
    done = _run_in(tmp_path, "probe_preconditions.py", "--mib 2 --rounds 1 --settle 0")
    rows = done.stdout.splitlines()
    for name in ("nothing", "cp deleted", "touched (huge pages)", "touched, then cp deleted"):
        assert any(row.strip().startswith(name) for row in rows), done.stdout
    assert "most memory reported to the host" in done.stdout
    assert not list(tmp_path.iterdir())  # its scratch directory is gone
