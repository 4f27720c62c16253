"""The ``hards-h5`` command: inspect, demo and maintain campaign files.

Nothing in the library imports this module.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

import click
from hards.api import DoesNotExistError, HARDSError
from rich.console import Console
from rich.live import Live
from rich.progress import Progress, TaskID
from rich.table import Table

from hards_h5 import __version__
from hards_h5.api.nodes import H5Database, H5Datapoint, H5Dataset, iter_datasets
from hards_h5.api.query import parse_filter
from hards_h5.errors import AutoRecoveryWarning, DatabaseLockedError, RecoveryNeededError
from hards_h5.store import layout as _layout
from hards_h5.store import live as _live
from hards_h5.store import rewrite as _rewrite
from hards_h5.store import writer_info as _writer_info
from hards_h5.store.superblock import status_flags
from hards_h5.tools import maintenance as _recover
from hards_h5.tools import merge as _merge
from hards_h5.tools import migrate as _migrate
from hards_h5.tools.demo import estimate_pi, write_demo

__all__ = ["main"]

_PATH = click.Path(path_type=Path)


_HELP = """Inspect and maintain hards-h5 campaign files (HARDS on one HDF5 file).

\b
Start here:
  hards-h5 demo campaign.h5         write and show a demo campaign
  hards-h5 tree campaign.h5         its datasets
  hards-h5 find campaign.h5 random '{"x": {"$gt": 0.9}}'

  hards-h5 watch campaign.h5        follow a running (SWMR) campaign

Every command has --help with an example.
"""

_verbose = False  # set by --verbose (the command line runs one command per process)


@click.group(help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hards-h5")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also show HDF5 details: superblock status flags, and what HDF5 said on errors.",
)
def cli(verbose: bool) -> None:
    """Inspect and maintain hards-h5 campaign files (HARDS on one HDF5 file)."""
    global _verbose  # noqa: PLW0603 - one flag for the whole command
    _verbose = verbose


@dataclass(frozen=True)
class _OpenOptions:
    swmr: bool = False
    wait: bool = False
    timeout: float | None = None


_F = TypeVar("_F", bound=Callable[..., Any])
_OPEN_KEY = "hards_h5.open"


def _reading(f: _F) -> _F:
    """Give a read-only verb ``--swmr``, ``--wait`` and ``--timeout SECONDS``."""

    @click.option(
        "--swmr",
        is_flag=True,
        help="Read through SWMR (found by itself when a live writer has the file).",
    )
    @click.option("--wait", is_flag=True, help="If a writer has the file, wait until it closes.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help="Like --wait, for at most SECONDS.",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, swmr: bool, wait: bool, timeout: float | None, **kwargs: Any) -> Any:
        click.get_current_context().meta[_OPEN_KEY] = _OpenOptions(swmr, wait, timeout)
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


_RETRY_EVERY = 1.0  # seconds: while waiting, look again whether the writer went live


def _open(file: Path) -> H5Database:
    """Open ``file`` read-only for a reading verb, through SWMR when a live writer has it.

    A plain writer holding the file is one error line naming it (pid, host, since
    when, when it said so), unless ``--wait`` or ``--timeout`` asked to wait.
    """
    ctx = click.get_current_context(silent=True)
    opts: _OpenOptions = ctx.meta.get(_OPEN_KEY, _OpenOptions()) if ctx else _OpenOptions()
    limit = opts.timeout if opts.timeout is not None else (float("inf") if opts.wait else None)
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        live = opts.swmr or _writer_is_live(file)
        left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            return H5Database(
                file, "r", swmr=live, timeout=None if left is None else min(left, _RETRY_EVERY)
            )
        except RecoveryNeededError as exc:
            raise _left_open(file) from exc
        except DatabaseLockedError as exc:
            if live and not opts.swmr and not _writer_is_live(file):  # it just closed
                continue
            if deadline is None or time.monotonic() >= deadline:
                raise _locked(file, exc, opts) from exc


def _left_open(file: Path) -> HARDSError:
    """Return the error for a file whose writer flags are set: a writer now, or a stopped one."""
    flags = _rewrite.preflight(file)
    error = DatabaseLockedError if _live.in_use(file) else RecoveryNeededError
    return error(_with_flags(_rewrite.left_open_problem(file, flags), flags))


def _writer_is_live(file: Path) -> bool:
    """Whether a SWMR live writer has ``file`` open (its lock, or failing that its word)."""
    if _live.live_lock_present(file):
        return True
    info = _writer_info.read(file)
    return info is not None and info.live and _live.status_flags_set(file)


def _locked(file: Path, exc: DatabaseLockedError, opts: _OpenOptions) -> DatabaseLockedError:
    """Return the one-line error for a file a writer holds, with what to do."""
    if opts.timeout is not None:
        return DatabaseLockedError(
            f"{_writer_info.being_written(file, live=False)}; it did not close within "
            f"{opts.timeout:g} s"
        )
    if opts.wait:  # (only an impossible open gets here: the lock held by this process)
        return exc
    return DatabaseLockedError(
        f"{_writer_info.being_written(file, live=False)}; wait for it to close with "
        "--wait (or --timeout SECONDS)"
    )


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
@_reading
def tree(file: Path, path: str | None, depth: int | None) -> None:
    """Show the datasets of FILE (or below PATH) with datapoint and file counts.

    A dataset's files count its own and its datapoints' attached files, with
    their total size.

    Example: hards-h5 tree campaign.h5 random --depth 1
    """
    with _open(file) as db:
        _print_tree(db, path, depth)


@cli.command()
@click.argument("file", type=_PATH)
@_reading
def info(file: Path) -> None:
    """Show FILE's format version, counts, sizes and writer state.

    Example: hards-h5 info campaign.h5
    """
    _rewrite.preflight(file)
    with _open(file) as db:
        flags = status_flags(file)  # (after the open, which recovers a stopped writer's)
        datasets = list(iter_datasets(db))
        points = sum(len(d.datapoints) for d in datasets)
        files = sum(_file_totals(d)[0] for d in datasets)
        h5 = db.store.file()  # read-only facts about the container
        version = int(h5.attrs[_layout.ATTR_FORMAT])
        creator = h5.attrs.get(_layout.ATTR_CREATOR, "?")
        blob_bytes = int(db.store.blobs().shape[0])
        live = db.swmr_mode
    rows = [
        ("format version", str(version)),
        ("written by", str(creator)),
        ("file size", f"{file.stat().st_size:,} bytes"),
        ("datasets", str(len(datasets))),
        ("datapoints", str(points)),
        ("attached files", str(files)),
        ("attached bytes stored", f"{blob_bytes:,}"),
        ("writer", _writer_state(file, live=live, left_open=bool(flags))),
    ]
    if _verbose:
        rows.append(("superblock status flags", f"{flags:#x}"))
    width = max(len(k) for k, _ in rows)
    click.echo(str(file))
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")


def _writer_state(file: Path, *, live: bool, left_open: bool) -> str:
    """Return the writer row of ``info``, in the shared words (see docs/cli.md)."""
    if not live:
        return "left open by a writer that stopped" if left_open else "none: closed cleanly"
    info = _writer_info.read(file)
    who = f" ({info.describe()})" if info is not None else ""
    return f"a live (SWMR) writer is running{who}; follow it with 'hards-h5 watch {file}'"


def _with_flags(message: str, flags: int) -> str:
    """Add the HDF5 superblock status flags to ``message`` under --verbose."""
    return f"{message} (HDF5 superblock status flags {flags:#x})" if _verbose else message


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
@_reading
def show(file: Path, path: str) -> None:
    """Print the data (as JSON) and files of the dataset or datapoint PATH.

    Example: hards-h5 show campaign.h5 random/sample-000042
    """
    with _open(file) as db:
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
@_reading
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
    with _open(file) as db:
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
@_reading
def find(file: Path, dataset: str, spec: str, own: bool, with_data: bool) -> None:
    """List the datapoints of DATASET whose data match FILTER (a JSON filter).

    FILTER examples: '{"inside": true}', '{"x": {"$gt": 0.5}}',
    '{"$or": [{"x": {"$lt": 0.1}}, {"y": {"$lt": 0.1}}]}'.

    Example: hards-h5 find campaign.h5 random/extended '{"x": {"$gt": 0.9}}'
    """
    query = parse_filter(spec)
    with _open(file) as db:
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
@_reading
def export_cmd(file: Path, directory: Path) -> None:
    """Write FILE as a seed-format directory DIRECTORY (hards.filesystem opens it).

    Example: hards-h5 export campaign.h5 campaign-dir
    """
    with _open(file) as db, _bar("export") as advance:
        report = _migrate.export_seed(db, directory, progress=advance)
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
        _error(problem)
    raise click.exceptions.Exit(1)


@cli.command()
@click.argument("file", type=_PATH)
def compact(file: Path) -> None:
    """Rewrite FILE without dead space (atomically: temp file, fsync, rename).

    Example: hards-h5 compact campaign.h5
    """
    with _bar("compact") as advance:
        report = _recover.compact(file, progress=advance)
    if not report.rewritten:
        click.echo(
            f"{file}: already compact, kept as it is ({report.bytes_before} bytes; "
            f"{_counts(report.datasets, report.datapoints, report.files)})"
        )
        return
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
    """Repair FILE after real damage; the original is kept as FILE.bak-TIME.

    A file whose writer died needs no command: the next open recovers it.
    This clears a stale writer flag and salvages every committed dataset,
    datapoint, data value and intact file into a clean file that replaces FILE
    atomically (keeping every intact record around damaged ones), for a file
    that 'check' finds damaged or that an open could not recover itself.
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
        click.echo(f"hards-h5: warning: dropped: {line}", err=True)


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


@cli.command()
@click.argument("file", type=_PATH)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Time between updates.",
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N updates.")
def watch(file: Path, interval: float, count: int | None) -> None:
    """Follow a running campaign: datapoints per dataset, new ones per second, total.

    FILE's writer must be in SWMR live mode (it called start_swmr()). Ends on
    Ctrl-C, after --count updates, or when the writer closes the file.

    Example: hards-h5 watch campaign.h5 --interval 2
    """
    if not _writer_is_live(file):
        with _open(file) as db:  # a plain writer, or a stopped one: one error line
            counts = _datapoint_counts(db)
        _show_counts(file, counts, counts, 0.0, "no writer: closed cleanly")
        click.echo(f"{file}: no writer is running; nothing to follow")
        return
    db = H5Database(file, "r", swmr=True)
    console = Console()
    first = previous = _datapoint_counts(db)
    when = start = time.monotonic()
    info = _writer_info.read(file)
    who = "live (SWMR) writer" + (f": {info.describe()}" if info is not None else "")
    updates, ended = 0, ""
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        with live or contextlib.nullcontext():
            while count is None or updates < count:
                time.sleep(interval)
                if not _live.live_lock_present(file):
                    ended = "closed"
                    break
                try:
                    db.refresh()
                    counts = _datapoint_counts(db)
                except (HARDSError, OSError, RuntimeError):
                    if _live.live_lock_present(file):
                        raise
                    ended = "closed"
                    break
                now = time.monotonic()
                table = _counts_table(file, counts, previous, now - when, who)
                if live is not None:
                    live.update(table, refresh=True)
                else:
                    console.print(table)
                previous, when, updates = counts, now, updates + 1
    except KeyboardInterrupt:
        ended = "interrupted"
    finally:
        db.close()
    if ended == "closed":
        _writer_closed(file, first, time.monotonic() - start)
    elif ended == "interrupted":
        click.echo(f"{file}: stopped watching (Ctrl-C); the writer is still running")


def _writer_closed(file: Path, first: dict[str, int], seconds: float) -> None:
    """Say that the live writer is gone, with the final counts if the file can be read."""
    if _live.status_flags_set(file):
        _fail(f"{file}: the live writer stopped without closing the file")
    with H5Database(file, "r", timeout=10.0) as db:
        counts = _datapoint_counts(db)
    _show_counts(file, counts, first, seconds, "the writer closed the file")
    added = sum(counts.values()) - sum(first.values())
    click.echo(
        f"{file}: the writer closed the file ({_count(added, 'new datapoint')} while watching)"
    )


def _datapoint_counts(db: H5Database) -> dict[str, int]:
    """Datapoints per dataset (its own), by path, in tree order."""
    return {d.fullname(): len(d.datapoints) for d in iter_datasets(db)}


def _counts_table(
    file: Path, counts: dict[str, int], before: dict[str, int], seconds: float, caption: str
) -> Table:
    """Return a table of datasets: datapoints, new per second over ``seconds``, total."""
    table = Table(
        title=f"{file}  {time.strftime('%H:%M:%S')}", caption=caption, min_width=len(caption) + 4
    )
    table.add_column("dataset")
    table.add_column("datapoints", justify="right")
    table.add_column("new/s", justify="right")

    def rate(now: int, then: int) -> str:
        return f"{(now - then) / seconds:.1f}" if seconds > 0 else "-"

    for path, n in counts.items():
        table.add_row(path, f"{n:,}", rate(n, before.get(path, 0)))
    total, total_before = sum(counts.values()), sum(before.values())
    table.add_section()
    table.add_row("total", f"{total:,}", rate(total, total_before))
    return table


def _show_counts(
    file: Path, counts: dict[str, int], before: dict[str, int], seconds: float, caption: str
) -> None:
    Console().print(_counts_table(file, counts, before, seconds, caption))


_ERROR = "hards-h5: error: "


def _error(message: str) -> None:
    """Print ``hards-h5: error: MESSAGE`` on stderr (the one prefix of every error)."""
    click.echo(f"{_ERROR}{message}", err=True)


def _fail(message: str) -> NoReturn:
    """Stop with ``hards-h5: error: MESSAGE`` and exit status 1."""
    _error(message)
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


def _file_totals(dataset: H5Dataset) -> tuple[int, int]:
    """Return the count and bytes of files on ``dataset`` and on its own datapoints."""
    db = dataset.database()  # counts from the log, without a node object per datapoint
    log = db.store.log(tuple(dataset.path_to_database()), label=db.path)
    return log.file_totals()


def _size(n: int) -> str:
    """``50.2 MB``: a byte count for people (decimal units, like ``ls -h --si``)."""
    if n < 1000:  # noqa: PLR2004
        return _count(n, "byte")
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":  # noqa: PLR2004
            break
    return f"{value:.1f} {unit}"


def _summary(dataset: H5Dataset) -> str:
    """``1000 datapoints, 43 files (50.2 MB)``: a dataset's own datapoints and their files."""
    files, size = _file_totals(dataset)
    extra = f", {_count(files, 'file')} ({_size(size)})" if files else ""
    return f"{_count(len(dataset.datapoints), 'datapoint')}{extra}"


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


def _plain_words(exc: BaseException) -> str:
    """Return ``exc``'s message without what HDF5 said, unless --verbose asked for it.

    Messages that quote the HDF5 error they come from end with ``: <that error>``.
    """
    message = str(exc)
    cause = exc.__cause__
    said = str(cause) if cause is not None else ""
    if message.endswith(f": {said}") and said and not _verbose:
        return message[: -len(said) - 2]
    if _verbose and said and said not in message:
        return f"{message} (details: {said})"
    return message


def _show_warning(  # noqa: PLR0917 - the signature of warnings.showwarning
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Show a hards-h5 warning (a file recovered on opening) as one line on stderr."""
    if issubclass(category, AutoRecoveryWarning):
        click.echo(f"hards-h5: warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (errors are one line, no traceback)."""
    global _verbose  # noqa: PLW0603 - reset for each run (tests call main() repeatedly)
    _verbose = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line, like errors
            status = cli.main(args=argv, prog_name="hards-h5", standalone_mode=False)
    except click.exceptions.Abort:
        _error("aborted")
        return 1
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)  # usage and "Try ... --help" for usage errors
        head, _, _ = shown.getvalue().rpartition("Error: ")
        click.echo(f"{head}{_ERROR}{exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (HARDSError, OSError) as exc:
        _error(_plain_words(exc))
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
