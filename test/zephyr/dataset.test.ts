// A Dataset on its own: explain() needs nothing but the dataset module, and a
// pipeline built by another copy of fluster is still a Dataset.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Dataset } from "../../src/zephyr/dataset.js";
import { runNode } from "../helpers/index.js";

describe("Dataset", () => {
  test("explain() works in a process that imported only the dataset module", async () => {
    const program = `const { Dataset } = await import("./src/zephyr/dataset.ts");
      console.log(Dataset.fromList([1, 2, 3, 4], { numShards: 2 }).map((x) => x * 2).groupBy((x) => x % 3, (k, xs) => xs.length).explain());`;
    const run = await runNode(["--import", "tsx", "--input-type=module", "-e", program]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), [
      "stage 0 (2 shards): list of 4 records → map → hash-partition into 2",
      "stage 1 (2 shards): stage 0, grouped by key → collect",
    ].join("\n"));
  });

  test("a dataset made by another copy of the module is instanceof Dataset; other objects are not", async () => {
    const copy = (await import(`../../src/zephyr/dataset.ts?copy=${Date.now()}`)) as typeof import("../../src/zephyr/dataset.js");
    assert.notEqual(copy.Dataset, Dataset, "a separate copy was loaded");
    assert.ok(copy.Dataset.fromList([1]).map((x) => x) instanceof Dataset);
    assert.ok(Dataset.fromList([1]) instanceof copy.Dataset);
    assert.ok(!({ source: { kind: "list", items: [] }, ops: [] } instanceof Dataset), "a look-alike object is not a Dataset");
    assert.ok(!((null as unknown as object) instanceof Dataset));
  });
});
