// Job groups and reservations on a real LocalCluster (controller in this
// process, worker daemons and jobs as child processes), through the client:
// what holds whatever the scheduler decides — roll-up, stopping a group,
// a group ending together when one job fails, the reservation lifecycle
// (create, list, expiry, release, launches into it; a TTL long enough for a
// loaded machine to launch into it first) — and a controller
// SIGKILLed with a group and a reservation in flight that loses nothing.
// Placement of groups and holds: groups-reservations.test.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Cluster } from "../../src/cluster/client/cluster.js";
import { Entrypoint } from "../../src/core/entrypoint.js";
import { ValidationError } from "../../src/core/errors.js";
import type { JobRequest } from "../../src/core/job.js";
import { JobGroupSpecSchema, ControllerService } from "../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { JobState } from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { createRpcChannel } from "../../src/rpc/transport.js";
import { eventually, flusterErrorOf, freePort } from "../helpers/index.js";
import { commandJobSpec, startControllerProcess, startWorkerProcess, type ChildHandle } from "../helpers/cluster-processes.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

const small = { cpu: 0.1, memory: "64m" } as const;
const command = (name: string, argv: string[]): JobRequest => ({ name, resources: small, entrypoint: Entrypoint.fromCommand(argv) });
const sleeper = (name: string) => command(name, ["node", "-e", "setTimeout(() => {}, 60_000)"]);


describe("job groups and reservations on a LocalCluster", { timeout: 120_000 }, () => {
  const local = useLocalCluster({ workers: 2, workerCpu: 2, workerMemory: "2g" });

  test("a group rolls up from its jobs: running, then succeeded when all succeed", async () => {
    const { cluster } = local;
    const { groupId, jobIds } = await cluster.launchGroupWithId(
      [command("quick", ["node", "-e", "1"]), command("slower", ["node", "-e", "setTimeout(() => {}, 1500)"])],
      { name: "rollup" },
    );
    assert.equal(jobIds.length, 2);
    for (const jobId of jobIds) assert.equal((await cluster.poll(jobId)).groupId, groupId);
    await eventually(async () => (await cluster.getGroup(groupId)).status !== "pending", { what: "the group to be placed", timeoutMs: 30_000 });
    await cluster.wait(jobIds, { timeoutSeconds: 60 });
    const info = await cluster.getGroup(groupId);
    assert.equal(info.status, "succeeded");
    assert.ok(info.finishedAt, "a finished group has an end time");
    assert.equal(info.sameRegion, true, "the default");
    assert.ok((await cluster.listGroups({ prefix: "roll" })).some((g) => g.groupId === groupId));
    assert.ok(!(await cluster.listGroups({ prefix: "nope" })).some((g) => g.groupId === groupId));
  });

  test("one job failing kills the others, and the group says which", async () => {
    const { cluster } = local;
    const { groupId, jobIds } = await cluster.launchGroupWithId([sleeper("stays"), command("dies", ["node", "-e", "process.exit(4)"])], { name: "unit" });
    const [stays, dies] = jobIds as [string, string];
    const [first, second] = await cluster.wait([stays, dies], { timeoutSeconds: 60 });
    assert.equal(second?.status, "failed");
    assert.equal(first?.status, "killed");
    assert.match(first?.errorMessage ?? "", new RegExp(`group unit \\(${groupId}\\): job ${dies} failed`));
    const info = await cluster.getGroup(groupId);
    assert.equal(info.status, "failed");
    assert.match(info.errorMessage ?? "", new RegExp(`^group unit: job ${dies} failed`));
  });

  test("stopping a group kills every job; an unknown group is not_found", async () => {
    const { cluster } = local;
    const { groupId, jobIds } = await cluster.launchGroupWithId([sleeper("a"), sleeper("b"), sleeper("c")], { name: "stopped" });
    await eventually(async () => (await cluster.getGroup(groupId)).status === "running", { what: "the group to run", timeoutMs: 30_000 });
    const after = await cluster.terminateGroup(groupId);
    assert.equal(after.status, "killed");
    for (const info of await cluster.wait(jobIds, { timeoutSeconds: 30 })) assert.equal(info.status, "killed");
    assert.equal((await flusterErrorOf(() => cluster.getGroup("no-such-group"))).code, "not_found");
  });

  test("a bad group is refused naming the request and field, and nothing is launched", async () => {
    const { cluster } = local;
    const before = (await cluster.listJobs()).length;
    const err = await flusterErrorOf(() => cluster.launchGroup([sleeper("ok"), { ...sleeper("bad"), resources: { cpu: -1 } }], { name: "bad" }));
    assert.ok(err instanceof ValidationError);
    assert.equal(err.field, "requests[1].resources.cpu");
    assert.ok((await flusterErrorOf(() => cluster.launchGroup([], { name: "empty" }))) instanceof ValidationError);
    assert.equal((await cluster.listJobs()).length, before);
  });

  test("a reservation: created, listed, used by its jobs, expires after its TTL; launches into it then fail naming it", async () => {
    const { cluster } = local;
    const id = await cluster.createReservation({ minResources: { cpu: 0.5, memory: "64m", replicas: 2 }, maxResources: { cpu: 0.5, memory: "64m", replicas: 3 }, ttlSeconds: 10 });
    const info = await cluster.getReservation(id);
    assert.equal(info.state, "active");
    assert.equal(info.minReplicas, 2);
    assert.equal(info.maxReplicas, 3);
    assert.equal(info.namespace, cluster.namespace);
    assert.equal(info.expiresAt.getTime() - info.createdAt.getTime(), 10_000);
    assert.ok((await cluster.listReservations()).some((r) => r.reservationId === id));
    const jobId = await cluster.launch({ ...sleeper("reserved"), resources: { cpu: 0.5, memory: "64m" } }, { reservationId: id });
    assert.equal((await cluster.poll(jobId)).reservationId, id);
    await eventually(async () => (await cluster.getReservation(id)).usedReplicas === 1, { what: "its job to use one slot", timeoutMs: 30_000 });
    assert.deepEqual((await cluster.getReservation(id)).jobs, [jobId]);
    await eventually(async () => (await cluster.getReservation(id)).state === "expired", { what: "the TTL to pass", timeoutMs: 30_000 });
    const expired = await cluster.getReservation(id);
    assert.equal(expired.message, "expired after its TTL of 10s");
    assert.equal(expired.heldReplicas, 0);
    assert.equal(expired.pendingResources.replicas, 0, "an ended reservation waits for nothing");
    assert.equal((await cluster.poll(jobId)).status, "running", "its job runs on as an ordinary job");
    assert.ok(!(await cluster.listReservations()).some((r) => r.reservationId === id), "ended ones are left out by default");
    assert.ok((await cluster.listReservations({ includeEnded: true })).some((r) => r.reservationId === id));
    const err = await flusterErrorOf(() => cluster.launch(sleeper("late"), { reservationId: id }));
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, new RegExp(`reservation ${id} is expired`));
    await cluster.terminate(jobId);
  });

  test("releasing a reservation ends it with its reason; launching a group into it then fails", async () => {
    const { cluster } = local;
    const id = await cluster.createReservation({ minResources: { cpu: 0.5, memory: "64m" }, maxResources: { cpu: 0.5, memory: "64m" } });
    await cluster.releaseReservation(id, "driver finished");
    const info = await cluster.getReservation(id);
    assert.equal(info.state, "released");
    assert.equal(info.message, "driver finished");
    const err = await flusterErrorOf(() => cluster.launchGroup([sleeper("x")], { name: "late" }, id));
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, new RegExp(`reservation ${id} is released \\(driver finished\\)`));
    assert.equal((await flusterErrorOf(() => cluster.getReservation("reservation-none"))).code, "not_found");
    const bad = await flusterErrorOf(() => cluster.createReservation({ minResources: { cpu: 2, replicas: 3 }, maxResources: { cpu: 1, replicas: 2 } }));
    assert.ok(bad instanceof ValidationError, bad.message);
  });

  test("a reservation and a group of another namespace stay out of sight", async () => {
    const { cluster } = local;
    const other = Cluster.connect(cluster.address, { namespace: Cluster.freshNamespace("other") });
    try {
      const id = await other.createReservation({ minResources: { cpu: 0.1, memory: "32m" }, maxResources: { cpu: 0.1, memory: "32m" } });
      assert.ok(!(await cluster.listReservations()).some((r) => r.reservationId === id));
      assert.ok((await cluster.listReservations({ allNamespaces: true })).some((r) => r.reservationId === id));
      const err = await flusterErrorOf(() => cluster.launch(sleeper("foreign"), { reservationId: id }));
      assert.match(err.message, new RegExp(`reservation ${id} belongs to namespace ${other.namespace}`));
      await other.releaseReservation(id);
    } finally {
      await other.close();
    }
  });
});

test("a controller SIGKILLed with a group and a reservation in flight loses neither", { timeout: 120_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "fluster-groups-crash-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const controllerOptions = { stateDir, port, reconcileIntervalSeconds: 0.3, workerLostGraceSeconds: 60 };
  let controller: ChildHandle | undefined = await startControllerProcess(controllerOptions);
  let worker: ChildHandle | undefined;
  const channel = createRpcChannel(url, { token: "" });
  const rpc = channel.client(ControllerService);
  const cluster = Cluster.connect(url, { namespace: "crash" });
  try {
    worker = await startWorkerProcess({ controllerUrl: url, workerId: "w-groups-crash", workDir: join(stateDir, "w"), cpu: 2 });
    const reservationId = await cluster.createReservation({ minResources: { cpu: 0.1, memory: "32m", replicas: 2 }, maxResources: { cpu: 0.1, memory: "32m", replicas: 4 }, ttlSeconds: 600 });
    const before = await cluster.getReservation(reservationId);
    // Jobs that outlive the restart, and one that finishes while the controller is down.
    const launched = await rpc.launchJobGroup({
      jobs: [commandJobSpec("long-a", ["node", "-e", "setTimeout(() => {}, 60_000)"]), commandJobSpec("short-b", ["node", "-e", "setTimeout(() => {}, 1500)"])],
      group: create(JobGroupSpecSchema, { name: "survivor", sameRegion: true }),
      namespace: "crash",
      reservationId,
      requestId: "group-crash-1",
    });
    await eventually(async () => (await cluster.getGroup(launched.groupId)).status === "running", { what: "the group to run", timeoutMs: 30_000 });
    await controller.stop("SIGKILL");
    controller = undefined;
    controller = await startControllerProcess(controllerOptions);
    const group = await cluster.getGroup(launched.groupId);
    assert.deepEqual(
      { name: group.name, jobIds: group.jobIds, reservationId: group.reservationId, namespace: group.namespace, sameRegion: group.sameRegion },
      { name: "survivor", jobIds: launched.jobIds, reservationId, namespace: "crash", sameRegion: true },
    );
    const reservation = await cluster.getReservation(reservationId);
    assert.equal(reservation.state, "active");
    assert.equal(reservation.expiresAt.getTime(), before.expiresAt.getTime());
    assert.deepEqual(reservation.jobs, launched.jobIds);
    // A retried launch after the restart gets the same group, not a second one.
    const again = await rpc.launchJobGroup({
      jobs: [commandJobSpec("long-a", ["true"])],
      group: create(JobGroupSpecSchema, { name: "survivor" }),
      namespace: "crash",
      requestId: "group-crash-1",
    });
    assert.equal(again.groupId, launched.groupId);
    const [longA, shortB] = launched.jobIds as [string, string];
    await eventually(async () => (await cluster.poll(shortB)).status === "succeeded", { what: "the short job to succeed", timeoutMs: 30_000 });
    const longJob = (await rpc.getJobStatus({ jobId: longA })).job;
    assert.equal(longJob?.state, JobState.RUNNING, "the running job was adopted, not retried");
    assert.equal(longJob?.tasks[0]?.attempts.length, 1);
    assert.equal((await cluster.getReservation(reservationId)).usedReplicas, 1);
    await cluster.terminateGroup(launched.groupId);
    assert.equal((await cluster.getGroup(launched.groupId)).status, "killed");
  } finally {
    await cluster.close();
    channel.close();
    await worker?.stop("SIGTERM");
    await controller?.stop("SIGTERM");
    rmSync(stateDir, { recursive: true, force: true });
  }
});
