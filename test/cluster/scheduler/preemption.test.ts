// Preemption in the pure pass: which lower-band attempts make room, and which tasks wait.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/cluster/controller/scheduler/index.js";
import { busyWorker, GiB, job, running, worker } from "./fixtures.js";

const victims = (result: ReturnType<typeof schedule>): string[] => result.preemptions.map((p) => `${p.attemptId}@${p.workerId} for ${p.forJobId}`);

describe("preemption", () => {
  test("picks the worker needing the fewest victims, and the task waits for them", () => {
    const workers = [
      // Two small attempts would have to go here, one large one there.
      busyWorker("w1", [running("b1/0", "batch", { cpu: 2 }), running("b2/0", "batch", { cpu: 2 })], { cpu: 4 }),
      busyWorker("w2", [running("b3/0", "batch", { cpu: 4 })], { cpu: 4 }),
    ];
    const result = schedule([job("p", { cpu: 4, priority: "production" })], workers);
    assert.deepEqual(result.placements, []);
    assert.deepEqual(victims(result), ["b3/0@w2 for p"]);
    assert.equal(result.pending.get("p"), "waiting for 1 preempted attempt of lower-priority jobs to stop");
    assert.equal(result.neverFits.has("p"), false);
  });

  test("on equal counts the lowest band goes first, then the youngest", () => {
    const band = [
      busyWorker("w1", [running("i1/0", "interactive", { cpu: 4, startedAt: 50 })], { cpu: 4 }),
      busyWorker("w2", [running("b1/0", "batch", { cpu: 4, startedAt: 10 })], { cpu: 4 }),
    ];
    assert.deepEqual(victims(schedule([job("p", { cpu: 4, priority: "production" })], band)), ["b1/0@w2 for p"]);
    const age = [
      busyWorker("w1", [running("old/0", "batch", { cpu: 4, startedAt: 10 })], { cpu: 4 }),
      busyWorker("w2", [running("young/0", "batch", { cpu: 4, startedAt: 99 })], { cpu: 4 }),
    ];
    assert.deepEqual(victims(schedule([job("p", { cpu: 4, priority: "production" })], age)), ["young/0@w2 for p"]);
  });

  test("on a worker: lowest band, then larger usage, then youngest, until the task fits", () => {
    const w = busyWorker("w1", [
      running("i/0", "interactive", { cpu: 4 }),
      running("small/0", "batch", { cpu: 1, startedAt: 5 }),
      running("big/0", "batch", { cpu: 2, startedAt: 1 }),
      running("small2/0", "batch", { cpu: 1, startedAt: 9 }),
    ], { cpu: 8 });
    const result = schedule([job("p", { cpu: 3, priority: "production" })], [w]);
    assert.deepEqual(victims(result), ["big/0@w1 for p", "small2/0@w1 for p"]);
  });

  test("interactive never preempts interactive, batch never preempts", () => {
    const full = [busyWorker("w1", [running("i/0", "interactive", { cpu: 4 })], { cpu: 4 })];
    const same = schedule([job("j", { cpu: 1, priority: "interactive" })], full);
    assert.deepEqual(same.preemptions, []);
    assert.equal(same.pending.get("j"), "insufficient cpu: wants 1, most free on any worker is 0");
    const batchFull = [busyWorker("w1", [running("b/0", "batch", { cpu: 4 })], { cpu: 4 })];
    assert.deepEqual(schedule([job("k", { cpu: 1, priority: "batch" })], batchFull).preemptions, []);
    // Interactive does preempt batch.
    assert.deepEqual(victims(schedule([job("i", { cpu: 1, priority: "interactive" })], batchFull)), ["b/0@w1 for i"]);
  });

  test("room being freed is waited for instead of preempting more", () => {
    const workers = [
      busyWorker("w1", [running("b/0", "batch", { cpu: 4 })], { cpu: 8, used: { cpu: 4 }, stopping: { cpu: 4, memory: 1 * GiB } }),
    ];
    const result = schedule([job("p", { cpu: 4, priority: "production" })], workers);
    assert.deepEqual(result.preemptions, []);
    assert.equal(result.pending.get("p"), "waiting for room being freed on w1");
    // Once claimed, the freed room is not offered to a second task: that one preempts.
    const two = schedule([job("p", { cpu: 4, tasks: 2, priority: "production" })], workers);
    assert.deepEqual(victims(two), ["b/0@w1 for p"]);
  });

  test("a victim's room goes to the task that asked, not to another job", () => {
    const workers = [
      busyWorker("w1", [running("b1/0", "batch", { cpu: 4 })], { cpu: 4 }),
      busyWorker("w2", [running("b2/0", "batch", { cpu: 4 })], { cpu: 4 }),
    ];
    const result = schedule([job("p", { cpu: 2, priority: "production" }), job("q", { cpu: 2, priority: "production" })], workers);
    assert.deepEqual(victims(result), ["b1/0@w1 for p", "b2/0@w2 for q"]);
    // The same job's next task does use the rest.
    const gang = schedule([job("g", { cpu: 2, tasks: 2, gang: true, priority: "production" })], workers);
    assert.deepEqual(victims(gang), ["b1/0@w1 for g"]);
  });

  test("a gang preempts for all its tasks or none", () => {
    const workers = [
      busyWorker("w1", [running("b1/0", "batch", { cpu: 4 })], { cpu: 4 }),
      busyWorker("w2", [running("b2/0", "batch", { cpu: 4 })], { cpu: 4 }),
      busyWorker("w3", [running("i3/0", "interactive", { cpu: 4 })], { cpu: 4 }),
    ];
    const fits = schedule([job("g", { cpu: 4, tasks: 3, gang: true, priority: "production" })], workers);
    assert.deepEqual(victims(fits).sort(), ["b1/0@w1 for g", "b2/0@w2 for g", "i3/0@w3 for g"]);
    assert.equal(fits.pending.get("g"), "waiting for 3 preempted attempts of lower-priority jobs to stop");
    // An interactive gang may only take the two batch attempts: not enough for three tasks.
    const short = schedule([job("g", { cpu: 4, tasks: 3, gang: true, priority: "interactive" })], workers);
    assert.deepEqual(short.preemptions, []);
    assert.equal(short.pending.get("g"), "insufficient cpu: wants 4, most free on any worker is 0");
  });

  test("respects the job's feasibility: preemptible workers, constraints", () => {
    const workers = [
      busyWorker("spot", [running("b1/0", "batch", { cpu: 4 })], { cpu: 4, attributes: { preemptible: "true" } }),
      busyWorker("east", [running("b2/0", "batch", { cpu: 4 })], { cpu: 4, attributes: { region: "east" } }),
      busyWorker("west", [running("b3/0", "batch", { cpu: 4, startedAt: 99 })], { cpu: 4, attributes: { region: "west" } }),
    ];
    const result = schedule([job("p", { cpu: 4, priority: "production", regions: ["east"] })], workers);
    assert.deepEqual(victims(result), ["b2/0@east for p"]);
  });

  test("free room is used before anything is preempted, and placements are unchanged by running attempts", () => {
    const workers = [busyWorker("w1", [running("b/0", "batch", { cpu: 4 })], { cpu: 8 })];
    const result = schedule([job("p", { cpu: 4, priority: "production" }), job("q", { cpu: 4, priority: "production" })], workers);
    assert.deepEqual(result.placements.map((p) => p.jobId), ["p"]);
    assert.deepEqual(victims(result), ["b/0@w1 for q"]);
  });

  test("deterministic: the same input gives the same preemptions", () => {
    const make = () => Array.from({ length: 20 }, (_, i) =>
      busyWorker(`w${i}`, [running(`b${i}/0`, "batch", { cpu: 2, startedAt: i % 3 }), running(`i${i}/0`, "interactive", { cpu: 2, startedAt: i % 5 })], { cpu: 4 }));
    const jobs = [job("p", { cpu: 3, tasks: 5, priority: "production" }), job("i", { cpu: 2, tasks: 4, priority: "interactive" })];
    const a = schedule(jobs, make());
    const b = schedule([...jobs].reverse(), make().reverse());
    assert.deepEqual(victims(a), victims(b));
    // p takes two attempts per task (3 of 4 cpus), i one batch attempt per task.
    assert.equal(a.preemptions.length, 14, victims(a).join(" "));
    assert.equal(new Set(a.preemptions.map((p) => p.attemptId)).size, a.preemptions.length, "each victim once");
  });

  test("a worker that never fits is not a reason to preempt", () => {
    const workers = [busyWorker("w1", [running("b/0", "batch", { cpu: 4 })], { cpu: 4 })];
    const result = schedule([job("p", { cpu: 16, priority: "production" })], workers);
    assert.deepEqual(result.preemptions, []);
    assert.equal(result.neverFits.get("p"), "insufficient cpu: wants 16, largest worker has 4");
    assert.deepEqual(schedule([job("p", { cpu: 1 })], [worker("w1")]).preemptions, []);
  });

  test("a job group preempts for every task of every job, or not at all", () => {
    const workers = [
      busyWorker("w1", [running("b1/0", "batch", { cpu: 4 })], { cpu: 4 }),
      busyWorker("w2", [running("b2/0", "batch", { cpu: 4 })], { cpu: 4 }),
      busyWorker("w3", [running("i3/0", "interactive", { cpu: 4 })], { cpu: 4 }),
    ];
    const group = [job("p", { cpu: 4, priority: "production", groupId: "g" }), job("q", { cpu: 4, priority: "interactive", groupId: "g" })];
    const result = schedule(group, workers);
    assert.deepEqual(victims(result), ["b1/0@w1 for p", "b2/0@w2 for q"]);
    assert.equal(result.pending.get("p"), "group g: waiting for 2 preempted attempts of lower-priority jobs to stop");
    assert.equal(result.pending.get("q"), result.pending.get("p"));
    // A third job that only interactive work could make room for, asked by an
    // interactive job: the group cannot be whole, so nothing is preempted.
    const three = [...group, job("r", { cpu: 4, priority: "interactive", groupId: "g" })];
    const none = schedule(three, workers);
    assert.deepEqual(none.preemptions, []);
    assert.match(none.pending.get("p") ?? "", /^group g: job p does not fit: insufficient cpu/);
  });
});
