"""The writer's memory per datapoint stays near the size of the data it holds."""

from __future__ import annotations

import gc
import tracemalloc
from typing import TYPE_CHECKING

from hards_h5 import H5Database
from hards_h5.store import codec as _codec

if TYPE_CHECKING:
    from pathlib import Path

N = 2000


def test_encoded_json_is_exact_size() -> None:
    value = {"x": 0.5, "y": 0.25, "inside": True, "run": 1}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [_codec.dumps(value) for _ in range(N)]
        per_item = (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()
    assert held[0] == b'{"x":0.5,"y":0.25,"inside":true,"run":1}'
    # orjson's own result keeps a >= 4 KiB buffer per call; a copy is ~80 bytes.
    assert per_item < 512, f"{per_item:.0f} bytes held per encoded value"


def test_writer_holds_little_per_datapoint(tmp_path: Path) -> None:
    db = H5Database.create_database(tmp_path / "mem.h5")
    sub = db.create_dataset("mc").create_dataset("sub")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(N):
            sub.create_datapoint(f"p{i}").add_data(
                {"x": i * 0.5, "y": i * 0.25, "inside": i % 2 == 0, "run": i}
            )
        gc.collect()
        per_point = (tracemalloc.get_traced_memory()[0] - before) / N
    finally:
        tracemalloc.stop()
        db.close()
    # Name, index entry, JSON text and the pending record: a few hundred bytes.
    assert per_point < 1024, f"{per_point:.0f} bytes held per datapoint"
    reopened = H5Database(tmp_path / "mem.h5", "r")
    try:
        points = reopened.recursively_get_dataset("mc/sub").recursively_get_datapoints()
        assert [p.data["run"] for p in points if p.name.startswith("p")] == list(range(N))
    finally:
        reopened.close()
