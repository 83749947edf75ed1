// One Zephyr run for bench/zephyr.bench.ts, in a fresh process: the same
// map+filter as bench/servers/handwritten-filter.mjs over the given files,
// on the given backend. A warm-up run over the first file comes first
// (threads started, pool workers joined, code compiled); then the timed run
// prints one JSON line: {"seconds": …, "files": …}.
//   node --import tsx bench/servers/zephyr-filter.ts <backend> <workers> <outDir> <inputFiles…>
import { rmSync } from "node:fs";
import { join } from "node:path";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { execute, type ZephyrBackend } from "../../src/index.js";
import { filterDocs } from "./filter-docs.js";

const [backend, workersText, outDir, ...inputs] = process.argv.slice(2) as [ZephyrBackend, string, string, ...string[]];
const workers = Number(workersText);
let cluster: LocalCluster | undefined;
let context: JobContext | undefined;
if (backend === "cluster") {
  cluster = await LocalCluster.start({ workers, workerCpu: 1, workerMemory: "4g" });
  context = createJobContext("cluster", { cluster, maxWorkers: workers, workerResources: { cpu: 1, memory: "1g" } });
} else if (backend === "threads") {
  context = createJobContext("threads", { maxWorkers: workers });
}
const options = { backend, maxParallelism: workers, progress: false, ...(context ? { context } : {}) };
try {
  await execute(filterDocs(inputs.slice(0, 1), join(outDir, "warmup-{shard:05d}.jsonl.gz")), options);
  rmSync(join(outDir, "warmup-00000.jsonl.gz"));
  const start = performance.now();
  const files = await execute(filterDocs(inputs, join(outDir, "part-{shard:05d}.jsonl.gz")), options);
  console.log(JSON.stringify({ seconds: (performance.now() - start) / 1000, files: files.length }));
} finally {
  await context?.close();
  await cluster?.shutdown();
}
