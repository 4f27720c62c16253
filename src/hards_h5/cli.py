"""The ``hards-h5`` command: inspect, demo and maintain campaign files.

Nothing in the library imports this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import click
from hards.api import DoesNotExistError, HARDSError
from rich.console import Console
from rich.progress import Progress, TaskID

from hards_h5 import __version__, _layout, _merge, _migrate, _recover
from hards_h5._demo import estimate_pi, write_demo
from hards_h5._nodes import H5Database, H5Datapoint, H5Dataset, iter_datasets
from hards_h5._query import parse_filter

__all__ = ["main"]

_PATH = click.Path(path_type=Path)


_HELP = """Inspect and maintain hards-h5 campaign files (HARDS on one HDF5 file).

\b
Start here:
  hards-h5 demo campaign.h5         write and show a demo campaign
  hards-h5 tree campaign.h5         its datasets
  hards-h5 find campaign.h5 random '{"x": {"$gt": 0.9}}'

Every command has --help with an example.
"""


@click.group(help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
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
    _new_file(file)
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
@click.option(
    "--depth", type=click.IntRange(min=0), default=None, help="Show datasets this deep at most."
)
def tree(file: Path, path: str | None, depth: int | None) -> None:
    """Show the datasets of FILE (or below PATH) with datapoint and file counts.

    Example: hards-h5 tree campaign.h5 random --depth 1
    """
    with H5Database(file, "r") as db:
        _print_tree(db, path, depth)


@cli.command()
@click.argument("file", type=_PATH)
def info(file: Path) -> None:
    """Show FILE's format version, counts, sizes and writer state.

    Example: hards-h5 info campaign.h5
    """
    flags = _recover.preflight(file)
    if flags:
        click.echo(_recover.left_open_problem(file, flags))
        raise click.exceptions.Exit(1)
    with H5Database(file, "r") as db:
        datasets = list(iter_datasets(db))
        points = sum(len(d.datapoints) for d in datasets)
        files = sum(len(d.files) for d in datasets)
        h5 = db._file()  # noqa: SLF001 - read-only facts about the container
        version = int(h5.attrs[_layout.ATTR_FORMAT])
        creator = h5.attrs.get(_layout.ATTR_CREATOR, "?")
        blob_bytes = int(h5[_layout.BLOBS].shape[0])
        for d in datasets:
            files += sum(len(d.get_datapoint(n).files) for n in d.datapoints)
    rows = [
        ("format version", str(version)),
        ("written by", str(creator)),
        ("file size", f"{file.stat().st_size:,} bytes"),
        ("datasets", str(len(datasets))),
        ("datapoints", str(points)),
        ("attached files", str(files)),
        ("attached bytes stored", f"{blob_bytes:,}"),
        ("writer state", "closed cleanly (no writer)"),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo(str(file))
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")


def _node(db: H5Database, path: str) -> H5Dataset | H5Datapoint:
    try:
        return db.recursively_get_dataset(path)
    except DoesNotExistError:
        pass
    try:
        return db.recursively_get_datapoint(path)
    except DoesNotExistError:
        msg = f"{db.path}: no dataset or datapoint {path!r}"
        raise DoesNotExistError(msg) from None


@cli.command()
@click.argument("file", type=_PATH)
@click.argument("path")
def show(file: Path, path: str) -> None:
    """Print the data (as JSON) and files of the dataset or datapoint PATH.

    Example: hards-h5 show campaign.h5 random/sample-000042
    """
    with H5Database(file, "r") as db:
        node = _node(db, path)
        kind = "dataset" if isinstance(node, H5Dataset) else "datapoint"
        click.echo(f"{kind} {node.fullname()}")
        click.echo(json.dumps(node.data, indent=2, ensure_ascii=False))
        if isinstance(node, H5Dataset):
            click.echo(f"datapoints: {len(node.datapoints)}  child datasets: {node.children}")
        for name in node.files:
            click.echo(f"file {name}  ({node.get_file(name).stat().st_size:,} bytes)")


@cli.command()
@click.argument("file", type=_PATH)
@click.argument("path")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=_PATH,
    help="Where to write it; a directory means DIR/NAME (default: ./NAME).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def get(file: Path, path: str, name: str, output: Path | None, force: bool) -> None:
    """Extract the file NAME attached to the dataset or datapoint PATH.

    Example: hards-h5 get campaign.h5 random/sample-000000 sample.txt -o here.txt
    """
    target = output or Path(name)
    if target.is_dir():
        target /= name  # like cp: into the directory
    if target.exists() and not force:
        _fail(f"{target} exists; use --force to overwrite it")
    if not target.parent.is_dir():
        _fail(f"{target}: directory {target.parent} does not exist")
    with H5Database(file, "r") as db:
        cached = _node(db, path).get_file(name)
        shutil.copyfile(cached, target)
    click.echo(f"wrote {target} ({target.stat().st_size:,} bytes)")


@cli.command()
@click.argument("file", type=_PATH)
@click.argument("dataset")
@click.argument("spec", metavar="FILTER")
@click.option(
    "--own",
    is_flag=True,
    help="Only the dataset's own datapoints, not its parents' (parents=False in Python).",
)
@click.option("--data", "with_data", is_flag=True, help="Print each match's data too.")
def find(file: Path, dataset: str, spec: str, own: bool, with_data: bool) -> None:
    """List the datapoints of DATASET whose data match FILTER (a JSON filter).

    FILTER examples: '{"inside": true}', '{"x": {"$gt": 0.5}}',
    '{"$or": [{"x": {"$lt": 0.1}}, {"y": {"$lt": 0.1}}]}'.

    Example: hards-h5 find campaign.h5 random/extended '{"x": {"$gt": 0.9}}'
    """
    query = parse_filter(spec)
    with H5Database(file, "r") as db:
        hits = db.recursively_get_dataset(dataset).find(query, parents=not own)
        for point in hits:
            if with_data:
                click.echo(f"{point.fullname()}\t{json.dumps(point.data, ensure_ascii=False)}")
            else:
                click.echo(point.fullname())
    if sys.stderr.isatty():
        click.echo(f"{len(hits)} matching datapoints", err=True)


@cli.command("export")
@click.argument("file", type=_PATH)
@click.argument("directory", type=_PATH)
def export_cmd(file: Path, directory: Path) -> None:
    """Write FILE as a seed-format directory DIRECTORY (hards.filesystem opens it).

    Example: hards-h5 export campaign.h5 campaign-dir
    """
    with _bar("export") as advance:
        report = _migrate.export_seed(file, directory, progress=advance)
    click.echo(f"wrote {directory}: {_counts(report.datasets, report.datapoints, report.files)}")


@cli.command("import")
@click.argument("directory", type=_PATH)
@click.argument("file", type=_PATH)
def import_cmd(directory: Path, file: Path) -> None:
    """Read the seed-format directory DIRECTORY into a new campaign FILE.

    Example: hards-h5 import old-campaign-dir campaign.h5
    """
    _new_file(file)
    with _bar("import") as advance:
        report = _migrate.import_seed(directory, file, progress=advance)
    click.echo(f"wrote {file}: {_counts(report.datasets, report.datapoints, report.files)}")


_BAR_AFTER_SECONDS = 0.5
_BAR_FROM_UNITS = 1000


@contextlib.contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback that draws a bar on a terminal.

    The bar appears once the work is big (``total`` of at least 1000 units) or
    has taken more than half a second; when stderr is not a terminal nothing
    is drawn at all.
    """
    if not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        shown: list[tuple[Progress, TaskID]] = []

        def advance(done: int, total: int) -> None:
            if not shown:
                if total < _BAR_FROM_UNITS and time.monotonic() - start < _BAR_AFTER_SECONDS:
                    return
                bar = stack.enter_context(Progress(transient=True, console=Console(stderr=True)))
                shown.append((bar, bar.add_task(label, total=total)))
            bar, task = shown[0]
            bar.update(task, completed=done, total=total)

        yield advance


@cli.command()
@click.argument("file", type=_PATH)
def check(file: Path) -> None:
    """Verify FILE: structure, format version, record CRCs, seals, JSON and file SHA-256s.

    Exits 1 and lists every problem if anything is wrong.

    Example: hards-h5 check campaign.h5
    """
    with _bar("check") as advance:
        report = _recover.check(file, progress=advance)
    if report.format_version:  # 0: the file could not be read at all
        click.echo(
            f"{file}: format {report.format_version}, "
            f"{_counts(report.datasets, report.datapoints, report.files)} "
            f"({_count(report.file_bytes, 'byte')})"
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
    with _bar("compact") as advance:
        report = _recover.compact(file, progress=advance)
    click.echo(
        f"{file}: {report.bytes_before} -> {report.bytes_after} bytes "
        f"({_counts(report.datasets, report.datapoints, report.files)})"
    )


@cli.command()
@click.argument("file", type=_PATH)
@click.option(
    "--force", is_flag=True, help="Rewrite FILE even if it was closed cleanly and is undamaged."
)
def recover(file: Path, force: bool) -> None:
    """Bring back FILE after its writer died; the original is kept as FILE.bak-TIME.

    Clears the stale writer flag and salvages every committed dataset, datapoint,
    data value and intact file into a clean file that replaces FILE atomically.
    Run it only when no process is writing FILE (it refuses if one has it open).
    A file closed cleanly that passes 'check' is left alone unless --force is given.

    Example: hards-h5 recover campaign.h5
    """
    with _bar("recover") as advance:
        report = _recover.recover(file, force=force, progress=advance)
    if not report.rewritten:
        click.echo(
            f"{file}: closed cleanly and undamaged ({_count(report.datapoints, 'datapoint')}, "
            f"{_count(report.files, 'file')}); nothing to recover, file left as it was"
        )
        return
    click.echo(
        f"{file}: recovered {_counts(report.datasets, report.datapoints, report.files)}; "
        f"original kept as {report.backup}"
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
    with _bar("merge") as advance:  # (a conflict is a HARDSError: main() reports it)
        report = _merge.merge(out, inputs, timeout=timeout, progress=advance)
    click.echo(
        f"{out}: merged {_count(len(inputs), 'file')}: "
        f"+{_counts(report.datasets, report.datapoints, report.files, sep=', +')} "
        f"({_count(report.skipped_identical, 'identical entry', 'identical entries')} skipped)"
    )


def _fail(message: str) -> NoReturn:
    """Stop with ``hards-h5: error: MESSAGE`` and exit status 1."""
    click.echo(f"hards-h5: error: {message}", err=True)
    raise click.exceptions.Exit(1)


def _new_file(file: Path) -> None:
    if os.path.lexists(file):
        _fail(f"{file}: already exists; give a new file name (hards-h5 never writes over a file)")


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 datapoint``, ``2 datapoints``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _counts(datasets: int, datapoints: int, files: int, *, sep: str = ", ") -> str:
    parts = (_count(datasets, "dataset"), _count(datapoints, "datapoint"), _count(files, "file"))
    return sep.join(parts)


def _summary(dataset: H5Dataset) -> str:
    """``(1000 datapoints, 1 file)``: a dataset's own datapoints and files."""
    files = len(dataset.files)
    extra = f", {_count(files, 'file')}" if files else ""
    return f"({_count(len(dataset.datapoints), 'datapoint')}{extra})"


def _print_tree(db: H5Database, path: str | None, depth: int | None = None) -> None:
    root: H5Database | H5Dataset = db.recursively_get_dataset(path) if path else db
    click.echo(
        f"{db.path}" if isinstance(root, H5Database) else f"{root.fullname()}  {_summary(root)}"
    )

    def walk(node: H5Database | H5Dataset, prefix: str, level: int) -> None:
        if depth is not None and level >= depth:
            return
        names = node.children
        for i, name in enumerate(names):
            child = node.get_dataset(name)
            last = i == len(names) - 1
            click.echo(f"{prefix}{'└── ' if last else '├── '}{name}  {_summary(child)}")
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
