// The controller's lifecycle lines (docs/logging.md) with the in-memory
// harness and a clock the test moves: a job that waited, attempts starting
// and ending, retries by budget, jobs finishing, a preemption, a worker going
// silent and coming back, and a worker lost with its attempts.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(): Harness {
  harness = new Harness().start();
  return harness;
}

/** The fields of each line of `event`, without time and msg. */
function fields(h: Harness, event: string): Array<Record<string, unknown>> {
  return h.logs.events(event).map(({ time: _time, msg: _msg, ...rest }) => rest);
}

describe("controller lifecycle lines", () => {
  test("a job that waited is logged once when placed, with how long and why; a job placed at once is not", async () => {
    const h = setup();
    const waiting = await h.launch({ resources: { cpu: 8, memory: "1g" } });
    h.advance(5_000);
    await h.reconcile(); // passes meanwhile say nothing
    assert.deepEqual(fields(h, "job_scheduled"), []);
    h.advance(2_000);
    const w = h.addWorker("big", 16);
    await h.settle();
    const prompt = await h.launch({ resources: { cpu: 1, memory: "1g" } });
    const scheduled = fields(h, "job_scheduled");
    assert.equal(scheduled.length, 1, h.logged.join("\n"));
    assert.equal(scheduled[0]?.jobId, waiting);
    assert.equal(scheduled[0]?.waitedMs, 7_000);
    assert.equal(scheduled[0]?.tasks, 1);
    assert.match(String(scheduled[0]?.pendingReason), /no workers are registered/);
    assert.match(h.logs.events("job_scheduled")[0]?.msg ?? "", /^job \S+: 1 task\(s\) placed after waiting 7\.0s \(it waited because: no workers are registered/);
    assert.deepEqual(
      fields(h, "attempt_started").map((r) => [r.jobId, r.attemptId, r.workerId, r.level]),
      [
        [waiting, `${waiting}/0/0`, "big", "info"],
        [prompt, `${prompt}/0/0`, "big", "info"],
      ],
    );
    assert.equal(w.started.length, 2);
    assert.deepEqual(
      fields(h, "worker_registered").map((r) => [r.workerId, r.address, (r.resources as { cpu: number }).cpu, r.again]),
      [["big", "http://big:1", 16, false]],
    );
  });

  test("a failed attempt is retried on the failure budget, then the job fails: each step is one line with its ids", async () => {
    const h = setup();
    const w = h.addWorker("w1");
    const jobId = await h.launch({ maxRetriesFailure: 1 });
    h.advance(1_500);
    w.finish(w.lastStarted, "failed", { exitCode: 2, errorMessage: "exited with code 2" });
    await h.reconcile();
    assert.deepEqual(fields(h, "task_retry_scheduled"), [
      { level: "info", component: "controller", event: "task_retry_scheduled", jobId, taskIndex: 0, budget: "failure", count: 1, limit: 1, reason: "exited with code 2" },
    ]);
    assert.equal(w.started.length, 2, "the retry was placed");
    w.finish(w.lastStarted, "failed", { exitCode: 2, errorMessage: "exited with code 2" });
    await h.reconcile();
    assert.deepEqual(
      fields(h, "attempt_ended").map((r) => [r.attemptId, r.workerId, r.state, r.exitCode, r.error]),
      [
        [`${jobId}/0/0`, "w1", "failed", 2, "exited with code 2"],
        [`${jobId}/0/1`, "w1", "failed", 2, "exited with code 2"],
      ],
    );
    assert.equal(fields(h, "attempt_ended")[0]?.durationMs, 1_500);
    assert.equal(fields(h, "task_retry_scheduled").length, 1, "out of retries: no second retry line");
    assert.deepEqual(
      fields(h, "job_finished").map((r) => [r.jobId, r.state, r.exitCode, r.error]),
      [[jobId, "failed", 2, "task 0: exited with code 2"]],
    );
    assert.match(h.logs.events("job_finished")[0]?.msg ?? "", /^job \S+ failed: task 0: exited with code 2$/);
  });

  test("a worker that goes silent is unreachable, then healthy again; one that stays silent is lost with its attempts", async () => {
    const h = setup();
    const w1 = h.addWorker("w1");
    const jobId = await h.launch();
    w1.reachable = false;
    await h.reconcile();
    await h.reconcile();
    assert.deepEqual(fields(h, "worker_unreachable").map((r) => [r.workerId, r.address, r.level]), [["w1", "http://w1:1", "info"]], "once, not every round");
    w1.reachable = true;
    await h.reconcile();
    assert.deepEqual(fields(h, "worker_healthy").map((r) => [r.workerId, r.previous]), [["w1", "unreachable"]]);

    w1.reachable = false;
    await h.reconcile();
    h.advance(GRACE_MS + 1);
    await h.reconcile();
    const lost = fields(h, "worker_lost");
    assert.equal(lost.length, 1, h.logged.join("\n"));
    assert.equal(lost[0]?.level, "warn");
    assert.equal(lost[0]?.workerId, "w1");
    assert.equal(lost[0]?.attempts, 1);
    assert.deepEqual(lost[0]?.attemptIds, [`${jobId}/0/0`]);
    assert.match(String(lost[0]?.reason), /^worker w1 stopped answering for \d+s$/);
    const ended = fields(h, "attempt_ended").filter((r) => r.attemptId === `${jobId}/0/0`);
    assert.deepEqual(ended.map((r) => [r.state, r.error]), [["worker_failed", lost[0]?.reason]]);
    assert.deepEqual(fields(h, "task_retry_scheduled").map((r) => [r.jobId, r.budget, r.count]), [[jobId, "preemption", 1]]);
  });

  test("a preemption names the victim and the job it made room for; the victim's task is retried on the preemption budget", async () => {
    const h = setup();
    const w = h.addWorker("w1", 2);
    const batch = await h.launch({ name: "batch", priority: "batch", resources: { cpu: 2, memory: "1g" } });
    const victim = w.lastStarted;
    const prod = await h.launch({ name: "prod", priority: "production", resources: { cpu: 2, memory: "1g" } });
    assert.deepEqual(fields(h, "attempt_preempted"), [
      { level: "info", component: "controller", event: "attempt_preempted", jobId: batch, taskIndex: 0, attemptId: victim, workerId: "w1", forJobId: prod, reason: `preempted by production job ${prod}` },
    ]);
    assert.equal(h.logs.events("attempt_preempted")[0]?.msg, `attempt ${victim} (job ${batch} task 0) on worker w1 preempted by production job ${prod}`);
    assert.deepEqual(fields(h, "attempt_ended").map((r) => [r.attemptId, r.state]), [[victim, "preempted"]]);
    assert.deepEqual(fields(h, "task_retry_scheduled").map((r) => [r.jobId, r.budget, r.count, r.limit]), [[batch, "preemption", 1, 100]]);
  });
});
