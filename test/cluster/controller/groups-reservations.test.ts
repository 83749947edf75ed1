// Job groups and reservations in the controller on its own (harness.ts: a
// real Controller on a real SQLite store, in-memory workers, a test clock):
// validation, one commit, request-id dedupe, the status roll-up, the group
// ending together, reservation lifecycle (create, release, TTL expiry), what
// a reservation asks of the scheduler, and a restart that loses nothing.
// Placement of groups and holds is the scheduler's (test/cluster/
// groups-reservations.test.ts checks it end to end).
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { flusterErrorOf } from "../../helpers/index.js";
import { create } from "@bufbuild/protobuf";
import { ValidationError } from "../../../src/core/errors.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { validateJobRequest, type JobRequest } from "../../../src/core/job.js";
import { ResourceConfig, type ResourceConfigInit } from "../../../src/core/resources.js";
import { validateReservationConfig } from "../../../src/core/reservation.js";
import { jobSpecToProto, reservationSpecToProto, resourcesToProto } from "../../../src/rpc/convert.js";
import { JobGroupSpecSchema, ReservationSpecSchema } from "../../../src/rpc/gen/fluster/cluster/v1/controller_pb.js";
import { reservationDemand, validateReservationSpec } from "../../../src/cluster/controller/reservations.js";
import { pendingJobOf } from "../../../src/cluster/controller/scheduling.js";
import { schedule, type PendingJob, type ReservationDemand, type ReservationOutcome } from "../../../src/cluster/controller/scheduler/index.js";
import { Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(options: { durable?: boolean; schedule?: typeof schedule } = {}): Harness {
  passes.length = 0;
  outcome = undefined;
  harness = new Harness({ ...(options.durable ? { durable: true } : {}), ...(options.schedule ? { controller: { schedule: options.schedule } } : {}) }).start();
  return harness;
}

/** What the controller asked of each scheduling pass, for `recording`. */
const passes: Array<{ jobs: PendingJob[]; demands: ReservationDemand[] }> = [];
/** What `recording` answers for every reservation (the real scheduler of this branch answers none). */
let outcome: ReservationOutcome | undefined;
/** The real scheduler, recording its input (the controller's side of the contract in scheduler/types.ts). */
const recording: typeof schedule = (jobs, workers, demands = []) => {
  passes.push({ jobs: [...jobs], demands: [...demands] });
  const result = schedule(jobs, workers, demands);
  if (outcome) for (const d of demands) result.reservations.set(d.reservationId, outcome);
  return result;
};

const spec = (request: Partial<JobRequest> = {}) =>
  jobSpecToProto(validateJobRequest({ name: "job", resources: { cpu: 1, memory: "1g" }, entrypoint: Entrypoint.fromCommand(["true"]), ...request }));
const groupSpec = (name = "g", sameZone = false) => create(JobGroupSpecSchema, { name, sameRegion: true, sameZone });
const reservationSpec = (min: ResourceConfigInit, max: ResourceConfigInit, extra: { ttlSeconds?: number; priority?: number } = {}) =>
  reservationSpecToProto(validateReservationConfig({ minResources: min, maxResources: max, ...extra }));


describe("controller: job groups", () => {
  test("a bad spec is refused naming jobs[i].field, and nothing of the group is stored", async () => {
    const h = setup();
    const bad = spec();
    bad.resources!.cpu = -1;
    const err = await flusterErrorOf(() => h.controller.launchGroup([spec(), bad], groupSpec()));
    assert.ok(err instanceof ValidationError);
    assert.equal(err.field, "jobs[1].resources.cpu");
    const missing = await flusterErrorOf(() => h.controller.launchGroup([spec(), undefined], groupSpec()));
    assert.match(missing.message, /^jobs\[1\] is required/);
    assert.match((await flusterErrorOf(() => h.controller.launchGroup([], groupSpec()))).message, /^jobs must hold at least one job/);
    assert.match((await flusterErrorOf(() => h.controller.launchGroup([spec()], create(JobGroupSpecSchema, { name: "" })))).message, /^group.name must not be empty/);
    assert.deepEqual(h.controller.listJobs(), []);
    assert.deepEqual(h.controller.listGroups(), []);
  });

  test("the group and its jobs are stored together, carry the group, and a retried launch gets the same group", async () => {
    const h = setup();
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" })], groupSpec("pair"), { requestId: "req-1" });
    const again = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" })], groupSpec("pair"), { requestId: "req-1" });
    assert.equal(again.groupId, group.groupId);
    assert.equal(h.controller.listJobs().length, 2, "the retry made no new jobs");
    for (const jobId of group.jobIds) assert.equal(h.controller.getJob(jobId).groupId, group.groupId);
    assert.deepEqual(h.controller.listGroups().map((g) => g.name), ["pair"]);
    assert.equal(h.controller.groupStatus(group).state, "pending");
  });

  test("a waiting group goes to the scheduler whole, with its group and locality; once placed, a retry is ordinary", async () => {
    const h = setup({ schedule: recording });
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b", maxRetriesFailure: 1 })], groupSpec("zoned", true));
    await h.settle();
    let pass = passes.at(-1);
    assert.deepEqual(
      pass?.jobs.map((j) => [j.jobId, j.groupId, j.sameRegion, j.sameZone]),
      group.jobIds.map((id) => [id, group.groupId, true, true]),
    );
    // A job launched later is tried alone; the group waits for room.
    const single = await h.controller.launchJob(spec({ name: "single" }));
    await h.settle();
    assert.deepEqual(passes.at(-1)?.jobs.map((j) => j.jobId), [single.jobId]);
    const w = h.addWorker("w1", 8);
    await h.settle();
    assert.equal(w.started.length, 3, "the real scheduler underneath placed them");
    // Task b fails and is retried (it has a retry): it goes alone, with no group.
    const b = h.controller.getJob(group.jobIds[1] as string);
    w.finish(w.started.find((s) => s.jobId === b.jobId)?.attemptId as string, "failed", { exitCode: 1 });
    passes.length = 0;
    await h.reconcile();
    pass = passes.find((p) => p.jobs.length > 0);
    assert.deepEqual(pass?.jobs.map((j) => [j.jobId, j.groupId, j.sameZone]), [[b.jobId, undefined, undefined]]);
    assert.equal(pendingJobOf(b)?.groupId, undefined);
  });

  test("status rolls up: running once all are placed, failed when one fails, and the others are killed naming it", async () => {
    const h = setup();
    const w = h.addWorker("w1", 8);
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" }), spec({ name: "c" })], groupSpec("trio"));
    await h.settle();
    // The scheduler of this branch places jobs one by one; with room for all three, all are placed.
    assert.equal(w.started.length, 3);
    assert.equal(h.controller.groupStatus(group).state, "running");
    const [a, b, c] = group.jobIds as [string, string, string];
    const attemptOf = (jobId: string) => w.started.find((s) => s.jobId === jobId)?.attemptId as string;
    w.finish(attemptOf(a), "succeeded", { exitCode: 0 });
    await h.reconcile();
    assert.equal(h.controller.groupStatus(group).state, "running", "one success does not end the group");
    w.finish(attemptOf(b), "failed", { exitCode: 3, errorMessage: "exit 3" });
    await h.reconcile();
    const status = h.controller.groupStatus(group);
    assert.equal(status.state, "failed");
    assert.match(status.errorMessage ?? "", new RegExp(`^group trio: job ${b} failed`));
    assert.equal(h.controller.getJob(a).state, "succeeded", "a finished job stays as it ended");
    assert.equal(h.controller.getJob(c).state, "killed");
    assert.match(h.controller.getJob(c).errorMessage ?? "", new RegExp(`group trio \\(${group.groupId}\\): job ${b} failed`));
    assert.ok(w.killed.includes(attemptOf(c)), "the running sibling was stopped on its worker");
    assert.ok(h.controller.getGroup(group.groupId).finishedAt !== undefined);
  });

  test("terminating the group kills every unfinished job; an unknown group is not_found", async () => {
    const h = setup();
    h.addWorker("w1", 8);
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" })], groupSpec("pair"));
    await h.settle();
    h.controller.terminateGroup(group.groupId);
    for (const jobId of group.jobIds) assert.equal(h.controller.getJob(jobId).state, "killed");
    const status = h.controller.groupStatus(group);
    assert.equal(status.state, "killed");
    assert.match(status.errorMessage ?? "", /terminated by request/);
    assert.equal((await flusterErrorOf(() => h.controller.terminateGroup("nope"))).code, "not_found");
  });

  test("a job of the group stopped on request ends alone; the group ends killed once all have ended, naming it", async () => {
    const h = setup();
    h.addWorker("w1", 8);
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" }), spec({ name: "c" })], groupSpec("trio"));
    await h.settle();
    const [a, b, c] = group.jobIds as [string, string, string];
    h.controller.terminateJob(c, "not wanted");
    // A driver stops some of its group (rollouts once training is done) and keeps the rest.
    assert.equal(h.controller.getJob(c).state, "killed");
    assert.notEqual(h.controller.getJob(a).state, "killed");
    assert.notEqual(h.controller.getJob(b).state, "killed");
    assert.notEqual(h.controller.groupStatus(group).state, "killed", "the group goes on");
    h.controller.terminateJob(a, "done");
    h.controller.terminateJob(b, "done");
    const status = h.controller.groupStatus(group);
    assert.equal(status.state, "killed");
    assert.equal(status.errorMessage, `group trio: job ${a} killed: done`);
  });

  test("a group and a reservation survive a restart, with the jobs' group and reservation", async () => {
    const h = setup({ durable: true });
    const reservation = await h.controller.createReservation(reservationSpec({ cpu: 1, memory: "1g", replicas: 2 }, { cpu: 1, memory: "1g", replicas: 4 }, { ttlSeconds: 600 }), {
      namespace: "ns1",
      requestId: "res-req",
    });
    const group = await h.controller.launchGroup([spec({ name: "a" }), spec({ name: "b" })], groupSpec("kept", true), {
      namespace: "ns1",
      requestId: "group-req",
      reservationId: reservation.reservationId,
    });
    await h.restart();
    const loaded = h.controller.getGroup(group.groupId);
    assert.deepEqual(
      { name: loaded.name, namespace: loaded.namespace, sameZone: loaded.sameZone, sameRegion: loaded.sameRegion, jobIds: loaded.jobIds, reservationId: loaded.reservationId },
      { name: "kept", namespace: "ns1", sameZone: true, sameRegion: true, jobIds: group.jobIds, reservationId: reservation.reservationId },
    );
    for (const jobId of group.jobIds) {
      const job = h.controller.getJob(jobId);
      assert.equal(job.groupId, group.groupId);
      assert.equal(job.reservationId, reservation.reservationId);
    }
    const r = h.controller.getReservation(reservation.reservationId);
    assert.equal(r.state, "active");
    assert.equal(r.expiresAt, reservation.expiresAt);
    assert.deepEqual(h.controller.reservationFigures(r.reservationId).jobIds, group.jobIds);
    // Request ids still deduplicate after the restart.
    assert.equal((await h.controller.launchGroup([spec()], groupSpec(), { requestId: "group-req" })).groupId, group.groupId);
    assert.equal((await h.controller.createReservation(reservationSpec({ cpu: 1 }, { cpu: 1 }), { requestId: "res-req" })).reservationId, r.reservationId);
  });
});

describe("controller: reservations", () => {
  test("a bad reservation is refused naming the field", async () => {
    const h = setup();
    assert.match((await flusterErrorOf(() => h.controller.createReservation(undefined))).message, /^reservation is required/);
    const noMax = create(ReservationSpecSchema, { minResources: resourcesToProto(new ResourceConfig({ cpu: 1 })) });
    assert.match((await flusterErrorOf(() => h.controller.createReservation(noMax))).message, /^maxResources is required/);
    const inverted = reservationSpecToProto(validateReservationConfig({ minResources: { cpu: 1, replicas: 1 }, maxResources: { cpu: 1, replicas: 1 } }));
    inverted.minResources!.replicas = 3;
    const err = await flusterErrorOf(() => h.controller.createReservation(inverted));
    assert.ok(err instanceof ValidationError);
    assert.match(err.message, /replicas/);
    const negativeTtl = reservationSpec({ cpu: 1 }, { cpu: 1 });
    negativeTtl.ttlSeconds = -5;
    assert.match((await flusterErrorOf(() => h.controller.createReservation(negativeTtl))).message, /^ttlSeconds/);
    // An expiry must stay a date, and slots are bounded like a job's tasks.
    const forever = reservationSpec({ cpu: 1 }, { cpu: 1 });
    forever.ttlSeconds = 1e300;
    assert.match((await flusterErrorOf(() => h.controller.createReservation(forever))).message, /^ttlSeconds must be at most/);
    const huge = reservationSpec({ cpu: 1 }, { cpu: 1 });
    huge.maxResources!.replicas = 2_000_000_000;
    assert.match((await flusterErrorOf(() => h.controller.createReservation(huge))).message, /^maxResources.replicas is 2000000000, above the limit/);
    assert.match((await flusterErrorOf(() => h.controller.launchGroup([spec()], create(JobGroupSpecSchema, { name: "bad name!" })))).message, /^group.name/);
    assert.deepEqual(h.controller.listReservations({ includeEnded: true }), []);
  });

  test("active reservations go to every pass, also with no job waiting; the pass's outcome is what the reservation reports", async () => {
    const h = setup({ schedule: recording });
    h.addWorker("w1", 8);
    const r = await h.controller.createReservation(reservationSpec({ cpu: 2, memory: "1g", replicas: 3 }, { cpu: 2, memory: "1g", replicas: 4 }));
    outcome = { held: 2, workerIds: ["w1", "w1"], placedTasks: 0, reason: "2 of 3 slots held: insufficient cpu" };
    await h.reconcile();
    const pass = passes.at(-1);
    assert.deepEqual(pass?.jobs, [], "no job waits");
    assert.deepEqual(pass?.demands.map((d) => [d.reservationId, d.holdCount, d.maxTasks, d.shape.cpu]), [[r.reservationId, 3, 4, 2]]);
    const figures = h.controller.reservationFigures(r.reservationId);
    assert.deepEqual([figures.held, figures.pending, figures.used, figures.message, figures.workerIds], [2, 1, 0, "2 of 3 slots held: insufficient cpu", ["w1", "w1"]]);
    const jobId = (await h.controller.launchJob(spec({ resources: { cpu: 2, memory: "1g" } }), { reservationId: r.reservationId })).jobId;
    await h.settle();
    assert.ok(passes.some((p) => p.jobs.some((j) => j.jobId === jobId && j.reservationId === r.reservationId)), "its job names the reservation to the scheduler");
    h.controller.releaseReservation(r.reservationId);
    passes.length = 0;
    await h.reconcile();
    assert.ok(passes.every((p) => p.demands.length === 0), "an ended reservation asks for nothing");
    assert.equal(h.controller.reservationFigures(r.reservationId).held, 0);
  });

  test("its demand holds the minimum less its jobs' active tasks, in slots of the minimum's per-task shape", async () => {
    const h = setup();
    const w = h.addWorker("w1", 8);
    const r = await h.controller.createReservation(reservationSpec({ cpu: 2, memory: "1g", replicas: 3 }, { cpu: 2, memory: "1g", replicas: 5 }, { priority: 4 }));
    const entry = { record: r, config: validateReservationSpec(r.spec), jobIds: [] as string[] };
    const idle = reservationDemand(entry, []);
    assert.deepEqual(
      { holdCount: idle.holdCount, maxTasks: idle.maxTasks, activeTasks: idle.activeTasks, priority: idle.priority, cpu: idle.shape.cpu, memory: idle.shape.memory },
      { holdCount: 3, maxTasks: 5, activeTasks: 0, priority: 4, cpu: 2, memory: 1024 ** 3 },
    );
    const jobId = (await h.controller.launchJob(spec({ resources: { cpu: 2, memory: "1g", replicas: 2 } }), { reservationId: r.reservationId })).jobId;
    await h.settle();
    assert.equal(w.started.length, 2);
    const withJobs = reservationDemand(entry, [h.controller.getJob(jobId)]);
    assert.equal(withJobs.activeTasks, 2);
    assert.equal(withJobs.holdCount, 1);
    const figures = h.controller.reservationFigures(r.reservationId);
    assert.equal(figures.used, 2);
    assert.deepEqual(figures.jobIds, [jobId]);
    assert.equal(h.controller.getJob(jobId).reservationId, r.reservationId);
  });

  test("released: holds nothing, says why, and new launches into it fail naming it; its jobs run on", async () => {
    const h = setup();
    const w = h.addWorker("w1", 8);
    const r = await h.controller.createReservation(reservationSpec({ cpu: 1, replicas: 2 }, { cpu: 1, replicas: 2 }));
    const jobId = (await h.controller.launchJob(spec(), { reservationId: r.reservationId })).jobId;
    await h.settle();
    h.controller.releaseReservation(r.reservationId, "driver done");
    const released = h.controller.getReservation(r.reservationId);
    assert.equal(released.state, "released");
    assert.equal(released.message, "driver done");
    assert.equal(h.controller.reservationFigures(r.reservationId).held, 0);
    assert.equal(h.controller.getJob(jobId).state, "running");
    assert.equal(w.killed.length, 0);
    const err = await flusterErrorOf(() => h.controller.launchJob(spec(), { reservationId: r.reservationId }));
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, new RegExp(`reservation ${r.reservationId} is released \\(driver done\\)`));
    const unknown = await flusterErrorOf(() => h.controller.launchGroup([spec()], groupSpec(), { reservationId: "reservation-nope" }));
    assert.equal(unknown.code, "failed_precondition");
    assert.match(unknown.message, /reservation reservation-nope not found/);
    assert.equal(h.controller.listReservations().length, 0, "ended ones are listed only on request");
    assert.equal(h.controller.listReservations({ includeEnded: true }).length, 1);
    assert.equal(h.controller.releaseReservation(r.reservationId, "again").message, "driver done", "releasing an ended one changes nothing");
  });

  test("a reservation of another namespace cannot be launched into", async () => {
    const h = setup();
    const r = await h.controller.createReservation(reservationSpec({ cpu: 1 }, { cpu: 1 }), { namespace: "team-a" });
    const err = await flusterErrorOf(() => h.controller.launchJob(spec(), { namespace: "team-b", reservationId: r.reservationId }));
    assert.equal(err.code, "failed_precondition");
    assert.match(err.message, /belongs to namespace team-a, not team-b/);
    assert.deepEqual(h.controller.listReservations({ namespace: "team-b" }), []);
    assert.equal(h.controller.listReservations({ namespace: "team-a" }).length, 1);
  });

  test("past its TTL a tick expires it, with one log line, durably", async () => {
    const h = setup({ durable: true });
    const r = await h.controller.createReservation(reservationSpec({ cpu: 1 }, { cpu: 1 }, { ttlSeconds: 3 }));
    h.advance(2_000);
    await h.reconcile();
    assert.equal(h.controller.getReservation(r.reservationId).state, "active");
    h.advance(1_500);
    await h.reconcile();
    await h.reconcile();
    const expired = h.controller.getReservation(r.reservationId);
    assert.equal(expired.state, "expired");
    assert.equal(expired.message, "expired after its TTL of 3s");
    assert.equal(h.logged.filter((l) => l.includes(`reservation ${r.reservationId}`) && l.includes("expired")).length, 1);
    await h.restart();
    assert.equal(h.controller.getReservation(r.reservationId).state, "expired");
  });
});
