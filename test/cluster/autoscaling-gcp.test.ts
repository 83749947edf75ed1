// The controller's autoscaler on the gcp platform, against the FAKE of
// Google's APIs (test/fakes/gcp-fake.ts): VMs made through long-running
// operations whose startup scripts run real workers on this machine. A
// group whose allocations fail (quota) backs off, says so, and recovers when
// the quota is back; a TPU job gets a whole slice; a preempted spot VM's task is retried on a new VM,
// charged to its preemption budget.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { parseClusterConfig } from "../../src/cluster/platform/config.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ResourceConfig } from "../../src/core/resources.js";
import { TPU_HOST_LABEL } from "../../src/cluster/platform/types.js";
import { GcpFake } from "../fakes/gcp-fake.js";
import { REPO_ROOT, eventually } from "../helpers/index.js";

describe("autoscaling on the gcp platform (against a fake of Google's APIs)", { timeout: 180_000 }, () => {
  let dir: string;
  let fake: GcpFake;
  let cluster: LocalCluster;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "fluster-autoscale-gcp-"));
    fake = await GcpFake.start({ dir: join(dir, "fake"), operationDelayMs: 200 });
    const config = parseClusterConfig(
      `
scaleGroups:
  - name: spot
    platform: gcp
    shape: { cpu: 2, memory: 1g, preemptible: true }
    maxVms: 2
    idleTimeoutSeconds: 600
  - name: v5e
    platform: gcp
    shape: { cpu: 1, memory: 1g, tpu: { variant: v5litepod-16 } }
    maxVms: 1
    idleTimeoutSeconds: 600
platforms:
  gcp:
    project: fluster-test
    zone: us-central1-a
    computeEndpoint: ${fake.computeEndpoint}
    tpuEndpoint: ${fake.tpuEndpoint}
    accessToken: fake-access-token
    flusterCommand: ${process.execPath} ${join(REPO_ROOT, "bin", "fluster.js")}
    pollIntervalSeconds: 0.05
`,
      "test config",
    );
    cluster = await LocalCluster.start({
      workers: 0,
      config,
      token: "autoscale-gcp-secret",
      reconcileIntervalSeconds: 0.2,
      workerLostGraceSeconds: 3,
      autoscaler: { syncIntervalSeconds: 0.5, allocationBackoffSeconds: 1, allocationBackoffMaxSeconds: 2 },
    });
  });
  after(async () => {
    await cluster?.shutdown();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("failed allocations back off with the reason shown, and the group recovers when the quota is back", async () => {
    fake.fault = "quota";
    const jobId = await cluster.launch({ name: "after-quota", resources: { cpu: 1, memory: "128m", preemptible: true }, entrypoint: Entrypoint.fromCommand(["node", "-e", "console.log('ran')"]) });
    await eventually(async () => /backing off after \d+ failed allocations? until .*quota/i.test((await cluster.listVms()).groups[0]?.reason ?? ""), {
      what: "the group to back off, naming the quota error",
      timeoutMs: 30_000,
    });
    await eventually(async () => /autoscaler: spot: backing off/.test((await cluster.poll(jobId)).pendingReason ?? ""), { what: "the job's pending reason to say the group backs off", timeoutMs: 15_000 });
    const failed = (await cluster.listVms()).vms.filter((vm) => vm.state === "failed");
    assert.ok(failed.length >= 1);
    assert.match(failed[0]?.reason ?? "", /allocation failed: .*quota/i);

    fake.fault = undefined;
    const job = await cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(job.status, "succeeded");
    const ready = (await cluster.listVms()).vms.filter((vm) => vm.state === "ready");
    assert.equal(ready.length, 1, "one VM after the quota came back");
    assert.equal(job.tasks[0]?.workerId, ready[0]?.workerIds[0]);
    // No instance of a failed allocation was left behind on the platform.
    for (const vm of failed) assert.equal(fake.instance(vm.vmId), undefined, `instance ${vm.vmId}`);
  });

  test("a v5litepod-16 job asks for one slice, and its 4 tasks run on the slice's 4 hosts with TPU_WORKER_ID and TPU_WORKER_HOSTNAMES", async () => {
    const out = mkdtempSync(join(dir, "tpu-out-"));
    const script = "const env = process.env; require('fs').writeFileSync(require('path').join(process.argv[1], env.FLUSTER_TASK_INDEX + '.json'), JSON.stringify({ worker: env.FLUSTER_WORKER_ID, id: env.TPU_WORKER_ID, hosts: env.TPU_WORKER_HOSTNAMES }))";
    const jobId = await cluster.launch({
      name: "slice-job",
      resources: ResourceConfig.withTpu("v5litepod-16", { cpu: 0.2, memory: "48m" }),
      entrypoint: Entrypoint.fromCommand(["node", "-e", script, out]),
    });
    const job = await cluster.wait(jobId, { timeoutSeconds: 90 });
    assert.equal(job.status, "succeeded", JSON.stringify(job));
    const slices = (await cluster.listVms()).vms.filter((vm) => vm.group === "v5e");
    assert.equal(slices.length, 1, "one slice was asked for");
    const slice = slices[0];
    assert.deepEqual(slice?.workerIds, [0, 1, 2, 3].map((i) => `${slice?.vmId}-${i}`));
    const workers = new Map((await cluster.listWorkers()).map((w) => [w.workerId, w]));
    for (let i = 0; i < 4; i++) {
      const seen = JSON.parse(readFileSync(join(out, `${i}.json`), "utf8")) as { worker: string; id: string; hosts: string };
      assert.equal(seen.worker, `${slice?.vmId}-${i}`, "task i runs on host i of the slice");
      assert.equal(seen.id, String(i));
      assert.equal(workers.get(seen.worker)?.attributes[TPU_HOST_LABEL], String(i));
      assert.equal(seen.hosts, "127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1", "the fake's hosts all answer on 127.0.0.1");
    }
  });

  test("a preempted VM's task is retried on a new VM, charged to its preemption budget", async () => {
    const jobId = await cluster.launch({
      name: "survives-preemption",
      resources: { cpu: 2, memory: "128m", preemptible: true },
      entrypoint: Entrypoint.fromCommand(["node", "-e", "setTimeout(() => console.log('done'), 3000)"]),
      maxRetriesPreemption: 2,
    });
    let first: string | undefined;
    await eventually(
      async () => {
        const job = await cluster.poll(jobId);
        first = job.status === "running" ? job.tasks[0]?.workerId : undefined;
        return first !== undefined;
      },
      { what: "the job to run", timeoutMs: 60_000 },
    );
    const vm = (await cluster.listVms()).vms.find((v) => v.workerIds.includes(first as string));
    assert.ok(vm, `the VM of worker ${first}`);
    fake.preempt(vm.vmId);
    const job = await cluster.wait(jobId, { timeoutSeconds: 90 });
    assert.equal(job.status, "succeeded");
    assert.equal(job.tasks[0]?.preemptionCount, 1);
    assert.notEqual(job.tasks[0]?.workerId, first, "it ran again on another VM");
    const after = (await cluster.listVms()).vms.find((v) => v.vmId === vm.vmId);
    assert.equal(after?.state, "failed");
    assert.match(after?.reason ?? "", /preempted/);
  });
});
