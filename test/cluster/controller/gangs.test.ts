// Gangs in the controller on its own (in-memory store and workers, a clock
// the test moves): what pendingJobOf asks of the scheduler, a refusal that
// restarts nothing, and a lost worker that held two tasks of one gang.
// (test/cluster/gangs.test.ts covers restarts with real processes.)
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type Database from "better-sqlite3";
import type { Controller } from "../../../src/cluster/controller/controller.js";
import type { JobRecord } from "../../../src/cluster/controller/model.js";
import { pendingJobOf } from "../../../src/cluster/controller/scheduling.js";
import { Entrypoint } from "../../../src/core/entrypoint.js";
import { FlusterError } from "../../../src/core/errors.js";
import { validateJobRequest, type JobRequest } from "../../../src/core/job.js";
import { ResourceConfig } from "../../../src/core/resources.js";
import type { TaskState } from "../../../src/core/status.js";
import { jobSpecToProto } from "../../../src/rpc/convert.js";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(): Harness {
  harness = new Harness().start();
  return harness;
}

/** A job record whose tasks are in `states`, as pendingJobOf reads it. */
function jobWith(request: Partial<JobRequest>, states: readonly TaskState[]): JobRecord {
  const validated = validateJobRequest({ name: "j", resources: { cpu: 1, memory: "1g", replicas: states.length }, entrypoint: Entrypoint.fromCommand(["true"]), ...request });
  return {
    jobId: "j-1",
    name: "j",
    namespace: "default",
    spec: jobSpecToProto(validated),
    request: validated,
    state: "running",
    submittedAt: 0,
    seq: 1,
    revision: 0,
    tasks: states.map((state, taskIndex) => ({ jobId: "j-1", taskIndex, state, failureCount: 0, preemptionCount: 0, attempts: [] })),
  };
}

describe("pendingJobOf: gang placement", () => {
  test("a gang's pending tasks are placed all or none, also when only some are pending", () => {
    assert.deepEqual(pick(pendingJobOf(jobWith({ coscheduled: true }, ["running", "pending", "pending"]))), { taskIndexes: [1, 2], gang: true });
    const tpu = ResourceConfig.withTpu("v5litepod-16", { cpu: 1, memory: "1g" });
    assert.deepEqual(pick(pendingJobOf(jobWith({ resources: tpu }, ["running", "pending", "running", "running"]))), { taskIndexes: [1], gang: true }, "a multi-host TPU job is a gang");
  });

  test("another multi-task job is placed whole only when it starts whole", () => {
    assert.deepEqual(pick(pendingJobOf(jobWith({}, ["pending", "pending", "pending"]))), { taskIndexes: [0, 1, 2], gang: true });
    assert.deepEqual(pick(pendingJobOf(jobWith({}, ["running", "pending", "pending"]))), { taskIndexes: [1, 2], gang: false });
    assert.equal(pendingJobOf(jobWith({ coscheduled: true }, ["running", "succeeded"])), undefined);
  });
});

/** Makes the controller's store refuse (or accept again) every write, as a full disk does (as in commit.test.ts). */
function refuseWrites(controller: Controller, refuse: boolean): void {
  const db = Reflect.get(Reflect.get(controller, "store") as object, "db") as Database.Database;
  db.pragma(`query_only = ${refuse ? 1 : 0}`);
}

function pick(job: ReturnType<typeof pendingJobOf>): { taskIndexes: readonly number[]; gang: boolean } | undefined {
  return job && { taskIndexes: job.taskIndexes, gang: job.gang };
}

describe("controller: gangs", () => {
  test("a task of a gang its worker refused goes back alone at no cost; its running sibling is not stopped", async () => {
    const h = setup();
    const w1 = h.addWorker("w1", 1);
    const w2 = h.addWorker("w2", 1);
    w2.refuseNext = new FlusterError("no room", "failed_precondition");
    const jobId = await h.launch({ coscheduled: true, resources: { cpu: 1, memory: "1g", replicas: 2 } });
    let job = h.controller.getJob(jobId);
    const refused = job.tasks.find((t) => t.state === "pending");
    const running = job.tasks.find((t) => t.state === "running");
    assert.ok(refused && running, `one task refused, one running: ${job.tasks.map((t) => t.state).join(", ")}`);
    assert.deepEqual([refused.failureCount, refused.preemptionCount, running.failureCount, running.preemptionCount], [0, 0, 0, 0]);
    h.advance(1_000);
    await h.reconcile();
    job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => t.state), ["running", "running"]);
    assert.equal(running.attempts.length, 1, "the sibling kept its attempt");
    assert.deepEqual([...w1.killed, ...w2.killed], []);
  });

  test("a gang restart whose commit fails leaves no trace and sends no kill; once writes work, the same report restarts the gang", async () => {
    const h = setup();
    const w = h.addWorker("w1", 4);
    const jobId = await h.launch({ coscheduled: true, maxRetriesFailure: 1, resources: { cpu: 1, memory: "1g", replicas: 3 } });
    const [a0, a1, a2] = h.controller.getJob(jobId).tasks.map((t) => t.attempts[0]!);
    refuseWrites(h.controller, true);
    w.finish(a1!.attemptId, "failed", { exitCode: 2, errorMessage: "exited with code 2" });
    await h.reconcile();
    let job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => [t.state, t.failureCount, t.attempts.length]), [["running", 0, 1], ["running", 0, 1], ["running", 0, 1]]);
    assert.deepEqual([a0!.state, a1!.state, a2!.state], ["running", "running", "running"]);
    assert.deepEqual(w.killed, [], "no KillTask before the commit");

    refuseWrites(h.controller, false);
    await h.reconcile();
    job = h.controller.getJob(jobId);
    assert.deepEqual(w.killed.sort(), [a0!.attemptId, a2!.attemptId].sort());
    assert.deepEqual([a0!.state, a1!.state, a2!.state], ["killed", "failed", "killed"]);
    assert.equal(a0!.errorMessage, "gang restart: task 1 failed: exited with code 2");
    assert.deepEqual(job.tasks.map((t) => [t.state, t.failureCount, t.attempts.length]), [["running", 1, 2], ["running", 1, 2], ["running", 1, 2]], "placed again together");
  });

  test("a lost worker that held two tasks of a gang: one restart, one charge, and the attempt the restart stopped stays killed", async () => {
    const h = setup();
    const w1 = h.addWorker("w1", 2);
    const w2 = h.addWorker("w2", 1);
    const jobId = await h.launch({ coscheduled: true, resources: { cpu: 1, memory: "1g", replicas: 3 } });
    const first = h.controller.getJob(jobId).tasks.map((t) => t.attempts[0]!);
    const onW1 = first.filter((a) => a.workerId === "w1");
    const onW2 = first.filter((a) => a.workerId === "w2");
    assert.equal(onW1.length, 2, "two tasks on w1");
    assert.equal(onW2.length, 1);
    w1.reachable = false;
    await h.reconcile();
    h.advance(GRACE_MS + 1);
    await h.reconcile();

    const job = h.controller.getJob(jobId);
    assert.deepEqual(job.tasks.map((t) => [t.failureCount, t.preemptionCount]), [[0, 1], [0, 1], [0, 1]], "one charge for the gang, not one per lost attempt");
    // The first lost attempt restarted the gang, which stopped the other one on w1 before the loss reached it.
    assert.equal(onW1[0]?.state, "worker_failed");
    assert.equal(onW1[1]?.state, "killed");
    assert.match(onW1[1]?.errorMessage ?? "", new RegExp(`^gang restart: task ${onW1[0]?.taskIndex} lost its worker`));
    assert.equal(onW2[0]?.state, "killed");
    assert.deepEqual(w2.killed, [onW2[0]?.attemptId], "the healthy worker was told to stop its task");
    // w2 alone cannot hold the gang of three: nothing is placed until a worker with room joins.
    assert.deepEqual(job.tasks.map((t) => t.attempts.length), [1, 1, 1]);
    assert.match(job.pendingReason ?? "", /gang of 3 tasks/);
    h.addWorker("w3", 4);
    await h.reconcile();
    assert.deepEqual(h.controller.getJob(jobId).tasks.map((t) => [t.state, t.attempts.length]), [["running", 2], ["running", 2], ["running", 2]]);
  });
});
