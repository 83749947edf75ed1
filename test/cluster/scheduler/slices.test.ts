// TPU slice affinity in the pure pass: whole slices, task i on host i, multislice, reasons.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule, type SchedulerWorker } from "../../../src/cluster/controller/scheduler/index.js";
import { TPU_HOST_LABEL, TPU_SLICE_LABEL } from "../../../src/cluster/platform/types.js";
import { job, placed, worker, type JobInit } from "./fixtures.js";

const VARIANT = "v5litepod-16";

/** The 4 hosts of a v5litepod-16 slice, listed in a scrambled order; `used` per host index. */
function slice(id: string, init: { used?: Record<number, number>; attributes?: Record<string, string>; only?: readonly number[] } = {}): SchedulerWorker[] {
  return [2, 0, 3, 1]
    .filter((host) => init.only?.includes(host) ?? true)
    .map((host) =>
      worker(`${id}-h${host}`, {
        device: ["tpu", VARIANT, 4],
        used: { deviceCount: init.used?.[host] ?? 0 },
        attributes: { [TPU_SLICE_LABEL]: id, [TPU_HOST_LABEL]: String(host), ...init.attributes },
      }),
    );
}

function sliceJob(jobId: string, tasks: number, init: JobInit = {}) {
  return job(jobId, { deviceType: "tpu", deviceVariant: VARIANT, deviceCount: 4, tasks, gang: true, slice: { hosts: 4 }, ...init });
}

describe("TPU slice affinity", () => {
  test("a 4-host job takes the 4 hosts of one slice, task i on host i", () => {
    const result = schedule([sliceJob("j", 4)], [...slice("s1"), ...slice("s2")]);
    assert.deepEqual(placed(result.placements), ["j/0@s1-h0", "j/1@s1-h1", "j/2@s1-h2", "j/3@s1-h3"]);
    assert.equal(result.pending.size, 0);
  });

  test("a slice with one busy host is passed over for a whole free one", () => {
    const result = schedule([sliceJob("j", 4)], [...slice("s1", { used: { 2: 4 } }), ...slice("s2")]);
    assert.deepEqual(placed(result.placements), ["j/0@s2-h0", "j/1@s2-h1", "j/2@s2-h2", "j/3@s2-h3"]);
  });

  test("never split across slices: free hosts of two half-busy slices do not make one", () => {
    const result = schedule([sliceJob("j", 4)], [...slice("s1", { used: { 0: 4, 1: 4 } }), ...slice("s2", { used: { 2: 4, 3: 4 } })]);
    assert.deepEqual(result.placements, []);
    assert.equal(result.pending.get("j"), `needs a whole ${VARIANT} slice (4 hosts): none free`);
    assert.equal(result.neverFits.has("j"), false);
  });

  test("multislice: 8 tasks take two whole slices, tasks 4..7 on the second", () => {
    const result = schedule([sliceJob("j", 8)], [...slice("s1"), ...slice("s2"), ...slice("s3")]);
    assert.deepEqual(placed(result.placements), [
      "j/0@s1-h0", "j/1@s1-h1", "j/2@s1-h2", "j/3@s1-h3",
      "j/4@s2-h0", "j/5@s2-h1", "j/6@s2-h2", "j/7@s2-h3",
    ]);
  });

  test("multislice with only one free slice places nothing and says how many are free", () => {
    const result = schedule([sliceJob("j", 8)], [...slice("s1"), ...slice("s2", { used: { 1: 4 } })]);
    assert.deepEqual(result.placements, []);
    assert.equal(result.pending.get("j"), `needs 2 whole ${VARIANT} slices (4 hosts each): only 1 free`);
  });

  test("two slice jobs take the two slices; a third waits", () => {
    const result = schedule([sliceJob("a", 4), sliceJob("b", 4), sliceJob("c", 4)], [...slice("s1"), ...slice("s2")]);
    const slicesOf = (jobId: string) => new Set(result.placements.filter((p) => p.jobId === jobId).map((p) => p.workerId.split("-")[0]));
    assert.deepEqual(slicesOf("a"), new Set(["s1"]));
    assert.deepEqual(slicesOf("b"), new Set(["s2"]));
    assert.equal(result.pending.get("c"), `needs a whole ${VARIANT} slice (4 hosts): none free`);
  });

  test("workers without the slice labels never take slice tasks", () => {
    const plain = [0, 1, 2, 3].map((i) => worker(`plain${i}`, { device: ["tpu", VARIANT, 4] }));
    const result = schedule([sliceJob("j", 4)], plain);
    assert.deepEqual(result.placements, []);
    assert.match(result.neverFits.get("j") ?? "", /no tpu v5litepod-16 worker is a host of a TPU slice/);
  });

  test("an incomplete slice never fits, and says so", () => {
    const result = schedule([sliceJob("j", 4)], slice("s1", { only: [0, 1, 3] }));
    assert.deepEqual(result.placements, []);
    assert.equal(result.neverFits.get("j"), `needs a whole ${VARIANT} slice (4 hosts): no complete slice is registered`);
  });

  test("a pending task joins its running siblings' slice, on its own host", () => {
    // Task 2 of the job was refused; tasks 0, 1, 3 run on s2. s1 is free but not its slice.
    const result = schedule([sliceJob("j", 4, { taskIndexes: [2], slice: { hosts: 4, held: { 0: "s2" } } })], [...slice("s1"), ...slice("s2", { used: { 0: 4, 1: 4, 3: 4 } })]);
    assert.deepEqual(placed(result.placements), ["j/2@s2-h2"]);
  });

  test("a held slice whose host is busy keeps the task pending with that reason", () => {
    const result = schedule([sliceJob("j", 4, { taskIndexes: [2], slice: { hosts: 4, held: { 0: "s2" } } })], [...slice("s1"), ...slice("s2", { used: { 2: 4 } })]);
    assert.deepEqual(result.placements, []);
    assert.equal(result.pending.get("j"), "needs hosts 2 of slice s2, where its other tasks run: not free");
  });

  test("a slice job's required constraints pick among slices", () => {
    const workers = [...slice("s1", { attributes: { zone: "a" } }), ...slice("s2", { attributes: { zone: "b" } })];
    const result = schedule([sliceJob("j", 4, { constraints: [{ key: "zone", op: "eq", value: "b" }] })], workers);
    assert.deepEqual(placed(result.placements), ["j/0@s2-h0", "j/1@s2-h1", "j/2@s2-h2", "j/3@s2-h3"]);
  });

  test("slice jobs in a job group go whole with the group, or not at all", () => {
    const workers = [...slice("s1"), worker("cpu", { cpu: 2 })];
    const ok = schedule([sliceJob("t", 4, { groupId: "g" }), job("c", { cpu: 2, groupId: "g" })], workers);
    assert.deepEqual(placed(ok.placements).sort(), ["c/0@cpu", "t/0@s1-h0", "t/1@s1-h1", "t/2@s1-h2", "t/3@s1-h3"]);
    const none = schedule([job("c", { cpu: 2, groupId: "g" }), sliceJob("t", 8, { groupId: "g" })], workers);
    assert.deepEqual(none.placements, []);
    assert.equal(none.pending.get("c"), `group g: job t does not fit: needs 2 whole ${VARIANT} slices (4 hosts each): only 1 complete slice is registered`);
  });

  test("a CPU-only job may still use a slice host's spare cpu; the slice stays whole for the TPU job", () => {
    const result = schedule([sliceJob("j", 4), job("cpu", { cpu: 1 })], slice("s1"));
    assert.equal(result.placements.filter((p) => p.jobId === "j").length, 4);
    assert.equal(result.placements.filter((p) => p.jobId === "cpu").length, 1);
  });
});
