// Seed 004 Stage 7's integration suite on docker platform VMs: a controller in
// this process, two containers allocated through the docker platform, and a
// client workspace the containers cannot see (its code travels as a bundle).
// Job lifecycle, failure, terminate, logs, replicas, a gang, retries and a
// timeout; an actor hosted in one container called from here and from a job in
// the other; a WorkerPool whose tasks run in both containers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ClusterResolver } from "../../src/actor/resolver.js";
import type { ScaleGroup } from "../../src/cluster/autoscaler/types.js";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { startController, type ControllerServer } from "../../src/cluster/controller/server.js";
import { DockerPlatform } from "../../src/cluster/platform/docker/platform.js";
import { VM_LABEL, workerLabels } from "../../src/cluster/platform/types.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { Constraint } from "../../src/core/job.js";
import { silentLogger } from "../../src/core/logger.js";
import { WorkerPool } from "../../src/pool/worker-pool.js";
import { REPO_ROOT, eventually } from "../helpers/index.js";
import { dockerGroup, removeClusterContainers, requireDocker, testClusterName } from "../helpers/docker.js";
import { collectLogs } from "../helpers/local-cluster.js";

type Tasks = typeof import("../fixtures/docker/tasks.js");

const TOKEN = "docker-cluster-test-token-0123456789";
const VMS = ["vm-1", "vm-2"] as const;
const small = { cpu: 0.25, memory: "128m" };
const on = (vmId: string): Constraint[] => [{ key: VM_LABEL, op: "eq", value: vmId }];

describe("the Stage 7 suite on docker VMs", { timeout: 150_000 }, () => {
  const clusterName = testClusterName("fluster-dockercluster");
  const group: ScaleGroup = dockerGroup("docker-2cpu", {}, { cpu: 2, memory: 1536 * 1024 ** 2 });
  let scratch: string;
  let workspace: string;
  let tasks: Tasks;
  let controller: ControllerServer;
  let cluster: Cluster;
  let platform: DockerPlatform;

  before(async () => {
    requireDocker();
    // The client's workspace, outside the repository: a package.json and the
    // tasks module; fluster linked in for this process only (node_modules never travels).
    scratch = mkdtempSync(join(tmpdir(), "fluster-docker-cluster-"));
    workspace = join(scratch, "workspace");
    mkdirSync(join(workspace, "node_modules"), { recursive: true });
    writeFileSync(join(workspace, "package.json"), JSON.stringify({ name: "docker-fixture", version: "1.0.0", private: true, type: "module" }));
    copyFileSync(join(REPO_ROOT, "test", "fixtures", "docker", "tasks.ts"), join(workspace, "tasks.ts"));
    symlinkSync(REPO_ROOT, join(workspace, "node_modules", "fluster"), "dir");
    tasks = (await import(pathToFileURL(join(workspace, "tasks.ts")).href)) as Tasks;

    controller = await startController({ stateDir: ":memory:", token: TOKEN, reconcileIntervalSeconds: 0.2, workerLostGraceSeconds: 5, logger: silentLogger() });
    cluster = Cluster.connect(controller.url, { token: TOKEN, namespace: "docker" });
    platform = new DockerPlatform({ clusterName, stopGraceSeconds: 5 });
    await Promise.all(VMS.map((vmId) => platform.allocate({ vmId, group, worker: { controllerUrl: controller.url, token: TOKEN, labels: workerLabels(vmId, group) } })));
    await Promise.all(VMS.map((vmId) => platform.waitReady(vmId, 60_000)));
    await eventually(async () => (await cluster.listWorkers()).filter((w) => w.health === "healthy").length === VMS.length, { what: "both containers' workers to register", timeoutMs: 30_000 });
  });
  after(async () => {
    removeClusterContainers(clusterName);
    await cluster?.close();
    await controller?.shutdown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test("a function job returns 42 from a container; a failing one reports its error; logs come back", async () => {
    const [ok, failing, talking] = await Promise.all([
      cluster.launch({ name: "answer", resources: small, entrypoint: Entrypoint.fromFunction(tasks.answer) }),
      cluster.launch({ name: "fail", resources: small, entrypoint: Entrypoint.fromFunction(tasks.fail, "intentional failure") }),
      cluster.launch({ name: "talk", resources: small, entrypoint: Entrypoint.fromFunction(tasks.talk, 5), constraints: on("vm-2") }),
    ]);
    const [okInfo, failInfo, talkInfo] = await cluster.wait([ok, failing, talking], { timeoutSeconds: 60 });
    assert.equal(okInfo?.status, "succeeded", okInfo?.errorMessage);
    assert.deepEqual(await cluster.results(ok), [42]);
    assert.ok(VMS.includes(okInfo?.tasks[0]?.workerId as (typeof VMS)[number]), `ran on a docker VM: ${okInfo?.tasks[0]?.workerId}`);
    assert.equal(failInfo?.status, "failed");
    assert.match(failInfo?.errorMessage ?? "", /RangeError: intentional failure/);
    assert.equal(talkInfo?.status, "succeeded", talkInfo?.errorMessage);
    assert.deepEqual(await cluster.results(talking), [{ workerId: "vm-2", task: 0, inContainer: true }]);
    const logs = await collectLogs(cluster, talking);
    for (let i = 0; i < 5; i++) assert.match(logs, new RegExp(`line ${i} of 5 from vm-2`));
    assert.match(logs, /a line on stderr/);
  });

  test("replicas, a gang across both containers, a retried failure and a timeout", async () => {
    const [replicas, gang, retried, slow] = await Promise.all([
      cluster.launch({ name: "replicas", resources: { ...small, replicas: 4 }, entrypoint: Entrypoint.fromFunction(tasks.whereAmI) }),
      // 1.5 of a VM's 2 CPUs each: the two members cannot share a container.
      cluster.launch({ name: "gang", resources: { cpu: 1.5, memory: "128m", replicas: 2 }, coscheduled: true, entrypoint: Entrypoint.fromFunction(tasks.gangMember, 2) }),
      cluster.launch({ name: "retried", resources: small, maxRetriesFailure: 1, constraints: on("vm-1"), entrypoint: Entrypoint.fromFunction(tasks.failFirst, "/tmp/fluster-retried-marker") }),
      cluster.launch({ name: "slow", resources: small, timeoutSeconds: 2, entrypoint: Entrypoint.fromFunction(tasks.sleepFor, 60) }),
    ]);
    const [replicasInfo, gangInfo, retriedInfo, slowInfo] = await cluster.wait([replicas, gang, retried, slow], { timeoutSeconds: 90 });
    assert.equal(replicasInfo?.status, "succeeded", replicasInfo?.errorMessage);
    const replicaResults = await cluster.results<{ task: number; inContainer: boolean }>(replicas);
    assert.deepEqual(replicaResults.map((r) => r.task), [0, 1, 2, 3]);
    assert.ok(replicaResults.every((r) => r.inContainer));

    assert.equal(gangInfo?.status, "succeeded", gangInfo?.errorMessage);
    const members = await cluster.results<{ startedAt: number; endedAt: number; workerId: string }>(gang);
    assert.deepEqual(members.map((m) => m.workerId).sort(), [...VMS], "one member in each container");
    // Placed together: both attempts started in one scheduling pass.
    const [a, b] = (gangInfo?.tasks ?? []).map((task) => task.startedAt?.getTime() ?? NaN);
    assert.ok(Math.abs((a as number) - (b as number)) < 1500, `the members started together: ${JSON.stringify(gangInfo?.tasks)}`);

    assert.equal(retriedInfo?.status, "succeeded", retriedInfo?.errorMessage);
    assert.equal(retriedInfo?.tasks[0]?.failureCount, 1, "one failed attempt, retried");
    assert.deepEqual(await cluster.results(retried), [{ attempt: "second", workerId: "vm-1", task: 0, inContainer: true }]);

    assert.equal(slowInfo?.status, "failed");
    assert.match(slowInfo?.errorMessage ?? "", /time/i);
  });

  test("terminate stops a running job in its container", async () => {
    const jobId = await cluster.launch({ name: "sleeper", resources: small, entrypoint: Entrypoint.fromFunction(tasks.sleepFor, 120) });
    await eventually(async () => (await cluster.poll(jobId)).status === "running", { what: "the sleeper to run", timeoutMs: 30_000 });
    const killed = await cluster.terminate(jobId);
    assert.equal(killed.status, "killed");
    assert.equal((await cluster.poll(jobId)).tasks[0]?.state, "killed");
  });

  test("an actor in one container is called from here and by a job in the other; terminating its job removes it", async () => {
    const host = await cluster.launch({ name: "calculator", resources: small, constraints: on("vm-1"), entrypoint: Entrypoint.fromFunction(tasks.hostCalculator, "calculator") });
    try {
      const pool = new ClusterResolver(cluster).lookup<InstanceType<Tasks["Calculator"]>>("calculator");
      await pool.waitForSize(1, { timeoutSeconds: 60 });
      const direct = await pool.call().add(2, 3);
      assert.equal(direct.sum, 5);
      assert.equal(direct.workerId, "vm-1");
      const caller = await cluster.launch({ name: "caller", resources: small, constraints: on("vm-2"), entrypoint: Entrypoint.fromFunction(tasks.callCalculator, "calculator", 40, 2) });
      const callerInfo = await cluster.wait(caller, { timeoutSeconds: 60 });
      assert.equal(callerInfo.status, "succeeded", callerInfo.errorMessage);
      const [called] = await cluster.results<{ result: { sum: number; workerId: string; calls: number }; caller: { workerId: string; inContainer: boolean } }>(caller);
      assert.deepEqual(called?.caller, { workerId: "vm-2", task: 0, inContainer: true });
      assert.deepEqual(called?.result, { sum: 42, workerId: "vm-1", calls: 2 }, "the same actor object, in vm-1");
      assert.match(await collectLogs(cluster, host), /serving calculator on vm-1/);
    } finally {
      await cluster.terminate(host);
    }
    await eventually(async () => (await cluster.lookupEndpoints("calculator")).length === 0, { what: "the actor's endpoint to go with its job", timeoutMs: 15_000 });
  });

  test("a WorkerPool spans the containers: its tasks run on both VMs", async () => {
    // 1.5 CPUs each: one pool worker per container.
    const pool = new WorkerPool(cluster, { numWorkers: 2, resources: { cpu: 1.5, memory: "256m" }, environment: { workspace }, namePrefix: "docker-pool" });
    try {
      await pool.waitForWorkers();
      const items = Array.from({ length: 200 }, (_, i) => i);
      const results = await Promise.all(pool.map(tasks.squareWhere, items));
      assert.deepEqual(results.map((r) => r[0]), items.map((i) => i * i));
      assert.deepEqual([...new Set(results.map((r) => r[1]))].sort(), [...VMS], "tasks ran on both VMs' workers");
    } finally {
      await pool.shutdown();
    }
  });
});
