// Launch latency (submit → finished for `node -e 0`, beside running `node -e 0`
// directly in the same run) and launch throughput (jobs accepted per second by
// a controller with durable SQLite state).
//   node --import tsx bench/launch.bench.ts [--jobs 200] [--accept 5000]
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { LocalCluster } from "../src/cluster/client/local-cluster.js";
import { Entrypoint } from "../src/core/entrypoint.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({ options: { jobs: { type: "string", default: "200" }, accept: { type: "string", default: "5000" } } });
const jobs = Number(values.jobs);
const acceptCount = Number(values.accept);

function runDirect(): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("node", ["-e", "0"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve(performance.now() - start));
  });
}

console.log(`machine: ${machine()}`);
const direct: number[] = [];
for (let i = 0; i < Math.min(jobs, 100); i++) direct.push(await runDirect());

const cluster = await LocalCluster.start({ workers: 2 });
const latencies: number[] = [];
try {
  for (let i = 0; i < 10; i++) {
    await cluster.wait(await cluster.launch({ name: "warm", resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) }));
  }
  for (let i = 0; i < jobs; i++) {
    const start = performance.now();
    const jobId = await cluster.launch({ name: `lat-${i}`, resources: { cpu: 0.1, memory: "32m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) });
    const info = await cluster.wait(jobId);
    if (info.status !== "succeeded") throw new Error(`job ${jobId} ${info.status}: ${info.errorMessage}`);
    latencies.push(performance.now() - start);
  }
} finally {
  await cluster.shutdown();
}

// Throughput: no workers, so accepted jobs stay pending and only the
// controller's acceptance path (validate, store, index) is measured.
const empty = await LocalCluster.start({ workers: 0 });
let acceptPerSecond = 0;
try {
  const request = { name: "accept", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) } as const;
  for (let i = 0; i < 200; i++) await empty.launch(request);
  const inFlight = 64;
  let launched = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (launched < acceptCount) {
        launched++;
        await empty.launch(request);
      }
    }),
  );
  acceptPerSecond = acceptCount / ((performance.now() - start) / 1000);
} finally {
  await empty.shutdown();
}

const d = summarize(direct);
const f = summarize(latencies);
printTable([
  { measure: "node -e 0 directly", "median ms": d.median, "p99 ms": d.p99, n: d.n },
  { measure: "fluster launch → finished", "median ms": f.median, "p99 ms": f.p99, n: f.n },
  { measure: "fluster overhead", "median ms": f.median - d.median, "p99 ms": f.p99 - d.p99, n: f.n },
]);
console.log(`\nlaunch throughput (durable state, 64 in flight): ${acceptPerSecond.toFixed(0)} jobs/s accepted`);
console.log(`targets: overhead ≤ 100 ms at the median → ${f.median - d.median <= 100 ? "met" : "NOT met"}; ≥ 2,000 jobs/s → ${acceptPerSecond >= 2000 ? "met" : "NOT met"}`);
