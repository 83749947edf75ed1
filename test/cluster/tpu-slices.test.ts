// TPU slices and GPUs on a real LocalCluster, with device overrides: 8 workers
// labelled as 2 slices × 4 hosts of v5litepod-16 (each on its own loopback
// address), a 4-task job on the hosts of one slice with the TPU_* variables
// JAX reads, a multislice job with MEGASCALE_*, and two 1-GPU tasks on a
// 2-GPU worker seeing different CUDA_VISIBLE_DEVICES.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import { ResourceConfig } from "../../src/core/resources.js";
import { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { coordinatorPort } from "../../src/cluster/controller/rendezvous.js";
import { TPU_HOST_LABEL, TPU_SLICE_LABEL } from "../../src/cluster/platform/types.js";

const VARIANT = "v5litepod-16";
const SLICES = ["slice-a", "slice-b"];

/** Host `h` of slice `s` binds 127.0.0.(20 + 4s + 3 - h): addresses fall as host indexes rise, so host order is not address order. */
function hostAddress(s: number, h: number): string {
  return `127.0.0.${20 + 4 * s + 3 - h}`;
}

/**
 * Writes the task's variables to `<dir>/<attempt>.json`; with a `wait`
 * count, stays until that many tasks have written theirs (so they surely
 * ran at the same time).
 */
const TASK = `
const fs = require("fs"), path = require("path");
const [dir, wait] = process.argv.slice(2);
const names = ["FLUSTER_TASK_INDEX", "FLUSTER_WORKER_ID", "FLUSTER_ADVERTISE_HOST", "FLUSTER_COORDINATOR_ADDRESS", "TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS", "MEGASCALE_NUM_SLICES", "MEGASCALE_SLICE_ID", "CUDA_VISIBLE_DEVICES"];
const seen = Object.fromEntries(names.filter((n) => process.env[n] !== undefined).map((n) => [n, process.env[n]]));
fs.writeFileSync(path.join(dir, process.env.FLUSTER_ATTEMPT_ID.replace(/[^A-Za-z0-9]/g, "_") + ".json"), JSON.stringify(seen));
const until = Date.now() + 20000;
const done = () => !wait || fs.readdirSync(dir).filter((f) => f.endsWith(".json")).length >= Number(wait);
const tick = () => (done() ? process.exit(0) : Date.now() > until ? process.exit(7) : setTimeout(tick, 50));
tick();
`;

type Seen = Record<string, string>;

function readSeen(dir: string): Seen[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as Seen)
    .sort((a, b) => Number(a.FLUSTER_TASK_INDEX) - Number(b.FLUSTER_TASK_INDEX));
}

describe("TPU slices and GPU devices", { timeout: 120_000 }, () => {
  let cluster: LocalCluster;
  /** The jobs' workspace: just the task script (a bundle of this repository would take each worker seconds to fetch). */
  let workspace: string;
  const dirs: string[] = [];
  const freshDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-tpu-"));
    dirs.push(dir);
    return dir;
  };
  before(async () => {
    workspace = mkdtempSync(join(tmpdir(), "fluster-tpu-ws-"));
    dirs.push(workspace);
    writeFileSync(join(workspace, "task.cjs"), TASK);
    cluster = await LocalCluster.start({ workers: 0, workerCpu: 1, workerMemory: "512m", reconcileIntervalSeconds: 0.3 });
    // Hosts are added out of order: placement follows the labels, not the order workers came in.
    const adding: Array<Promise<unknown>> = [];
    for (const h of [2, 0, 3, 1]) {
      for (let s = 0; s < SLICES.length; s++) {
        adding.push(cluster.addWorker({ workerId: `${SLICES[s]}-host${h}`, host: hostAddress(s, h), tpu: VARIANT, labels: { [TPU_SLICE_LABEL]: SLICES[s] as string, [TPU_HOST_LABEL]: String(h) } }));
      }
    }
    adding.push(cluster.addWorker({ workerId: "gpu-box", gpu: { variant: "H100", count: 2 } }));
    await Promise.all(adding);
  });
  after(async () => {
    await cluster?.shutdown();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const tpuJob = (name: string, dir: string, sliceCount: number): JobRequest => ({
    name,
    resources: ResourceConfig.withTpu(VARIANT, { cpu: 0.2, memory: "48m", sliceCount }),
    entrypoint: Entrypoint.fromCommand(["node", "task.cjs", dir]),
    environment: { workspace },
  });

  test("a v5litepod-16 job runs on the 4 hosts of one slice, task i on host i, with TPU_WORKER_ID and TPU_WORKER_HOSTNAMES", async () => {
    const dir = freshDir();
    const jobId = await cluster.launch(tpuJob("one-slice", dir, 1));
    const info = await cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "succeeded", JSON.stringify(info));
    const seen = readSeen(dir);
    assert.equal(seen.length, 4);
    const slice = /^(slice-[ab])-host/.exec(seen[0]?.FLUSTER_WORKER_ID ?? "")?.[1];
    assert.ok(slice, JSON.stringify(seen));
    const s = SLICES.indexOf(slice);
    const expectedHosts = [0, 1, 2, 3].map((h) => hostAddress(s, h)).join(",");
    seen.forEach((task, i) => {
      assert.equal(task.FLUSTER_WORKER_ID, `${slice}-host${i}`, "task i on host i of one slice");
      assert.equal(task.TPU_WORKER_ID, String(i));
      assert.equal(task.FLUSTER_ADVERTISE_HOST, hostAddress(s, i));
      assert.equal(task.TPU_WORKER_HOSTNAMES, expectedHosts, "one host list, in host order");
      assert.equal(task.FLUSTER_COORDINATOR_ADDRESS, `${hostAddress(s, 0)}:${coordinatorPort(`${jobId}/0/0`)}`);
      assert.equal(task.MEGASCALE_NUM_SLICES, undefined);
    });
  });

  test("a multislice job (2 × v5litepod-16) spans both slices with MEGASCALE_* set", async () => {
    const dir = freshDir();
    const jobId = await cluster.launch(tpuJob("two-slices", dir, 2));
    const info = await cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "succeeded", JSON.stringify(info));
    const seen = readSeen(dir);
    assert.equal(seen.length, 8);
    const sliceOf = (task: Seen | undefined) => SLICES.indexOf(/^(slice-[ab])-host/.exec(task?.FLUSTER_WORKER_ID ?? "")?.[1] ?? "");
    const first = sliceOf(seen[0]);
    const second = sliceOf(seen[4]);
    assert.deepEqual(new Set([first, second]), new Set([0, 1]), "the two slice numbers take the two slices");
    const port = coordinatorPort(`${jobId}/0/0`);
    seen.forEach((task, i) => {
      const s = i < 4 ? first : second;
      assert.equal(task.FLUSTER_WORKER_ID, `${SLICES[s]}-host${i % 4}`);
      assert.equal(task.TPU_WORKER_ID, String(i % 4));
      assert.equal(task.TPU_WORKER_HOSTNAMES, [0, 1, 2, 3].map((h) => hostAddress(s, h)).join(","));
      assert.equal(task.MEGASCALE_NUM_SLICES, "2");
      assert.equal(task.MEGASCALE_SLICE_ID, String(Math.floor(i / 4)));
      assert.equal(task.MEGASCALE_COORDINATOR_ADDRESS, `${hostAddress(first, 0)}:${port + 1}`);
      assert.equal(task.FLUSTER_COORDINATOR_ADDRESS, `${hostAddress(first, 0)}:${port}`);
    });
  });

  test("two 1-GPU tasks on a 2-GPU worker run together with different CUDA_VISIBLE_DEVICES", async () => {
    const dir = freshDir();
    const jobId = await cluster.launch({
      name: "gpus",
      resources: { cpu: 0.2, memory: "48m", device: { kind: "gpu", variant: "H100", count: 1 }, replicas: 2 },
      // Each task stays until both have written: they ran at once.
      entrypoint: Entrypoint.fromCommand(["node", "task.cjs", dir, "2"]),
      environment: { workspace },
    });
    const info = await cluster.wait(jobId, { timeoutSeconds: 60 });
    assert.equal(info.status, "succeeded", JSON.stringify(info));
    const seen = readSeen(dir);
    assert.deepEqual(seen.map((t) => t.FLUSTER_WORKER_ID), ["gpu-box", "gpu-box"]);
    assert.deepEqual(seen.map((t) => t.CUDA_VISIBLE_DEVICES).sort(), ["0", "1"]);
    // Not a TPU job: no TPU variables.
    assert.equal(seen[0]?.TPU_WORKER_ID, undefined);
  });
});
