// Start latency of jobs that run in a workspace bundle, on a LocalCluster on
// loopback (controller in this process, one worker daemon).
// Warm: launch → finished with the bundle and its environment already on the
// worker: a trivial function job, and `node -e 0` as a command job, beside
// the same two jobs launched without a bundle on a worker that shares the
// client's directory (the path before bundles: a raw LaunchJob naming the
// directory, which the worker still runs in place), and `node -e 0` spawned
// directly (nothing fetched, installed or dispatched: the floor any job start
// sits on), all in the same run, in turns.
// Cold: a new bundle whose lockfile pins 20 packages, installed by the worker
// with npm from a warm npm cache (offline), beside a plain `npm ci --offline`
// of the same lockfile in the same run.
//   node --import tsx bench/start.bench.ts [--warm 20] [--cold 3]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { LocalCluster } from "../src/cluster/client/local-cluster.js";
import { validateJobRequest } from "../src/core/job.js";
import { jobSpecToProto } from "../src/rpc/convert.js";
import { ControllerService } from "../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { createRpcChannel } from "../src/rpc/transport.js";
import { Entrypoint } from "../src/core/entrypoint.js";
import type { JobRequest } from "../src/core/job.js";
import { userNpmCache, writeLockedWorkspace } from "../test/helpers/npm-workspaces.js";
import { machine, printTable, summarize } from "./stats.js";

const { values } = parseArgs({ options: { warm: { type: "string", default: "20" }, cold: { type: "string", default: "3" } } });
const warmRuns = Number(values.warm);
const coldRuns = Number(values.cold);
/** With what they depend on, 20 packages, all pinned by the repository's lockfile (so in the npm cache after its `npm ci`). */
const PACKAGES = ["commander", "tinyglobby", "debug", "chalk", "string-width", "cli-cursor", "stdin-discarder", "is-interactive", "cli-spinners"];
const small = { cpu: 0.1, memory: "64m" } as const;

function run(argv: readonly string[], cwd?: string): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "ignore", "inherit"], ...(cwd ? { cwd } : {}), env: { ...process.env, NODE_OPTIONS: "" } });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(performance.now() - start) : reject(new Error(`${argv.join(" ")} exited with ${code}`))));
  });
}

const TASKS = `import { remote } from "fluster";
export const noop = remote(import.meta.url, async function noop() { return 1; });
`;

function functionJob(name: string, workspace: string): JobRequest {
  return { name, resources: small, entrypoint: { kind: "function", ref: { module: pathToFileURL(join(workspace, "tasks.mjs")).href, name: "noop" }, args: [] }, environment: { workspace } };
}

console.log(`machine: ${machine()}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} at the start`);
const root = mkdtempSync(join(tmpdir(), "fluster-start-bench-"));
const npmCache = userNpmCache();
// Warm: a workspace with no dependencies; its environment only links fluster in.
const warmWs = join(root, "warm");
mkdirSync(warmWs);
writeFileSync(join(warmWs, "package.json"), `${JSON.stringify({ name: "start-bench", private: true, type: "module" })}\n`);
writeFileSync(join(warmWs, "tasks.mjs"), TASKS);

const cluster = await LocalCluster.start({ workers: 0 });
const direct: number[] = [];
const commandJob: number[] = [];
const fnJob: number[] = [];
const commandShared: number[] = [];
const fnShared: number[] = [];
let firstFn = 0;
const cold: number[] = [];
const npmCi: number[] = [];
try {
  await cluster.addWorker({ environmentsDir: join(root, "envs"), npmCacheDir: npmCache, npmOffline: true });
  const timed = async (request: JobRequest): Promise<number> => {
    const start = performance.now();
    const info = await cluster.wait(await cluster.launch(request));
    if (info.status !== "succeeded") throw new Error(`job ${request.name} ${info.status}: ${info.errorMessage}`);
    return performance.now() - start;
  };
  // The path before bundles: the spec names the client's directory and carries no bundle; the worker runs there.
  const rpc = createRpcChannel(cluster.address).client(ControllerService);
  const timedShared = async (request: JobRequest): Promise<number> => {
    const start = performance.now();
    const { jobId } = await rpc.launchJob({ job: jobSpecToProto(validateJobRequest(request)), namespace: "default" });
    const info = await cluster.wait(jobId);
    if (info.status !== "succeeded") throw new Error(`job ${request.name} ${info.status}: ${info.errorMessage}`);
    return performance.now() - start;
  };
  firstFn = await timed(functionJob("first", warmWs)); // fetches the bundle, makes the environment (no npm run)
  const command: JobRequest = { name: "cmd", resources: small, entrypoint: Entrypoint.fromCommand(["node", "-e", "0"]), environment: { workspace: warmWs } };
  for (let i = 0; i < 3; i++) await timed(command);
  // Turns, so that load from other processes falls on the three alike.
  for (let i = 0; i < warmRuns; i++) {
    direct.push(await run([process.execPath, "-e", "0"]));
    commandJob.push(await timed(command));
    commandShared.push(await timedShared(command));
    fnJob.push(await timed(functionJob(`warm-${i}`, warmWs)));
    fnShared.push(await timedShared(functionJob(`shared-${i}`, warmWs)));
  }
  // Cold: each sample a new lockfile (its project name differs), so a new bundle and a new environment.
  for (let i = 0; i < coldRuns; i++) {
    const ws = join(root, `cold-${i}`);
    writeLockedWorkspace(ws, PACKAGES, { name: `start-bench-cold-${i}` });
    writeFileSync(join(ws, "tasks.mjs"), TASKS);
    const plain = join(root, `npm-ci-${i}`);
    writeLockedWorkspace(plain, PACKAGES, { name: `start-bench-plain-${i}` });
    npmCi.push(await run(["npm", "ci", "--offline", "--no-audit", "--no-fund", "--cache", npmCache], plain));
    cold.push(await timed(functionJob(`cold-${i}`, ws)));
  }
} finally {
  await cluster.shutdown();
  rmSync(root, { recursive: true, force: true });
}

const d = summarize(direct).median;
const c = summarize(commandJob).median;
const f = summarize(fnJob).median;
const cs = summarize(commandShared).median;
const fs = summarize(fnShared).median;
const row = (measure: string, samples: number[], ratio: string) => {
  const s = summarize(samples);
  return { measure, "median ms": s.median, "min ms": Math.min(...samples), "max ms": Math.max(...samples), n: s.n, ratio };
};
printTable([
  row("node -e 0 spawned directly (baseline)", direct, "1.00x"),
  row("command job node -e 0, shared directory (no bundle)", commandShared, `${(cs / d).toFixed(2)}x direct`),
  row("warm command job node -e 0 (bundle + env cached)", commandJob, `${(c / cs).toFixed(2)}x shared dir`),
  row("function job, shared directory (no bundle)", fnShared, `${(fs / d).toFixed(2)}x direct`),
  row("warm function job (bundle + env cached)", fnJob, `${(f / fs).toFixed(2)}x shared dir`),
  row("first function job (fetch bundle, env without npm)", [firstFn], `${(firstFn / f).toFixed(2)}x warm`),
  row("npm ci --offline of the 20-package lockfile", npmCi, "1.00x"),
  row("cold function job, new 20-package lockfile", cold, `${(summarize(cold).median / summarize(npmCi).median).toFixed(2)}x npm ci`),
]);
const coldMedian = summarize(cold).median;
console.log(`\ntargets: warm function job ≤ 1.2× the same job from a shared directory → ${(f / fs).toFixed(2)}x ${f <= 1.2 * fs ? "met" : "NOT met"} ` +
  `(command job: ${(c / cs).toFixed(2)}x; command job / direct spawn: ${(c / d).toFixed(2)}x); cold < 10 s → ${(coldMedian / 1000).toFixed(2)} s ${coldMedian < 10_000 ? "met" : "NOT met"}`);
