// The command line end to end: `fluster cluster start --local` in the
// background, then real `fluster job …`, `worker list` and `endpoint list`
// processes against it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = join(root, "bin", "fluster.js");

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function fluster(args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.NODE_OPTIONS;
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe("fluster CLI against a local cluster", { timeout: 120_000 }, () => {
  let cluster: ChildProcess;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env };
    delete childEnv.NODE_OPTIONS;
    cluster = spawn(process.execPath, [bin, "cluster", "start", "--local", "--workers", "2"], { cwd: root, env: childEnv, stdio: ["ignore", "pipe", "inherit"] });
    const address = await new Promise<string>((resolve, reject) => {
      cluster.once("exit", (code) => reject(new Error(`cluster start exited with ${code}`)));
      createInterface({ input: cluster.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        const match = /export FLUSTER_CLUSTER_ADDRESS=(\S+)/.exec(line);
        if (match?.[1]) resolve(match[1]);
      });
    });
    env = { FLUSTER_CLUSTER_ADDRESS: address };
  });

  after(async () => {
    if (!cluster || cluster.exitCode !== null) return;
    const exited = new Promise((resolve) => cluster.once("exit", resolve));
    cluster.kill("SIGINT");
    await exited;
  });

  test("job run prints the job's output and exits 0", async () => {
    const result = await fluster(["job", "run", "--", "node", "-e", "console.log(42)"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "42\n");
  });

  test("job run exits with the job's non-zero exit code and says why in one line", async () => {
    const result = await fluster(["job", "run", "--", "node", "-e", "process.exit(3)"], env);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /fluster: job \S+ failed: .*exited with code 3/);
  });

  test("--no-wait prints the id; status, logs, list and stop work with it", async () => {
    const launched = await fluster(["job", "run", "--name", "cli-sleeper", "--no-wait", "--", "node", "-e", "console.log('started'); setTimeout(() => {}, 60000)"], env);
    assert.equal(launched.code, 0, launched.stderr);
    const jobId = launched.stdout.trim();
    assert.match(jobId, /^cli-sleeper-/);

    const list = await fluster(["job", "list", "--json", "--prefix", "cli-"], env);
    const jobs = JSON.parse(list.stdout) as Array<{ jobId: string; name: string }>;
    assert.deepEqual(jobs.map((j) => j.jobId), [jobId]);

    const stop = await fluster(["job", "stop", jobId, "--json"], env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((JSON.parse(stop.stdout) as { status: string }).status, "killed");

    const status = await fluster(["job", "status", jobId], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /status:\s+killed/);
    const output = await fluster(["job", "logs", jobId], env);
    assert.equal(output.stdout, "started\n");
  });

  test("worker list and endpoint list read the cluster", async () => {
    const workers = await fluster(["worker", "list", "--json"], env);
    assert.equal(workers.code, 0, workers.stderr);
    const parsed = JSON.parse(workers.stdout) as Array<{ workerId: string; health: string; cpu: number }>;
    assert.equal(parsed.length, 2);
    assert.ok(parsed.every((w) => w.health === "healthy" && w.cpu > 0));
    const table = await fluster(["worker", "list"], env);
    assert.match(table.stdout, /^ID\s+ADDRESS\s+HEALTH/);
    const endpoints = await fluster(["endpoint", "list"], env);
    assert.equal(endpoints.code, 0, endpoints.stderr);
    assert.equal(endpoints.stdout, "no endpoints\n");
  });

  test("a missing job is one clear line and a non-zero exit", async () => {
    const result = await fluster(["job", "status", "no-such-job"], env);
    assert.notEqual(result.code, 0);
    assert.deepEqual(result.stderr.trim().split("\n"), [result.stderr.trim()]);
    assert.match(result.stderr, /no-such-job not found/);
  });
});
