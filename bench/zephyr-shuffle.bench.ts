// Zephyr's out-of-core groupBy against the in-memory one, measured in the
// same run over the same records: the grouping stage's time with a memory
// budget far above the data (everything in a Map) and with a budget 1/ratio
// of the data's encoded size (records dealt into hash partitions on storage,
// the reduced results put back in order through sorted runs).
// Rounds interleave the two; the median of each and their ratio are printed.
//   node --import tsx bench/zephyr-shuffle.bench.ts [--records 400000] [--keys 50000] [--ratio 10] [--rounds 5] [--storage DIR]
// Target: spilled ≤ 2× the in-memory time at ratio 10.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { encodeValue } from "../src/rpc/codec.js";
import { Dataset, execute, type ShardProgress } from "../src/zephyr/index.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "400000" },
    keys: { type: "string", default: "50000" },
    ratio: { type: "string", default: "10" },
    rounds: { type: "string", default: "5" },
    storage: { type: "string", default: "" },
  },
});
const records = Number(values.records);
const keys = Number(values.keys);
const rounds = Number(values.rounds);
const storagePath = values.storage || mkdtempSync(join(tmpdir(), "zephyr-shuffle-bench-"));

const rows = Array.from({ length: records }, (_, i) => ({ k: `key${(i * 7919) % keys}`, v: i, pad: `p${"x".repeat(18)}` }));
const encodedBytes = encodeValue(rows).byteLength;
const budget = Math.floor(encodedBytes / Number(values.ratio));
// One grouping shard, so the stage's time is one shard's work.
const ds = Dataset.fromList(rows, { numShards: 4 }).groupBy(
  (r) => r.k,
  (k, rs) => ({ k, n: rs.length }),
  { numShards: 1 },
);

/** Milliseconds of the grouping stage (from the last source shard's end to its end), and the files it spilled. */
async function groupingStage(memoryLimitBytes: number): Promise<{ ms: number; runs: number }> {
  let sourceDone = 0;
  let end = 0;
  let runs = 0;
  await execute(ds, {
    backend: "sync",
    memoryLimitBytes,
    storagePath,
    onShard: (e: ShardProgress) => {
      if (e.stage === 0) sourceDone = performance.now();
      else {
        end = performance.now();
        runs = e.spilledRuns;
      }
    },
  });
  return { ms: end - sourceDone, runs };
}

const inMemory: number[] = [];
const spilled: number[] = [];
let runs = 0;
try {
  await groupingStage(budget); // warm-up
  for (let round = 0; round < rounds; round++) {
    inMemory.push((await groupingStage(1024 ** 4)).ms);
    const s = await groupingStage(budget);
    spilled.push(s.ms);
    runs = s.runs;
  }
} finally {
  if (!values.storage) rmSync(storagePath, { recursive: true, force: true });
}
const m = summarize(inMemory).median;
const s = summarize(spilled).median;
console.log(machine());
console.log(`${records} records, ${(encodedBytes / 2 ** 20).toFixed(1)} MiB encoded, ${keys} keys; spilled budget ${(budget / 2 ** 20).toFixed(2)} MiB (${runs} spilled objects: one per dealing into partitions, and the sorted runs of the results)`);
printTable([
  { groupBy: "in memory", "median ms": m.toFixed(0), "records/s": Math.round(records / (m / 1000)) },
  { groupBy: `spilled (data ${values.ratio}× budget)`, "median ms": s.toFixed(0), "records/s": Math.round(records / (s / 1000)) },
]);
console.log(`spilled / in memory: ${(s / m).toFixed(2)}× (target ≤ 2×)`);
