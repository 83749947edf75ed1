// Placement of job groups and reservation holds on a real LocalCluster: a
// group is placed all together or not at all, in one zone when asked; a
// reservation keeps its minimum from a flood of other jobs until it expires
// or is released.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { Cluster } from "../../src/cluster/client/cluster.js";
import type { LocalCluster } from "../../src/cluster/client/local-cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import type { JobRequest } from "../../src/core/job.js";
import { eventually } from "../helpers/index.js";
import { startLocalCluster } from "../helpers/local-cluster.js";

const command = (name: string, cpu: number, argv = ["node", "-e", "setTimeout(() => {}, 120_000)"]): JobRequest => ({
  name,
  resources: { cpu, memory: "64m" },
  entrypoint: Entrypoint.fromCommand(argv),
});

/** The workers the job's tasks run on now. */
async function workersOf(cluster: Cluster, jobId: string): Promise<string[]> {
  return (await cluster.poll(jobId)).tasks.map((t) => t.workerId ?? "");
}

async function running(cluster: Cluster, jobIds: readonly string[]): Promise<number> {
  const infos = await Promise.all(jobIds.map((id) => cluster.poll(id)));
  return infos.filter((i) => i.status === "running").length;
}

/** A cluster of three workers of 2 cpu each; `zones[i]` labels worker i. */
function threeWorkers(t: TestContext, zones: readonly string[] = []): Promise<LocalCluster> {
  return startLocalCluster(t, { workers: 3, workerCpu: 2, workerMemory: "2g", workerLabels: (i): Record<string, string> => (zones[i] ? { zone: zones[i] as string } : {}) });
}

describe("job groups: all or nothing", { timeout: 180_000 }, () => {
  test("a group whose third job cannot fit places none, and all three once a worker joins", async (t) => {
    const cluster = await startLocalCluster(t, { workers: 2, workerCpu: 2, workerMemory: "2g" });
    // 1.5 cpu each: one per 2-cpu worker, so the third needs a third worker.
    const { groupId, jobIds } = await cluster.launchGroupWithId([command("g-a", 1.5), command("g-b", 1.5), command("g-c", 1.5)], { name: "trio" });
    await eventually(async () => Boolean((await cluster.getGroup(groupId)).pendingReason), { what: "the group's pending reason", timeoutMs: 30_000 });
    // Give the scheduler passes to (wrongly) place part of the group.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await running(cluster, jobIds), 0, "no job of the group runs while one cannot fit");
    for (const jobId of jobIds) assert.deepEqual(await workersOf(cluster, jobId), [""], `${jobId} has no worker`);
    assert.equal((await cluster.getGroup(groupId)).status, "pending");
    await cluster.addWorker();
    await eventually(async () => (await running(cluster, jobIds)) === 3, { what: "all three jobs to run", timeoutMs: 60_000 });
    assert.equal((await cluster.getGroup(groupId)).status, "running");
    await cluster.terminateGroup(groupId);
  });

  test("sameZone puts every job of the group in one zone", async (t) => {
    // Zone a has one worker, zone b two: two 1.5-cpu jobs fit together only in b.
    const cluster = await threeWorkers(t, ["a", "b", "b"]);
    // LocalCluster names worker i `local-<i>`, and gave it the labels of index i.
    const zoneOf = new Map(["a", "b", "b"].map((zone, i) => [`local-${i}`, zone]));
    const { groupId, jobIds } = await cluster.launchGroupWithId([command("z-a", 1.5), command("z-b", 1.5)], { name: "zoned", sameZone: true });
    await eventually(async () => (await running(cluster, jobIds)) === 2, { what: "both jobs to run", timeoutMs: 60_000 });
    const zones = new Set<string | undefined>();
    for (const jobId of jobIds) for (const w of await workersOf(cluster, jobId)) zones.add(zoneOf.get(w));
    assert.deepEqual([...zones], ["b"]);
    await cluster.terminateGroup(groupId);
  });
});

describe("reservations: held capacity", { timeout: 180_000 }, () => {
  /** A reservation of two whole 2-cpu workers out of three, and a flood of six 1-cpu jobs: two fit beside it. */
  async function floodBeside(cluster: LocalCluster, ttlSeconds: number) {
    const reservationId = await cluster.createReservation({ minResources: { cpu: 2, memory: "64m", replicas: 2 }, maxResources: { cpu: 2, memory: "64m", replicas: 2 }, ttlSeconds });
    await eventually(async () => (await cluster.getReservation(reservationId)).heldReplicas === 2, { what: "two slots held", timeoutMs: 30_000 });
    const flood: string[] = [];
    for (let i = 0; i < 6; i++) flood.push(await cluster.launch({ ...command(`flood-${i}`, 1), priority: "batch" }));
    await eventually(async () => (await running(cluster, flood)) === 2, { what: "the two flood jobs that fit beside the reservation", timeoutMs: 60_000 });
    return { reservationId, flood };
  }

  test("a reservation keeps its minimum from a flood of other jobs, and its own jobs start at once", async (t) => {
    const cluster = await threeWorkers(t);
    const { reservationId, flood } = await floodBeside(cluster, 600);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await running(cluster, flood), 2, "the flood stays out of the held room");
    const info = await cluster.getReservation(reservationId);
    assert.equal(info.heldReplicas, 2);
    assert.equal(info.pendingResources.replicas, 0);
    const own = [await cluster.launch(command("own-0", 2), { reservationId }), await cluster.launch(command("own-1", 2), { reservationId })];
    await eventually(async () => (await running(cluster, own)) === 2, { what: "the reservation's jobs to start", timeoutMs: 30_000 });
    const after = await cluster.getReservation(reservationId);
    assert.equal(after.usedReplicas, 2);
    assert.equal(after.heldReplicas, 0, "its jobs use the slots it held");
    assert.equal(await running(cluster, flood), 2);
    await cluster.releaseReservation(reservationId);
  });

  test("after its TTL the reservation expires and the flood takes the room", async (t) => {
    const cluster = await threeWorkers(t);
    const { reservationId, flood } = await floodBeside(cluster, 12);
    await eventually(async () => (await cluster.getReservation(reservationId)).state === "expired", { what: "the TTL to pass", timeoutMs: 45_000 });
    await eventually(async () => (await running(cluster, flood)) === 6, { what: "the whole flood to run", timeoutMs: 60_000 });
  });

  test("released early, the reservation's room goes to the flood at once", async (t) => {
    const cluster = await threeWorkers(t);
    const { reservationId, flood } = await floodBeside(cluster, 600);
    await cluster.releaseReservation(reservationId, "not needed");
    await eventually(async () => (await running(cluster, flood)) === 6, { what: "the whole flood to run", timeoutMs: 60_000 });
    assert.equal((await cluster.getReservation(reservationId)).message, "not needed");
  });
});
