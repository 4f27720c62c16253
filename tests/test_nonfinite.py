"""NaN and the infinities: stored and returned exactly, as Python's json writes them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hards_h5 import H5Database, InvalidDataError
from hards_h5.store.codec import decode, dumps, encode_data

any_float = st.floats(allow_nan=True, allow_infinity=True)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_float | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
objects = st.dictionaries(st.text(max_size=6), values, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (checked with math.isnan) and types kept apart."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=objects, second=objects)
def test_floats_with_nan_and_inf_round_trip_through_the_file(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    path = tmp_path / "prop.h5"
    path.unlink(missing_ok=True)
    with H5Database.create_database(path) as db:
        point = db.create_dataset("ds").create_datapoint("p")
        point.add_data(first)
        point.add_data(second)
        assert same(point.data, {**first, **second})
    with H5Database(path, "r") as db:
        assert same(db.recursively_get_datapoint("ds/p").data, {**first, **second})


def test_numpy_nan_and_inf_scalars_and_arrays(db_path: Path) -> None:
    with H5Database.create_database(db_path) as db:
        point = db.create_dataset("ds").create_datapoint("p")
        point.add_data(
            {
                "f32": np.float32("nan"),
                "f64": np.float64("-inf"),
                "arr": np.array([[1.5, np.nan], [np.inf, -np.inf]]),
                "arr32": np.array([np.nan, 2.0], dtype=np.float32),
                "ld": np.longdouble("inf"),
            }
        )
    with H5Database(db_path, "r") as db:
        data = db.recursively_get_datapoint("ds/p").data
    assert math.isnan(data["f32"])
    assert data["f64"] == -math.inf
    assert data["arr"][0][0] == 1.5
    assert math.isnan(data["arr"][0][1])
    assert data["arr"][1] == [math.inf, -math.inf]
    assert math.isnan(data["arr32"][0])
    assert data["arr32"][1] == 2.0
    assert data["ld"] == math.inf


def test_nan_is_not_written_as_null() -> None:
    """orjson writes NaN as null; the stored text must keep it apart from None."""
    text = dumps(encode_data({"a": math.nan, "b": None, "c": [math.inf, -math.inf]}))
    assert text == b'{"a":NaN,"b":null,"c":[Infinity,-Infinity]}'
    back = decode(text, big_ints=False)
    assert math.isnan(back["a"])
    assert back["b"] is None
    assert back["c"] == [math.inf, -math.inf]


def test_file_holds_python_json_tokens(db_path: Path) -> None:
    """A plain h5py reader finds NaN/Infinity/-Infinity, which json.loads reads."""
    with H5Database.create_database(db_path) as db:
        db.create_dataset("ds").create_datapoint("p").add_data(
            {"r": math.nan, "hi": math.inf, "lo": -math.inf}
        )
    with h5py.File(db_path, "r") as f:
        heap = f["datasets/ds/heap"][:].tobytes()
    assert b'{"r":NaN,"hi":Infinity,"lo":-Infinity}' in heap
    back = json.loads(b'{"r":NaN,"hi":Infinity,"lo":-Infinity}')
    assert math.isnan(back["r"])
    assert back["hi"] == math.inf


def test_too_large_long_double_is_still_refused() -> None:
    huge = np.longdouble("1e400")
    if not np.isfinite(huge):  # long double no wider than a float here
        pytest.skip("long double is a 64-bit float on this machine")
    with pytest.raises(InvalidDataError, match="too large"):
        encode_data({"x": huge})


def test_many_datapoints_with_nan_on_the_sealed_bulk_path(db_path: Path) -> None:
    """More than a seal's worth of rows: the sealed replay and the bulk parse read NaN."""
    with H5Database.create_database(db_path) as db:
        ds = db.create_dataset("ds")
        for i in range(1500):
            ds.create_datapoint(f"p{i}").add_data({"i": i, "y": math.nan if i % 3 else i / 2})
    with H5Database(db_path, "r") as db:
        points = db.get_dataset("ds").recursively_get_datapoints()
        ys = [p.data["y"] for p in points]
    assert len(ys) == 1500
    assert all(math.isnan(y) for i, y in enumerate(ys) if i % 3)
    assert all(y == i / 2 for i, y in enumerate(ys) if not i % 3)


def test_import_seed_directory_with_nan_and_export_back(tmp_path: Path) -> None:
    from hards.filesystem import FilesystemDatabase

    from hards_h5.tools.migrate import export_seed, import_seed

    seed_dir = tmp_path / "seed"
    seed = FilesystemDatabase.create_database(seed_dir)
    seed.create_dataset("runs").create_datapoint("diverged").add_data(
        {"residual": math.nan, "bounds": [-math.inf, math.inf]}
    )
    h5 = tmp_path / "c.h5"
    import_seed(seed_dir, h5)
    with H5Database(h5, "r") as db:
        data = db.recursively_get_datapoint("runs/diverged").data
    assert math.isnan(data["residual"])
    assert data["bounds"] == [-math.inf, math.inf]
    back = tmp_path / "back"
    export_seed(h5, back)
    again = FilesystemDatabase(back).get_dataset("runs").get_datapoint("diverged").data
    assert math.isnan(again["residual"])
    assert again["bounds"] == [-math.inf, math.inf]


def test_merge_takes_identical_nan_as_the_same_value(tmp_path: Path) -> None:
    from hards_h5 import merge

    shards = []
    for k in range(2):
        shard = tmp_path / f"s{k}.h5"
        with H5Database.create_database(shard) as db:
            db.create_dataset("runs").create_datapoint("p").add_data({"r": math.nan, "k": 1})
        shards.append(shard)
    out = tmp_path / "out.h5"
    merge(out, shards)  # the same NaN in both: no conflict
    with H5Database(out, "r") as db:
        data = db.recursively_get_datapoint("runs/p").data
    assert math.isnan(data["r"])
    assert data["k"] == 1
