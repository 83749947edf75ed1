// Misconfiguration fails fast and says so, with real processes' pieces on
// loopback sockets: a worker whose token the controller refuses (or that
// refuses the controller's) is turned away at registration with one line on
// each side; a worker started before its controller says it is waiting; a
// job streamed with many tasks leaks no listeners.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { FlusterError } from "../../src/core/errors.js";
import { eventually, freePort } from "../helpers/index.js";
import { captureLogs, type CapturedLogs } from "../helpers/logs.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fluster-misconfig-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function controller(options: { token?: string; port?: number } = {}): Promise<{ server: ControllerServer; logs: CapturedLogs }> {
  const logs = captureLogs("controller");
  const server = await startController({ stateDir: ":memory:", reconcileIntervalSeconds: 0.2, logger: logs.logger, ...options });
  cleanups.push(() => server.shutdown());
  return { server, logs };
}

function worker(controllerUrl: string, options: { token?: string; workerId?: string } = {}): { daemon: WorkerDaemon; logs: CapturedLogs } {
  const logs = captureLogs("worker");
  const daemon = new WorkerDaemon({ controllerUrl, workDir: join(tempDir(), "work"), cpu: 4, memory: 2 ** 30, logger: logs.logger, ...options });
  cleanups.push(() => daemon.shutdown());
  return { daemon, logs };
}

describe("a worker and a controller whose tokens disagree", () => {
  test("a worker with the wrong token is refused at registration: the worker says how to fix it, the controller names it, once", async () => {
    const { server, logs } = await controller({ token: "right" });
    const { daemon } = worker(server.url, { token: "wrong", workerId: "w-wrong" });
    await assert.rejects(daemon.start(), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "unauthenticated");
      assert.equal(err.message, `controller at ${server.url} refused this worker's token (wrong bearer token): set FLUSTER_TOKEN to the token the controller was started with`);
      return true;
    });
    assert.deepEqual(
      logs.messages.filter((l) => /refused/.test(l)),
      [`refused worker w-wrong (${daemon.address}): wrong bearer token`],
    );
    assert.deepEqual(
      logs.events("worker_refused").map(({ level, component, workerId, address, reason }) => ({ level, component, workerId, address, reason })),
      [{ level: "warn", component: "controller", workerId: "w-wrong", address: daemon.address, reason: "wrong bearer token" }],
    );
    assert.deepEqual(server.controller.listWorkers(), []);
  });

  test("a worker that wants a token the controller does not send is refused at registration, not registered unreachable", async () => {
    const { server, logs } = await controller();
    const { daemon } = worker(server.url, { token: "only-the-worker-has-it", workerId: "w-locked" });
    await assert.rejects(daemon.start(), (err: unknown) => {
      assert.ok(err instanceof FlusterError);
      assert.equal(err.code, "failed_precondition");
      assert.match(err.message, new RegExp(`^controller at ${server.url} refused this worker: the controller cannot call worker w-locked at http://127\\.0\\.0\\.1:\\d+: it refused the controller's token \\(missing bearer token: this worker was started with a FLUSTER_TOKEN, and the controller must use the same token\\)$`));
      return true;
    });
    assert.equal(logs.messages.filter((l) => /refused worker w-locked/.test(l)).length, 1, logs.messages.join("\n"));
    assert.deepEqual(server.controller.listWorkers(), []);
  });

  test("with the same token on both sides the worker registers healthy", async () => {
    const { server } = await controller({ token: "shared" });
    const { daemon } = worker(server.url, { token: "shared" });
    await daemon.start();
    assert.equal(server.controller.listWorkers()[0]?.record.health, "healthy");
  });
});

describe("a worker started before its controller", () => {
  test("says at once that it is waiting for the controller, retries with backoff, and registers once the controller is up", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const { daemon, logs } = worker(url);
    const started = daemon.start();
    await eventually(() => logs.messages.some((l) => l.startsWith(`waiting for the controller at ${url}: `) && /ECONNREFUSED/.test(l)), {
      what: "the worker to say it waits for the controller",
      timeoutMs: 5_000,
    });
    assert.match(logs.events("controller_unreachable")[0]?.msg ?? "", /retrying with backoff/);
    assert.equal(logs.events("controller_unreachable")[0]?.controllerUrl, url);
    const { server } = await controller({ port });
    await started;
    assert.equal(server.controller.listWorkers()[0]?.record.workerId, daemon.workerId);
  });
});

describe("log streaming", () => {
  test("following the logs of a job with many tasks emits no MaxListenersExceededWarning", { timeout: 60_000 }, async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    cleanups.push(() => void process.off("warning", onWarning));
    const { server } = await controller();
    const { daemon } = worker(server.url);
    await daemon.start();
    const cluster = Cluster.connect(server.url);
    cleanups.push(() => cluster.close());
    const jobId = await cluster.launch({
      name: "many-tasks",
      resources: { cpu: 0.1, memory: "16m", replicas: 12 },
      entrypoint: Entrypoint.fromCommand([process.execPath, "-e", "setTimeout(() => console.log('hi'), 300)"]),
    });
    let lines = 0;
    for await (const _ of cluster.logs(jobId, { follow: true })) lines++;
    assert.equal(lines, 12);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    assert.deepEqual(warnings.filter((w) => w.startsWith("MaxListenersExceededWarning")), []);
  });
});
