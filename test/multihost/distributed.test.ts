// Issue 12 across machines: a client whose workspace no host can see launches
// function jobs, actors, a WorkerPool and a Zephyr pipeline on three hosts.
// Its code travels as a bundle, its dependencies (ms, from its own lockfile)
// are installed on each host by npm offline from the machine's npm cache, and
// a second launch, or a restarted worker, reuses both.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, watch, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../helpers/index.js";
import { collectLogs } from "../helpers/local-cluster.js";
import { userNpmCache, writeLockedWorkspace } from "../helpers/npm-workspaces.js";
import { TestBed, type BedHost, type BedWorker } from "./bed.js";

const FIXTURES = join(REPO_ROOT, "test", "fixtures", "multihost");
const TSX = join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs");
const NAMESPACE = "e2e";

/** Every file under `dir` (recursively) with its inode and mtime: what changed when a file is written again. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  if (!existsSync(dir)) return files;
  for (const name of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    const stat = statSync(join(dir, name));
    if (stat.isFile()) files[name] = `${stat.ino}:${stat.mtimeMs}`;
  }
  return files;
}

/** Builds of each environment under a worker's work dir, from its build logs. */
function installs(worker: BedWorker): Record<string, number> {
  const logs = join(worker.workDir, "envs", "logs");
  if (!existsSync(logs)) return {};
  return Object.fromEntries(readdirSync(logs).map((f) => [f.replace(/\.log$/, ""), (readFileSync(join(logs, f), "utf8").match(/^# build of environment/gm) ?? []).length]));
}

/** What a worker has cached: bundles, their blobs, environments and their builds. */
function workerCache(worker: BedWorker) {
  const bundles = join(worker.workDir, "bundles");
  return {
    bundles: existsSync(bundles) ? readdirSync(bundles).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort() : [],
    blobs: snapshot(join(bundles, "blobs")),
    envs: existsSync(join(worker.workDir, "envs")) ? readdirSync(join(worker.workDir, "envs")).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort() : [],
    installs: installs(worker),
  };
}

describe("a client's workspace on three hosts that cannot see it", { timeout: 170_000 }, () => {
  let bed: TestBed;
  let workers: BedWorker[] = [];
  let workspace: string;
  let shared: string;

  /** Runs `argv` (a program and its arguments) under tsx in `host`, or here from the workspace; returns what it printed as `client-result <json>`. */
  async function runClient<T>(argv: readonly string[], host?: BedHost): Promise<T> {
    const result = await bed.exec(host, [process.execPath, "--import", TSX, ...argv], {
      cwd: host ? bed.dir : workspace,
      env: { FLUSTER_CLUSTER_ADDRESS: bed.controller.url, FLUSTER_TOKEN: bed.controller.token, FLUSTER_NAMESPACE: NAMESPACE },
      timeoutMs: 120_000,
    });
    const line = result.stdout.split("\n").find((l) => l.startsWith("client-result "));
    assert.ok(result.code === 0 && line, `${argv.join(" ")} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
    return JSON.parse(line.slice("client-result ".length)) as T;
  }

  /** Runs the workspace's client program, `client.ts <command> <args>`, here, from the workspace. */
  function client<T>(command: string, args: Record<string, unknown>): Promise<T> {
    return runClient<T>([join(workspace, "client.ts"), command, JSON.stringify({ namespace: NAMESPACE, ...args })]);
  }

  function startWorker(host: BedHost): Promise<BedWorker> {
    // One core each, so a pool of three one-core workers is spread over the hosts.
    return bed.startWorker(host, { bind: "0.0.0.0", args: ["--cpu", "1", "--npm-cache", userNpmCache(), "--npm-offline"] });
  }

  before(async () => {
    bed = await TestBed.create({ hosts: 3 });
    // The client's workspace: its lockfile pins ms (in the machine's npm cache, installed on no host).
    workspace = join(bed.clientDir, "workspace");
    writeLockedWorkspace(workspace, ["ms"]);
    for (const file of ["tasks.ts", "pipelines.ts", "client.ts"]) copyFileSync(join(FIXTURES, file), join(workspace, file));
    // Its own node_modules (never packed): ms, and fluster linked to this checkout.
    execFileSync("npm", ["ci", "--offline", "--no-audit", "--no-fund", "--cache", userNpmCache()], { cwd: workspace, stdio: "ignore", env: { ...process.env, NODE_OPTIONS: "" } });
    symlinkSync(REPO_ROOT, join(workspace, "node_modules", "fluster"), "dir");
    shared = join(bed.dir, "shared");
    mkdirSync(shared);
    await bed.startController({ workerLostGraceSeconds: 3, reconcileIntervalSeconds: 0.5 });
    workers = await Promise.all(bed.hosts.map(startWorker));
  });
  after(() => bed?.destroy());

  const controllerBlobs = () => snapshot(join(bed.controller.stateDir, "bundles", "blobs"));

  /**
   * Watches the controller's upload folder: every blob it receives is written
   * there first (even one it already has, then dropped), so a launch that
   * sends no blob data leaves no name here. `stop()` resolves to the names seen.
   */
  function watchUploads(): { stop: () => Promise<string[]> } {
    const seen = new Set<string>();
    const watcher = watch(join(bed.controller.stateDir, "bundles", "tmp"), (_event, name) => name && seen.add(name));
    return {
      stop: async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        watcher.close();
        return [...seen];
      },
    };
  }

  test("workers bound to 0.0.0.0 register their host's bridge address", () => {
    for (const w of workers) assert.match(w.address, new RegExp(`^http://${w.host.address.replaceAll(".", "\\.")}:\\d+$`));
  });

  test("a function job from the hidden workspace runs on each host, importing ms installed there and fluster", async () => {
    assert.ok(workspace.startsWith(bed.clientDir), "the workspace is in the folder hosts cannot see");
    const uploads = watchUploads();
    const jobs = await client<{ jobId: string; status: string; error: string; workerId: string }[]>("durations", { hosts: bed.hosts.map((h) => h.name), text: "2h" });
    const logsClient = bed.client({ namespace: NAMESPACE });
    for (const [i, job] of jobs.entries()) {
      const worker = workers[i] as BedWorker;
      assert.equal(job.status, "succeeded", job.error);
      assert.equal(job.workerId, worker.workerId);
      const logs = await collectLogs(logsClient, job.jobId);
      const result = JSON.parse(/^result (.*)$/m.exec(logs)?.[1] ?? "null") as { ms: number; host: string; workspace: string };
      assert.equal(result.ms, 7_200_000);
      assert.equal(result.host, worker.host.name);
      assert.ok(result.workspace.startsWith(join(worker.workDir, "bundles")), `ran in the worker's copy: ${result.workspace}`);
      const cache = workerCache(worker);
      assert.equal(cache.bundles.length, 1);
      assert.equal(cache.envs.length, 1, `${worker.host.name} built one environment`);
      assert.deepEqual(Object.values(cache.installs), [1]);
      // The workspace's node_modules did not travel; the environment has ms.
      assert.ok(!existsSync(join(worker.workDir, "bundles", cache.bundles[0]!, "node_modules")));
      assert.ok(existsSync(join(worker.workDir, "envs", cache.envs[0]!, "node_modules", "ms", "package.json")));
    }
    assert.ok(Object.keys(controllerBlobs()).length > 0);
    assert.ok((await uploads.stop()).length > 0, "the first launch uploaded its blobs");
  });

  test("a second launch of the unchanged workspace uploads no blob and installs nothing", async () => {
    const blobs = controllerBlobs();
    const caches = workers.map(workerCache);
    const uploads = watchUploads();
    const jobs = await client<{ status: string; error: string }[]>("durations", { hosts: bed.hosts.map((h) => h.name), text: "3m" });
    assert.deepEqual(jobs.map((j) => j.status), ["succeeded", "succeeded", "succeeded"], jobs.map((j) => j.error).join("; "));
    assert.deepEqual(await uploads.stop(), [], "no blob data reached the controller");
    assert.deepEqual(controllerBlobs(), blobs, "the controller stored no blob again");
    assert.deepEqual(workers.map(workerCache), caches, "no worker fetched a blob or built an environment");
  });

  test("an actor hosted in a job on h1 is called from a client on h2, at h1's address", async () => {
    const [hostA, hostB] = [bed.host("h1"), bed.host("h2")];
    const hosted = await client<{ jobId: string; address: string }>("host-actor", { name: "where", host: hostA.name });
    try {
      assert.match(hosted.address, new RegExp(`^http://${hostA.address.replaceAll(".", "\\.")}:\\d+$`));
      const called = await runClient<{ address: string; first: Record<string, unknown>; second: Record<string, unknown> }>([join(FIXTURES, "call-actor.ts"), "where"], hostB);
      assert.equal(called.address, hosted.address);
      assert.deepEqual(called.first, { host: hostA.name, advertised: hostA.address, calls: 1, second: 1000 });
      assert.equal(called.second.calls, 2);
    } finally {
      await bed.client({ namespace: NAMESPACE }).terminate(hosted.jobId);
    }
  });

  test("a WorkerPool of three workers, one per host, maps 1,000 items in order", async () => {
    const results = await client<[number, string][]>("pool", { items: 1000 });
    assert.deepEqual(results.map((r) => r[0]), Array.from({ length: 1000 }, (_, i) => i * i + 1000));
    const seen = new Set(results.map((r) => r[1]));
    assert.ok([...seen].every((h) => ["h1", "h2", "h3"].includes(h)), `hosts: ${[...seen].join(", ")}`);
    const poolJobs = await bed.client({ namespace: NAMESPACE }).listJobs({ prefix: "e2e-pool" });
    const placed = new Set(poolJobs.map((j) => j.tasks[0]?.workerId));
    assert.deepEqual([...placed].sort(), workers.map((w) => w.workerId).sort(), "one pool worker per host");
  });

  test("a Zephyr pipeline on the cluster backend across the hosts writes what the sync backend writes", async () => {
    const input = join(shared, "zephyr-in");
    mkdirSync(input);
    const words = ["alpha", "beta", "gamma", "delta"];
    for (let f = 0; f < 4; f++) {
      const rows = Array.from({ length: 50 }, (_, i) => JSON.stringify({ id: f * 50 + i, word: words[(f + i) % 4], wait: `${i + 1}s` }));
      writeFileSync(join(input, `part-${f}.jsonl`), `${rows.join("\n")}\n`);
    }
    const jobsClient = bed.client({ namespace: NAMESPACE });
    const earlier = new Set((await jobsClient.listJobs()).map((j) => j.jobId));
    const out = await client<{ sync: string[]; cluster: string[] }>("zephyr", {
      input: join(input, "*.jsonl"),
      syncOutput: join(shared, "zephyr-sync", "part-{shard:05d}.jsonl"),
      clusterOutput: join(shared, "zephyr-cluster", "part-{shard:05d}.jsonl"),
      storagePath: join(shared, "zephyr-spill"),
    });
    assert.equal(out.cluster.length, out.sync.length);
    assert.ok(out.sync.length > 0);
    const read = (files: string[]) => files.map((f) => readFileSync(f, "utf8"));
    assert.deepEqual(read(out.cluster), read(out.sync));
    const all = read(out.sync).join("").trim().split("\n").map((l) => JSON.parse(l) as { word: string; count: number });
    assert.equal(all.reduce((s, r) => s + r.count, 0), 200);
    const pipelineJobs = (await jobsClient.listJobs()).filter((j) => !earlier.has(j.jobId));
    assert.deepEqual([...new Set(pipelineJobs.map((j) => j.tasks[0]?.workerId))].sort(), workers.map((w) => w.workerId).sort(), "the pipeline's workers ran on every host");
  });

  test("a worker restarted with its warm cache reuses its bundle and environment", async () => {
    const old = workers[0] as BedWorker;
    const cache = workerCache(old);
    old.process.kill("SIGTERM");
    await new Promise((resolve) => old.process.once("exit", resolve));
    const restarted = await startWorker(old.host);
    workers[0] = restarted;
    assert.equal(restarted.workDir, old.workDir);
    const [job] = await client<{ status: string; error: string; workerId: string }[]>("durations", { hosts: [old.host.name], text: "1d" });
    assert.equal(job?.status, "succeeded", job?.error);
    assert.equal(job?.workerId, restarted.workerId);
    assert.deepEqual(workerCache(restarted), cache, "no blob fetched, no environment built");
  });
});
