// Seed 004 Stage 7 scenarios on a real LocalCluster: a controller in this
// process, worker daemons as child processes, jobs as real processes.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, JobFailedError } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import type { JobRequest } from "../../src/core/job.js";
import { fail, parentOfSleeper, serveEndpoint, square } from "../fixtures/cluster/jobs.js";
import { eventually, isGone } from "../helpers/index.js";
import { collectLogs, useLocalCluster } from "../helpers/local-cluster.js";

const small = { cpu: 0.1, memory: "64m" } as const;
const command = (name: string, argv: string[], extra: Partial<JobRequest> = {}): JobRequest => ({
  name,
  resources: small,
  entrypoint: Entrypoint.fromCommand(argv),
  ...extra,
});

describe("LocalCluster", { timeout: 120_000 }, () => {
  const local = useLocalCluster({ workers: 2, workerCpu: 2, workerLostGraceSeconds: 2 });

  test("a command job runs pending → running → succeeded, with its logs", async () => {
    const jobId = await local.cluster.launch(command("hello", ["node", "-e", "console.log('hello from ' + process.env.FLUSTER_JOB_NAME)"]));
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "succeeded");
    assert.equal(info.exitCode, 0);
    assert.equal(info.tasks.length, 1);
    assert.ok(info.startedAt && info.finishedAt && info.finishedAt >= info.startedAt);
    assert.match(await collectLogs(local.cluster, jobId), /hello from hello/);
  });

  test("a failing command reports its exit code and stderr", async () => {
    const jobId = await local.cluster.launch(command("fails", ["node", "-e", "console.error('boom happened'); process.exit(3)"]));
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.equal(info.exitCode, 3);
    assert.match(info.errorMessage ?? "", /exited with code 3/);
    assert.match(info.errorMessage ?? "", /boom happened/);
    await assert.rejects(local.cluster.wait(jobId, { raiseOnFailure: true }), (err: unknown) => err instanceof JobFailedError && /boom/.test(err.message));
  });

  test("a function entrypoint runs by reference in the worker", async () => {
    const jobId = await local.cluster.launch({ name: "square", resources: small, entrypoint: Entrypoint.fromFunction(square, 7) });
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "succeeded", info.errorMessage);
    assert.match(await collectLogs(local.cluster, jobId), /square\(7\) = 49 on task 0/);
  });

  test("a throwing function fails the job with the error's name and message", async () => {
    const jobId = await local.cluster.launch({ name: "thrower", resources: small, entrypoint: Entrypoint.fromFunction(fail, "out of range!") });
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.match(info.errorMessage ?? "", /RangeError: out of range!/);
  });

  test("terminate kills the whole process tree", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-term-"));
    try {
      const pidFile = join(dir, "grandchild.pid");
      const script = `const { spawn } = require("child_process"); const c = spawn("sleep", ["60"], { stdio: "ignore" }); require("fs").writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); setInterval(() => {}, 1000);`;
      const jobId = await local.cluster.launch(command("tree", ["node", "-e", script]));
      await eventually(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").length > 0, { what: "the grandchild to start" });
      const grandchild = Number(readFileSync(pidFile, "utf8"));
      assert.ok(!isGone(grandchild));
      const killed = await local.cluster.terminate(jobId);
      assert.equal(killed.status, "killed");
      assert.equal((await local.cluster.poll(jobId)).tasks[0]?.state, "killed");
      await eventually(() => isGone(grandchild), { what: "the grandchild to die" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("replicas get distinct task indexes", async () => {
    const jobId = await local.cluster.launch(
      command("replicas", ["node", "-e", "console.log(`task ${process.env.FLUSTER_TASK_INDEX} of ${process.env.FLUSTER_NUM_TASKS}`)"], {
        resources: { ...small, replicas: 3 },
      }),
    );
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "succeeded");
    assert.deepEqual(info.tasks.map((t) => t.taskIndex), [0, 1, 2]);
    const logs = await collectLogs(local.cluster, jobId);
    for (const i of [0, 1, 2]) assert.match(logs, new RegExp(`task ${i} of 3`));
  });

  test("a job no worker can fit stays pending with a reason, then becomes unschedulable", async () => {
    const jobId = await local.cluster.launch(
      command("too-big", ["node", "-e", "0"], { resources: { cpu: 999999, memory: "64m" }, schedulingTimeoutSeconds: 1.5 }),
    );
    await eventually(async () => /cpu/.test((await local.cluster.poll(jobId)).pendingReason ?? ""), { what: "a pending reason naming cpu" });
    const pending = await local.cluster.poll(jobId);
    assert.equal(pending.status, "pending");
    assert.match(pending.pendingReason ?? "", /999999/);
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "unschedulable");
    assert.match(info.errorMessage ?? "", /cpu/);
  });

  test("a gang of replicas that cannot all fit is not partly placed", async () => {
    // Two workers with 2 cpus each: three 1.5-cpu tasks never fit together.
    const jobId = await local.cluster.launch(
      command("gang", ["node", "-e", "0"], { resources: { cpu: 1.5, memory: "64m", replicas: 3 }, schedulingTimeoutSeconds: 1 }),
    );
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "unschedulable");
    assert.ok(info.tasks.every((t) => t.attemptId === undefined), "no task of the gang ran");
  });

  test("a failed attempt is retried within maxRetriesFailure", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-retry-"));
    try {
      const marker = join(dir, "first-run-done");
      const script = `const fs = require("fs"); if (!fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, "x"); process.exit(7); } console.log("second time lucky");`;
      const jobId = await local.cluster.launch(command("retry", ["node", "-e", script], { maxRetriesFailure: 1 }));
      const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
      assert.equal(info.status, "succeeded");
      assert.equal(info.tasks[0]?.failureCount, 1);
      assert.match(await collectLogs(local.cluster, jobId), /second time lucky/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("timeoutSeconds kills a task and fails it", async () => {
    const jobId = await local.cluster.launch(command("slow", ["sleep", "30"], { timeoutSeconds: 1 }));
    const info = await local.cluster.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "failed");
    assert.match(info.errorMessage ?? "", /execution timeout exceeded/);
  });

  test("endpoints belong to their job's namespace and go when the job ends", async () => {
    const jobId = await local.cluster.launch({ name: "server", resources: small, ports: ["http"], entrypoint: Entrypoint.fromFunction(serveEndpoint, "calc") });
    await eventually(async () => (await local.cluster.lookupEndpoints("calc")).length === 1, { what: "the endpoint to be registered", timeoutMs: 20_000 });
    const [endpoint] = await local.cluster.lookupEndpoints("calc");
    assert.equal(endpoint?.jobId, jobId);
    assert.equal(endpoint?.metadata.role, "test");
    assert.match(endpoint?.address ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    const other = Cluster.connect(local.cluster.address, { namespace: "elsewhere" });
    try {
      assert.deepEqual(await other.lookupEndpoints("calc"), [], "lookups never cross namespaces");
    } finally {
      await other.close();
    }
    assert.equal((await local.cluster.listEndpoints("ca")).length, 1);
    await local.cluster.terminate(jobId);
    assert.deepEqual(await local.cluster.lookupEndpoints("calc"), []);
  });

  test("TTL endpoints expire unless renewed", async () => {
    const kept = await local.cluster.registerEndpoint("ttl-kept", "http://127.0.0.1:1", { ttlSeconds: 1 });
    await local.cluster.registerEndpoint("ttl-dropped", "http://127.0.0.1:2", { ttlSeconds: 1 });
    const deadline = Date.now() + 2_500;
    while (Date.now() < deadline) {
      assert.deepEqual(await local.cluster.renewEndpoints([kept]), []);
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal((await local.cluster.lookupEndpoints("ttl-kept")).length, 1, "a renewed endpoint stays");
    assert.deepEqual(await local.cluster.lookupEndpoints("ttl-dropped"), [], "an endpoint not renewed expires");
    await local.cluster.unregisterEndpoint(kept);
    assert.deepEqual(await local.cluster.renewEndpoints([kept]), [kept], "renewing a removed endpoint reports it missing");
  });

  test("children are killed with their parent", async () => {
    const parentId = await local.cluster.launch({ name: "parent", resources: small, entrypoint: Entrypoint.fromFunction(parentOfSleeper) });
    let childId = "";
    await eventually(async () => {
      const match = /child=(\S+)/.exec(await collectLogs(local.cluster, parentId));
      childId = match?.[1] ?? "";
      return childId !== "";
    }, { what: "the parent to launch its child", timeoutMs: 20_000 });
    const child = await local.cluster.poll(childId);
    assert.equal(child.parentJobId, parentId);
    assert.equal(child.namespace, "default");
    await local.cluster.terminate(parentId);
    const after = await local.cluster.wait(childId, { timeoutSeconds: 10 });
    assert.equal(after.status, "killed");
    assert.match(after.errorMessage ?? "", /parent/);
  });

  test("listJobs filters by prefix, newest first", async () => {
    const a = await local.cluster.launch(command("listing/a", ["node", "-e", "0"]));
    const b = await local.cluster.launch(command("listing/b", ["node", "-e", "0"]));
    await local.cluster.wait([a, b], { timeoutSeconds: 30 });
    const jobs = await local.cluster.listJobs({ prefix: "listing/" });
    assert.deepEqual(jobs.map((j) => j.jobId), [b, a]);
  });

  test("bad input is rejected with a clear error, not a crash", async () => {
    await assert.rejects(local.cluster.poll("no-such-job"), (err: unknown) => err instanceof FlusterError && err.code === "not_found");
    await assert.rejects(
      local.cluster.launch({ name: "bad name!", resources: small, entrypoint: Entrypoint.fromCommand(["true"]) }),
      /name must be letters/,
    );
    // Straight to the wire, bypassing client-side validation.
    const res = await fetch(`${local.cluster.address}/fluster.cluster.v1.ControllerService/LaunchJob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ job: { name: "x", resources: { cpu: -1, replicas: 1 }, entrypoint: { command: { argv: ["true"] } } } }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /resources\.cpu/);
    assert.equal((await local.cluster.listWorkers()).length, 2, "the controller is still serving");
  });
});
