// The pure scheduling pass: fit and reasons, order, placement policy, gangs and devices.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/cluster/controller/scheduler/index.js";
import { GiB, job, placed, worker, workerOf } from "./fixtures.js";

describe("resource fit", () => {
  test("places a task that fits", () => {
    const result = schedule([job("a", { cpu: 2, memory: 4 * GiB })], [worker("w1")]);
    assert.deepEqual(placed(result.placements), ["a/0@w1"]);
    assert.equal(result.pending.size, 0);
    assert.equal(result.neverFits.size, 0);
  });

  test("more cpu than any worker has never fits", () => {
    const result = schedule([job("a", { cpu: 999999 })], [worker("w1", { cpu: 2 }), worker("w2", { cpu: 1 })]);
    assert.deepEqual(result.placements, []);
    assert.equal(result.pending.get("a"), "insufficient cpu: wants 999999, largest worker has 2");
    assert.equal(result.neverFits.get("a"), "insufficient cpu: wants 999999, largest worker has 2");
  });

  test("memory held by running attempts leaves the job pending, not never-fitting", () => {
    const w = worker("w1", { memory: 16 * GiB, used: { memory: 8.5 * GiB } });
    const result = schedule([job("a", { memory: 8 * GiB })], [w]);
    assert.equal(result.pending.get("a"), "insufficient memory: wants 8g, most free on any worker is 7.5g");
    assert.equal(result.neverFits.has("a"), false);
  });

  test("memory beyond every machine", () => {
    const result = schedule([job("a", { memory: 64 * GiB })], [worker("w1", { memory: 7.5 * GiB })]);
    assert.equal(result.neverFits.get("a"), "insufficient memory: wants 64g, largest worker has 7.5g");
  });

  test("disk", () => {
    const result = schedule([job("a", { disk: 1024 * GiB })], [worker("w1", { disk: 100 * GiB })]);
    assert.equal(result.neverFits.get("a"), "insufficient disk: wants 1t, largest worker has 100g");
    const busy = worker("w1", { disk: 100 * GiB, used: { disk: 95 * GiB } });
    assert.equal(schedule([job("b", { disk: 10 * GiB })], [busy]).pending.get("b"), "insufficient disk: wants 10g, most free on any worker is 5g");
  });

  test("gpus", () => {
    const gpu = worker("g1", { device: ["gpu", "H100", 4] });
    const result = schedule([job("a", { deviceType: "gpu", deviceVariant: "H100", deviceCount: 8 })], [gpu]);
    assert.equal(result.neverFits.get("a"), "insufficient gpu: wants 8, largest gpu H100 worker has 4");
    const busy = worker("g1", { device: ["gpu", "H100", 4], used: { deviceCount: 3 } });
    const later = schedule([job("b", { deviceType: "gpu", deviceVariant: "H100", deviceCount: 2 })], [busy]);
    assert.equal(later.pending.get("b"), "insufficient gpu: wants 2, most free on any gpu H100 worker is 1");
  });

  test("each resource available somewhere, but not on one machine", () => {
    const workers = [worker("cpu-rich", { cpu: 8, memory: 16 * GiB }), worker("mem-rich", { cpu: 2, memory: 64 * GiB })];
    const result = schedule([job("a", { cpu: 8, memory: 64 * GiB })], workers);
    assert.equal(result.neverFits.get("a"), "no worker has cpu 8, memory 64g together");

    const busy = [
      worker("x", { cpu: 8, memory: 16 * GiB, used: { memory: 15 * GiB } }),
      worker("y", { cpu: 8, memory: 16 * GiB, used: { cpu: 7 } }),
    ];
    const now = schedule([job("b", { cpu: 4, memory: 8 * GiB })], busy);
    assert.equal(now.pending.get("b"), "no worker has cpu 4, memory 8g free at once");
    assert.equal(now.neverFits.has("b"), false);
  });

  test("fractional cpu adds up exactly", () => {
    const jobs = Array.from({ length: 10 }, (_, i) => job(`j${i}`, { cpu: 0.1, memory: 0 }));
    const result = schedule(jobs, [worker("w1", { cpu: 1 })]);
    assert.equal(result.placements.length, 10);
    const more = schedule([job("k", { cpu: 0.1, memory: 0 })], [worker("w1", { cpu: 1, used: { cpu: 0.9 } })]);
    assert.equal(more.placements.length, 1);
  });

  test("placements in one pass use up the room they take", () => {
    const jobs = [job("a", { cpu: 3 }), job("b", { cpu: 3 }), job("c", { cpu: 3 })];
    const result = schedule(jobs, [worker("w1", { cpu: 8 })]);
    assert.deepEqual(placed(result.placements), ["a/0@w1", "b/0@w1"]);
    assert.equal(result.pending.get("c"), "insufficient cpu: wants 3, most free on any worker is 2");
  });

  test("no workers at all", () => {
    const result = schedule([job("a")], []);
    assert.equal(result.neverFits.get("a"), "no workers are registered");
  });

  test("jobs with no pending tasks are ignored", () => {
    const result = schedule([job("a", { tasks: 0 })], [worker("w1")]);
    assert.deepEqual(result, { placements: [], pending: new Map(), neverFits: new Map(), preemptions: [], reservations: new Map() });
  });
});

describe("order", () => {
  test("priority bands first: production, interactive, batch", () => {
    const jobs = [
      job("batch", { priority: "batch", cpu: 4 }),
      job("interactive", { priority: "interactive", cpu: 4 }),
      job("production", { priority: "production", cpu: 4 }),
    ];
    const one = schedule(jobs, [worker("w1", { cpu: 4 })]);
    assert.deepEqual(placed(one.placements), ["production/0@w1"]);
    const two = schedule(jobs, [worker("w1", { cpu: 8 })]);
    assert.deepEqual(placed(two.placements), ["production/0@w1", "interactive/0@w1"]);
    assert.deepEqual([...two.pending.keys()], ["batch"]);
  });

  test("FIFO by sequence within a band, whatever the input order", () => {
    const jobs = [job("late", { sequence: 20, cpu: 4 }), job("early", { sequence: 10, cpu: 4 })];
    const result = schedule(jobs, [worker("w1", { cpu: 4 })]);
    assert.deepEqual(placed(result.placements), ["early/0@w1"]);
  });

  test("a job that does not fit does not block smaller jobs behind it", () => {
    const jobs = [
      job("huge", { priority: "production", cpu: 6 }),
      job("small-1", { cpu: 2 }),
      job("small-2", { priority: "batch", cpu: 2 }),
    ];
    const result = schedule(jobs, [worker("w1", { cpu: 8, used: { cpu: 4 } })]);
    assert.deepEqual(placed(result.placements), ["small-1/0@w1", "small-2/0@w1"]);
    assert.equal(result.pending.get("huge"), "insufficient cpu: wants 6, most free on any worker is 0");
  });

  test("the same input always gives the same result", () => {
    const workers = Array.from({ length: 12 }, (_, i) => worker(`w${i}`, { cpu: 2 + (i % 3) * 2, attributes: { zone: `z${i % 2}` } }));
    const jobs = Array.from({ length: 30 }, (_, i) => job(`j${i}`, { cpu: 1 + (i % 3), tasks: 1 + (i % 2), gang: i % 4 === 0, priority: i % 5 === 0 ? "batch" : "interactive" }));
    const first = schedule(jobs, workers);
    const shuffled = schedule([...jobs].reverse(), [...workers].reverse());
    assert.deepEqual(shuffled, first);
    assert.deepEqual(schedule(jobs, workers), first);
  });
});

describe("placement policy", () => {
  test("small machines fill first; large tasks go to large machines", () => {
    const workers = [worker("big", { cpu: 64 }), worker("small", { cpu: 4 })];
    const result = schedule([job("tiny", { cpu: 1 }), job("large", { cpu: 32 }), job("tiny-2", { cpu: 1 })], workers);
    assert.equal(workerOf(result.placements, "tiny"), "small");
    assert.equal(workerOf(result.placements, "large"), "big");
    assert.equal(workerOf(result.placements, "tiny-2"), "small");
  });

  test("ties between equal machines go by workerId", () => {
    const result = schedule([job("a")], [worker("w-b"), worker("w-a"), worker("w-c")]);
    assert.deepEqual(placed(result.placements), ["a/0@w-a"]);
  });

  test("tasks of one job may share a worker", () => {
    const result = schedule([job("a", { cpu: 2, tasks: 3 })], [worker("w1", { cpu: 8 })]);
    assert.deepEqual(placed(result.placements), ["a/0@w1", "a/1@w1", "a/2@w1"]);
  });

  test("cpu-only tasks prefer machines without accelerators", () => {
    const workers = [worker("a-gpu", { cpu: 4, device: ["gpu", "H100", 8] }), worker("z-cpu", { cpu: 16 }), worker("b-tpu", { cpu: 2, device: ["tpu", "v5litepod-16", 4] })];
    const first = schedule([job("c", { cpu: 2 })], workers);
    assert.equal(workerOf(first.placements, "c"), "z-cpu");
    // Once the plain machine is full, accelerator hosts are used rather than leaving the task pending.
    const full = [worker("a-gpu", { cpu: 4, device: ["gpu", "H100", 8] }), worker("z-cpu", { cpu: 16, used: { cpu: 16 } })];
    assert.equal(workerOf(schedule([job("c", { cpu: 2 })], full).placements, "c"), "a-gpu");
  });

  test("gpu tasks prefer the machine with the fewest gpus that fits", () => {
    const workers = [worker("eight", { device: ["gpu", "A100", 8] }), worker("four", { device: ["gpu", "A100", 4] })];
    const result = schedule([job("a", { deviceType: "gpu", deviceVariant: "A100", deviceCount: 2 }), job("b", { deviceType: "gpu", deviceVariant: "A100", deviceCount: 8 })], workers);
    assert.equal(workerOf(result.placements, "a"), "four");
    assert.equal(workerOf(result.placements, "b"), "eight");
  });
});

describe("gang placement", () => {
  test("all or nothing, and the space is given back to later jobs", () => {
    const workers = [worker("w1", { cpu: 2 }), worker("w2", { cpu: 2, used: { cpu: 1 } })];
    const jobs = [job("gang", { cpu: 1, tasks: 4, gang: true }), job("single", { cpu: 1 })];
    const result = schedule(jobs, workers);
    assert.deepEqual(placed(result.placements), ["single/0@w1"]);
    assert.equal(result.pending.get("gang"), "gang of 4 tasks: only 3 fit now");
    assert.equal(result.neverFits.has("gang"), false);
  });

  test("a gang that fits is placed whole", () => {
    const workers = [worker("w1", { cpu: 2 }), worker("w2", { cpu: 2 })];
    const result = schedule([job("gang", { cpu: 1, tasks: 4, gang: true })], workers);
    assert.deepEqual(placed(result.placements), ["gang/0@w1", "gang/1@w1", "gang/2@w2", "gang/3@w2"]);
  });

  test("a gang larger than the idle cluster never fits", () => {
    const result = schedule([job("gang", { cpu: 2, tasks: 3, gang: true })], [worker("w1", { cpu: 4 })]);
    assert.equal(result.neverFits.get("gang"), "gang of 3 tasks: at most 2 fit even when every worker is idle");
  });

  test("without gang, the tasks that fit are placed and the rest wait", () => {
    const result = schedule([job("j", { cpu: 1, tasks: 4, taskIndexes: [3, 5, 7, 9] })], [worker("w1", { cpu: 2 })]);
    assert.deepEqual(placed(result.placements), ["j/3@w1", "j/5@w1"]);
    assert.equal(result.pending.get("j"), "insufficient cpu: wants 1, most free on any worker is 0");
  });

  test("same-zone jobs go whole into one zone", () => {
    const workers = [
      worker("a1", { cpu: 1, attributes: { zone: "a" } }),
      worker("b1", { cpu: 1, attributes: { zone: "b" } }),
      worker("b2", { cpu: 1, attributes: { zone: "b" } }),
    ];
    const result = schedule([job("j", { cpu: 1, tasks: 2, sameZone: true })], workers);
    assert.deepEqual(placed(result.placements).sort(), ["j/0@b1", "j/1@b2"]);
    const tooBig = schedule([job("k", { cpu: 1, tasks: 3, sameZone: true })], workers);
    assert.deepEqual(tooBig.placements, []);
    assert.equal(tooBig.neverFits.get("k"), "gang of 3 tasks: at most 2 fit in one zone even when every worker is idle");
  });

  test("same-region jobs report what fits now in one region", () => {
    const workers = [
      worker("e1", { cpu: 2, attributes: { region: "east" } }),
      worker("w1", { cpu: 2, used: { cpu: 1 }, attributes: { region: "west" } }),
      worker("w2", { cpu: 2, attributes: { region: "west" } }),
    ];
    const result = schedule([job("j", { cpu: 1, tasks: 4, sameRegion: true })], workers);
    assert.deepEqual(result.placements, []);
    assert.equal(result.pending.get("j"), "gang of 4 tasks: only 3 fit now in one region");
  });
});

describe("devices", () => {
  const workers = [
    worker("h100", { device: ["gpu", "H100", 8] }),
    worker("a100", { device: ["gpu", "A100", 8] }),
    worker("tpu-1", { device: ["tpu", "v5litepod-16", 4] }),
  ];

  test("gpu variants match case-insensitively", () => {
    const result = schedule([job("a", { deviceType: "gpu", deviceVariant: "h100", deviceCount: 1 })], workers);
    assert.deepEqual(placed(result.placements), ["a/0@h100"]);
  });

  test("auto takes any gpu", () => {
    const jobs = [job("a", { deviceType: "gpu", deviceVariant: "auto", deviceCount: 8 }), job("b", { deviceType: "gpu", deviceVariant: "auto", deviceCount: 8 })];
    const result = schedule(jobs, workers);
    assert.deepEqual(placed(result.placements), ["a/0@a100", "b/0@h100"]);
  });

  test("a missing gpu variant names the ones registered", () => {
    const result = schedule([job("a", { deviceType: "gpu", deviceVariant: "L4", deviceCount: 1 })], workers);
    assert.equal(result.neverFits.get("a"), "no worker has gpu variant L4 (registered: A100, H100)");
    const none = schedule([job("b", { deviceType: "gpu", deviceVariant: "auto", deviceCount: 1 })], [worker("w1")]);
    assert.equal(none.neverFits.get("b"), "no worker has a gpu");
  });

  test("tpu hosts: exact variant, one task per host of a slice", () => {
    const hosts = [0, 1, 2, 3].map((i) => worker(`host-${i}`, { device: ["tpu", "v5litepod-16", 4], cpu: 96 }));
    const slice = job("slice", { deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 4, tasks: 4, gang: true });
    const result = schedule([slice], hosts);
    assert.deepEqual(placed(result.placements), ["slice/0@host-0", "slice/1@host-1", "slice/2@host-2", "slice/3@host-3"]);
    const wrongCase = schedule([job("x", { deviceType: "tpu", deviceVariant: "V5LITEPOD-16", deviceCount: 4 })], hosts);
    assert.equal(wrongCase.neverFits.get("x"), "no worker has tpu variant V5LITEPOD-16 (registered: v5litepod-16)");
    const tooMany = schedule([job("y", { deviceType: "tpu", deviceVariant: "v5litepod-16", deviceCount: 8 })], hosts);
    assert.equal(tooMany.neverFits.get("y"), "insufficient tpu chips: wants 8, largest tpu v5litepod-16 worker has 4");
    const noTpu = schedule([job("z", { deviceType: "tpu", deviceVariant: "v6e-8", deviceCount: 8 })], [worker("w1")]);
    assert.equal(noTpu.neverFits.get("z"), "no worker has a tpu");
  });
});
