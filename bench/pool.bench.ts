// WorkerPool against its baselines, measured in the same run: sequential
// submit round trip beside a raw Connect unary call (same transport, server
// in another process), and throughput beside Piscina with as many threads as
// the pool has workers.
//   node --import tsx bench/pool.bench.ts [--workers 2] [--tasks 20000] [--calls 1000]
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Piscina } from "piscina";
import { LocalCluster } from "../src/cluster/client/local-cluster.js";
import { WorkerPool } from "../src/pool/worker-pool.js";
import { encodeValue } from "../src/rpc/codec.js";
import { ActorService } from "../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { createRpcChannel } from "../src/rpc/transport.js";
import { square } from "./pool-tasks.js";
import { startServer, stopServers } from "./servers/spawn.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({
  options: { workers: { type: "string", default: "2" }, tasks: { type: "string", default: "20000" }, calls: { type: "string", default: "1000" } },
});
const workers = Number(values.workers);
const taskCount = Number(values.tasks);
const calls = Number(values.calls);

async function sequential(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 200; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    samples.push((performance.now() - start) * 1000);
  }
  return samples;
}

async function throughput(n: number, submit: (i: number) => Promise<unknown>): Promise<number> {
  await Promise.all(Array.from({ length: Math.min(2000, n) }, (_, i) => submit(i)));
  const start = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => submit(i)));
  return n / ((performance.now() - start) / 1000);
}

console.log(`machine: ${machine()}; ${workers} workers / threads; ${taskCount} tasks; ${calls} sequential calls`);

// Raw Connect unary call, server in another process.
const server = await startServer("connect-echo.ts");
const channel = createRpcChannel(server.url);
const echo = channel.client(ActorService);
const args = encodeValue([7]);
const connectLatency = summarize(await sequential(calls, () => echo.call({ actor: "bench", method: "square", args })));
channel.close();
await stopServers();

// Piscina, in this process's worker threads.
const piscina = new Piscina({ filename: fileURLToPath(new URL("./servers/piscina-square.mjs", import.meta.url)), minThreads: workers, maxThreads: workers });
const piscinaLatency = summarize(await sequential(calls, () => piscina.run(7)));
const piscinaRate = await throughput(taskCount, (i) => piscina.run(i));
await piscina.destroy();

// WorkerPool on a LocalCluster.
const cluster = await LocalCluster.start({ workers, workerCpu: 4 });
let poolLatency: ReturnType<typeof summarize>;
let poolRate: number;
try {
  const pool = new WorkerPool(cluster, { numWorkers: workers, resources: { cpu: 1, memory: "256m" } });
  await pool.waitForWorkers(workers, { timeoutSeconds: 120 });
  poolLatency = summarize(await sequential(calls, () => pool.submit(square, 7)));
  poolRate = await throughput(taskCount, (i) => pool.submit(square, i));
  await pool.shutdown();
} finally {
  await cluster.shutdown();
}

printTable([
  { measure: "raw Connect unary call", "median µs": connectLatency.median, "p99 µs": connectLatency.p99, "tasks/s": "—" },
  { measure: `Piscina, ${workers} threads`, "median µs": piscinaLatency.median, "p99 µs": piscinaLatency.p99, "tasks/s": Math.round(piscinaRate) },
  { measure: `WorkerPool, ${workers} workers`, "median µs": poolLatency.median, "p99 µs": poolLatency.p99, "tasks/s": Math.round(poolRate) },
]);
const latencyRatio = poolLatency.median / connectLatency.median;
const rateRatio = poolRate / piscinaRate;
console.log(`\nWorkerPool sequential submit / raw Connect call (median): ${latencyRatio.toFixed(2)}× — target ≤ 1.3: ${latencyRatio <= 1.3 ? "met" : "NOT met"}`);
console.log(`WorkerPool throughput / Piscina throughput: ${rateRatio.toFixed(2)}× — target ≥ 0.5: ${rateRatio >= 0.5 ? "met" : "NOT met"}`);
