// The controller side of preemption: preempted attempts end through the
// ledger, and their room counts as taken until the worker confirms them gone.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { GRACE_MS, Harness } from "./harness.js";

let harness: Harness;
afterEach(() => harness?.close());

function setup(): Harness {
  harness = new Harness().start();
  return harness;
}

describe("controller: preemption", () => {
  test("a production job preempts a batch attempt, and waits for its room until KillTask answers", async () => {
    const h = setup();
    const w = h.addWorker("w1", 2);
    const batch = await h.launch({ name: "batch", priority: "batch", resources: { cpu: 2, memory: "1g" } });
    const victim = w.lastStarted;
    assert.equal(h.controller.getJob(batch).tasks[0]?.state, "running");

    w.holdKills = true;
    const prod = await h.launch({ name: "prod", priority: "production", resources: { cpu: 2, memory: "1g" } });
    assert.deepEqual(w.killed, [victim]);
    const attempt = h.controller.findAttempt(victim);
    assert.equal(attempt?.state, "preempted");
    assert.equal(attempt?.errorMessage, `preempted by production job ${prod}`);
    const task = h.controller.getJob(batch).tasks[0];
    assert.equal(task?.state, "pending");
    assert.equal(task?.preemptionCount, 1);
    assert.equal(h.controller.getJob(prod).pendingReason, "waiting for 1 preempted attempt of lower-priority jobs to stop");

    // The worker has not confirmed: the room is not offered, and nothing more is preempted.
    h.controller.requestSchedule();
    await h.settle();
    assert.equal(w.started.length, 1);
    assert.equal(h.controller.getJob(prod).pendingReason, "waiting for room being freed on w1");
    assert.deepEqual(h.controller.listWorkers()[0]?.used.cpu, 2);

    w.releaseKills();
    await h.settle();
    assert.equal(w.started.length, 2, "the production task is placed once the room is free");
    assert.equal(h.controller.getJob(prod).tasks[0]?.state, "running");
    // The batch task waits; it does not preempt production work.
    assert.equal(h.controller.getJob(batch).tasks[0]?.state, "pending");
    assert.match(h.controller.getJob(batch).pendingReason ?? "", /insufficient cpu/);
  });

  test("a worker that never confirms frees the room after the worker-lost grace", async () => {
    const h = setup();
    const w = h.addWorker("w1", 2);
    await h.launch({ name: "batch", priority: "batch", resources: { cpu: 2, memory: "1g" } });
    w.holdKills = true;
    const prod = await h.launch({ name: "prod", priority: "production", resources: { cpu: 2, memory: "1g" } });
    assert.equal(w.killed.length, 1);
    h.advance(GRACE_MS - 1);
    h.controller.requestSchedule();
    await h.settle();
    assert.equal(h.controller.getJob(prod).tasks[0]?.state, "pending");
    h.advance(2);
    h.controller.requestSchedule();
    await h.settle();
    assert.equal(h.controller.getJob(prod).tasks[0]?.state, "running");
    w.releaseKills();
  });

  test("equal bands never preempt", async () => {
    const h = setup();
    const w = h.addWorker("w1", 2);
    await h.launch({ name: "i1", priority: "interactive", resources: { cpu: 2, memory: "1g" } });
    const i2 = await h.launch({ name: "i2", priority: "interactive", resources: { cpu: 2, memory: "1g" } });
    assert.deepEqual(w.killed, []);
    assert.match(h.controller.getJob(i2).pendingReason ?? "", /insufficient cpu/);
  });
});
