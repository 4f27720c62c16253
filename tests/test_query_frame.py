"""Filters (find) and pandas views, on the bulk read path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hards_h5 import H5Database, InvalidFilterError
from hards_h5._query import compile_filter, parse_filter


@pytest.fixture
def campaign(db_path: Path) -> H5Database:
    db = H5Database.create_database(db_path)
    top = db.create_dataset("mc")
    sub = top.create_dataset("opt")
    for i in range(10):
        top.create_datapoint(f"m{i}").add_data({"x": i / 10, "tag": "mc", "opt": {"lr": i}})
    for i in range(5):
        sub.create_datapoint(f"o{i}").add_data({"x": 0.5 + i / 10, "tag": "opt", "ok": i % 2 == 0})
    return db


DATA = {
    "x": 0.7,
    "n": 3,
    "s": "run.v2",
    "b": True,
    "nested": {"lr": 0.1, "deep": {"k": 1}},
    "l": [1, 2],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"x": 0.7}, True),
        ({"x": 0.8}, False),
        ({"x": {"$gt": 0.5, "$lte": 0.7}}, True),
        ({"x": {"$lt": 0.5}}, False),
        ({"s": {"$gt": 1}}, False),  # different types: just false
        ({"n": {"$in": [1, 2, 3]}}, True),
        ({"n": {"$nin": [3]}}, False),
        ({"missing": {"$exists": False}}, True),
        ({"nested.lr": 0.1}, True),
        ({"nested.deep.k": {"$gte": 1}}, True),
        ({"s": {"$regex": r"^run\.v\d$"}}, True),
        ({"b": {"$type": "bool"}, "n": {"$type": "int"}}, True),
        ({"b": {"$type": "number"}}, False),
        ({"b": {"$eq": 1}}, False),  # booleans never equal numbers (true is not 1)
        ({"b": True}, True),
        ({"n": 3.0}, True),  # numbers compare by value
        ({"n": {"$in": [True]}}, False),
        ({"l": [True, 2]}, False),
        ({"$or": [{"x": 0}, {"n": 3}]}, True),
        ({"$and": [{"x": 0.7}, {"n": 4}]}, False),
        ({"$not": {"x": 0.7}}, False),
        ({"l": [1, 2]}, True),
        ({"x": {"$ne": 0.7}}, False),
        ({"absent": {"$ne": 1}}, True),
    ],
)
def test_filter_semantics(spec: dict, expected: bool) -> None:
    assert compile_filter(spec)(DATA) is expected


@pytest.mark.parametrize(
    "bad",
    [
        {"x": {"$between": 1}},
        {"$nor": []},
        {"$or": []},
        {"x": {"$in": 3}},
        {"x": {"$regex": "("}},
        {"x": {"$exists": "yes"}},
        {"x": {"$type": "complex"}},
    ],
)
def test_bad_filters_are_rejected_up_front(bad: dict) -> None:
    with pytest.raises(InvalidFilterError):
        compile_filter(bad)


def test_parse_filter_errors() -> None:
    assert parse_filter('{"x": {"$gt": 0.5}}') == {"x": {"$gt": 0.5}}
    with pytest.raises(InvalidFilterError, match="not valid JSON"):
        parse_filter("{x: 1}")
    with pytest.raises(InvalidFilterError, match="JSON object"):
        parse_filter("[1]")


def test_find_with_and_without_parents(campaign: H5Database) -> None:
    sub = campaign.recursively_get_dataset("mc/opt")
    hits = sub.find({"x": {"$gte": 0.8}})
    assert [p.fullname() for p in hits] == ["mc/opt/o3", "mc/opt/o4", "mc/m8", "mc/m9"]
    assert [p.name for p in sub.find({"x": {"$gte": 0.8}}, parents=False)] == ["o3", "o4"]
    assert [p.name for p in sub.find({"opt.lr": {"$in": [1, 2]}})] == ["m1", "m2"]
    assert hits[0].data["tag"] == "opt"
    campaign.close()


def test_to_dataframe(campaign: H5Database) -> None:
    pd = pytest.importorskip("pandas")
    df = campaign.recursively_get_dataset("mc/opt").to_dataframe()
    assert list(df.index[:3]) == ["o0", "o1", "o2"]
    assert df.index.name == "datapoint"
    assert len(df) == 15
    assert list(df.columns[:1]) == ["dataset"]
    assert set(df["dataset"]) == {"mc", "mc/opt"}
    assert df.loc["o2", "x"] == pytest.approx(0.7)
    assert pd.isna(df.loc["m0", "ok"])
    own = campaign.recursively_get_dataset("mc/opt").to_dataframe(parents=False)
    assert len(own) == 5
    empty = campaign.create_dataset("empty").to_dataframe()
    assert len(empty) == 0
    assert "dataset" in empty.columns
    campaign.close()


def test_to_dataframe_without_pandas(campaign: H5Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from hards_h5 import MissingDependencyError

    real_import = builtins.__import__

    def no_pandas(name: str, *args: object, **kwargs: object) -> object:
        if name == "pandas":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(MissingDependencyError, match=r"hards-h5\[pandas\]"):
        campaign.get_dataset("mc").to_dataframe()
    campaign.close()


def test_dataframe_matches_the_object_api(db_path: Path) -> None:
    """Same rows as recursively_get_datapoints() + .data, repeated names included."""
    pd = pytest.importorskip("pandas")
    db = H5Database.create_database(db_path)
    top = db.create_dataset("mc")
    sub = top.create_dataset("opt")
    top.create_datapoint("run.1").add_data({"x": 1, "big": 2**70, "nested": {"a": [1]}})
    sub.create_datapoint("run.1").add_data({"x": 2, "extra": "s"})  # same name, child
    sub.create_datapoint("run.2").add_data({})
    sub.get_datapoint("run.2").add_data({"x": 3})  # not flushed yet: still seen
    df = sub.to_dataframe()
    points = sub.recursively_get_datapoints()
    assert list(df.index) == [p.name for p in points] == ["run.1", "run.2", "run.1"]
    assert list(df["dataset"]) == [p.parent.fullname() for p in points]
    assert df.loc["run.1", "x"].tolist() == [2, 1]
    unique = df.set_index("dataset", append=True)
    assert unique.index.is_unique
    assert unique.loc[("run.1", "mc"), "big"] == 2**70  # beyond 64 bits, exact
    assert unique.loc[("run.1", "mc"), "nested"] == {"a": [1]}
    assert pd.isna(unique.loc[("run.2", "mc/opt"), "extra"])
    db.close()
    with H5Database(db_path, "r") as again:
        reread = again.recursively_get_dataset("mc/opt").to_dataframe()
        assert reread.equals(df)


def test_dataframe_origin_column_never_hides_data(db_path: Path) -> None:
    pytest.importorskip("pandas")
    from hards_h5 import InvalidDataError

    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("runs")
        ds.create_datapoint("a").add_data({"x": 1})
        ds.create_datapoint("b").add_data({"x": 2, "dataset": "from the user"})
        with pytest.raises(InvalidDataError, match=r"runs/b.*origin="):
            ds.to_dataframe()
        df = ds.to_dataframe(origin="source")
        assert list(df.columns) == ["source", "x", "dataset"]
        assert df.loc["b", "dataset"] == "from the user"
        assert set(df["source"]) == {"runs"}
