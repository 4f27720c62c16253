"""The fold's memory stays bounded at scale, and long operations report it as progress."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hards.filesystem import FilesystemDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hards_h5 import H5Database, compact, import_seed, merge, recover
from hards_h5.store import fold as _fold
from hards_h5.store import index as _index
from hards_h5.store.log import DatasetLog


# ------------------------------------------------- the index, a slice at a time
def _reference(group: h5py.Group, log: DatasetLog) -> None:
    """Write the index the way it was written before slices: the whole table at once."""
    table = _index._Columns(_index._parse(log, 0, len(log.names)))
    _index._write(group, log, table, *_index._arrays(list(log.names), table, None))


def _described(group: h5py.Group) -> dict[str, Any]:
    """Everything about an index and its mask: dtypes, layout, bytes and attributes."""
    out: dict[str, Any] = {}
    for name in (_index.INDEX, _index.INDEX_MASK):
        dataset = group.get(name)
        if dataset is None:
            out[name] = None
            continue
        data = dataset[()]
        out[name] = (
            dataset.dtype.descr,
            [h5py.check_string_dtype(t) for t, _ in dataset.dtype.fields.values()],
            dataset.shape,
            dataset.chunks,
            dataset.maxshape,
            data.tobytes(),
            {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataset.attrs.items()},
        )
    return out


_KEYS = st.sampled_from(["a", "b", "n", "x", "a.b", "datapoint", "", "\0"])
_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**65),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=12),
    st.text(min_size=250, max_size=260),
    st.none(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=4,
)
# Mostly regular rows (typed columns that the slices must agree on), some anything.
_ROW = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "i": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "f": st.one_of(st.floats(allow_nan=False), st.integers(-5, 5)),
            "s": st.text(max_size=40),
            "n": st.fixed_dictionaries({}, optional={"lr": st.floats(), "t": st.text(max_size=3)}),
        },
    ),
    st.dictionaries(_KEYS, _VALUES, max_size=3),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(_ROW, max_size=12), slice_rows=st.integers(1, 4))
def test_an_index_built_in_slices_is_the_one_built_at_once(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], slice_rows: int
) -> None:
    path = tmp_path_factory.mktemp("slices") / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i, data in enumerate(rows):
            ds.create_datapoint(f"p{'x' * (i % 3)}{i}").add_data(data)
    with h5py.File(path, "r+") as f:
        log = DatasetLog(f["datasets/d"], writable=False)
        _reference(f.create_group("whole"), log)
        sliced = f.create_group("sliced")
        old = _index._PARSE_ROWS
        _index._PARSE_ROWS = slice_rows  # (restored below; hypothesis reruns the function)
        try:
            _index.update(sliced, log)
        finally:
            _index._PARSE_ROWS = old
        assert _described(sliced) == _described(f["whole"])
        # Rebuilt in place over an index of other rows: the same again.
        _index.update(f["datasets/d"], log)
        assert _described(f["datasets/d"]) == _described(f["whole"])


# ------------------------------------------------------------------ memory
def _campaign(path: Path, n: int) -> None:
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i in range(n):
            ds.create_datapoint(f"sample-{i:07d}").add_data(
                {"i": i, "x": i * 0.5, "ok": True, "s": "abc", "opt": {"lr": 0.1}}
            )


def _fold_peak(path: Path) -> int:
    """Fold the whole tree and index of ``path`` again; return the fold's peak (bytes).

    The log is replayed before (a closing writer holds it already): what is
    measured is what the fold itself allocates.
    """
    with h5py.File(path, "r+") as f:
        group = f["datasets/d"]
        for name in (_fold.DATAPOINTS, _index.INDEX, _index.INDEX_MASK):
            del group[name]
        _fold.set_mark(group, 0)
        log = DatasetLog(group, writable=True)
        gc.collect()
        tracemalloc.start()
        try:
            assert _fold.fold_file(f, {("d",): log}) == 1
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_the_fold_and_index_peak_does_not_grow_with_the_datapoints(tmp_path: Path) -> None:
    # Every record was read at once and the touched nodes kept in Python sets, and the
    # index parsed every JSON text at once: at 1M datapoints, hundreds of MB.  Now a
    # slice at a time: 4x the datapoints, about the same peak.
    small, large = tmp_path / "small.h5", tmp_path / "large.h5"
    _campaign(small, 15_000)
    _campaign(large, 60_000)
    peak_small, peak_large = _fold_peak(small), _fold_peak(large)
    assert peak_large < 1.6 * peak_small, (peak_small, peak_large)
    with H5Database(large, "r") as db:
        frame = db.get_dataset("d").to_dataframe()
    assert frame["i"].tolist() == list(range(60_000))
    assert frame["opt.lr"].tolist() == [0.1] * 60_000


# ----------------------------------------------------------------- progress
N = 5000  # several of the fold's slices of nodes


class _DuringFold:
    """A progress callback that notes which calls came while the fold was running."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, bool]] = []

    def __call__(self, done: int, total: int) -> None:
        frame = sys._getframe(1)  # (who is calling: the fold or not)
        folding = False
        while frame is not None:
            folding = folding or frame.f_code is _fold.fold_log.__code__
            frame = frame.f_back
        self.calls.append((done, total, folding))

    def check(self) -> None:
        dones = [d for d, _, _ in self.calls]
        assert dones == sorted(dones), "progress went backwards"
        assert self.calls[-1][0] == self.calls[-1][1] > 0, self.calls[-1]
        during = [d for d, _, folding in self.calls if folding]
        assert len(set(during)) >= 3, f"the bar does not move during the fold: {self.calls}"


def _points(path: Path, prefix: str) -> Path:
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("many")
        for i in range(N):
            ds.create_datapoint(f"{prefix}{i}").add_data({"i": i})
    return path


@pytest.mark.parametrize("operation", ["compact", "recover", "merge", "import"])
def test_long_operations_report_progress_during_the_fold(tmp_path: Path, operation: str) -> None:
    progress = _DuringFold()
    if operation == "import":
        seed = FilesystemDatabase.create_database(tmp_path / "seed")
        ds = seed.create_dataset("many")
        for i in range(N):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
        import_seed(tmp_path / "seed", tmp_path / "out.h5", progress=progress)
        out = tmp_path / "out.h5"
    elif operation == "merge":
        a, b = _points(tmp_path / "a.h5", "a"), _points(tmp_path / "b.h5", "b")
        merge(tmp_path / "out.h5", [a, b], progress=progress)
        out = tmp_path / "out.h5"
    else:
        out = _points(tmp_path / "c.h5", "p")
        if operation == "compact":
            compact(out, progress=progress)
        else:
            recover(out, force=True, progress=progress)
    progress.check()
    with H5Database(out, "r") as db:
        assert len(db.get_dataset("many").datapoints) == (2 * N if operation == "merge" else N)


def test_recover_of_a_live_writers_file_reports_its_fold_after_the_audit(tmp_path: Path) -> None:
    # A clean file whose last writer was a live one (no fold at its close): recover
    # leaves it in place, audits it, then folds it; the bar goes on from the audit.
    path = tmp_path / "live.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("many")
        db.start_swmr()
        ds = db.get_dataset("many")
        for i in range(N):
            ds.create_datapoint(f"p{i}").add_data({"i": i})
    with h5py.File(path, "r") as f:
        assert "datapoints" not in f["/datasets/many"]  # (not folded in live mode)
    progress = _DuringFold()
    report = recover(path, progress=progress)
    assert not report.rewritten
    progress.check()
    with h5py.File(path, "r") as f:
        assert len(f["/datasets/many/datapoints"]) == N
