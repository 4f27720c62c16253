"""Real processes: many readers open one closed campaign file at the same time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from hards_h5 import H5Database

READER = """
import json, sys, time
from hards_h5 import H5Database
path, go = sys.argv[1], float(sys.argv[2])
while time.time() < go:
    time.sleep(0.001)
with H5Database(path, "r") as db:
    points = db.recursively_get_dataset("mc/sub").recursively_get_datapoints()
    total = sum(p.data["i"] for p in points)
    text = db.recursively_get_datapoint("mc/sub/s0").get_file("note.txt").read_text()
print(json.dumps({"n": len(points), "total": total, "text": text}))
"""


def test_eight_readers_at_once(tmp_path: Path) -> None:
    path = tmp_path / "campaign.h5"
    note = tmp_path / "note.txt"
    note.write_text("hello from the writer")
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("mc")
        sub = mc.create_dataset("sub")
        for i in range(500):
            mc.create_datapoint(f"m{i}").add_data({"i": i})
            sub.create_datapoint(f"s{i}").add_data({"i": i})
        sub.get_datapoint("s0").add_file(note)
    go = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    expected = {"n": 1000, "total": 2 * sum(range(500)), "text": "hello from the writer"}
    assert results == [expected] * 8


def test_readers_in_this_process_too(tmp_path: Path) -> None:
    path = tmp_path / "campaign.h5"
    with H5Database.create_database(path) as db:
        db.create_dataset("a").create_datapoint("p").add_data({"x": 1})
    first = H5Database(path, "r")
    second = H5Database(path, "r")
    try:
        assert first.recursively_get_datapoint("a/p").data == {"x": 1}
        assert second.recursively_get_datapoint("a/p").data == {"x": 1}
    finally:
        first.close()
        second.close()
