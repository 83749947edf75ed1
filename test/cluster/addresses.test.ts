// Addresses across machines, with 127.0.0.x loopback addresses standing in
// for other hosts (no traffic leaves 127.0.0.0/8): what a worker advertises
// and hands its tasks, where an actor in a job registers, and that an
// endpoint goes with the attempt that registered it when its task is retried.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type { NetworkInterfaceInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterResolver } from "../../src/actor/resolver.js";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import { WorkerDaemon } from "../../src/cluster/worker/daemon.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { hostCalculator, type Calculator } from "../fixtures/actor/calculator.js";
import { REPO_ROOT, cleanEnv, eventually, stopProcess, waitForLine } from "../helpers/index.js";
import { collectLogs } from "../helpers/local-cluster.js";
import { captureLogs, type CapturedLogs } from "../helpers/logs.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");
const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fluster-addresses-"));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function controller(): Promise<{ server: ControllerServer; logs: CapturedLogs }> {
  const logs = captureLogs("controller");
  const server = await startController({ stateDir: ":memory:", reconcileIntervalSeconds: 0.2, logger: logs.logger });
  return { server, logs };
}

const small = { cpu: 0.2, memory: "128m" };

describe("a worker started with --host 0.0.0.0 --advertise-host 127.0.0.2", { timeout: 120_000 }, () => {
  let server: ControllerServer;
  let cluster: Cluster;
  let worker: ChildProcess;
  let serving = "";

  before(async () => {
    ({ server } = await controller());
    cluster = Cluster.connect(server.url);
    worker = spawn(
      process.execPath,
      [bin, "worker", "serve", "--controller", server.url, "--host", "0.0.0.0", "--advertise-host", "127.0.0.2", "--cpu", "4", "--work-dir", join(tempDir(), "work")],
      { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    [, serving = ""] = await waitForLine(worker, /serving at (\S+), registered/);
  });
  after(async () => {
    cluster?.close();
    if (worker) await stopProcess(worker, "SIGTERM");
    await server?.shutdown();
  });

  test("registers the advertised address with the controller", () => {
    assert.match(serving, /^http:\/\/127\.0\.0\.2:\d+$/);
    const listed = server.controller.listWorkers().map((w) => w.record.address);
    assert.deepEqual(listed, [serving]);
  });

  test("a task sees FLUSTER_ADVERTISE_HOST", async () => {
    const jobId = await cluster.launch({
      name: "print-host",
      resources: small,
      entrypoint: Entrypoint.fromCommand([process.execPath, "-e", "console.log(`host=${process.env.FLUSTER_ADVERTISE_HOST} attempt=${process.env.FLUSTER_ATTEMPT_ID}`)"]),
    });
    assert.equal((await cluster.wait(jobId, { timeoutSeconds: 60 })).status, "succeeded");
    assert.match(await collectLogs(cluster, jobId), new RegExp(`host=127\\.0\\.0\\.2 attempt=${jobId}/0/0`));
  });

  test("an actor in a job registers the advertised host and answers there", async () => {
    const jobId = await cluster.launch({ name: "calc", resources: small, entrypoint: Entrypoint.fromFunction(hostCalculator, "addr-calc") });
    const pool = new ClusterResolver(cluster).lookup<Calculator>("addr-calc");
    const [endpoint] = await pool.waitForSize(1, { timeoutSeconds: 60 });
    assert.match(endpoint?.address ?? "", /^http:\/\/127\.0\.0\.2:\d+$/);
    const [registered] = await cluster.lookupEndpoints("addr-calc");
    assert.equal(registered?.jobId, jobId);
    assert.equal(registered?.attemptId, `${jobId}/0/0`, "owned by the attempt that registered it");
    assert.equal(await pool.call().add(40, 2), 42);
    await cluster.terminate(jobId);
    assert.deepEqual(await cluster.lookupEndpoints("addr-calc"), []);
  });

  test("an actor whose process is SIGKILLed and retried leaves exactly one endpoint, and broadcast has no rejection", async () => {
    const jobId = await cluster.launch({ name: "retried-calc", resources: small, maxRetriesFailure: 2, entrypoint: Entrypoint.fromFunction(hostCalculator, "retried-calc") });
    const pool = new ClusterResolver(cluster).lookup<Calculator>("retried-calc");
    await pool.waitForSize(1, { timeoutSeconds: 60 });
    const pid = await pool.call().pid();
    process.kill(pid, "SIGKILL");
    await eventually(
      async () => {
        const endpoints = await cluster.lookupEndpoints("retried-calc");
        return endpoints.length === 1 && endpoints[0]?.attemptId === `${jobId}/0/1`;
      },
      { what: "the retry's endpoint, alone", timeoutMs: 60_000 },
    );
    const endpoints = await cluster.lookupEndpoints("retried-calc");
    assert.deepEqual(endpoints.map((e) => e.attemptId), [`${jobId}/0/1`], "exactly one endpoint: the new attempt's");
    const fresh = new ClusterResolver(cluster).lookup<Calculator>("retried-calc");
    await fresh.waitForSize(1, { timeoutSeconds: 10 });
    const results = await fresh.broadcast().pid();
    assert.equal(results.length, 1);
    assert.equal(results[0]?.status, "fulfilled", String(results[0]?.status === "rejected" ? results[0].reason : ""));
    assert.notEqual(results[0]?.status === "fulfilled" ? results[0].value : pid, pid, "the new process answers");
    const info = await cluster.poll(jobId);
    assert.equal(info.status, "running");
    await cluster.terminate(jobId);
  });
});

describe("a worker daemon bound to 0.0.0.0 without --advertise-host", { timeout: 60_000 }, () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  // The machine as the daemon sees it: eth0 carries the default route; its
  // address is a loopback one standing in for another host.
  const standIn: NetworkInterfaceInfo = { address: "127.0.0.3", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:01", internal: false, cidr: "127.0.0.3/8" };
  const hostNetwork = () => ({
    interfaces: { lo: [{ ...standIn, address: "127.0.0.1", internal: true, cidr: "127.0.0.1/8" }], eth0: [standIn] },
    routeTable: "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t0100007F\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
  });

  test("registers the machine's primary address, not 0.0.0.0, and says which it chose", async () => {
    const { server } = await controller();
    cleanups.push(() => server.shutdown());
    const logs = captureLogs("worker");
    const daemon = new WorkerDaemon({ controllerUrl: server.url, host: "0.0.0.0", workDir: join(tempDir(), "work"), cpu: 1, memory: 2 ** 30, hostNetwork, logger: logs.logger });
    cleanups.push(() => daemon.shutdown());
    await daemon.start();
    assert.equal(daemon.advertiseHost, "127.0.0.3");
    assert.deepEqual(server.controller.listWorkers().map((w) => w.record.address), [daemon.address]);
    assert.match(daemon.address, /^http:\/\/127\.0\.0\.3:\d+$/);
    assert.deepEqual(
      logs.records.filter((r) => r.level === "warn" || r.level === "error" || r.event.startsWith("advertise_host")).map((r) => [r.event, r.msg]),
      [["advertise_host_chosen", "bound to 0.0.0.0; advertising 127.0.0.3 (the default route's interface eth0); set --advertise-host to choose another"]],
    );
  });

  test("an advertised address the controller cannot reach is refused with how to fix it", async () => {
    const { server, logs: controllerLogs } = await controller();
    cleanups.push(() => server.shutdown());
    const logs = captureLogs("worker");
    // Bound to 127.0.0.1 only: nothing answers at 127.0.0.4.
    const daemon = new WorkerDaemon({ controllerUrl: server.url, advertiseHost: "127.0.0.4", workDir: join(tempDir(), "work"), cpu: 1, memory: 2 ** 30, logger: logs.logger });
    cleanups.push(() => daemon.shutdown());
    void daemon.start().catch(() => undefined); // waits, retrying, until shut down
    await eventually(() => logs.messages.some((l) => /cannot call worker \S+ at http:\/\/127\.0\.0\.4:\d+: no answer .*; set the worker's --advertise-host to an address the controller can reach/.test(l)), {
      what: "the worker to say why it is refused",
      timeoutMs: 10_000,
    });
    assert.ok(controllerLogs.events("worker_refused").some((r) => /^refused worker /.test(r.msg)), controllerLogs.messages.join("\n"));
    assert.deepEqual(server.controller.listWorkers(), []);
  });
});
