// Faults lose no job, result or registration: a worker daemon SIGKILLed
// mid-task, and a controller SIGKILLed mid-job and restarted on its state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { slowCount } from "../fixtures/cluster/jobs.js";
import { eventually, freePort, stopProcess, waitForLine } from "../helpers/index.js";
import { startLocalCluster } from "../helpers/local-cluster.js";

const CONTROLLER_MAIN = fileURLToPath(new URL("../../src/cluster/controller/main.ts", import.meta.url));
const WORKER_MAIN = fileURLToPath(new URL("../../src/cluster/worker/main.ts", import.meta.url));

/** Starts an entry point in a child process and resolves when it prints its ready line. */
async function startProcess(main: string, options: object, readyLine: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", main, JSON.stringify(options)], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, FLUSTER_PARENT_WATCH: "stdin" } });
  await waitForLine(child, readyLine);
  return child;
}

test("a worker SIGKILLed mid-task: the task completes on another worker", { timeout: 60_000 }, async (t) => {
  const cluster = await startLocalCluster(t, { workers: 2, workerLostGraceSeconds: 4, reconcileIntervalSeconds: 0.3 });
  const jobId = await cluster.launch({ name: "survivor", resources: { cpu: 0.5, memory: "64m" }, entrypoint: Entrypoint.fromFunction(slowCount, 3) });
  let firstWorker = "";
  await eventually(
    async () => {
      const task = (await cluster.poll(jobId)).tasks[0];
      if (task?.state === "running") firstWorker = task.workerId ?? "";
      return firstWorker !== "";
    },
    { what: "the task to start" },
  );
  assert.ok(firstWorker, "the task started");
  await cluster.killWorker(firstWorker, "SIGKILL");
  const info = await cluster.wait(jobId, { timeoutSeconds: 45 });
  assert.equal(info.status, "succeeded", info.errorMessage);
  assert.equal(info.tasks[0]?.preemptionCount, 1);
  assert.notEqual(info.tasks[0]?.workerId, firstWorker);
  const workers = await cluster.listWorkers();
  assert.equal(workers.length, 1, "the dead worker is no longer listed");
});

test("a controller SIGKILLed mid-job and restarted on its state loses nothing", { timeout: 60_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-restart-"));
  const port = await freePort();
  const controllerOptions = { stateDir, port, reconcileIntervalSeconds: 0.3 };
  let controller = await startProcess(CONTROLLER_MAIN, controllerOptions, /^fluster-controller-ready/);
  const url = `http://127.0.0.1:${port}`;
  const worker = await startProcess(WORKER_MAIN, { controllerUrl: url, workerId: "w-restart", workDir: join(stateDir, "worker") }, /^fluster-worker-ready/);
  const client = Cluster.connect(url);
  try {
    const jobId = await client.launch({ name: "long", resources: { cpu: 0.5, memory: "64m" }, entrypoint: Entrypoint.fromFunction(slowCount, 3) });
    await client.registerEndpoint("svc", "http://127.0.0.1:1", { jobId });
    await client.registerEndpoint("durable", "http://127.0.0.1:2");
    await eventually(async () => (await client.poll(jobId)).status === "running", { what: "the job to run" });
    const before = await client.poll(jobId);
    assert.equal(before.status, "running");
    await stopProcess(controller, "SIGKILL");
    controller = await startProcess(CONTROLLER_MAIN, controllerOptions, /^fluster-controller-ready/);
    const restarted = await client.poll(jobId);
    assert.ok(["running", "succeeded"].includes(restarted.status), `job survived the restart (${restarted.status})`);
    assert.equal((await client.lookupEndpoints("durable")).length, 1, "the endpoint survived");
    assert.equal((await client.lookupEndpoints("svc")).length, restarted.status === "running" ? 1 : 0, "the job's endpoint lives as long as the job");
    const info = await client.wait(jobId, { timeoutSeconds: 30 });
    assert.equal(info.status, "succeeded", info.errorMessage);
    assert.equal(info.tasks[0]?.attemptId, before.tasks[0]?.attemptId, "the running attempt was adopted, not restarted");
    assert.equal(info.tasks[0]?.preemptionCount, 0);
    assert.equal(info.tasks[0]?.failureCount, 0);
  } finally {
    await client.close();
    await stopProcess(worker, "SIGTERM");
    await stopProcess(controller, "SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
  }
});
