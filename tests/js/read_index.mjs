// Read the column index of one dataset of a hards-h5 campaign with h5wasm alone, as
// h5web's table view does: the compound dataset `index` (one row per datapoint, a
// field per column) and its mask `index_mask` (1 where the datapoint has a value).
// Prints {"columns": [...], "rows": [[...], ...], "mask_columns": [...], "mask": [[...], ...]}.
//
// Usage: node read_index.mjs CAMPAIGN.h5 /datasets/<name>[/datasets/<child>...]
const [path, group] = process.argv.slice(2);
if (!path || !group) {
  process.stderr.write("usage: node read_index.mjs CAMPAIGN.h5 DATASET_GROUP\n");
  process.exit(2);
}
const h5wasm = (await import("h5wasm/node")).default;
await h5wasm.ready;
const f = new h5wasm.File(path, "r");
const plain = (key, value) => (typeof value === "bigint" ? Number(value) : value);
const table = f.get(`${group}/index`);
const mask = f.get(`${group}/index_mask`);
const names = (d) => d.metadata.compound_type.members.map((m) => m.name);
console.log(
  JSON.stringify(
    { columns: names(table), rows: table.value, mask_columns: names(mask), mask: mask.value },
    plain,
  ),
);
f.close();
