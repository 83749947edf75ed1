// Job groups in the pure pass: every task of every job together, or none.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/cluster/controller/scheduler/index.js";
import { job, placed, worker } from "./fixtures.js";

describe("job groups", () => {
  test("all jobs of a group are placed together", () => {
    const jobs = [job("a", { cpu: 2, groupId: "g" }), job("b", { cpu: 2, tasks: 2, groupId: "g" })];
    const result = schedule(jobs, [worker("w1", { cpu: 8 })]);
    assert.deepEqual(placed(result.placements), ["a/0@w1", "b/0@w1", "b/1@w1"]);
    assert.equal(result.pending.size, 0);
  });

  test("a third job that does not fit leaves the whole group unplaced, and its room to others", () => {
    const jobs = [
      job("a", { cpu: 2, groupId: "g" }),
      job("b", { cpu: 2, groupId: "g" }),
      job("c", { cpu: 6, groupId: "g" }),
      job("later", { cpu: 4, priority: "batch" }),
    ];
    const result = schedule(jobs, [worker("w1", { cpu: 8 })]);
    assert.deepEqual(placed(result.placements), ["later/0@w1"]);
    const reason = "group g: job c does not fit: insufficient cpu: wants 6, most free on any worker is 4";
    for (const id of ["a", "b", "c"]) assert.equal(result.pending.get(id), reason);
    assert.equal(result.neverFits.size, 0);
  });

  test("a job that never fits alone makes the whole group never fit", () => {
    const jobs = [job("a", { cpu: 1, groupId: "g" }), job("big", { cpu: 64, groupId: "g" })];
    const result = schedule(jobs, [worker("w1", { cpu: 8 })]);
    assert.deepEqual(result.placements, []);
    const reason = "group g: job big does not fit: insufficient cpu: wants 64, largest worker has 8";
    assert.equal(result.neverFits.get("a"), reason);
    assert.equal(result.neverFits.get("big"), reason);
  });

  test("the group goes in the order of its first job", () => {
    // The group's first job is production, so its batch member goes before the interactive job.
    const jobs = [job("i", { cpu: 4 }), job("p", { cpu: 2, priority: "production", groupId: "g" }), job("b", { cpu: 2, priority: "batch", groupId: "g" })];
    const result = schedule(jobs, [worker("w1", { cpu: 4 }), worker("w2", { cpu: 4 })]);
    assert.deepEqual(placed(result.placements), ["p/0@w1", "b/0@w1", "i/0@w2"]);
  });

  test("same zone across the group: every task of every job in one zone", () => {
    const workers = [
      worker("a1", { cpu: 4, attributes: { zone: "a" } }),
      worker("a2", { cpu: 1, attributes: { zone: "a" } }),
      worker("b1", { cpu: 4, attributes: { zone: "b" } }),
      worker("b2", { cpu: 4, attributes: { zone: "b" } }),
    ];
    // Zone a has 5 cpus: x fits there, y (4 more) does not; zone b holds both.
    const jobs = [job("x", { cpu: 2, tasks: 2, groupId: "g", sameZone: true }), job("y", { cpu: 4, groupId: "g", sameZone: true })];
    const result = schedule(jobs, workers);
    assert.deepEqual(placed(result.placements).sort(), ["x/0@b1", "x/1@b1", "y/0@b2"]);
    // Without the zone rule the group spreads over both zones.
    const loose = schedule([job("x", { cpu: 2, tasks: 2, groupId: "g" }), job("y", { cpu: 4, groupId: "g" })], workers);
    assert.deepEqual(placed(loose.placements), ["x/0@a1", "x/1@a1", "y/0@b1"]);
  });

  test("a failed group gives its room back to the jobs of other groups", () => {
    const jobs = [
      job("a", { cpu: 3, groupId: "g1" }),
      job("b", { cpu: 9, groupId: "g1" }),
      job("c", { cpu: 4, groupId: "g2" }),
      job("d", { cpu: 4, groupId: "g2" }),
    ];
    const result = schedule(jobs, [worker("w1", { cpu: 4 }), worker("w2", { cpu: 4 })]);
    assert.deepEqual(placed(result.placements), ["c/0@w1", "d/0@w2"]);
    assert.ok(result.neverFits.has("a"));
  });
});
