// Zephyr map+filter over gzipped JSONL against a hand-written single-process
// Node stream script doing the same work, measured in the same run. Each
// measurement runs in a fresh process; records/s counts input records.
// Reference rows run the script several times side by side (on worker
// threads, and as processes) to show what parallel Node reaches here.
//   node --import tsx bench/zephyr.bench.ts [--mb 200] [--files 16] [--workers 2] [--backends sync,threads,cluster] [--data DIR]
// Targets: sync ≥ 0.8× the script; threads and cluster with 2 workers ≥ 1.6× (on a 2-core machine),
// with 16 workers ≥ 12× (on the 16-core GPU machine).
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runChild } from "./child.js";
import { benchCorpus, DEFAULT_DATA_ROOT } from "./zephyr-data.js";
import { machine, printTable } from "./stats.js";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "200" },
    files: { type: "string", default: "16" },
    workers: { type: "string", default: "2" },
    backends: { type: "string", default: "sync,threads,cluster" },
    data: { type: "string", default: DEFAULT_DATA_ROOT },
  },
});
/** Targets for threads and cluster by worker count: 2 on the 2-core machine, 16 on the 16-core one. */
const TARGETS = new Map([
  [2, 1.6],
  [16, 12],
]);
const megabytes = Number(values.mb);
const fileCount = Number(values.files);
const workerCounts = values.workers.split(",").map(Number);
const backends = values.backends.split(",");

const { dir: dataDir, inputs } = await benchCorpus(values.data, megabytes, fileCount);
console.log(`machine: ${machine()}; input: ${fileCount} files, ${megabytes} MiB of JSONL before gzip, in ${dataDir}`);

const outRoot = join(tmpdir(), `fluster-zephyr-bench-out-${process.pid}`);
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
try {
  const baselineOut = join(outRoot, "baseline");
  mkdirSync(baselineOut, { recursive: true });
  const baseline = await runChild([here("./servers/handwritten-filter.mjs"), baselineOut, ...inputs]);
  const records = baseline.records as number;
  const baseRate = records / (baseline.seconds as number);
  const rows: Array<Record<string, string | number>> = [
    { measure: "hand-written Node stream script", seconds: baseline.seconds as number, "records/s": Math.round(baseRate), ratio: "1.00×", target: "—" },
  ];
  // Reference points, no target: the same script N times side by side, on
  // worker threads of one process and as separate processes.
  for (const workers of workerCounts) {
    for (const mode of ["threads", "processes"] as const) {
      const out = join(outRoot, `handwritten-${mode}-${workers}`);
      mkdirSync(out, { recursive: true });
      const result = await runChild([here("./servers/handwritten-parallel.mjs"), mode, String(workers), out, ...inputs]);
      const rate = records / (result.seconds as number);
      rows.push({
        measure: `reference: the script ×${workers}, ${mode === "threads" ? "worker threads" : "processes"}`,
        seconds: result.seconds as number,
        "records/s": Math.round(rate),
        ratio: `${(rate / baseRate).toFixed(2)}×`,
        target: "—",
      });
    }
  }
  for (const backend of backends) {
    for (const workers of backend === "sync" ? [1] : workerCounts) {
      const out = join(outRoot, `${backend}-${workers}`);
      mkdirSync(out, { recursive: true });
      const result = await runChild(["--import", "tsx", here("./servers/zephyr-filter.ts"), backend, String(workers), out, ...inputs]);
      const rate = records / (result.seconds as number);
      const target = backend === "sync" ? 0.8 : TARGETS.get(workers);
      const ratio = rate / baseRate;
      rows.push({
        measure: `zephyr ${backend}${backend === "sync" ? "" : `, ${workers} workers`}`,
        seconds: result.seconds as number,
        "records/s": Math.round(rate),
        ratio: `${ratio.toFixed(2)}×`,
        target: target === undefined ? "—" : `≥ ${target}: ${ratio >= target ? "met" : "NOT met"}`,
      });
    }
  }
  console.log(`${records.toLocaleString("en-US")} input records, ${baseline.kept?.toLocaleString("en-US")} kept\n`);
  printTable(rows);
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}
