// `npx fluster cluster start --local --config examples/clusters/docker.yaml`
// as the README shows it: the controller here, workers in Docker containers
// the autoscaler starts (minVms at once, more for a burst of jobs), `job run`
// and `vm list` against it, and Ctrl-C leaving no container behind.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { VM_ID_LABEL } from "../../src/cluster/platform/docker/platform.js";
import { docker, requireDocker } from "../helpers/docker.js";
import { REPO_ROOT, cleanEnv, eventually, runNode, stopProcess, waitForLine, type NodeResult } from "../helpers/index.js";

const bin = join(REPO_ROOT, "bin", "fluster.js");

interface ListedVms {
  vms: Array<{ vmId: string; group: string; state: string; workerIds: string[] }>;
  groups: Array<{ name: string; platform: string; minVms: number; maxVms: number; reason: string }>;
}

describe("cluster start --local --config examples/clusters/docker.yaml", { timeout: 240_000 }, () => {
  let cluster: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv;
  let client: Cluster;
  const seenVms = new Set<string>();

  /** A project of the reader's own (no dependencies), where `job run` is run: its files travel to the containers as a bundle. */
  let project: string;
  const fluster = (args: string[]): Promise<NodeResult> => runNode([bin, ...args], { cwd: project, env: cleanEnv(env), timeoutMs: 120_000 });
  const listVms = async (): Promise<ListedVms> => {
    const result = await fluster(["vm", "list", "--all", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const listed = JSON.parse(result.stdout) as ListedVms;
    for (const vm of listed.vms) seenVms.add(vm.vmId);
    return listed;
  };

  before(async () => {
    requireDocker();
    project = mkdtempSync(join(tmpdir(), "fluster-cli-docker-"));
    writeFileSync(join(project, "hello.mjs"), "console.log('hello from', process.env.FLUSTER_WORKER_ID.replace(/-[0-9a-f]{8}$/, ''));\n");
    cluster = spawn(process.execPath, [bin, "cluster", "start", "--local", "--config", "examples/clusters/docker.yaml"], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "inherit"] });
    const [, address] = await waitForLine(cluster, /export FLUSTER_CLUSTER_ADDRESS=(\S+)/);
    env = { FLUSTER_CLUSTER_ADDRESS: address };
    client = Cluster.connect(address as string);
  });
  after(async () => {
    await client?.close();
    rmSync(project, { recursive: true, force: true });
    if (cluster) await stopProcess(cluster, "SIGINT");
    for (const vmId of seenVms) {
      const left = docker(["ps", "--all", "--quiet", "--filter", `label=${VM_ID_LABEL}=${vmId}`]).trim();
      if (left) docker(["rm", "--force", ...left.split("\n")]);
    }
  });

  test("the group's minVms container comes up, and job run runs in it", async () => {
    await eventually(async () => (await listVms()).vms.some((vm) => vm.group === "small" && vm.state === "ready"), { what: "the small group's minVms VM", timeoutMs: 120_000, intervalMs: 500 });
    const result = await fluster(["job", "run", "--", "node", "hello.mjs"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "hello from small\n");
    const table = await fluster(["vm", "list"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /small-[0-9a-f]{8}\s+small\s+ready/);
    assert.match(table.stdout, /large\s+docker\s+0\/2/);
  });

  test("a burst of one-core jobs gets more containers, up to the group's maxVms", async () => {
    const jobIds = await Promise.all(
      [1, 2, 3].map((i) => client.launch({ name: `burst-${i}`, resources: { cpu: 1, memory: "64m" }, entrypoint: Entrypoint.fromCommand(["node", "-e", "setTimeout(() => {}, 2000)"]), environment: { workspace: project } })),
    );
    await eventually(async () => (await listVms()).vms.filter((vm) => vm.group === "small" && vm.state !== "released" && vm.state !== "failed").length >= 3, {
      what: "the small group to grow to 3 containers",
      timeoutMs: 60_000,
      intervalMs: 300,
    });
    const jobs = await client.wait(jobIds, { timeoutSeconds: 120 });
    assert.deepEqual(
      jobs.map((job) => job.status),
      ["succeeded", "succeeded", "succeeded"],
    );
    const { vms } = await listVms();
    assert.ok(vms.filter((vm) => vm.group === "small").length <= 4, "never above maxVms");
  });

  test("Ctrl-C stops the cluster and removes every container it started", async () => {
    assert.ok(seenVms.size >= 3);
    await stopProcess(cluster as ChildProcess, "SIGINT");
    cluster = undefined;
    for (const vmId of seenVms) {
      assert.equal(docker(["ps", "--all", "--quiet", "--filter", `label=${VM_ID_LABEL}=${vmId}`]).trim(), "", `container of ${vmId}`);
    }
  });
});
