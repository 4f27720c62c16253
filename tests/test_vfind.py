"""find() evaluated column-wise on the column index (api/vquery.py) = the per-row predicate."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hards_h5 import H5Database
from hards_h5.api import query as _query
from hards_h5.api import vquery as _vquery
from hards_h5.errors import InvalidFilterError
from hards_h5.store import index as _index
from hards_h5.store import log as _log
from lineage import write_lineage


# ------------------------------------------------------------ the reference
def per_row(ds: Any, spec: dict[str, Any], *, parents: bool = True) -> list[tuple[str, str]] | str:
    """find() as matched one datapoint at a time on the journal (no index), or its error."""
    matches, check_types = _query.compile_checked(spec)
    out = []
    for dataset, names in ds._lineage(parents=parents):
        log = ds._handle.log(names)
        out.extend(
            (dataset.fullname(), name)
            for node, name in enumerate(log.names, start=1)
            if matches(log.data(node))
        )
    try:
        check_types()
    except InvalidFilterError as exc:
        return str(exc)
    return out


def found(ds: Any, spec: dict[str, Any], *, parents: bool = True) -> list[tuple[str, str]] | str:
    try:
        return [(p.parent.fullname(), p.name) for p in ds.find(spec, parents=parents)]
    except InvalidFilterError as exc:
        return str(exc)


def column_wise(ds: Any, spec: dict[str, Any]) -> list[bool]:
    """Whether each dataset of the lineage is searched column-wise (vectorised)."""
    search = _vquery.Search(spec)
    out = []
    for _, names in ds._lineage(parents=True):
        index = _index.for_store(ds._handle.live(), names, exact=True)
        out.append(index is not None and search.rows(index) is not None)
    return out


# ------------------------------------------------------------------ data
_INTS = st.one_of(
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([2**53, 2**53 + 1, -(2**63), 2**63 - 1]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
_FLOATS = st.one_of(
    st.sampled_from([0.5, -0.5, 1.0, 2.0, 2.0**53, 2.0**63, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_TEXTS = st.one_of(
    st.sampled_from(["", "a", "ab", "b", "é", "z", "aé", "x y"]), st.text(max_size=5)
)
_KIND_VALUES = {"int": _INTS, "float": _FLOATS, "bool": st.booleans(), "str": _TEXTS}
_SUB = ("x", "y")


@st.composite
def datasets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows with one kind per key (an exact index, mostly); sometimes a stray value."""
    kinds = {
        key: draw(st.sampled_from([*_KIND_VALUES, "nested", "both"])) for key in ("a", "b", "c")
    }
    sub_kinds = {key: draw(st.sampled_from(list(_KIND_VALUES))) for key in _SUB}
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=7))):
        row: dict[str, Any] = {}
        for key, kind in kinds.items():
            if draw(st.integers(0, 3)) == 0:
                continue  # missing
            nested = kind == "nested" or (kind == "both" and draw(st.booleans()))
            if nested:
                sub = {k: draw(_KIND_VALUES[sub_kinds[k]]) for k in _SUB if draw(st.booleans())}
                row[key] = sub or {"x": draw(_KIND_VALUES[sub_kinds["x"]])}
            else:
                row[key] = draw(_KIND_VALUES[kind if kind in _KIND_VALUES else "int"])
        if draw(st.integers(0, 15)) == 0:  # a value the index cannot hold exactly
            row[draw(st.sampled_from(["a", "b", "c"]))] = draw(
                st.sampled_from([None, [1, "a"], 1.5, "s", True, {}])
            )
        rows.append(row)
    return rows


# ---------------------------------------------------------------- filters
_SCALARS = st.one_of(_INTS, _FLOATS, st.booleans(), _TEXTS, st.none(), st.just("a\0"))
_OPERANDS = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=2),
    st.dictionaries(st.sampled_from(_SUB), _SCALARS, max_size=2),  # (no "$": a dict to equal)
)
_KEYS = st.sampled_from(["a", "b", "c", "a.x", "a.y", "b.x", "c.y", "zz", "a.x.q"])
_OPS = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), _OPERANDS),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), _OPERANDS),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(_OPERANDS, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.just("$type"), st.sampled_from(sorted(_query._TYPES))),
    st.tuples(st.just("$regex"), st.sampled_from(["^a", "é", "b|z", "", "^$", "[0-9]"])),
)
_FIELDS = st.builds(
    lambda key, condition: {key: condition},
    _KEYS,
    st.one_of(_OPERANDS, st.lists(_OPS, min_size=1, max_size=3).map(dict)),
)
_FILTERS = st.recursive(
    _FIELDS,
    lambda inner: st.one_of(
        st.builds(lambda subs: {"$and": subs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda subs: {"$or": subs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda sub: {"$not": sub}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=5,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    top=datasets(),
    sub=datasets(),
    filters=st.lists(_FILTERS, min_size=1, max_size=8),
    pending=st.booleans(),
)
def test_column_wise_find_is_the_per_row_find(
    tmp_path_factory: pytest.TempPathFactory,
    top: list[dict[str, Any]],
    sub: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    pending: bool,
) -> None:
    path = tmp_path_factory.mktemp("vfind") / "c.h5"
    write_lineage(path, top, sub)
    # pending: a writer with an unwritten datapoint in mc/opt, whose index is then
    # not used (its datapoints are matched one by one), while mc's still is: the
    # ordering operators' type check adds up what both paths met
    with H5Database(path, mode="a" if pending else "r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        if pending:
            opt.create_datapoint("new").add_data(sub[0] if sub else {"a": 1})
        for spec in filters:
            for path, vectorised in zip(("mc/opt", "mc"), column_wise(opt, spec), strict=True):
                event(f"{path}: {'column-wise' if vectorised else 'per row'}")
            assert found(opt, spec) == per_row(opt, spec), spec
            assert found(opt, spec, parents=False) == per_row(opt, spec, parents=False), spec


# ------------------------------------------------------- the path taken
_ROWS = [
    {"i": 3, "x": 0.5, "b": True, "s": "opt", "n": {"lr": 0.1, "tag": "a"}},
    {"i": -(2**63), "x": math.nan, "b": False, "s": "é", "n": {"lr": 2.0}},
    {"i": 2**63 - 1, "x": math.inf, "s": "", "n": 7},
    {"i": 2**53 + 1, "x": -math.inf, "b": True},
    {"x": 2.0**53, "s": "zz top", "n": {"tag": "b"}},
    {"x": 2.0**53 + 4},
    {},
]
COLUMN_WISE = [
    {},
    {"i": 3},
    {"i": 3.0},
    {"i": 2**53},
    {"i": float(2**53)},
    {"i": {"$gt": 2**53}},
    {"i": {"$gt": float(2**53)}},
    {"i": {"$lt": 2.5, "$gte": -(2**70)}},
    {"i": {"$lte": math.inf}},
    {"i": {"$gte": 3.5}},  # (not i >= 3)
    {"i": {"$lt": 3.5}},
    {"i": {"$gt": -3.5}},
    {"x": {"$gte": 2**53 + 1}},  # (2**53 + 1 is no float: not x >= 2.0**53)
    {"x": {"$lt": 2**53 + 1}},
    {"x": {"$gt": 2**53 + 3}},  # (rounds up to 2.0**53 + 4: not x > 2.0**53 + 4)
    {"x": {"$lte": 2**53 + 3}},
    {"x": {"$gt": 2**53 - 1}},
    {"x": {"$gte": 2**1100}},
    {"x": {"$lt": -(2**1100)}},
    {"x": math.nan},
    {"x": {"$ne": math.nan}},
    {"x": {"$in": [0.5, math.inf, "a", None]}},
    {"x": {"$nin": [2**53, True]}},
    {"x": {"$in": [0.5, 2**53, math.inf, -math.inf, math.nan, 2**53 + 1]}},
    {"x": {"$in": [2**53 + 1, 0.5]}},  # (2**53 + 1 is no float: not 2.0**53)
    {"i": {"$in": [3, 2**63 - 1, float(2**53), 2**70, math.nan, "3", False]}},
    {"b": {"$in": [True, 1, 0.0]}},
    {"s": {"$nin": ["opt", "é", "", "opt\0", "x" * 300]}},
    {"b": True},
    {"b": 1},
    {"b": {"$gt": False}},
    {"s": "é"},
    {"s": {"$gt": "opt"}},
    {"s": {"$lt": "opt\x01"}},
    {"s": "opt\0"},
    {"s": {"$regex": "^o|é"}},
    {"s": {"$regex": "^$"}},
    {"n": 7},
    {"n": {"$type": "dict"}},
    {"n": {"$type": "int"}},
    {"n.lr": {"$exists": True}},
    {"n.tag": {"$in": ["a", "b"]}},
    {"n.lr.q": {"$exists": False}},
    {"missing": {"$exists": False}},
    {"missing": {"$ne": 1}},
    {"$or": [{"i": 3}, {"s": {"$gt": 1}}]},
    {"$and": [{"i": {"$gt": 0}}, {"$not": {"b": True}}]},
    {"$not": {"$or": [{"x": {"$gt": 1}}, {"n.tag": "a"}]}},
    {"n": {"$gt": 1}},
    {"s": [1]},
    {"x": {"$gt": 1e300}, "n": {"lr": 0.1}},  # (a dict operand: "n" is 7 where reached)
]
PER_ROW = [
    {"n": {"lr": 0.1, "tag": "a"}},  # a dict against nested dicts
    {"n": {"$in": [{"lr": 2.0}]}},
    {"s": {"$regex": re.compile("o")}},  # a compiled pattern
    {"s": {"$gt": "a\0"}},  # NUL orders differently in the index's bytes
    {"x": {"$eq": np.float64(0.5)}},  # a numpy scalar
    {"i": (3,)},
    {"n": {"lr": 0.1}, "i": 99},
]


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "c.h5"
    write_lineage(path, [{"i": 1, "x": 0.25, "s": "top"}], _ROWS)
    return path


def test_the_filters_that_can_be_are_evaluated_column_wise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path)
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        want = {i: per_row(opt, spec) for i, spec in enumerate(COLUMN_WISE)}
    real = _query.compile_tracked

    def no_per_row(spec: Any) -> Any:
        _, checks, check_types = real(spec)

        def refuse(data: Any) -> bool:
            msg = "matched one datapoint at a time"
            raise AssertionError(msg)

        return refuse, checks, check_types

    def no_log(*args: Any, **kwargs: Any) -> None:
        msg = "the record log was replayed"
        raise AssertionError(msg)

    monkeypatch.setattr(_query, "compile_tracked", no_per_row)
    monkeypatch.setattr(_log.DatasetLog, "__init__", no_log)
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        for i, spec in enumerate(COLUMN_WISE):
            assert found(opt, spec) == want[i], spec
    assert len(want[0]) == len(_ROWS) + 1  # ({} matches every datapoint)


def test_the_others_fall_back_to_the_per_row_predicate(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        for spec in PER_ROW:
            assert column_wise(opt, spec)[0] is False, spec  # (mc/opt's: mc's may be)
            assert found(opt, spec) == per_row(opt, spec), spec
        for spec in COLUMN_WISE:
            assert column_wise(opt, spec) == [True, True], spec


def test_an_ordering_operator_that_met_only_other_types_is_reported(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with H5Database(path, mode="r") as db:
        opt = db.recursively_get_dataset("mc/opt")
        spec: dict[str, Any] = {"i": {"$gt": "a"}}
        assert column_wise(opt, spec) == [True, True]
        with pytest.raises(
            InvalidFilterError, match="every value of 'i' met in the search is a number"
        ):
            opt.find(spec)
        # "n" holds numbers and dicts: both named
        with pytest.raises(InvalidFilterError, match="is a number or object"):
            opt.find({"n": {"$lt": "a"}})
        # not reached: $and stops at the first false part, so nothing was compared
        assert opt.find({"i": 12345, "s": {"$gt": 0}}) == []
        # where $or reaches the second part, "s" holds "" (p2): a string, reported
        spec = {"$or": [{"s": {"$gt": "a"}}, {"s": {"$gt": 0}}]}
        assert column_wise(opt, spec) == [True, True]
        assert found(opt, spec) == per_row(opt, spec)
        with pytest.raises(InvalidFilterError, match="every value of 's' met"):
            opt.find(spec)
        # reached only where "s" is missing: nothing compared, nothing to report
        spec = {"$or": [{"s": {"$exists": True}}, {"s": {"$gt": 0}}]}
        assert column_wise(opt, spec) == [True, True]
        assert found(opt, spec) == per_row(opt, spec)
        assert len(opt.find(spec)) == 5
