// The controller's autoscaler on the local platform: scale groups read from
// a config, VMs that are real worker processes started and released by the
// controller, demand from pending jobs, minVms, maxVms with its reason, idle
// release, and jobs that no worker and no group could ever fit.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import { parseClusterConfig } from "../../src/cluster/platform/config.js";
import { startControllerProcess } from "../helpers/cluster-processes.js";
import { eventually, freePort, killAll, processesWith } from "../helpers/index.js";
import { startLocalCluster } from "../helpers/local-cluster.js";

const sleeper = (name: string, seconds: number, extra: Partial<JobRequest> = {}): JobRequest => ({
  name,
  resources: { cpu: 1, memory: "128m" },
  entrypoint: Entrypoint.fromCommand(["node", "-e", `setTimeout(() => {}, ${seconds * 1000})`]),
  ...extra,
});

const CONFIG = `
scaleGroups:
  - name: always
    platform: local
    shape: { cpu: 1, memory: 256m, labels: { pool: always } }
    minVms: 1
    maxVms: 1
    idleTimeoutSeconds: 1
  - name: burst
    platform: local
    shape: { cpu: 1, memory: 256m }
    minVms: 0
    maxVms: 2
    idleTimeoutSeconds: 2
`;

describe("autoscaling on the local platform", { timeout: 180_000 }, () => {
  test("keeps minVms up, scales 0 → maxVms for a burst, says when it is capped, and releases idle VMs", async (t) => {
    const cluster = await startLocalCluster(t, {
      workers: 0,
      config: parseClusterConfig(CONFIG, "test config"),
      reconcileIntervalSeconds: 0.2,
      autoscaler: { syncIntervalSeconds: 1 },
    });
    // minVms: the "always" group's VM comes up with no demand at all.
    await eventually(async () => (await cluster.listVms()).vms.some((vm) => vm.group === "always" && vm.state === "ready"), { what: "the minVms VM to be ready", timeoutMs: 60_000 });
    const workers = await cluster.listWorkers();
    assert.equal(workers.length, 1);
    assert.equal(workers[0]?.attributes.pool, "always");
    assert.equal(workers[0]?.attributes["fluster-scale-group"], "always");

    // Four one-core jobs of 3 s: the always VM takes one, burst may add 2 VMs, one job waits at maxVms.
    const jobIds = await Promise.all([1, 2, 3, 4].map((i) => cluster.launch(sleeper(`burst-${i}`, 3))));
    await eventually(
      async () => {
        const { vms } = await cluster.listVms();
        return vms.filter((vm) => vm.group === "burst" && vm.state !== "released" && vm.state !== "failed").length === 2;
      },
      { what: "the burst group to ask for 2 VMs", timeoutMs: 30_000 },
    );
    await eventually(
      async () => {
        const jobs = await Promise.all(jobIds.map((id) => cluster.poll(id)));
        return jobs.some((job) => job.status === "pending" && /autoscaler: .*burst: .*at maxVms \(2\)/.test(job.pendingReason ?? ""));
      },
      { what: "a pending job's reason to say the burst group is at maxVms", timeoutMs: 60_000 },
    );
    const { groups } = await cluster.listVms();
    assert.deepEqual(
      groups.map((g) => [g.name, g.platform, g.minVms, g.maxVms]),
      [
        ["always", "local", 1, 1],
        ["burst", "local", 0, 2],
      ],
    );
    const done = await cluster.wait(jobIds, { timeoutSeconds: 120 });
    assert.deepEqual(
      done.map((job) => job.status),
      ["succeeded", "succeeded", "succeeded", "succeeded"],
    );

    // Idle: the burst VMs are released after 2 s; the always VM stays (minVms).
    await eventually(
      async () => {
        const { vms } = await cluster.listVms();
        const live = vms.filter((vm) => vm.state !== "released" && vm.state !== "failed");
        return live.length === 1 && live[0]?.group === "always";
      },
      { what: "the burst VMs to be released once idle", timeoutMs: 30_000 },
    );
    const { vms } = await cluster.listVms();
    const released = vms.filter((vm) => vm.group === "burst");
    assert.equal(released.length, 2);
    for (const vm of released) {
      assert.equal(vm.state, "released");
      assert.match(vm.reason ?? "", /idle for \d+ s \(timeout 2 s\)/);
    }
    await eventually(async () => (await cluster.listWorkers()).filter((w) => w.health !== "lost").length === 1, { what: "the released VMs' workers to be gone", timeoutMs: 15_000 });
  });

  test("a job that no worker and no scale group could ever fit is unschedulable at once, with the reason", async (t) => {
    const cluster = await startLocalCluster(t, {
      workers: 0,
      config: parseClusterConfig(CONFIG, "test config"),
      reconcileIntervalSeconds: 0.2,
    });
    const began = Date.now();
    const gpu = await cluster.launch({ ...sleeper("wants-gpu", 1), resources: { cpu: 1, memory: "128m", device: { kind: "gpu", variant: "H100", count: 1 } } });
    const huge = await cluster.launch({ ...sleeper("wants-64-cores", 1), resources: { cpu: 64, memory: "128m" } });
    const [gpuJob, hugeJob] = await cluster.wait([gpu, huge], { timeoutSeconds: 30 });
    assert.equal(gpuJob?.status, "unschedulable");
    assert.match(gpuJob?.errorMessage ?? "", /no worker and no scale group can run it: no scale group has a gpu/);
    assert.equal(hugeJob?.status, "unschedulable");
    assert.match(hugeJob?.errorMessage ?? "", /insufficient cpu: wants 64, largest scale group has 1/);
    assert.ok(Date.now() - began < 20_000, "they were refused without waiting for a scheduling timeout");
    // Nothing was allocated for them.
    assert.equal((await cluster.listVms()).vms.filter((vm) => vm.group === "burst").length, 0);
  });

  test("a LocalCluster's shutdown releases its VMs: no worker process is left", async (t) => {
    const cluster = await startLocalCluster(t, {
      workers: 0,
      config: parseClusterConfig(CONFIG, "test config"),
      reconcileIntervalSeconds: 0.2,
    });
    await eventually(async () => (await cluster.listVms()).vms.some((vm) => vm.state === "ready"), { what: "the minVms VM to be ready", timeoutMs: 60_000 });
    const [vm] = (await cluster.listVms()).vms;
    const pid = Number(/pid (\d+)/.exec(vm?.platformId ?? "")?.[1]);
    assert.ok(pid > 0, `a pid in ${vm?.platformId}`);
    await cluster.shutdown();
    assert.throws(() => process.kill(pid, 0), "the VM's worker process is gone");
  });
});

describe("autoscaling across a controller restart", { timeout: 240_000 }, () => {
  test("a controller SIGKILLed mid-scale-up adopts the VMs it had asked for after its restart, and leaks none", async (t) => {
    const stateDir = mkdtempSync(join(tmpdir(), "fluster-autoscale-restart-"));
    const configFile = join(stateDir, "cluster.yaml");
    writeFileSync(configFile, "scaleGroups:\n  - { name: burst, platform: local, shape: { cpu: 1, memory: 256m }, maxVms: 3, idleTimeoutSeconds: 2 }\n");
    const port = await freePort();
    // Marks the controller's processes, and so the detached worker processes it starts, for the cleanup below.
    const mark = `autoscale-restart-${process.pid}-${Date.now()}`;
    const env = { FLUSTER_TEST_MARK: mark };
    const options = { stateDir: join(stateDir, "state"), port, config: configFile, reconcileIntervalSeconds: 0.2, autoscaler: { syncIntervalSeconds: 0.5 } };
    t.after(() => {
      killAll(processesWith([`FLUSTER_TEST_MARK=${mark}`]));
      rmSync(stateDir, { recursive: true, force: true });
    });
    let controller = await startControllerProcess(options, env);
    const client = Cluster.connect(`http://127.0.0.1:${port}`);
    t.after(() => client.close());

    const jobIds = await Promise.all([1, 2, 3].map((i) => client.launch(sleeper(`restart-${i}`, 2))));
    await eventually(async () => (await client.listVms()).vms.length === 3, { what: "the controller to ask for 3 VMs", timeoutMs: 30_000, intervalMs: 20 });
    const before = (await client.listVms()).vms.map((vm) => `${vm.vmId}:${vm.state}`);
    await controller.stop("SIGKILL");
    controller = await startControllerProcess(options, env);
    t.after(() => controller.stop());

    const done = await client.wait(jobIds, { timeoutSeconds: 120 });
    assert.deepEqual(
      done.map((job) => job.status),
      ["succeeded", "succeeded", "succeeded"],
      `VMs when the controller was killed: ${before.join(", ")}`,
    );
    // The same three VMs, no fourth: each worker process started once.
    const { vms } = await client.listVms();
    assert.deepEqual(vms.map((vm) => vm.vmId).sort(), before.map((entry) => entry.split(":")[0]).sort());
    const workerDirs = readdirSync(join(options.stateDir, "platforms", "local", "workers"));
    assert.ok(workerDirs.length <= 3, `worker directories: ${workerDirs.join(", ")}`);
    // Idle, they are released, and no worker process is left behind.
    await eventually(async () => (await client.listVms()).vms.every((vm) => vm.state === "released"), { what: "every VM to be released once idle", timeoutMs: 30_000 });
    await eventually(() => processesWith([`FLUSTER_TEST_MARK=${mark}`]).filter((pid) => pid !== controller.child.pid).length === 0, {
      what: "the released VMs' worker processes to exit",
      timeoutMs: 15_000,
    });
  });
});
