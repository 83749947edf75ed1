// Launch latency (submit → finished for `node -e 0`, beside running `node -e 0`
// directly in the same run) and launch throughput (jobs accepted per second by
// a controller with durable SQLite state).
//   node --import tsx bench/launch.bench.ts [--jobs 200] [--accept 5000]
import { create, toBinary } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Cluster } from "../src/cluster/client/cluster.js";
import { LocalCluster } from "../src/cluster/client/local-cluster.js";
import { Entrypoint } from "../src/core/entrypoint.js";
import { validateJobRequest } from "../src/core/job.js";
import { jobSpecToProto } from "../src/rpc/convert.js";
import { LaunchJobRequestSchema } from "../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
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

// Throughput: a controller in its own process with durable state and no
// workers, so accepted jobs stay pending and only the acceptance path
// (validate, store, index) is measured; this process is the client.
const stateDir = mkdtempSync(join(tmpdir(), "fluster-accept-"));
const controller = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : []), "--import", "tsx", fileURLToPath(new URL("../src/cluster/controller/main.ts", import.meta.url)), JSON.stringify({ stateDir, logLevel: "warn" })], {
  stdio: ["ignore", "pipe", "inherit"],
});
let acceptPerSecond = 0;
let clientPerSecond = 0;

/** Runs `count` calls of `fn` with 64 in flight; returns calls per second. */
async function saturate(count: number, fn: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (started < count) {
        started++;
        await fn();
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}
try {
  const url = await new Promise<string>((resolve, reject) => {
    controller.once("exit", (code) => reject(new Error(`controller exited with ${code}`)));
    createInterface({ input: controller.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const match = /^fluster-controller-ready (.*)$/.exec(line);
      if (match?.[1]) resolve((JSON.parse(match[1]) as { url: string }).url);
    });
  });
  const client = Cluster.connect(url);
  const request = { name: "accept", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]) } as const;
  for (let i = 0; i < 200; i++) await client.launch(request);
  clientPerSecond = await saturate(acceptCount, () => client.launch(request));
  await client.close();

  // The controller's own capacity: a lean load generator (raw node:http2,
  // the request encoded once) leaves the controller most of this machine.
  const body = toBinary(LaunchJobRequestSchema, create(LaunchJobRequestSchema, { job: jobSpecToProto(validateJobRequest(request)) }));
  const session = http2.connect(url);
  const post = () =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": "/fluster.cluster.v1.ControllerService/LaunchJob", "content-type": "application/proto", "connect-protocol-version": "1" });
      let status = 0;
      stream.on("response", (headers) => (status = Number(headers[":status"])));
      stream.on("data", () => undefined);
      stream.on("end", () => (status === 200 ? resolve() : reject(new Error(`LaunchJob answered HTTP ${status}`))));
      stream.on("error", reject);
      stream.end(body);
    });
  acceptPerSecond = await saturate(acceptCount, post);
  session.close();
} finally {
  controller.kill("SIGTERM");
  await new Promise((r) => controller.once("exit", r));
  rmSync(stateDir, { recursive: true, force: true });
}

const d = summarize(direct);
const f = summarize(latencies);
printTable([
  { measure: "node -e 0 directly", "median ms": d.median, "p99 ms": d.p99, n: d.n },
  { measure: "fluster launch → finished", "median ms": f.median, "p99 ms": f.p99, n: f.n },
  // Percentiles do not subtract, so the added overhead is given at the median only.
  { measure: "fluster overhead (median − median)", "median ms": f.median - d.median, "p99 ms": "—", n: f.n },
]);
console.log(`\nlaunch throughput, controller process with durable SQLite state, 64 in flight:`);
console.log(`  lean load generator (raw HTTP/2, pre-encoded request): ${acceptPerSecond.toFixed(0)} jobs/s accepted`);
console.log(`  through the Fluster client (validation, encoding, Connect client in this process): ${clientPerSecond.toFixed(0)} jobs/s`);
console.log(`targets: overhead ≤ 100 ms at the median → ${f.median - d.median <= 100 ? "met" : "NOT met"}; ≥ 2,000 jobs/s → ${acceptPerSecond >= 2000 ? "met" : "NOT met"}`);
