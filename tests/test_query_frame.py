"""Filters (find) and pandas views, on the bulk read path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hards_h5 import H5Database, InvalidFilterError
from hards_h5.api.query import compile_filter, parse_filter


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
    assert unique.loc[("run.1", "mc"), "nested.a"] == [1]  # nested dicts: dotted columns
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


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"tags": "a"}, True),  # a list matches when an element does (MongoDB)
        ({"tags": "z"}, False),
        ({"tags": ["a", "b"]}, True),  # or when the whole list does
        ({"tags": {"$ne": "a"}}, False),  # $ne: no element equals
        ({"tags": {"$ne": "z"}}, True),
        ({"tags": {"$in": ["b", "z"]}}, True),
        ({"tags": {"$nin": ["b"]}}, False),
        ({"tags": {"$regex": "^b$"}}, True),
        ({"vals": {"$gt": 2.5}}, True),  # operators apply per element
        ({"vals": {"$gt": 3}}, False),
        ({"vals": {"$gte": 1, "$lt": 2}}, True),
        ({"vals": {"$type": "list"}}, True),  # $type looks at the value itself
        ({"vals": {"$type": "int"}}, False),
        ({"nan": {"$gt": 0}}, False),  # NaN: neither greater nor smaller, no error
        ({"nan": {"$lte": 0}}, False),
        ({"nan": float("nan")}, False),  # NaN equals nothing
        ({"nan": {"$ne": float("nan")}}, True),
        ({"nans": {"$in": [float("nan")]}}, False),
    ],
)
def test_list_values_and_nan_in_filters(spec: dict, expected: bool) -> None:
    data = {"tags": ["a", "b"], "vals": [1, 3], "nan": float("nan"), "nans": [float("nan")]}
    assert compile_filter(spec)(data) is expected


def test_find_matches_list_elements(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("runs")
        ds.create_datapoint("a").add_data({"tags": ["fast", "gpu"], "t": [0.5, 4.0]})
        ds.create_datapoint("b").add_data({"tags": "fast", "t": 2.0})
        ds.create_datapoint("c").add_data({"tags": ["slow"], "t": [9.0]})
        ds.create_datapoint("d").add_data({"t": float("nan")})
        assert [p.name for p in ds.find({"tags": "fast"})] == ["a", "b"]
        assert [p.name for p in ds.find({"t": {"$lt": 1}})] == ["a"]
        assert [p.name for p in ds.find({"t": {"$gt": 3}})] == ["a", "c"]
        assert [p.name for p in ds.find({"tags": {"$nin": ["fast"]}})] == ["c", "d"]


def test_find_says_when_a_filter_compares_across_types(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("runs")
        for i in range(3):
            ds.create_datapoint(f"p{i}").add_data({"x": i, "name": f"n{i}", "l": [i, i + 1]})
        ds.create_datapoint("empty")
        with pytest.raises(InvalidFilterError, match=r"'x'.*\$gt.*string 'a'.*number"):
            ds.find({"x": {"$gt": "a"}})
        with pytest.raises(InvalidFilterError, match=r"'name'.*\$lte.*number 3.*string"):
            ds.find({"name": {"$lte": 3}})
        with pytest.raises(InvalidFilterError, match=r"'l'.*\$lt.*string.*number"):
            ds.find({"l": {"$lt": "z"}})  # list elements count as what they hold
        with pytest.raises(InvalidFilterError, match=r"'x'.*\$gt"):
            ds.find({"$or": [{"name": "n1"}, {"x": {"$gt": "a"}}]})
        # a key no datapoint has, or a filter that matches nothing of the right type: fine
        assert ds.find({"missing": {"$gt": "a"}}) == []
        assert ds.find({"x": {"$gt": 10}}) == []
        # mixed data where some values have the operand's type: fine
        ds.create_datapoint("s").add_data({"x": "b"})
        assert [p.name for p in ds.find({"x": {"$gt": "a"}})] == ["s"]
        assert [p.name for p in ds.find({"x": {"$gte": 2}})] == ["p2"]


def test_invalid_filter_error_lives_in_errors() -> None:
    from hards_h5 import errors
    from hards_h5.api import query as _query

    assert InvalidFilterError is errors.InvalidFilterError is _query.InvalidFilterError
    assert issubclass(InvalidFilterError, ValueError)


def test_to_dataframe_flattens_nested_dicts_and_keeps_types(db_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    with H5Database.create_database(db_path) as db:
        top = db.create_dataset("mc")
        top.create_datapoint("m").add_data({"opt": {"lr": 0.1, "algo": {"name": "adam"}}})
        sub = top.create_dataset("opt")
        sub.create_datapoint("a").add_data(
            {"n": 2**40, "ok": True, "s": "x", "opt": {"lr": 0.5, "steps": 3}, "e": {}}
        )
        sub.create_datapoint("b").add_data({"n": 1, "opt": {"steps": 7}, "l": [1, 2]})
        df = sub.to_dataframe()
        assert list(df.columns) == [
            "dataset",
            "n",
            "ok",
            "s",
            "opt.lr",
            "opt.steps",
            "opt.algo.name",
            "e",
            "l",
        ]
        assert str(df["n"].dtype) == "Int64"  # missing in the inherited row: still integers
        assert df["n"].tolist()[:2] == [2**40, 1]
        assert df.loc["m", "n"] is pd.NA
        assert str(df["ok"].dtype) == "boolean"
        assert str(df["s"].dtype) == "string"
        assert str(df["opt.steps"].dtype) == "Int64"
        assert df["opt.lr"].dtype == "float64"
        assert df.loc["m", "opt.algo.name"] == "adam"
        assert df.loc["a", "e"] == {}  # an empty dict has nothing to flatten
        assert df.loc["b", "l"] == [1, 2]
        assert df.loc["a", "l"] is None
        # the dotted column names are the ones find accepts
        assert [p.name for p in sub.find({"opt.steps": {"$gt": 5}})] == ["b"]


def test_to_dataframe_keeps_nan_and_huge_integers(db_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("runs")
        ds.create_datapoint("a").add_data({"r": float("nan"), "big": 2**64, "i": 2**62 + 1})
        ds.create_datapoint("b").add_data({"r": float("-inf"), "big": 1})
        df = ds.to_dataframe()
        assert pd.isna(df.loc["a", "r"])
        assert df.loc["b", "r"] == float("-inf")
        assert df.loc["a", "big"] == 2**64  # beyond 64 bits: object, exact
        assert df["i"].tolist() == [2**62 + 1, pd.NA]  # Int64: exact, not a float


def test_to_dataframe_files_column(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    from hards_h5 import InvalidDataError

    source = tmp_path / "log.txt"
    source.write_text("hello")
    with H5Database.create_database(db_path) as db:
        top = db.create_dataset("mc")
        top.create_datapoint("m").add_file(source, name="setup.txt")
        sub = top.create_dataset("opt")
        a = sub.create_datapoint("a")
        a.add_file(source, name="log.txt")
        a.add_file(source, name="out.csv")
        sub.create_datapoint("b").add_data({"x": 1})
        assert "files" not in sub.to_dataframe().columns
        df = sub.to_dataframe(files=True)
        assert list(df.columns) == ["dataset", "x", "files"]
        assert df["files"].tolist() == [["log.txt", "out.csv"], [], ["setup.txt"]]
        assert list(df[df["files"].map(lambda f: "log.txt" in f)].index) == ["a"]
        sub.create_datapoint("c").add_data({"files": 3})
        with pytest.raises(InvalidDataError, match=r"mc/opt/c.*files="):
            sub.to_dataframe(files=True)
        assert sub.to_dataframe(files="attached")["attached"].tolist()[0] == ["log.txt", "out.csv"]


def test_to_dataframe_dotted_key_clash(db_path: Path) -> None:
    pytest.importorskip("pandas")
    from hards_h5 import InvalidDataError

    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("runs")
        ds.create_datapoint("a").add_data({"a.b": 1})
        ds.create_datapoint("b").add_data({"a": {"b": 2}})
        assert ds.to_dataframe()["a.b"].tolist() == [1, 2]  # different rows: one column
        ds.create_datapoint("c").add_data({"a.b": 3, "a": {"b": 4}})
        with pytest.raises(InvalidDataError, match=r"runs/c.*'a\.b'"):
            ds.to_dataframe()
