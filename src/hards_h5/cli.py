"""The ``hards-h5`` command: inspect, demo and maintain campaign files.

Nothing in the library imports this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from hards.api import HARDSError

from hards_h5 import __version__, _merge, _recover
from hards_h5._demo import estimate_pi, write_demo
from hards_h5._nodes import H5Database, H5Dataset

__all__ = ["main"]

_PATH = click.Path(path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hards-h5")
def cli() -> None:
    """Inspect and maintain hards-h5 campaign files (HARDS on one HDF5 file)."""


@cli.command()
@click.argument("file", type=_PATH)
@click.option("--samples", default=1000, show_default=True, help="Samples per dataset.")
def demo(file: Path, samples: int) -> None:
    """Write the Monte Carlo pi demo campaign to FILE, then show it.

    Example: hards-h5 demo campaign.h5
    """
    write_demo(file, samples=samples)
    click.echo(f"wrote {file}")
    with H5Database(file, "r") as db:
        _print_tree(db, None)
        click.echo("")
        for path in ("random", "random/extended", "quasi_random"):
            estimate = estimate_pi(db.recursively_get_dataset(path))
            click.echo(f"pi from {path:<16} {estimate.samples:>6} samples: {estimate.value:.5f}")


@cli.command()
@click.argument("file", type=_PATH)
@click.argument("path", required=False)
@click.option("--depth", type=int, default=None, help="Show datasets this deep at most.")
def tree(file: Path, path: str | None, depth: int | None) -> None:
    """Show the datasets of FILE (or below PATH) with datapoint and file counts.

    Example: hards-h5 tree campaign.h5 random --depth 1
    """
    with H5Database(file, "r") as db:
        _print_tree(db, path, depth)


@cli.command()
@click.argument("file", type=_PATH)
def check(file: Path) -> None:
    """Verify FILE: structure, format version, record CRCs, JSON and file SHA-256s.

    Exits 1 and lists every problem if anything is wrong.

    Example: hards-h5 check campaign.h5
    """
    report = _recover.check(file, progress=_progress)
    click.echo(
        f"{file}: format {report.format_version}, {report.datasets} datasets, "
        f"{report.datapoints} datapoints, {report.files} files ({report.file_bytes} bytes)"
    )
    if report.ok:
        click.echo("OK: no problems found")
        return
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    raise click.exceptions.Exit(1)


@cli.command()
@click.argument("file", type=_PATH)
def compact(file: Path) -> None:
    """Rewrite FILE without dead space (atomically: temp file, fsync, rename).

    Example: hards-h5 compact campaign.h5
    """
    report = _recover.compact(file, progress=_progress)
    click.echo(
        f"{file}: {report.bytes_before} -> {report.bytes_after} bytes "
        f"({report.datasets} datasets, {report.datapoints} datapoints, {report.files} files)"
    )


@cli.command()
@click.argument("file", type=_PATH)
def recover(file: Path) -> None:
    """Bring back FILE after its writer died; the original is kept as FILE.bak-TIME.

    Clears the stale writer flag and salvages every committed dataset, datapoint,
    data value and intact file into a clean file that replaces FILE atomically.
    Run it only when no process is writing FILE (it refuses if one has it open).

    Example: hards-h5 recover campaign.h5
    """
    report = _recover.recover(file, progress=_progress)
    click.echo(
        f"{file}: recovered {report.datasets} datasets, {report.datapoints} datapoints, "
        f"{report.files} files; original kept as {report.backup}"
    )
    for line in report.dropped:
        click.echo(f"DROPPED: {line}", err=True)


@cli.command("merge")
@click.argument("out", type=_PATH)
@click.argument("inputs", nargs=-1, required=True, type=_PATH)
@click.option("--timeout", type=float, default=None, help="Seconds to wait for OUT's lock.")
def merge_cmd(out: Path, inputs: tuple[Path, ...], timeout: float | None) -> None:
    """Fold the shard files INPUTS into OUT (created if missing).

    Datasets are matched by path and datapoints by name; data keys or files that
    two sources give different values are reported and nothing is written.

    Example: hards-h5 merge campaign.h5 shard-rank0.h5 shard-rank1.h5
    """
    try:
        report = _merge.merge(out, inputs, timeout=timeout, progress=_progress)
    except _merge.MergeConflictError as exc:
        click.echo(f"hards-h5: error: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(
        f"{out}: merged {len(inputs)} files: +{report.datasets} datasets, "
        f"+{report.datapoints} datapoints, +{report.files} files "
        f"({report.skipped_identical} identical entries skipped)"
    )


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(f"  {message}", err=True)


def _print_tree(db: H5Database, path: str | None, depth: int | None = None) -> None:
    root: H5Database | H5Dataset = db.recursively_get_dataset(path) if path else db
    click.echo(f"{db.path}" if root is db else root.fullname())

    def walk(node: H5Database | H5Dataset, prefix: str, level: int) -> None:
        if depth is not None and level >= depth:
            return
        names = node.children
        for i, name in enumerate(names):
            child = node.get_dataset(name)
            last = i == len(names) - 1
            files = f", {len(child.files)} files" if child.files else ""
            click.echo(
                f"{prefix}{'└── ' if last else '├── '}{name}  "
                f"({len(child.datapoints)} datapoints{files})"
            )
            walk(child, prefix + ("    " if last else "│   "), level + 1)

    walk(root, "", 0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (errors are one line, no traceback)."""
    try:
        status = cli.main(args=argv, prog_name="hards-h5", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (HARDSError, OSError) as exc:
        click.echo(f"hards-h5: error: {exc}", err=True)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
