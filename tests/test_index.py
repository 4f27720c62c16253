"""The column index: written at fold, read by to_dataframe() and find(), never when stale."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_runner import hards
from hards_h5 import H5Database
from hards_h5.api import frame as _frame
from hards_h5.api import query as _query
from hards_h5.store import index as _index
from hards_h5.store import log as _log
from lineage import write_lineage


# ---------------------------------------------------------------- plain h5py
def plain_index(path: Path, dataset: str) -> tuple[list[str], dict[str, list[Any]], bool]:
    """Read a dataset's column index with nothing but h5py and json (no hards_h5).

    Returns the datapoint names, each column's values (None where masked) and
    whether the index is complete.
    """
    with h5py.File(path, "r") as f:
        group = f["/datasets/" + "/datasets/".join(dataset.split("/"))]
        table = group["index"][()]
        names = [n.decode() for n in table["datapoint"]]
        columns: dict[str, list[Any]] = {}
        fields = [n for n in table.dtype.names if n != "datapoint"]
        mask = group["index_mask"][()] if fields else None
        for field in fields:
            values = table[field].tolist()
            columns[field] = [
                (v.decode() if isinstance(v, bytes) else v) if present else None
                for v, present in zip(values, mask[field].tolist(), strict=True)
            ]
        return names, columns, bool(group["index"].attrs["complete"])


def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted keys (non-empty dicts only, as to_dataframe)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if type(value) is dict and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# ---------------------------------------------------------- journal path
def journal_frame(ds: Any, **kwargs: Any) -> Any:
    """to_dataframe() as built from the record logs (the path without the index)."""
    handle = ds._handle
    sources = [(d.fullname(), handle.log(n)) for d, n in ds._lineage(parents=True)]
    return _frame.frame(sources, **kwargs)


def journal_find(ds: Any, spec: dict[str, Any]) -> list[tuple[str, str]]:
    matches = _query.compile_filter(spec)
    return [
        (p.parent.fullname(), p.name) for p in ds.recursively_get_datapoints() if matches(p.data)
    ]


def assert_same_frame(got: Any, want: Any) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.columns) == list(want.columns)
    assert list(got.dtypes) == list(want.dtypes)
    assert got.index.dtype == want.index.dtype
    assert got.index.name == want.index.name


def refuse_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make replaying a record log fail from now on: what passes read the index only."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        msg = "the record log was replayed"
        raise AssertionError(msg)

    monkeypatch.setattr(_log.DatasetLog, "__init__", refuse)


# ------------------------------------------------------------------ data
_KEYS = st.sampled_from(["a", "b", "c", "n", "x"])
_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.text(min_size=300, max_size=300),
    st.none(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=4,
)
_DATA = st.dictionaries(_KEYS, _VALUES, max_size=4)
# One typed column per key, most of the time: the index is then complete.
_TYPED = st.fixed_dictionaries(
    {},
    optional={
        "i": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "f": st.floats(allow_nan=True, allow_infinity=True),
        "b": st.booleans(),
        "s": st.text(max_size=6),
        "n": st.fixed_dictionaries({}, optional={"lr": st.floats(), "tag": st.text(max_size=3)}),
    },
)


def _check(path: Path, filters: list[dict[str, Any]]) -> None:
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        for dataset in ("mc", "mc/opt"):
            names, columns, complete = plain_index(path, dataset)
            ds = db.recursively_get_dataset(dataset)
            assert names == ds.datapoints
            datas = [flat(ds.get_datapoint(n).data) for n in names]
            with h5py.File(path, "r") as f:  # (a "number" column mixes ints and floats)
                group = f["/datasets/" + "/datasets/".join(dataset.split("/"))]
                kinds = {".".join(p): k for p, k in json.loads(group["index"].attrs["columns"])}
            for column, values in columns.items():
                for data, value in zip(datas, values, strict=True):
                    stored = data.get(column)
                    if kinds[column] == "number" and stored is not None:
                        stored = float(stored)
                    assert same(value, stored), (column, value, stored)
            if complete:
                assert {k for d in datas for k in d} == set(columns)
        got = opt.to_dataframe()
        assert_same_frame(got, journal_frame(opt))
        for spec in filters:
            hits = [(p.parent.fullname(), p.name) for p in opt.find(spec)]
            assert hits == journal_find(opt, spec)


def _filters(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = [
        {"i": {"$gt": 0}},
        {"n.lr": {"$exists": True}},
        {"b": True},
        {"$or": [{"i": {"$gt": 0}}, {"n.lr": {"$exists": False}}]},
        {"$not": {"b": True}, "n": {"$type": "dict"}},
        {"$and": [{"s": {"$regex": "a"}}, {"f": {"$lt": 0.5}}]},
    ]
    for row in data[:3]:
        for key, value in flat(row).items():
            specs.append({key: value})
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                specs.append({key: {"$lte": value}})
    return specs


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(top=st.lists(_DATA, max_size=4), sub=st.lists(_DATA, max_size=6))
def test_index_agrees_with_data_any_values(
    tmp_path_factory: pytest.TempPathFactory, top: list[dict[str, Any]], sub: list[dict[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("any") / "c.h5"
    write_lineage(path, top, sub)
    _check(path, _filters(sub))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(top=st.lists(_TYPED, max_size=4), sub=st.lists(_TYPED, min_size=1, max_size=8))
def test_index_agrees_with_data_typed_values(
    tmp_path_factory: pytest.TempPathFactory, top: list[dict[str, Any]], sub: list[dict[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("typed") / "c.h5"
    write_lineage(path, top, sub)
    _check(path, _filters(sub))


# ------------------------------------------------------------- the fast path
def _bench_like(path: Path, n: int = 50) -> None:
    data = [
        {"x": i / 7, "i": i, "tag": "opt", "ok": i % 2 == 0, "opt": {"lr": 0.1}} for i in range(n)
    ]
    data[3] = {"x": float("nan"), "tag": "é"}  # (a stored NaN; missing keys)
    write_lineage(path, [{"x": 1, "i": 2, "tag": "top"}], data)


def test_to_dataframe_and_find_read_the_index_not_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path)
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        want = journal_frame(opt)
        want_hits = journal_find(opt, {"i": {"$gte": 40}, "tag": "opt"})
    with H5Database(path, mode="r") as db:
        refuse_replay(monkeypatch)
        opt = db.recursively_get_dataset("mc/opt")
        df = opt.to_dataframe()
        hits = opt.find({"i": {"$gte": 40}, "tag": "opt"})
        with pytest.raises(AssertionError, match="replayed"):
            opt.to_dataframe(files=True)  # (the files column: from the log)
    assert_same_frame(df, want)
    assert list(df.columns) == ["dataset", "x", "i", "tag", "ok", "opt.lr"]
    kinds = ["object", "float64", "Int64", "string", "boolean", "float64"]
    assert [str(t) for t in df.dtypes] == kinds
    assert math.isnan(df.loc["p3", "x"])
    assert df.loc["p3", "i"] is pd.NA
    assert [(p.parent.fullname(), p.name) for p in hits] == want_hits
    assert [p.name for p in hits] == [f"p{i}" for i in range(40, 50)]


# ------------------------------------------------------------------ stale
def test_a_stale_index_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path, n=5)
    with H5Database(path) as db:
        opt = db.recursively_get_dataset("mc/opt")
        opt.create_datapoint("new").add_data({"x": 9.5, "fresh": 1})  # pending, not written
        df = opt.to_dataframe()
        assert df.loc["new", "fresh"] == 1
        assert [p.name for p in opt.find({"fresh": 1})] == ["new"]
        db.flush()  # written: the journal has rows the index does not reflect
        opt.get_datapoint("p0").add_data({"x": -1.0})
        db.flush()
        df = opt.to_dataframe()
        assert df.loc["p0", "x"] == -1.0
        assert [p.name for p in opt.find({"x": -1.0})] == ["p0"]
        assert_same_frame(df, journal_frame(opt))
    with h5py.File(path, "r") as f:  # the close folded it: current again
        group = f["/datasets/mc/datasets/opt"]
        assert group["index"].attrs["records"] == group["records"].shape[0]
        assert group["index"].shape == (6,)


def test_a_live_writer_leaves_the_index_behind_and_readers_use_the_log(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path, n=5)
    with H5Database(path) as db:
        db.start_swmr()
        db.recursively_get_dataset("mc/opt").create_datapoint("live").add_data({"x": 2.0})
    with h5py.File(path, "r") as f:  # a live writer does not fold: the index is behind
        group = f["/datasets/mc/datasets/opt"]
        assert group["index"].attrs["records"] < group["records"].shape[0]
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        assert opt.to_dataframe().loc["live", "x"] == 2.0
        assert [p.name for p in opt.find({"x": 2.0})] == ["live"]
    assert hards("check", str(path)).returncode == 0  # behind its mark: not damage


# ------------------------------------------------------- append vs rebuild
def test_new_datapoints_are_appended_other_changes_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i in range(100):
            ds.create_datapoint(f"p{i}").add_data({"x": i / 3, "s": "ab", "n": {"k": i}})
    parsed: list[tuple[int, int]] = []
    real = _index._parse

    def spy(log: Any, start: int, stop: int) -> list[dict[str, Any]]:
        parsed.append((start, stop))
        return real(log, start, stop)

    monkeypatch.setattr(_index, "_parse", spy)

    def step(change: Any) -> list[tuple[int, int]]:
        parsed.clear()
        with H5Database(path) as db:
            change(db.get_dataset("d"))
        with H5Database(path, mode="r") as db:
            ds = db.get_dataset("d")
            assert_same_frame(ds.to_dataframe(), journal_frame(ds))
        names, _, complete = plain_index(path, "d")
        assert complete
        assert names == [f"p{i}" for i in range(len(names))]
        return list(parsed)

    # a datapoint that fits the columns (a key missing, a shorter string): appended
    assert step(lambda d: d.create_datapoint("p100").add_data({"x": 1.5, "s": "a"})) == [(100, 101)]
    assert plain_index(path, "d")[1]["n.k"][-1] is None
    # nothing changed: nothing parsed; the dataset's own data is not in the index
    assert step(lambda d: None) == []
    assert step(lambda d: d.add_data({"about": "runs"})) == []
    # a new key, a longer string (than the width kept): the new rows are read, then rebuilt
    assert step(lambda d: d.create_datapoint("p101").add_data({"new": True})) == [
        (101, 102),
        (0, 102),
    ]
    assert step(lambda d: d.create_datapoint("p102").add_data({"s": "x" * 9})) == [
        (102, 103),
        (0, 103),
    ]
    # a changed datapoint: rebuilt
    assert step(lambda d: d.get_datapoint("p5").add_data({"x": 0.0})) == [(0, 103)]
    assert plain_index(path, "d")[1]["x"][5] == 0.0


def test_appending_one_datapoint_to_a_long_index_reads_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.h5"
    n = 40_000  # (beyond the longest chunk: the index is not rebuilt for longer chunks)
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i in range(n):
            ds.create_datapoint(f"p{i}").add_data({"x": float(i), "i": i})
    parsed: list[tuple[int, int]] = []
    real = _index._parse
    monkeypatch.setattr(
        _index, "_parse", lambda log, a, b: parsed.append((a, b)) or real(log, a, b)
    )
    for k in range(3):
        with H5Database(path) as db:
            db.get_dataset("d").create_datapoint(f"q{k}").add_data({"x": 0.5, "i": -k})
        assert parsed == [(n + k, n + k + 1)]
        parsed.clear()
    with H5Database(path, mode="r") as db:
        ds = db.get_dataset("d")
        assert_same_frame(ds.to_dataframe(), journal_frame(ds))


# ------------------------------------------------------------- fall back
def test_data_that_cannot_be_indexed_falls_back_to_the_log(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with H5Database.create_database(path) as db:
        wide = db.create_dataset("wide")  # more columns than an index holds
        wide.create_datapoint("p").add_data({f"k{i}": i for i in range(_index.MAX_COLUMNS + 1)})
        odd = db.create_dataset("odd")  # lists, mixed types, big ints, empty dicts, dotted keys
        odd.create_datapoint("a").add_data({"l": [1], "m": 1, "b": 2**64, "e": {}, "d.t": 1})
        odd.create_datapoint("b").add_data({"l": 2, "m": "x", "d": {"t": 2}})
        clash = db.create_dataset("clash")
        clash.create_datapoint("a").add_data({"dataset": 1})
    with h5py.File(path, "r") as f:
        assert f["/datasets/wide/index"].attrs["unindexed"]
        assert not f["/datasets/odd/index"].attrs["complete"]
    with H5Database(path, mode="r") as db:
        for name in ("wide", "odd"):
            ds = db.get_dataset(name)
            assert_same_frame(ds.to_dataframe(), journal_frame(ds))
        with pytest.raises(ValueError, match="clashes"):
            db.get_dataset("clash").to_dataframe()
        assert_same_frame(
            db.get_dataset("clash").to_dataframe(origin="where"),
            journal_frame(db.get_dataset("clash"), origin="where"),
        )
    with H5Database(path) as db:  # an unindexed index only grows by its names
        db.get_dataset("wide").create_datapoint("q").add_data({"k0": 1})
    with h5py.File(path, "r") as f:
        assert [n.decode() for n in f["/datasets/wide/index"]["datapoint"]] == ["p", "q"]


# ------------------------------------------------------ check and rewrites
def test_check_reports_an_index_that_differs_and_compact_rebuilds_it(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path, n=5)
    assert hards("check", str(path)).returncode == 0
    with h5py.File(path, "r+") as f:
        index = f["/datasets/mc/datasets/opt/index"]
        row = index[2]
        row["x"] = 42.0
        index[2] = row
    result = hards("check", str(path))
    assert result.returncode != 0
    assert "column index" in result.stdout + result.stderr
    assert "'x'" in result.stdout + result.stderr
    assert hards("compact", str(path)).returncode == 0  # a rewrite builds it again
    assert hards("check", str(path)).returncode == 0
    _check(path, [{"x": 42.0}])


def test_compact_and_recover_build_a_missing_index(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path, n=5)
    with h5py.File(path, "r+") as f:  # (a file folded before the index existed)
        for group in (f["/datasets/mc"], f["/datasets/mc/datasets/opt"]):
            del group["index"], group["index_mask"]
    assert hards("check", str(path)).returncode == 0  # no index is not damage
    assert hards("compact", str(path)).returncode == 0
    with h5py.File(path, "r") as f:
        assert "index" in f["/datasets/mc/datasets/opt"]
    _check(path, [])
    with h5py.File(path, "r+") as f:
        del f["/datasets/mc/datasets/opt/index"]
    assert hards("recover", str(path)).returncode == 0
    with h5py.File(path, "r") as f:
        assert "index" in f["/datasets/mc/datasets/opt"]
    _check(path, [])


def test_a_stranger_reads_the_index_with_h5py_and_pandas(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _bench_like(path, n=5)
    # What docs/format.md shows (no hards_h5 in this part):
    with h5py.File(path, "r") as f:
        group = f["datasets/mc/datasets/opt"]
        table = pd.DataFrame(group["index"][()]).set_index("datapoint")
        mask = pd.DataFrame(group["index_mask"][()], index=table.index)
        table = table.where(mask)  # masked: missing or null
        columns = json.loads(group["index"].attrs["columns"])
    assert [".".join(path) for path, _ in columns] == ["x", "i", "tag", "ok", "opt.lr"]
    assert list(table.index) == [f"p{i}".encode() for i in range(5)]
    assert table.loc[b"p1", "i"] == 1
    assert np.isnan(table.loc[b"p3", "i"])


@pytest.mark.parametrize(
    ("top", "sub"),
    [
        # a key's own values come before its nested keys' columns, whichever dataset
        ([{"n": 5, "x": 1}], [{"x": 0.5, "n": {"a": 1, "b": "s"}}, {"z": True}]),
        ([{"n": {"b": 1}}], [{"n": {"a": 2.5}}, {"q": "w", "n": {"b": 3}}]),
        ([{"x": 1}], [{"x": 2}, {"y": 1.5}]),  # Int64 across datasets, missing in some
        ([{"x": 1.5}], [{"x": 2}]),  # ints and floats: float64
        ([], [{}, {}]),  # no columns
    ],
)
def test_columns_of_several_datasets_merge_as_the_journal_gives_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: list[Any], sub: list[Any]
) -> None:
    path = tmp_path / "c.h5"
    write_lineage(path, top, sub)
    with H5Database(path, mode="r") as db:
        want = journal_frame(db.recursively_get_dataset("mc/opt"))
    with H5Database(path, mode="r") as db:
        refuse_replay(monkeypatch)  # (the index path, not the journal)
        assert_same_frame(db.recursively_get_dataset("mc/opt").to_dataframe(), want)


def test_kinds_that_differ_between_datasets_fall_back_to_the_log(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    write_lineage(path, [{"x": "a", "b": True}], [{"x": 1, "b": 1}])
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        got = opt.to_dataframe()
        assert [str(t) for t in got.dtypes] == ["object", "object", "object"]
        assert_same_frame(got, journal_frame(opt))


def test_keys_any_text_index_or_fall_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.h5"
    keys = ["é", "a/b", "sp ace", "x" * 300, "\t", "名前"]
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("d")
        for i, key in enumerate(keys):
            ds.create_datapoint(f"p{i}").add_data({key: i, "k": {key: 1.5}})
        nul = db.create_dataset("nul")  # (HDF5 field names end at a NUL: not indexed)
        nul.create_datapoint("p").add_data({"a\x00b": 1})
    with H5Database(path, mode="r") as db:
        want = journal_frame(db.get_dataset("d"))
        want_nul = journal_frame(db.get_dataset("nul"))
    assert plain_index(path, "d")[2]
    assert not plain_index(path, "nul")[2]
    with H5Database(path, mode="r") as db:
        assert_same_frame(db.get_dataset("nul").to_dataframe(), want_nul)
        refuse_replay(monkeypatch)
        assert_same_frame(db.get_dataset("d").to_dataframe(), want)
