// The gcp platform against a FAKE of Compute Engine and Cloud TPU (test/fakes/
// gcp-fake.ts): VMs made through long-running operations boot their startup
// script on this machine and their real `fluster worker serve` registers
// with a real in-process controller; quota and stockout become allocation
// errors of their kind; preemption ends a VM and loses its worker; a TPU
// slice's hosts register as one worker each with the slice's chips.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MachineShape, ScaleGroup } from "../../../src/cluster/autoscaler/types.js";
import { startController, type ControllerServer } from "../../../src/cluster/controller/server.js";
import { CLUSTER_LABEL, createGcpPlatform, type GcpPlatform } from "../../../src/cluster/platform/gcp/platform.js";
import { checkGcpSettings } from "../../../src/cluster/platform/gcp/settings.js";
import { AllocationError, TPU_HOST_LABEL, TPU_SLICE_LABEL, workerLabels, type VmRequest } from "../../../src/cluster/platform/types.js";
import { silentLogger } from "../../../src/core/logger.js";
import { GcpFake, STS_TOKEN_PREFIX } from "../../fakes/gcp-fake.js";
import { REPO_ROOT, eventually } from "../../helpers/index.js";

const GiB = 1024 ** 3;
const CPU_SHAPE: MachineShape = { resources: { cpu: 2, memory: GiB, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 }, preemptible: false, zone: "us-central1-a" };

function group(name: string, shape: Omit<Partial<MachineShape>, "resources"> & { resources?: Partial<MachineShape["resources"]> } = {}): ScaleGroup {
  return { name, platform: "gcp", shape: { ...CPU_SHAPE, ...shape, resources: { ...CPU_SHAPE.resources, ...shape.resources } }, minVms: 0, maxVms: 4, idleTimeoutSeconds: 60 };
}

describe("gcp platform against a fake of Google's APIs", { timeout: 120_000 }, () => {
  let dir: string;
  let fake: GcpFake;
  let server: ControllerServer;
  const platforms: GcpPlatform[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "fluster-gcp-"));
    fake = await GcpFake.start({ dir: join(dir, "fake"), operationDelayMs: 300 });
    server = await startController({ stateDir: ":memory:", host: "127.0.0.1", port: 0, token: "cluster-secret", reconcileIntervalSeconds: 0.2, workerLostGraceSeconds: 1, logger: silentLogger() });
  });
  after(async () => {
    for (const platform of platforms) await platform.close();
    await fake?.close();
    await server?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  async function platformOf(clusterName: string, extra: Record<string, unknown> = {}): Promise<GcpPlatform> {
    const settings = checkGcpSettings(
      {
        project: "fluster-test",
        zone: "us-central1-a",
        computeEndpoint: fake.computeEndpoint,
        tpuEndpoint: fake.tpuEndpoint,
        accessToken: "fake-access-token",
        // The fake's "VMs" share this machine's disk: the checkout's fluster, run by this node.
        flusterCommand: `${process.execPath} ${join(REPO_ROOT, "bin", "fluster.js")}`,
        pollIntervalSeconds: 0.05,
        ...extra,
      },
      "platforms.gcp",
    );
    const platform = await createGcpPlatform(settings, { clusterName, stateDir: join(dir, "state"), logger: silentLogger() });
    platforms.push(platform);
    return platform;
  }

  function request(vmId: string, of: ScaleGroup): VmRequest {
    return { vmId, group: of, worker: { controllerUrl: server.url, ...(server.token ? { token: server.token } : {}), labels: workerLabels(vmId, of) } };
  }

  const worker = (workerId: string) => server.controller.listWorkers().find((w) => w.record.workerId === workerId)?.record;

  test("a CPU VM is created through a long-running operation, boots its startup script, and its worker registers", async () => {
    const platform = await platformOf("alpha");
    const cpu = group("cpu-small");
    const vm = await platform.allocate(request("alpha-cpu-1", cpu));
    assert.equal(vm.vmId, "alpha-cpu-1");
    assert.equal(vm.group, "cpu-small");
    assert.ok(vm.state === "provisioning" || vm.state === "running", vm.state);
    assert.ok(fake.requests.some((r) => r.method === "POST" && r.path.endsWith("/zones/us-central1-a/instances")), "instances.insert");
    assert.ok(fake.requests.some((r) => r.method === "GET" && r.path.includes("/zones/us-central1-a/operations/operation-")), "the operation was polled");
    assert.ok(fake.requests.every((r) => r.authorization === "Bearer fake-access-token"), "every call carries the bearer token");
    const instance = fake.instance("alpha-cpu-1") as { machineType: string; labels: Record<string, string> };
    assert.match(instance.machineType, /\/zones\/us-central1-a\/machineTypes\/custom-2-1024$/);
    assert.equal(instance.labels[CLUSTER_LABEL], "alpha");

    const ready = await platform.waitReady("alpha-cpu-1", 10_000);
    assert.deepEqual(ready.hosts, [{ workerId: "alpha-cpu-1", address: "127.0.0.1" }]);
    await eventually(() => worker("alpha-cpu-1")?.health === "healthy", { what: "the VM's worker to register", timeoutMs: 20_000 });
    const record = worker("alpha-cpu-1");
    assert.equal(record?.capacity.cpu, 2);
    assert.equal(record?.capacity.memory, GiB);
    assert.equal(record?.attributes["fluster-vm"], "alpha-cpu-1");
    assert.equal(record?.attributes["fluster-scale-group"], "cpu-small");
    assert.equal(record?.attributes.zone, "us-central1-a");
    assert.match(record?.address ?? "", /^http:\/\/127\.0\.0\.1:\d+$/, "it advertises the address the metadata server gave");
    // The worker is the exec'd startup script; its token came from the metadata, not its argv.
    const [pid] = fake.hostPids("alpha-cpu-1");
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    assert.ok(argv.includes("serve") && argv.includes("--worker-id"), argv.join(" "));
    assert.ok(!argv.join(" ").includes("cluster-secret"), "the token is not in the worker's argv");
    assert.ok(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes("FLUSTER_TOKEN=cluster-secret"));

    // Asking again for the same vm id creates nothing.
    const posts = fake.requests.filter((r) => r.method === "POST").length;
    assert.equal((await platform.allocate(request("alpha-cpu-1", cpu))).state, "running");
    assert.equal(fake.requests.filter((r) => r.method === "POST").length, posts);
  });

  test("quota, stockout and a bad machine type are allocation errors of their kind, and leave no VM", async () => {
    const platform = await platformOf("beta", { machineTypes: { odd: "z9-mega-1" } });
    const failure = async (vmId: string, of: ScaleGroup): Promise<AllocationError> => {
      const err = await platform.allocate(request(vmId, of)).then(
        () => assert.fail(`${vmId} was allocated`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof AllocationError, String(err));
      return err;
    };
    const tpu = group("tpu", { resources: { cpu: 8, deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4 } });
    try {
      fake.fault = "quota";
      const quota = await failure("beta-quota", group("cpu"));
      assert.equal(quota.failure, "quota");
      assert.match(quota.message, /QUOTA_EXCEEDED/);
      assert.equal((await failure("beta-tpu-quota", tpu)).failure, "quota");
      fake.fault = "stockout";
      const stockout = await failure("beta-stockout", group("cpu"));
      assert.equal(stockout.failure, "stockout");
      assert.match(stockout.message, /ZONE_RESOURCE_POOL_EXHAUSTED/);
      assert.equal((await failure("beta-tpu-stockout", tpu)).failure, "stockout");
    } finally {
      fake.fault = undefined;
    }
    const invalid = await failure("beta-odd", group("odd"));
    assert.equal(invalid.failure, "invalid");
    assert.match(invalid.message, /z9-mega-1/);
    assert.equal((await failure("beta-gpu", group("h100", { resources: { deviceType: "gpu", deviceVariant: "H100", deviceCount: 8 } }))).failure, "invalid");
    assert.deepEqual(await platform.listVms(), [], "no VM was left behind");
  });

  test("a preempted VM is terminated as preempted, and its worker is lost", async () => {
    const platform = await platformOf("gamma");
    const spot = group("spot", { preemptible: true });
    await platform.allocate(request("gamma-spot-1", spot));
    assert.deepEqual((fake.instance("gamma-spot-1") as { scheduling: { provisioningModel: string } }).scheduling.provisioningModel, "SPOT");
    await platform.waitReady("gamma-spot-1", 10_000);
    await eventually(() => worker("gamma-spot-1")?.health === "healthy", { what: "the spot VM's worker to register", timeoutMs: 20_000 });
    const [pid] = fake.hostPids("gamma-spot-1");
    fake.preempt("gamma-spot-1");
    const vm = await platform.getStatus("gamma-spot-1");
    assert.equal(vm?.state, "terminated");
    assert.match(vm?.reason ?? "", /preempted/);
    const listed = (await platform.listVms()).find((v) => v.vmId === "gamma-spot-1");
    assert.equal(listed?.state, "terminated");
    assert.equal(listed?.group, "spot");
    await assert.rejects(platform.waitReady("gamma-spot-1", 1000), /terminated/);
    await eventually(() => !isAlive(pid as number), { what: "the preempted VM's processes to die", timeoutMs: 5000 });
    await eventually(() => worker("gamma-spot-1") === undefined || worker("gamma-spot-1")?.health === "lost", { what: "the preempted worker to be lost", timeoutMs: 15_000 });
    await platform.release("gamma-spot-1");
    assert.equal(fake.instance("gamma-spot-1"), undefined);

    // A spot VM deleted on preemption is gone from the API: the platform that made it reports it preempted.
    await platform.allocate(request("gamma-spot-2", spot));
    fake.preempt("gamma-spot-2", { deleted: true });
    assert.equal(fake.instance("gamma-spot-2"), undefined);
    const gone = await platform.getStatus("gamma-spot-2");
    assert.deepEqual([gone?.state, gone?.group], ["terminated", "spot"]);
    assert.match(gone?.reason ?? "", /preempted/);
    assert.equal((await platform.listVms()).find((v) => v.vmId === "gamma-spot-2")?.state, "terminated");
    assert.equal(await (await platformOf("gamma")).getStatus("gamma-spot-2"), undefined, "to a platform that never saw it, it never was");
    await platform.release("gamma-spot-2");
    assert.equal(await platform.getStatus("gamma-spot-2"), undefined, "released: forgotten");
  });

  test("a new platform lists this cluster's VMs and only those; release deletes, and again is a no-op", async () => {
    const first = await platformOf("delta");
    await first.allocate(request("delta-cpu-1", group("cpu-a")));
    await first.allocate(request("delta-cpu-2", group("cpu-b", { zone: "us-central1-b" })));
    // Another cluster's VM, and one that is nobody's, in the same project.
    for (const [name, labels] of [["epsilon-cpu-1", { [CLUSTER_LABEL]: "epsilon" }], ["hand-made", {}]] as const) {
      const res = await fetch(`${fake.computeEndpoint}/projects/fluster-test/zones/us-central1-a/instances`, {
        method: "POST",
        headers: { authorization: "Bearer x", "content-type": "application/json" },
        body: JSON.stringify({ name, machineType: "zones/us-central1-a/machineTypes/e2-standard-2", labels }),
      });
      assert.equal(res.status, 200);
    }
    const fresh = await platformOf("delta");
    const vms = await fresh.listVms();
    assert.deepEqual(vms.map((vm) => [vm.vmId, vm.group, vm.platformId]).sort(), [
      ["delta-cpu-1", "cpu-a", "us-central1-a/instances/delta-cpu-1"],
      ["delta-cpu-2", "cpu-b", "us-central1-b/instances/delta-cpu-2"],
    ]);
    assert.ok(fake.requests.some((r) => r.path.includes("/aggregated/instances?filter=") && decodeURIComponent(r.path).includes(`labels.${CLUSTER_LABEL} = "delta"`)), "listed with the label filter");

    await first.waitReady("delta-cpu-2", 10_000);
    await eventually(() => worker("delta-cpu-2")?.health === "healthy", { what: "delta-cpu-2's worker to register", timeoutMs: 20_000 });
    const [pid] = fake.hostPids("delta-cpu-2");
    // A platform that never saw the VM finds it to release it.
    const other = await platformOf("delta");
    await other.release("delta-cpu-2");
    assert.equal(fake.instance("delta-cpu-2"), undefined);
    assert.equal(await other.getStatus("delta-cpu-2"), undefined);
    await eventually(() => !isAlive(pid as number), { what: "the deleted VM's worker to stop", timeoutMs: 10_000 });
    await other.release("delta-cpu-2");
    await fresh.release("delta-cpu-1");
    assert.deepEqual(await fresh.listVms(), []);
    assert.ok(fake.instance("epsilon-cpu-1") && fake.instance("hand-made"), "other VMs are left alone");
  });

  test("a credentials file is used through google-auth-library (an external account whose token exchange is the fake's)", async () => {
    const subject = join(dir, "subject-token");
    writeFileSync(subject, "workload-identity-subject");
    const credentials = join(dir, "credentials.json");
    writeFileSync(
      credentials,
      JSON.stringify({
        type: "external_account",
        audience: "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/fake-pool/providers/fake-provider",
        subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
        token_url: `${fake.url}/sts/v1/token`,
        credential_source: { file: subject },
      }),
    );
    const platform = await platformOf("eta", { accessToken: undefined, credentialsFile: credentials });
    const before = fake.requests.length;
    assert.deepEqual(await platform.listVms(), []);
    const calls = fake.requests.slice(before);
    assert.equal(calls[0]?.path, "/sts/v1/token", "the subject token was exchanged first");
    assert.ok(calls.length > 1 && calls.slice(1).every((r) => r.authorization === `Bearer ${STS_TOKEN_PREFIX}workload-identity-subject`), JSON.stringify(calls));
  });

  test("a v5litepod-16 slice is one VM of 4 hosts whose 4 workers register with the slice's chips and labels", async () => {
    const platform = await platformOf("zeta");
    const tpu = group("v5e-16", { resources: { cpu: 1, memory: GiB, deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4 } });
    await platform.allocate(request("zeta-tpu-1", tpu));
    const node = fake.node("zeta-tpu-1") as { acceleratorType: string; runtimeVersion: string; labels: Record<string, string> };
    assert.equal(node.acceleratorType, "v5litepod-16");
    assert.equal(node.runtimeVersion, "v2-alpha-tpuv5-lite");
    assert.equal(node.labels[CLUSTER_LABEL], "zeta");
    const vm = await platform.waitReady("zeta-tpu-1", 10_000);
    assert.deepEqual(
      vm.hosts,
      [0, 1, 2, 3].map((i) => ({ workerId: `zeta-tpu-1-${i}`, address: "127.0.0.1" })),
      "one host per network endpoint, in order",
    );
    const ids = vm.hosts.map((h) => h.workerId);
    await eventually(() => ids.every((id) => worker(id)?.health === "healthy"), { what: "the slice's 4 workers to register", timeoutMs: 30_000 });
    ids.forEach((id, i) => {
      const record = worker(id);
      assert.deepEqual(
        { type: record?.capacity.deviceType, variant: record?.capacity.deviceVariant, chips: record?.capacity.deviceCount },
        { type: "tpu", variant: "v5litepod-16", chips: 4 },
      );
      assert.equal(record?.attributes[TPU_SLICE_LABEL], "zeta-tpu-1");
      assert.equal(record?.attributes[TPU_HOST_LABEL], String(i));
      assert.equal(record?.attributes["fluster-vm"], "zeta-tpu-1");
      const [pid] = [fake.hostPids("zeta-tpu-1")[i]];
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      assert.ok(env.includes(`TPU_WORKER_ID=${i}`) && env.includes("TPU_ACCELERATOR_TYPE=v5litepod-16") && env.includes("TPU_CHIPS_PER_HOST_BOUNDS=2,2,1"), env.join(" "));
    });
    const listed = await (await platformOf("zeta")).listVms();
    assert.deepEqual(listed.map((v) => [v.vmId, v.group, v.hosts.length]), [["zeta-tpu-1", "v5e-16", 4]]);
    const pids = fake.hostPids("zeta-tpu-1");
    await platform.release("zeta-tpu-1");
    assert.equal(fake.node("zeta-tpu-1"), undefined);
    await eventually(() => pids.every((pid) => !isAlive(pid)), { what: "the slice's workers to stop", timeoutMs: 10_000 });
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
