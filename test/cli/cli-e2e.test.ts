// The command line end to end: `fluster cluster start --local` in the
// background, then real `fluster job …`, `worker list` and `endpoint list`
// processes against it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT, cleanEnv, runNode, stopProcess, waitForLine, type NodeResult } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

/** Runs the real bin, as `npx fluster` would, with `env` added to a clean environment. */
function fluster(args: string[], env: NodeJS.ProcessEnv): Promise<NodeResult> {
  return runNode([bin, ...args], { env: cleanEnv(env) });
}

describe("fluster CLI against a local cluster", { timeout: 120_000 }, () => {
  let cluster: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cluster = spawn(process.execPath, [bin, "cluster", "start", "--local", "--workers", "2"], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "inherit"] });
    const [, address] = await waitForLine(cluster, /export FLUSTER_CLUSTER_ADDRESS=(\S+)/);
    env = { FLUSTER_CLUSTER_ADDRESS: address };
  });

  after(async () => {
    if (cluster) await stopProcess(cluster, "SIGINT");
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
