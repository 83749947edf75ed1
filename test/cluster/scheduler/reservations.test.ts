// Reservations in the pure pass: held room, their jobs first, the maximum.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule, type ReservationDemand } from "../../../src/cluster/controller/scheduler/index.js";
import { GiB, job, placed, worker } from "./fixtures.js";

function reservation(reservationId: string, init: Partial<ReservationDemand> & { cpu?: number } = {}): ReservationDemand {
  const { cpu = 2, ...rest } = init;
  return {
    reservationId,
    priority: 0,
    sequence: 0,
    shape: { cpu, memory: 1 * GiB, disk: 0, deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
    holdCount: 2,
    maxTasks: 4,
    activeTasks: 0,
    preemptible: false,
    ...rest,
  };
}

describe("reservations", () => {
  test("held room is not given to other jobs, even production ones", () => {
    const result = schedule([job("p", { cpu: 2, tasks: 3, priority: "production" })], [worker("w1", { cpu: 4 }), worker("w2", { cpu: 4 })], [reservation("r")]);
    assert.deepEqual(result.reservations.get("r"), { held: 2, workerIds: ["w1", "w1"], placedTasks: 0 });
    assert.deepEqual(placed(result.placements), ["p/0@w2", "p/1@w2"]);
    assert.equal(result.pending.get("p"), "insufficient cpu: wants 2, most free on any worker is 0");
  });

  test("the reservation's jobs use the held room first", () => {
    const jobs = [job("other", { cpu: 2, tasks: 2, priority: "production" }), job("mine", { cpu: 2, priority: "batch", reservationId: "r" })];
    const result = schedule(jobs, [worker("w1", { cpu: 4 }), worker("w2", { cpu: 2 })], [reservation("r")]);
    // mine (placed first, despite its band) takes one slot on the smallest worker, one more is held; other gets the rest.
    assert.deepEqual(result.reservations.get("r"), { held: 1, workerIds: ["w1"], placedTasks: 1 });
    assert.deepEqual(placed(result.placements), ["mine/0@w2", "other/0@w1"]);
    assert.equal(result.pending.get("other"), "insufficient cpu: wants 2, most free on any worker is 0");
  });

  test("a group launched into the reservation uses its held room, placed whole before the holds", () => {
    // Held first, the two slots would leave 2 of the group's 3 cpus: its own holds would keep it out for good.
    const jobs = [
      job("one", { cpu: 1, groupId: "g", reservationId: "r" }),
      job("two", { cpu: 1, tasks: 2, gang: true, groupId: "g", reservationId: "r" }),
      job("other", { cpu: 1, priority: "production" }),
    ];
    const result = schedule(jobs, [worker("w1", { cpu: 2 }), worker("w2", { cpu: 2 })], [reservation("r", { cpu: 1 })]);
    assert.equal(result.placements.filter((p) => p.jobId !== "other").length, 3, "every task of the group");
    assert.deepEqual(result.reservations.get("r"), { held: 0, workerIds: [], placedTasks: 3 });
    assert.deepEqual(placed(result.placements).filter((p) => p.startsWith("other")).length, 1, "the room left goes to others");
  });

  test("jobs grow beyond the minimum in normal order, up to the maximum", () => {
    const jobs = [job("mine", { cpu: 1, tasks: 6, reservationId: "r" })];
    const result = schedule(jobs, [worker("w1", { cpu: 16 })], [reservation("r", { holdCount: 2, maxTasks: 5, activeTasks: 1 })]);
    assert.equal(result.placements.length, 4);
    assert.equal(result.reservations.get("r")?.placedTasks, 4);
    assert.equal(result.pending.get("mine"), "reservation r is at its maximum of 5 tasks");
    const atMax = schedule([job("more", { cpu: 1, reservationId: "r" })], [worker("w1")], [reservation("r", { holdCount: 0, maxTasks: 3, activeTasks: 3 })]);
    assert.deepEqual(atMax.placements, []);
    assert.equal(atMax.pending.get("more"), "reservation r is at its maximum of 3 tasks");
  });

  test("a short cluster holds what it can and says what is missing", () => {
    const result = schedule([], [worker("w1", { cpu: 3 })], [reservation("r", { holdCount: 3 })]);
    assert.deepEqual(result.reservations.get("r"), {
      held: 1,
      workerIds: ["w1"],
      placedTasks: 0,
      reason: "1 of 3 slots held: insufficient cpu: wants 2, most free on any worker is 1",
    });
  });

  test("non-preemptible reservations are not held on preemptible workers; higher priority is held first", () => {
    const workers = [worker("spot", { cpu: 2, attributes: { preemptible: "true" } }), worker("w1", { cpu: 2 })];
    const result = schedule([], workers, [reservation("low", { holdCount: 1, sequence: 0 }), reservation("high", { holdCount: 1, priority: 5, sequence: 1 })]);
    assert.deepEqual(result.reservations.get("high"), { held: 1, workerIds: ["w1"], placedTasks: 0 });
    assert.equal(result.reservations.get("low")?.held, 0);
    assert.equal(result.reservations.get("low")?.reason, "0 of 1 slots held: insufficient cpu: wants 2, most free on any matching worker is 0");
    const spot = schedule([], workers, [reservation("s", { holdCount: 2, preemptible: true })]);
    assert.deepEqual(spot.reservations.get("s")?.workerIds.sort(), ["spot", "w1"]);
  });

  test("holds are never preempted; a hold leaves a task to preempt elsewhere", () => {
    const w = worker("w1", { cpu: 4 });
    const result = schedule([job("p", { cpu: 2, priority: "production" })], [w], [reservation("r")]);
    assert.deepEqual(result.preemptions, []);
    assert.deepEqual(result.placements, []);
  });
});
