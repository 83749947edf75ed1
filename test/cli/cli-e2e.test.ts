// The command line end to end: `fluster cluster start --local` in the
// background, then real `fluster job …`, `worker list` and `endpoint list`
// processes against it (function jobs, which the CLI cannot launch, come from
// a client in this process).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { complex, failOn } from "../fixtures/results/tasks.js";
import { REPO_ROOT, cleanEnv, runNode, stopProcess, waitForLine, type NodeResult } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

/** Runs the real bin, as `npx fluster` would, with `env` added to a clean environment. */
function fluster(args: string[], env: NodeJS.ProcessEnv): Promise<NodeResult> {
  return runNode([bin, ...args], { env: cleanEnv(env) });
}

describe("fluster CLI against a local cluster", { timeout: 120_000 }, () => {
  let cluster: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv;
  /** What `cluster start --local` printed on stdout. */
  let printed = "";

  before(async () => {
    cluster = spawn(process.execPath, [bin, "cluster", "start", "--local", "--workers", "2"], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "inherit"] });
    cluster.stdout?.on("data", (chunk: Buffer) => (printed += chunk.toString()));
    const [, address] = await waitForLine(cluster, /export FLUSTER_CLUSTER_ADDRESS=(\S+)/);
    env = { FLUSTER_CLUSTER_ADDRESS: address };
  });

  test("cluster start prints the dashboard's URL, and the controller serves the dashboard there", async () => {
    const url = /dashboard: (\S+)/.exec(printed)?.[1];
    assert.ok(url, `no dashboard line in:\n${printed}`);
    assert.equal(url, `${env.FLUSTER_CLUSTER_ADDRESS}/`);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    const script = /<script[^>]+src="([^"]+)"/.exec(html)?.[1];
    assert.ok(script, html);
    const app = await fetch(new URL(script, url));
    assert.equal(app.status, 200);
    assert.match(app.headers.get("content-type") ?? "", /javascript/);
    assert.ok((await app.text()).length > 1000, "the bundled app is served");
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

  test("job run --json: stdout is the JSON alone; the job's output goes to stderr", async () => {
    const result = await fluster(["job", "run", "--json", "--", "node", "-e", "console.log(42); console.error('to stderr')"], env);
    assert.equal(result.code, 0, result.stderr);
    const info = JSON.parse(result.stdout) as { status: string; exitCode: number };
    assert.equal(info.status, "succeeded");
    assert.match(result.stderr, /^42$/m);
    assert.match(result.stderr, /^to stderr$/m);
  });

  test("job run says why it waits, and --schedule-timeout gives up with the last reason", async () => {
    const result = await fluster(["job", "run", "--name", "cli-gpu", "--gpu", "H100:1", "--schedule-timeout", "3", "--", "node", "-e", "1"], env);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    const lines = result.stderr.trim().split("\n");
    // In a pipe: one plain line per pending reason, then the outcome.
    assert.deepEqual(lines.map((l) => l.replace(/cli-gpu-\S+/, "ID")), [
      "fluster: job ID is pending: no worker has a gpu",
      "fluster: job ID unschedulable: not scheduled within 3s: no worker has a gpu",
    ]);
    const status = await fluster(["job", "status", "cli-gpu"], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /status:\s+unschedulable/, "a job name that one job has works where an id is expected");
  });

  test("endpoint remove takes a name or an id, and says so when nothing matches", async () => {
    const address = env.FLUSTER_CLUSTER_ADDRESS ?? "";
    const client = Cluster.connect(address);
    try {
      await client.registerEndpoint("cli-ep", "http://127.0.0.1:9");
      await client.registerEndpoint("cli-ep", "http://127.0.0.1:10");
      const other = await client.registerEndpoint("cli-other", "http://127.0.0.1:11");
      const byName = await fluster(["endpoint", "remove", "cli-ep"], env);
      assert.equal(byName.code, 0, byName.stderr);
      assert.match(byName.stdout, /^removed cli-ep http:\/\/127\.0\.0\.1:9 \(ep-\w+\)\nremoved cli-ep http:\/\/127\.0\.0\.1:10 /);
      const byId = await fluster(["endpoint", "remove", other, "--json"], env);
      assert.equal(byId.code, 0, byId.stderr);
      assert.deepEqual((JSON.parse(byId.stdout) as Array<{ endpointId: string }>).map((e) => e.endpointId), [other]);
      assert.deepEqual(await client.listEndpoints("cli-"), []);
      const none = await fluster(["endpoint", "remove", "cli-ep"], env);
      assert.equal(none.code, 1);
      assert.equal(none.stderr, 'fluster: no endpoint named "cli-ep" or with that id in namespace "default" (see `fluster endpoint list --all-namespaces`)\n');
      await client.registerEndpoint("cli-elsewhere", "http://127.0.0.1:12");
      const wrongNamespace = await fluster(["--namespace", "other", "endpoint", "remove", "cli-elsewhere"], env);
      assert.match(wrongNamespace.stderr, /it is in namespace default: add --namespace default/);
      assert.equal((await fluster(["endpoint", "remove", "cli-elsewhere"], env)).code, 0);
    } finally {
      await client.close();
    }
  });

  test("job results prints each task's value, --json the tagged array; a command job is one clear line", async () => {
    const client = Cluster.connect(env.FLUSTER_CLUSTER_ADDRESS ?? "");
    try {
      const small = { cpu: 0.1, memory: "64m" } as const;
      const jobId = await client.launch({ name: "cli-results", resources: { ...small, replicas: 2 }, entrypoint: Entrypoint.fromFunction(complex) });
      const text = await fluster(["job", "results", jobId], env);
      assert.equal(text.code, 0, text.stderr);
      const lines = text.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 2, text.stdout);
      lines.forEach((line, i) => {
        assert.ok(line.startsWith(`task ${i}: { index: ${i}, when: 2026-01-0${i + 1}T00:00:00.000Z, bytes: Uint8Array(3) [ ${i}, 255, 0 ], byName: Map(2) { 'big' => ${2n ** 70n + BigInt(i)}n, 'set' => Set(2) { ${i}, 'x' } }`), line);
        assert.ok(line.endsWith("nested: [ { deep: [ undefined, null, -0, NaN ] } ] }"), line);
      });
      const json = await fluster(["job", "results", jobId, "--json"], env);
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(JSON.parse(json.stdout), [0, 1].map((i) => ({
        index: i,
        when: { $date: `2026-01-0${i + 1}T00:00:00.000Z` },
        bytes: { $bytes: Buffer.from([i, 255, 0]).toString("base64") },
        byName: { $map: [["big", { $bigint: String(2n ** 70n + BigInt(i)) }], ["set", { $set: [i, "x"] }]] },
        nested: [{ deep: [null, null, 0, { $number: "NaN" }] }],
      })));

      const failed = await client.launch({ name: "cli-results-fail", resources: { ...small, replicas: 2 }, entrypoint: Entrypoint.fromFunction(failOn, 1) });
      const failure = await fluster(["job", "results", failed], env);
      assert.equal(failure.code, 1);
      assert.equal(failure.stderr, `fluster: job ${failed} failed: task 1 failed: RangeError: task 1 is out of range\n`);

      const command = await fluster(["job", "run", "--name", "cli-results-command", "--", "node", "-e", "1"], env);
      assert.equal(command.code, 0, command.stderr);
      const refused = await fluster(["job", "results", "cli-results-command"], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^fluster: job cli-results-command-\S+ is a command job: it has no return values; read its logs \(fluster job logs \S+\)\n$/);
    } finally {
      await client.close();
    }
  });

  test("a missing job is one clear line and a non-zero exit", async () => {
    const result = await fluster(["job", "status", "no-such-job"], env);
    assert.notEqual(result.code, 0);
    assert.deepEqual(result.stderr.trim().split("\n"), [result.stderr.trim()]);
    assert.match(result.stderr, /no-such-job not found/);
  });
});
