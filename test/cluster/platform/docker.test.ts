// The docker platform against a real Docker engine: each VM is a container
// whose worker registers with a controller in this process, with the shape's
// labels and resources; allocation is idempotent, a new platform object finds
// the VMs again (a restarted controller), a worker that dies leaves its VM
// terminated with the reason, and release removes the container.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Cluster, type WorkerInfo } from "../../../src/cluster/client/cluster.js";
import { startController, type ControllerServer } from "../../../src/cluster/controller/server.js";
import { DockerPlatform } from "../../../src/cluster/platform/docker/platform.js";
import { AllocationError, workerLabels, type VmRequest } from "../../../src/cluster/platform/types.js";
import { silentLogger } from "../../../src/core/logger.js";
import { eventually } from "../../helpers/index.js";
import { clusterContainers, docker, dockerGroup, removeClusterContainers, requireDocker, testClusterName } from "../../helpers/docker.js";
import type { ScaleGroup } from "../../../src/cluster/autoscaler/types.js";

const MiB = 1024 ** 2;
const TOKEN = "docker-platform-test-token-0123456789";

describe("docker platform", { timeout: 120_000 }, () => {
  const clusterName = testClusterName("fluster-dockertest");
  let controller: ControllerServer;
  let client: Cluster;
  let platform: DockerPlatform;
  const group = dockerGroup("small", { zone: "z1", labels: { tier: "docker-test" } }, { cpu: 1, memory: 384 * MiB });

  const request = (vmId: string, g: ScaleGroup = group): VmRequest => ({ vmId, group: g, worker: { controllerUrl: controller.url, token: TOKEN, labels: workerLabels(vmId, g) } });
  const inspect = (vmId: string) => JSON.parse(docker(["inspect", "--type", "container", platform.containerName(vmId)]))[0];
  const worker = async (id: string): Promise<WorkerInfo | undefined> => (await client.listWorkers()).find((w) => w.workerId === id);

  before(async () => {
    requireDocker();
    controller = await startController({ stateDir: ":memory:", token: TOKEN, reconcileIntervalSeconds: 0.2, workerLostGraceSeconds: 3, logger: silentLogger() });
    client = Cluster.connect(controller.url, { token: TOKEN });
    platform = new DockerPlatform({ clusterName, stopGraceSeconds: 5 });
  });
  after(async () => {
    removeClusterContainers(clusterName);
    await client?.close();
    await controller?.shutdown();
  });

  test("a VM is a container on the host network whose worker registers with the shape's labels and resources", async () => {
    const vm = await platform.allocate(request("vm-a"));
    assert.equal(vm.vmId, "vm-a");
    assert.equal(vm.group, "small");
    assert.deepEqual(vm.hosts, [{ workerId: "vm-a", address: "127.0.0.1" }]);
    assert.ok(["provisioning", "running"].includes(vm.state), vm.state);
    const ready = await platform.waitReady("vm-a", 30_000);
    assert.equal(ready.state, "running");
    await eventually(async () => (await worker("vm-a"))?.health === "healthy", { what: "vm-a's worker to register", timeoutMs: 30_000 });
    const registered = (await worker("vm-a")) as WorkerInfo;
    assert.equal(registered.cpu, 1);
    assert.equal(registered.memory, 384 * MiB);
    assert.match(registered.address, /^http:\/\/127\.0\.0\.1:\d+$/);
    for (const [key, value] of Object.entries({ tier: "docker-test", zone: "z1", preemptible: "false", "fluster-vm": "vm-a", "fluster-scale-group": "small" })) {
      assert.equal(registered.attributes[key], value, `attribute ${key}`);
    }
    const info = inspect("vm-a");
    assert.equal(info.HostConfig.NetworkMode, "host");
    assert.equal(info.HostConfig.NanoCpus, 1e9);
    assert.equal(info.HostConfig.Memory, 384 * MiB);
    assert.deepEqual(
      { cluster: info.Config.Labels["fluster.cluster"], vm: info.Config.Labels["fluster.vm"], group: info.Config.Labels["fluster.group"] },
      { cluster: clusterName, vm: "vm-a", group: "small" },
    );
    // The token reaches the worker through its environment, never a command line.
    assert.ok(info.Config.Env.includes(`FLUSTER_TOKEN=${TOKEN}`));
    assert.ok(!JSON.stringify([info.Path, info.Args, info.Config.Cmd]).includes(TOKEN), "the token is in no argv");
  });

  test("allocating a VM again returns the container it has; two calls at once make one", async () => {
    const before = inspect("vm-a").Id as string;
    const again = await platform.allocate(request("vm-a"));
    assert.equal(again.platformId, before.slice(0, 12));
    assert.equal(inspect("vm-a").Id, before);
    const [one, two] = await Promise.all([platform.allocate(request("vm-b")), platform.allocate(request("vm-b"))]);
    assert.equal(one.platformId, two.platformId);
    assert.equal(clusterContainers(clusterName).length, 2, "vm-a and vm-b only");
    await platform.waitReady("vm-b", 30_000);
    await eventually(async () => (await worker("vm-b"))?.health === "healthy", { what: "vm-b's worker to register", timeoutMs: 30_000 });
    const [a, b] = [await worker("vm-a"), await worker("vm-b")];
    assert.notEqual(a?.address, b?.address, "two workers on the host network listen on distinct ports");
  });

  test("a new platform object (a restarted controller) lists the cluster's VMs; another cluster's sees none", async () => {
    const restarted = new DockerPlatform({ clusterName });
    const vms = await restarted.listVms();
    assert.deepEqual(vms.map((vm) => [vm.vmId, vm.group, vm.state]).sort(), [["vm-a", "small", "running"], ["vm-b", "small", "running"]]);
    assert.equal((await restarted.getStatus("vm-a"))?.state, "running");
    assert.equal(await restarted.getStatus("vm-never"), undefined);
    const other = new DockerPlatform({ clusterName: `${clusterName}-other` });
    assert.deepEqual(await other.listVms(), []);
    assert.equal(await other.getStatus("vm-a"), undefined);
  });

  test("a VM whose worker dies is terminated with the exit code; one over its memory shows OOMKilled", async () => {
    // The worker is tini's child: kill it from the host, as a crash would.
    const tini = inspect("vm-b").State.Pid as number;
    const [workerPid] = readFileSync(`/proc/${tini}/task/${tini}/children`, "utf8").trim().split(/\s+/).map(Number);
    assert.ok(workerPid && workerPid > 0);
    process.kill(workerPid, "SIGKILL");
    await eventually(async () => (await platform.getStatus("vm-b"))?.state === "terminated", { what: "vm-b to be terminated", timeoutMs: 15_000 });
    const dead = await platform.getStatus("vm-b");
    assert.match(dead?.reason ?? "", /worker exited with code 137/);
    await assert.rejects(platform.waitReady("vm-b", 5_000), /docker VM vm-b is terminated: worker exited with code 137/);
    assert.ok((await platform.listVms()).some((vm) => vm.vmId === "vm-b" && vm.state === "terminated"), "listed, so the controller sees it gone");
    // 16 MiB is less than node needs to start: the kernel kills the worker.
    const tiny = dockerGroup("tiny", {}, { memory: 16 * MiB });
    await platform.allocate(request("vm-tiny", tiny));
    await eventually(async () => (await platform.getStatus("vm-tiny"))?.state === "terminated", { what: "vm-tiny to be OOM-killed", timeoutMs: 20_000 });
    assert.match((await platform.getStatus("vm-tiny"))?.reason ?? "", /OOMKilled/);
  });

  test("release stops the worker and removes the container; releasing what is gone resolves", async () => {
    await platform.release("vm-a");
    assert.equal(await platform.getStatus("vm-a"), undefined);
    assert.throws(() => inspect("vm-a"), /No such container/);
    await platform.release("vm-b");
    await platform.release("vm-tiny");
    await platform.release("vm-never");
    assert.deepEqual(clusterContainers(clusterName), []);
    assert.deepEqual(await platform.listVms(), []);
    // Stopped with SIGTERM, the worker ended its registration: the controller no longer counts it healthy.
    await eventually(async () => (await worker("vm-a"))?.health !== "healthy", { what: "vm-a's worker to leave", timeoutMs: 10_000 });
  });

  test("docker's refusals are allocation errors of the right kind", async () => {
    const noImage = new DockerPlatform({ clusterName, image: "fluster-no-such-image:never" });
    await assert.rejects(noImage.allocate(request("vm-x")), (err: unknown) => {
      assert.ok(err instanceof AllocationError);
      assert.equal(err.failure, "invalid");
      assert.match(err.message, /No such image: fluster-no-such-image:never.*never pulls/);
      return true;
    });
    const huge = dockerGroup("huge", {}, { cpu: 100_000 });
    await assert.rejects(platform.allocate(request("vm-huge", huge)), (err: unknown) => err instanceof AllocationError && err.failure === "invalid" && /CPUs/i.test(err.message));
    const noDocker = new DockerPlatform({ clusterName, docker: "/nonexistent/docker", image: "any" });
    await assert.rejects(noDocker.allocate(request("vm-y")), (err: unknown) => err instanceof AllocationError && err.failure === "error" && /docker command "\/nonexistent\/docker" was not found/.test(err.message));
    assert.deepEqual(clusterContainers(clusterName), [], "no container left by a refused allocation");
  });
});
