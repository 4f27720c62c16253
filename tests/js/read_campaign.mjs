// Read a hards-h5 campaign file the way a stranger's JavaScript would: with h5wasm
// (the HDF5 library h5web uses) and nothing of hards-h5. Prints one JSON document:
//
//   {"h5wasm": "<version>", "root": {<root attributes>},
//    "datasets": {"<name>": {"data": {...}, "files": {...},
//                            "points": [["<name>", {"data": {...}, "files": {...}}], ...],
//                            "children": {"<name>": {...}, ...}}}}
//
// where each file is {"sha256_of_bytes", "length", "virtual", "attrs": {...}}: the
// SHA-256 of the bytes h5wasm read from the file's dataset, and its attributes.
//
// Usage: node read_campaign.mjs CAMPAIGN.h5 [--memory]
//   default   h5wasm's Node build reads the file from disk (Emscripten NODERAWFS);
//   --memory  the browser build, the file copied into Emscripten's in-memory file
//             system under another name first, as h5web does with an opened file.
//
// Exit status 0 with the JSON on stdout; on any error, status 1 with
// {"error": "<message>", "where": "<HDF5 path>"} on stdout.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const [path, mode] = process.argv.slice(2);
if (!path || (mode !== undefined && mode !== "--memory")) {
  process.stderr.write("usage: node read_campaign.mjs CAMPAIGN.h5 [--memory]\n");
  process.exit(2);
}
const memory = mode === "--memory";
const h5wasm = (await import(memory ? "h5wasm" : "h5wasm/node")).default;
const Module = await h5wasm.ready;
// h5wasm's package.json is not exported: find it from the module h5wasm resolved to.
const version = JSON.parse(
  readFileSync(new URL("../../package.json", import.meta.resolve("h5wasm")), "utf8"),
).version;

let where = "/";

// Attribute values as JSON: h5wasm returns 64-bit integers as BigInt.
function plain(value) {
  if (typeof value === "bigint") {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  }
  if (ArrayBuffer.isView(value) || Array.isArray(value)) {
    return Array.from(value, plain);
  }
  return value;
}

function attributes(entity) {
  const out = {};
  for (const [name, attr] of Object.entries(entity.attrs)) {
    out[name] = plain(attr.value);
  }
  return out;
}

function node(group) {
  where = group.path;
  const data = JSON.parse(group.attrs["data"].value);
  const files = {};
  const folder = group.keys().includes("files") ? group.get("files") : null;
  if (folder !== null) {
    for (const name of folder.keys()) {
      const dataset = folder.get(name);
      where = dataset.path;
      const bytes = dataset.value; // a Uint8Array: the attached file's bytes
      files[name] = {
        sha256_of_bytes: createHash("sha256").update(bytes).digest("hex"),
        length: bytes.length,
        virtual: dataset.metadata.virtual_sources !== undefined,
        attrs: attributes(dataset),
      };
    }
  }
  return { data, files };
}

function dataset(group) {
  const out = node(group);
  const points = group.get("datapoints");
  out.points = points.keys().map((name) => [name, node(points.get(name))]);
  const children = group.get("datasets");
  out.children = {};
  for (const name of children.keys()) {
    out.children[name] = dataset(children.get(name));
  }
  return out;
}

let file;
try {
  let name = path;
  if (memory) {
    name = "/uploaded-campaign.h5";
    Module.FS.writeFile(name, readFileSync(path));
  }
  file = new h5wasm.File(name, "r");
  const top = file.get("datasets");
  const datasets = {};
  for (const name of top.keys()) {
    datasets[name] = dataset(top.get(name));
  }
  process.stdout.write(
    JSON.stringify({ h5wasm: version, root: attributes(file), datasets }) + "\n",
  );
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error), where }) + "\n");
  process.exitCode = 1;
} finally {
  file?.close();
}
