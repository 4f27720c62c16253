"""Property-based tests: data round trips and the naming rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hards_h5 import H5Database, InvalidDataError, InvalidNameError
from hards_h5.api.names import check_name
from hards_h5.store.codec import encode_data

NAME_RE = re.compile(r"[A-Za-z0-9._-]+")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("prop") / "prop.h5"
    db = H5Database.create_database(path)
    db.create_dataset("ds")
    yield db
    db.close()


_counter = iter(range(10**9))


@SETTINGS
@given(json_objects)
def test_json_round_trip_in_memory_and_on_disk(
    shared_db: H5Database, value: dict[str, Any]
) -> None:
    ds = shared_db.get_dataset("ds")
    name = f"p{next(_counter)}"
    dp = ds.create_datapoint(name)
    dp.add_data(value)
    assert dp.data == value
    shared_db.flush()
    assert ds.get_datapoint(name).data == json.loads(json.dumps(value))


@SETTINGS
@given(st.lists(json_objects, min_size=1, max_size=4))
def test_reopen_round_trip(
    tmp_path_factory: pytest.TempPathFactory, updates: list[dict[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("rt") / "rt.h5"
    expected: dict[str, Any] = {}
    with H5Database.create_database(path) as db:
        dp = db.create_dataset("ds").create_datapoint("p")
        for update in updates:
            dp.add_data(update)
            expected.update(update)
    with H5Database(path, "r") as db:
        assert db.recursively_get_datapoint("ds/p").data == expected


numpy_arrays = st.sampled_from(
    [np.int8, np.int32, np.int64, np.uint16, np.float32, np.float64, np.bool_]
).flatmap(
    lambda dtype: st.lists(st.integers(-100, 100), min_size=0, max_size=12).map(
        lambda xs: np.array(xs).astype(dtype)
    )
)


@SETTINGS
@given(numpy_arrays, st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_numpy_values_become_json(
    shared_db: H5Database, arr: np.ndarray[Any, Any], f32: float
) -> None:
    dp = shared_db.get_dataset("ds").create_datapoint(f"np{next(_counter)}")
    dp.add_data(
        {"arr": arr, "matrix": arr.reshape(1, -1), "scalar": np.float32(f32), "n": np.int64(3)}
    )
    data = dp.data
    assert data["arr"] == arr.tolist()
    assert data["matrix"] == [arr.tolist()]
    assert data["scalar"] == float(np.float32(f32))
    assert data["n"] == 3
    assert json.loads(json.dumps(data)) == data


@SETTINGS
@given(st.text(max_size=20))
def test_name_rule(name: str) -> None:
    valid = NAME_RE.fullmatch(name) is not None and name not in {".", ".."}
    if valid:
        assert check_name(name, "datapoint") == name
    else:
        with pytest.raises(InvalidNameError):
            check_name(name, "datapoint")


@SETTINGS
@given(st.from_regex(NAME_RE, fullmatch=True).filter(lambda n: n not in {".", ".."}))
def test_valid_names_round_trip(shared_db: H5Database, name: str) -> None:
    parent = shared_db.get_dataset("ds").create_dataset(f"names{next(_counter)}")
    parent.create_datapoint(name)
    parent.create_dataset(name)
    assert parent.datapoints == [name]
    assert parent.children == [name]
    assert shared_db.recursively_get_datapoint(f"{parent.fullname()}/{name}").name == name


BAD_VALUES = [
    {1: "int key"},
    {"nested": {None: 1}},
    object(),
    {1, 2},
    b"bytes",
    np.array([1 + 2j]),
    complex(1, 2),
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_bad_values_rejected_before_writing(shared_db: H5Database, bad: object) -> None:
    dp = shared_db.get_dataset("ds").create_datapoint(f"bad{next(_counter)}")
    dp.add_data({"keep": 1})
    with pytest.raises(InvalidDataError):
        dp.add_data({"fine": 2, "bad": bad})
    assert dp.data == {"keep": 1}


def test_cycles_and_depth_rejected() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidDataError, match="refers to itself"):
        encode_data(cyclic)
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(InvalidDataError, match="deeper"):
        encode_data({"deep": deep})
    with pytest.raises(InvalidDataError, match="must be a dict"):
        encode_data([1, 2])  # type: ignore[arg-type]


def test_big_data_has_no_size_limit(tmp_path: Path) -> None:
    big = {"blob": "z" * (5 << 20), "arr": np.arange(200_000)}
    with H5Database.create_database(tmp_path / "big.h5") as db:
        db.create_dataset("ds").create_datapoint("p").add_data(big)
    with H5Database(tmp_path / "big.h5", "r") as db:
        data = db.recursively_get_datapoint("ds/p").data
    assert data["blob"] == big["blob"]
    assert data["arr"] == list(range(200_000))


def test_integers_beyond_64_bits_round_trip(tmp_path: Path) -> None:
    # odd values: 2**70 itself is exact as a float and would hide a float round trip
    value = {
        "big": 2**70 + 1,
        "neg": -(2**80) - 1,
        "nested": [2**100 + 1],
        "edge": [2**63, -(2**63) - 1, 2**64, 2**64 - 1],
    }
    with H5Database.create_database(tmp_path / "ints.h5") as db:
        dp = db.create_dataset("ds").create_datapoint("p")
        dp.add_data(value)
        dp.add_data({"small": 1})
    with H5Database(tmp_path / "ints.h5", "r") as db:
        assert db.recursively_get_datapoint("ds/p").data == {**value, "small": 1}


@SETTINGS
@given(st.integers(min_value=-(2**200), max_value=2**200), st.integers())
def test_any_integer_survives_later_add_data(shared_db: H5Database, big: int, other: int) -> None:
    dp = shared_db.get_dataset("ds").create_datapoint(f"int{next(_counter)}")
    dp.add_data({"big": big, "list": [big, -big]})
    dp.add_data({"other": other})  # rewrites the stored text from the decoded old value
    assert dp.data == {"big": big, "list": [big, -big], "other": other}
    assert type(dp.data["big"]) is int


@pytest.mark.parametrize("bad", [{"s": "\ud800"}, {"k": {"\udc00": 1}}, {"l": ["ok", "\udfff"]}])
def test_lone_surrogates_are_invalid_data(shared_db: H5Database, bad: dict[str, Any]) -> None:
    dp = shared_db.get_dataset("ds").create_datapoint(f"sur{next(_counter)}")
    dp.add_data({"keep": 1})
    with pytest.raises(InvalidDataError, match="not valid Unicode"):
        dp.add_data(bad)
    assert dp.data == {"keep": 1}


def test_long_double_arrays_become_floats(shared_db: H5Database) -> None:
    dp = shared_db.get_dataset("ds").create_datapoint(f"ld{next(_counter)}")
    dp.add_data({"a": np.array([1.5, 2.25], dtype=np.longdouble), "s": np.longdouble(0.5)})
    assert dp.data == {"a": [1.5, 2.25], "s": 0.5}
    huge = np.array([np.longdouble("1e400"), 1.5], dtype=np.longdouble)  # no float holds it
    if np.isfinite(huge[0]):  # (where long double is wider than a float)
        with pytest.raises(InvalidDataError, match="too large"):
            dp.add_data({"a": huge})
        assert dp.data == {"a": [1.5, 2.25], "s": 0.5}
