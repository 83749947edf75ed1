// Attempt ids are fencing tokens: once the controller has ended an attempt
// (its worker was lost, its job was killed), nothing a worker says about it
// later — a heartbeat, a late RunTask answer, a reconcile answer, nor a
// report from another worker — brings it back or finishes its task.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Assignment, ObservedAttempt } from "../../../src/cluster/controller/worker-connection.js";
import { FlusterError } from "../../../src/core/errors.js";
import { eventually } from "../../helpers/index.js";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(): Harness {
  harness = new Harness().start();
  return harness;
}

/** Makes `worker`'s RunTask wait until the test answers it. */
function stallRunTask(worker: { runTask: (assignment: Assignment) => Promise<ObservedAttempt> }): { asked: Assignment | undefined; answer: (observed: ObservedAttempt) => void } {
  const stalled: { asked: Assignment | undefined; answer: (observed: ObservedAttempt) => void } = { asked: undefined, answer: () => undefined };
  worker.runTask = (assignment) => {
    stalled.asked = assignment;
    return new Promise<ObservedAttempt>((resolve) => (stalled.answer = resolve));
  };
  return stalled;
}

/** w1 runs the job's first attempt and is lost; the retry runs on w2. */
async function lostAndRetried(h: Harness): Promise<{ jobId: string; stale: string; current: string }> {
  const w1 = h.addWorker("w1");
  const jobId = await h.launch();
  const stale = w1.lastStarted;
  const w2 = h.addWorker("w2");
  w1.reachable = false;
  await h.reconcile();
  h.advance(GRACE_MS + 1);
  await h.reconcile();
  const current = w2.lastStarted;
  assert.notEqual(current, stale);
  assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.state, "worker_failed");
  return { jobId, stale, current };
}

describe("attempt ids are fencing tokens", () => {
  test("a lost worker that comes back and reports its old attempt succeeded neither revives it nor finishes the task", async () => {
    const h = setup();
    const { jobId, stale, current } = await lostAndRetried(h);
    // w1 was only hung: it registers again and its heartbeat carries the old attempt's end.
    h.workerAt("http://w1:1").reachable = true;
    h.addWorker("w1");
    const finished: ObservedAttempt = { attemptId: stale, state: "succeeded", finishedAt: h.clock.now, exitCode: 0, result: new Uint8Array([1]) };
    assert.equal(h.controller.heartbeat("w1", [finished]), true);
    assert.equal(h.controller.heartbeat("w1", [{ attemptId: stale, state: "running", startedAt: h.clock.now }]), true);
    await h.settle();
    const job = h.controller.getJob(jobId);
    const task = job.tasks[0];
    assert.equal(task?.attempts[0]?.state, "worker_failed", "the stale attempt stays ended");
    assert.equal(task?.attempts[0]?.result, undefined, "its result is not taken");
    assert.equal(task?.attempts.at(-1)?.attemptId, current);
    assert.equal(task?.state, "running");
    assert.equal(job.state, "running");
  });

  test("another worker cannot report an attempt that is not its own", async () => {
    const h = setup();
    const { jobId, current } = await lostAndRetried(h);
    h.addWorker("w3");
    h.controller.heartbeat("w3", [{ attemptId: current, state: "succeeded", finishedAt: h.clock.now, exitCode: 0 }]);
    h.controller.heartbeat("w3", [{ attemptId: current, state: "failed", finishedAt: h.clock.now, exitCode: 1 }]);
    await h.settle();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.at(-1)?.state, "running");
    assert.equal(task?.state, "running");
    assert.equal(task?.failureCount, 0);
  });

  test("a RunTask answered after the attempt ended (the job was killed meanwhile) changes nothing", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const stalled = stallRunTask(w1);
    const jobId = await h.launch();
    const asked = stalled.asked;
    assert.ok(asked, "dispatched");
    h.controller.terminateJob(jobId, "killed by the test");
    stalled.answer({ attemptId: asked.attemptId, state: "running", startedAt: h.clock.now });
    await h.settle();
    const job = h.controller.getJob(jobId);
    assert.equal(job.state, "killed");
    assert.equal(job.tasks[0]?.attempts[0]?.state, "killed");
    assert.equal(job.tasks[0]?.state, "killed");
  });

  test("a late RunTask answer from a worker lost meanwhile does not bring its attempt back", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const stalled = stallRunTask(w1);
    const jobId = await h.launch();
    const asked = stalled.asked;
    assert.ok(asked);
    h.addWorker("w2");
    h.advance(GRACE_MS + 1);
    w1.reachable = false;
    await h.reconcile();
    await h.reconcile();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts[0]?.state, "worker_failed");
    const retry = task?.attempts.at(-1)?.attemptId;
    assert.notEqual(retry, asked.attemptId);
    stalled.answer({ attemptId: asked.attemptId, state: "succeeded", finishedAt: h.clock.now, exitCode: 0 });
    await h.settle();
    assert.equal(h.controller.getJob(jobId).tasks[0]?.attempts[0]?.state, "worker_failed");
    assert.equal(h.controller.getJob(jobId).state, "running");
  });
});

describe("a RunTask whose answer was lost", () => {
  test("is sent again to the same worker, never placed elsewhere meanwhile: the task runs once, at no cost", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const real = w1.runTask.bind(w1);
    let calls = 0;
    // The first RunTask arrives and starts the attempt, but its answer is lost.
    w1.runTask = async (assignment: Assignment) => {
      calls += 1;
      const observed = await real(assignment);
      if (calls === 1) throw new FlusterError("connection reset (answer lost)", "unavailable");
      return observed;
    };
    const jobId = await h.launch();
    const w2 = h.addWorker("w2");
    await h.reconcile();
    await eventually(() => calls >= 2, { what: "RunTask to be sent again", timeoutMs: 5_000 });
    await h.settle();
    await h.reconcile();
    const task = h.controller.getJob(jobId).tasks[0];
    assert.equal(task?.attempts.length, 1, "one attempt");
    assert.equal(task?.attempts[0]?.state, "running");
    assert.equal(task?.preemptionCount, 0);
    assert.equal(w2.started.length, 0, "never placed on another worker");
    assert.deepEqual(w1.started.map((a) => a.attemptId), [task?.attempts[0]?.attemptId, task?.attempts[0]?.attemptId], "the same attempt id both times");
  });
});
