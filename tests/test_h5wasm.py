"""A stranger's JavaScript reads a closed campaign with h5wasm (the library h5web uses).

``tests/js/read_campaign.mjs`` walks the tree at rest with h5wasm alone (no hards-h5,
no h5py) and prints what it finds as JSON; these tests build campaigns with hards-h5
and check that the JavaScript reader finds exactly what the HARDS API returns: every
datapoint and dataset, in creation order, each one's JSON ``data``, and every attached
file's bytes (by SHA-256) and attributes. The files of a campaign are same-file virtual
datasets mapped onto ``/blobs`` (docs/format.md), so this is also the check that
h5wasm reads those.

Run ``npm ci --prefix tests/js`` once to install h5wasm (``.ci/run`` does).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli_runner import hards
from hards_h5 import H5Database

JS_DIR = Path(__file__).parent / "js"
NODE = shutil.which("node")
INSTALLED = (JS_DIR / "node_modules" / "h5wasm" / "package.json").is_file()

pytestmark = pytest.mark.skipif(
    NODE is None or not INSTALLED,
    reason=(
        "needs node and h5wasm: install with `npm ci --prefix tests/js` "
        "(node and npm from https://nodejs.org or `apt-get install nodejs npm`)"
    ),
)

MODES = ["disk", "memory"]  # h5wasm's Node build from disk; the browser build from memory


def js_read(path: Path, mode: str) -> dict[str, Any]:
    """Run the JavaScript reader on ``path``; return what it printed."""
    assert NODE is not None
    args = [NODE, str(JS_DIR / "read_campaign.mjs"), str(path)]
    if mode == "memory":
        args.append("--memory")
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def expected_file(name: str, content: bytes) -> dict[str, Any]:
    """What the JavaScript reader must report for a file the API returns as ``content``."""
    digest = hashlib.sha256(content).hexdigest()
    return {
        "sha256_of_bytes": digest,
        "length": len(content),
        "attrs": {
            "file_name": name,
            "size": len(content),
            "sha256": digest,
            "algorithm": "sha256",
            "type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        },
    }


def api_view(path: Path) -> dict[str, Any]:
    """The campaign through the HARDS API, in the JavaScript reader's shape."""

    def node(obj: Any) -> dict[str, Any]:
        return {
            "data": obj.data,
            "files": {n: expected_file(n, Path(obj.get_file(n)).read_bytes()) for n in obj.files},
        }

    def dataset(ds: Any) -> dict[str, Any]:
        out = node(ds)
        out["points"] = [[p, node(ds.get_datapoint(p))] for p in ds.datapoints]
        out["children"] = {c: dataset(ds.get_dataset(c)) for c in ds.children}
        return out

    with H5Database(path, mode="r") as db:
        return {c: dataset(db.get_dataset(c)) for c in db.children}


def without_virtual_flags(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool]]:
    """Split the reader's ``virtual`` flags off its tree: ``(tree, {file path: virtual})``."""
    flags: dict[str, bool] = {}

    def node(where: str, obj: dict[str, Any]) -> dict[str, Any]:
        files = {}
        for name, info in obj["files"].items():
            flags[f"{where}/files/{name}"] = info["virtual"]
            files[name] = {k: v for k, v in info.items() if k != "virtual"}
        return {**obj, "files": files}

    def dataset(where: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = node(where, obj)
        out["points"] = [[p, node(f"{where}/datapoints/{p}", v)] for p, v in obj["points"]]
        out["children"] = {
            c: dataset(f"{where}/datasets/{c}", v) for c, v in obj["children"].items()
        }
        return out

    return {n: dataset(f"/datasets/{n}", v) for n, v in tree.items()}, flags


def build_campaign(path: Path, scratch: Path) -> None:
    """Nested datasets, unicode and > 64 KiB data, empty / 1 MB / overwritten files."""
    rng = random.Random(14)
    big_text = "Grüße, 世界 🎉 " * 8_000  # ~150 KB of UTF-8: past HDF5's 64 KiB limit
    megabyte = rng.randbytes(1_000_003)
    (scratch / "empty.bin").write_bytes(b"")
    (scratch / "weights.bin").write_bytes(megabyte)
    (scratch / "notes.txt").write_text("first version\n", encoding="utf-8")
    (scratch / "summary.json").write_text('{"best": 0.25}', encoding="utf-8")
    with H5Database.create_database(path) as db:
        mc = db.create_dataset("monte_carlo")
        mc.add_data({"device": "W7-X", "ünïcode-κλειδί": "värde ✓", "seeds": [1, 2, 3]})
        for i in (3, 1, 2):  # creation order, not name order
            point = mc.create_datapoint(f"sample-{i:06d}")
            point.add_data({"i": i, "x": i / 7, "ok": i % 2 == 0, "none": None})
        first = mc.get_datapoint("sample-000003")
        first.add_file(scratch / "empty.bin")
        first.add_file(scratch / "weights.bin")
        first.add_file(scratch / "notes.txt")
        opt = mc.create_dataset("optimiser")
        opt.create_datapoint("step-0").add_data({"text": big_text, "nested": {"a": [1.5, "b"]}})
        deep = opt.create_dataset("refine.v2")
        deep.add_data({"level": 3})
        deep.create_datapoint("p").add_file(scratch / "summary.json")
        db.create_dataset("empty_dataset")
    # A second session: more data merged in, a file overwritten, a dataset's own file.
    (scratch / "notes.txt").write_text("second version, longer ✓\n", encoding="utf-8")
    with H5Database(path) as db:
        mc = db.get_dataset("monte_carlo")
        mc.get_datapoint("sample-000003").add_file(scratch / "notes.txt")
        mc.get_datapoint("sample-000001").add_data({"later": "ok", "i": -1})
        mc.add_file(scratch / "summary.json")
        mc.create_datapoint("sample-000000")


@pytest.mark.parametrize("mode", MODES)
def test_h5wasm_reads_what_the_api_returns(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "campaign.h5"
    build_campaign(path, tmp_path)
    seen = js_read(path, mode)
    assert seen["root"]["format"] == "hards-h5"
    assert seen["root"]["format_version"] == 2
    tree, virtual = without_virtual_flags(seen["datasets"])
    assert tree == api_view(path)
    # the bytes came through HDF5 virtual datasets mapped onto /blobs, not copies
    assert virtual["/datasets/monte_carlo/datapoints/sample-000003/files/weights.bin"]
    assert virtual["/datasets/monte_carlo/datapoints/sample-000003/files/notes.txt"]
    assert virtual["/datasets/monte_carlo/files/summary.json"]


def test_h5wasm_reads_a_compacted_campaign(tmp_path: Path) -> None:
    path = tmp_path / "campaign.h5"
    build_campaign(path, tmp_path)
    result = hards("compact", str(path))
    assert result.returncode == 0, result.stderr
    tree, virtual = without_virtual_flags(js_read(path, "disk")["datasets"])
    assert tree == api_view(path)
    assert virtual["/datasets/monte_carlo/datapoints/sample-000003/files/weights.bin"]


def test_the_javascript_in_inspect_md_runs_as_written(tmp_path: Path) -> None:
    page = (Path(__file__).parent.parent / "docs" / "inspect.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```javascript\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) == 1
    result = hards("demo", "--samples", "3", str(tmp_path / "campaign.h5"))
    assert result.returncode == 0, result.stderr
    script = tmp_path / "snippet.mjs"
    script.write_text(
        blocks[0].replace("f.close();", "")
        + "console.log(JSON.stringify({ data, bytes: Array.from(bytes) }));\nf.close();\n",
        encoding="utf-8",
    )
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    with H5Database(tmp_path / "campaign.h5", mode="r") as db:
        points = db.get_dataset("random")
        assert seen["data"] == points.get_datapoint("sample-000002").data
        text = Path(points.get_datapoint("sample-000000").get_file("sample.txt")).read_bytes()
    assert bytes(seen["bytes"]) == text


def test_h5wasm_reads_the_column_index_as_a_table(tmp_path: Path) -> None:
    """The column index is what h5web shows as a table: h5wasm reads its compound rows
    and mask, and they hold what ``to_dataframe()`` returns (missing values masked)."""
    path = tmp_path / "campaign.h5"
    with H5Database.create_database(path) as db:
        ds = db.create_dataset("scan")
        for i in range(5):
            data: dict[str, Any] = {"x": i / 4, "n": i, "ok": i % 2 == 0, "tag": f"é{i}"}
            if i == 3:
                del data["n"]  # missing: masked, not a float-cast int
            ds.create_datapoint(f"p{i}").add_data(data | {"opt": {"lr": 0.1 * i}})
        frame = ds.to_dataframe()
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(JS_DIR / "read_index.mjs"), str(path), "/datasets/scan"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    columns = ["x", "n", "ok", "tag", "opt.lr"]
    assert seen["columns"] == ["datapoint", *columns]
    assert seen["mask_columns"] == columns
    for row, (values, present) in enumerate(zip(seen["rows"], seen["mask"], strict=True)):
        name, *cells = values
        assert name == frame.index[row]
        flags = dict(zip(columns, present, strict=True))
        for column, cell in zip(columns, cells, strict=True):
            want = frame[column].iloc[row]
            if column == "n" and row == 3:
                assert not flags[column]  # the missing value is masked
                continue
            assert flags[column]
            assert cell == (int(want) if column == "ok" else want), (row, column)
