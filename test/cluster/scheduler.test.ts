// Tests for the pure scheduling pass: fit and reasons, order, gangs, devices,
// constraints, filters, and random-cluster properties checked against a naive scan.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  matchesConstraint,
  schedule,
  type PendingJob,
  type Placement,
  type SchedulerWorker,
  type TaskDemand,
  type WorkerCapacity,
} from "../../src/cluster/controller/scheduler.js";
import type { Constraint } from "../../src/core/job.js";

const GiB = 1024 ** 3;

interface WorkerInit {
  cpu?: number;
  memory?: number;
  disk?: number;
  device?: readonly [type: "gpu" | "tpu", variant: string, count: number];
  used?: Partial<SchedulerWorker["used"]>;
  attributes?: Record<string, string>;
}

function worker(workerId: string, init: WorkerInit = {}): SchedulerWorker {
  const [deviceType, deviceVariant, deviceCount] = init.device ?? ["cpu", "", 0];
  const capacity: WorkerCapacity = { cpu: init.cpu ?? 8, memory: init.memory ?? 32 * GiB, disk: init.disk ?? 100 * GiB, deviceType, deviceVariant, deviceCount };
  return {
    workerId,
    capacity,
    used: { cpu: 0, memory: 0, disk: 0, deviceCount: 0, ...init.used },
    attributes: init.attributes ?? {},
  };
}

type JobInit = Partial<Omit<PendingJob, "demand">> & Partial<TaskDemand> & { tasks?: number };

let nextSequence = 0;
function job(jobId: string, init: JobInit = {}): PendingJob {
  const { cpu = 1, memory = 1 * GiB, disk = 0, deviceType = "cpu", deviceVariant = "", deviceCount = 0, tasks = 1, ...rest } = init;
  return {
    jobId,
    priority: "interactive",
    sequence: nextSequence++,
    taskIndexes: Array.from({ length: tasks }, (_, i) => i),
    gang: false,
    constraints: [],
    preemptible: false,
    ...rest,
    demand: { cpu, memory, disk, deviceType, deviceVariant, deviceCount },
  };
}

/** Placements as "job/task@worker" strings, in order. */
function placed(placements: readonly Placement[]): string[] {
  return placements.map((p) => `${p.jobId}/${p.taskIndex}@${p.workerId}`);
}

function workerOf(placements: readonly Placement[], jobId: string, taskIndex = 0): string | undefined {
  return placements.find((p) => p.jobId === jobId && p.taskIndex === taskIndex)?.workerId;
}

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
    assert.deepEqual(result, { placements: [], pending: new Map(), neverFits: new Map() });
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

describe("constraints", () => {
  const w = worker("w", { device: ["gpu", "H100", 8], attributes: { region: "us-east1", rack: "10", slot: "08", name: "abc", "device-type": "stale" } });
  const check = (c: Constraint) => matchesConstraint(w, c);

  test("eq and ne on strings", () => {
    assert.equal(check({ key: "region", op: "eq", value: "us-east1" }), true);
    assert.equal(check({ key: "region", op: "eq", value: "us-west1" }), false);
    assert.equal(check({ key: "region", op: "ne", value: "us-west1" }), true);
    assert.equal(check({ key: "region", op: "ne", value: "us-east1" }), false);
    assert.equal(check({ key: "missing", op: "eq", value: "x" }), false);
    assert.equal(check({ key: "missing", op: "ne", value: "x" }), true, "a worker without the attribute is not equal");
  });

  test("eq and ne with a number compare numerically when the attribute is a number", () => {
    assert.equal(check({ key: "slot", op: "eq", value: 8 }), true);
    assert.equal(check({ key: "slot", op: "eq", value: "8" }), false, "a string operand compares as text");
    assert.equal(check({ key: "slot", op: "ne", value: 8 }), false);
    assert.equal(check({ key: "name", op: "eq", value: 8 }), false);
    assert.equal(check({ key: "name", op: "ne", value: 8 }), true);
  });

  test("exists, not_exists, in", () => {
    assert.equal(check({ key: "rack", op: "exists" }), true);
    assert.equal(check({ key: "missing", op: "exists" }), false);
    assert.equal(check({ key: "missing", op: "not_exists" }), true);
    assert.equal(check({ key: "rack", op: "not_exists" }), false);
    assert.equal(check({ key: "region", op: "in", values: ["us-west1", "us-east1"] }), true);
    assert.equal(check({ key: "region", op: "in", values: ["us-west1"] }), false);
    assert.equal(check({ key: "missing", op: "in", values: ["x"] }), false);
  });

  test("gt, ge, lt, le compare as numbers, and a non-number never matches", () => {
    // As text "10" < "9"; as numbers it is larger.
    assert.equal(check({ key: "rack", op: "gt", value: 9 }), true);
    assert.equal(check({ key: "rack", op: "gt", value: 10 }), false);
    assert.equal(check({ key: "rack", op: "ge", value: 10 }), true);
    assert.equal(check({ key: "rack", op: "lt", value: 11 }), true);
    assert.equal(check({ key: "rack", op: "lt", value: 10 }), false);
    assert.equal(check({ key: "rack", op: "le", value: 10 }), true);
    assert.equal(check({ key: "rack", op: "le", value: 9.5 }), false);
    for (const op of ["gt", "ge", "lt", "le"] as const) {
      assert.equal(check({ key: "name", op, value: 0 }), false, `${op} on a non-number`);
      assert.equal(check({ key: "missing", op, value: 0 }), false, `${op} on a missing attribute`);
    }
  });

  test("device-type and device-variant come from the worker's capacity", () => {
    assert.equal(check({ key: "device-type", op: "eq", value: "gpu" }), true);
    assert.equal(check({ key: "device-variant", op: "eq", value: "H100" }), true);
    assert.equal(matchesConstraint(worker("plain"), { key: "device-type", op: "eq", value: "cpu" }), true);
    assert.equal(matchesConstraint(worker("plain"), { key: "device-variant", op: "not_exists" }), true);
  });

  test("required constraints filter, with the constraint named when none matches", () => {
    const workers = [worker("w1", { attributes: { region: "us-west1" } }), worker("w2", { attributes: { region: "us-east1" } })];
    const ok = schedule([job("a", { constraints: [{ key: "region", op: "eq", value: "us-east1" }] })], workers);
    assert.deepEqual(placed(ok.placements), ["a/0@w2"]);
    const none = schedule([job("b", { constraints: [{ key: "region", op: "eq", value: "eu-west4" }] })], workers);
    assert.equal(none.neverFits.get("b"), "no worker matches constraint region eq eu-west4");
    const inList = schedule([job("c", { constraints: [{ key: "rack", op: "in", values: ["1", "2"] }] })], workers);
    assert.equal(inList.neverFits.get("c"), "no worker matches constraint rack in [1, 2]");
  });

  test("reasons say 'matching worker' once constraints narrowed the choice", () => {
    const workers = [worker("w1", { cpu: 2, attributes: { region: "us-east1" } }), worker("w2", { cpu: 64 })];
    const result = schedule([job("a", { cpu: 4, constraints: [{ key: "region", op: "eq", value: "us-east1" }] })], workers);
    assert.equal(result.neverFits.get("a"), "insufficient cpu: wants 4, largest matching worker has 2");
  });

  test("preferred constraints rank: more satisfied first, then the usual order", () => {
    const workers = [
      worker("none", { attributes: {} }),
      worker("one", { attributes: { ssd: "true" } }),
      worker("two", { cpu: 2, attributes: { ssd: "true", zone: "a" } }),
    ];
    const constraints: Constraint[] = [
      { key: "ssd", op: "eq", value: "true", preferred: true },
      { key: "zone", op: "eq", value: "a", preferred: true },
    ];
    const jobs = [1, 2, 3, 4].map((i) => job(`j${i}`, { cpu: 2, constraints }));
    const result = schedule(jobs, workers);
    assert.deepEqual(placed(result.placements), ["j1/0@two", "j2/0@one", "j3/0@one", "j4/0@one"]);
    // A preferred constraint that no worker meets does not block placement.
    const unmet = schedule([job("x", { constraints: [{ key: "gpu", op: "exists", preferred: true }] })], workers);
    assert.equal(unmet.placements.length, 1);
  });
});

describe("preemptible, regions and zones", () => {
  test("a non-preemptible job never goes on a preemptible worker", () => {
    const workers = [worker("spot", { attributes: { preemptible: "true" } })];
    const strict = schedule([job("a")], workers);
    assert.equal(strict.neverFits.get("a"), "every worker is preemptible and the job does not accept preemptible workers");
    const relaxed = schedule([job("b", { preemptible: true })], workers);
    assert.deepEqual(placed(relaxed.placements), ["b/0@spot"]);
    const both = schedule([job("c")], [...workers, worker("steady", { attributes: { preemptible: "false" } })]);
    assert.deepEqual(placed(both.placements), ["c/0@steady"]);
  });

  test("regions and zone filter by the region and zone attributes", () => {
    const workers = [
      worker("e", { attributes: { region: "us-east1", zone: "us-east1-b" } }),
      worker("w", { attributes: { region: "us-west1", zone: "us-west1-a" } }),
    ];
    assert.deepEqual(placed(schedule([job("a", { regions: ["eu-west4", "us-west1"] })], workers).placements), ["a/0@w"]);
    assert.deepEqual(placed(schedule([job("b", { zone: "us-east1-b" })], workers).placements), ["b/0@e"]);
    assert.equal(schedule([job("c", { regions: ["eu-west4"] })], workers).neverFits.get("c"), "no worker in region eu-west4");
    assert.equal(schedule([job("d", { regions: ["x", "y"] })], workers).neverFits.get("d"), "no worker in regions x, y");
    assert.equal(schedule([job("e", { zone: "us-east1-c" })], workers).neverFits.get("e"), "no worker in zone us-east1-c");
    const gpuJob = job("f", { regions: ["us-east1"], deviceType: "gpu", deviceVariant: "H100", deviceCount: 1 });
    const gpus = [worker("g", { device: ["gpu", "H100", 8], attributes: { region: "us-west1" } })];
    assert.equal(schedule([gpuJob], gpus).neverFits.get("f"), "no gpu H100 worker in region us-east1");
  });
});

// ---------------------------------------------------------------------------
// Properties over random clusters.

const deviceArb = fc.constantFrom<WorkerInit["device"]>(undefined, undefined, ["gpu", "H100", 4], ["gpu", "A100", 8], ["tpu", "v5p-8", 4]);
const workerArb = fc.record({
  cpu: fc.integer({ min: 1, max: 16 }),
  memoryGiB: fc.integer({ min: 1, max: 64 }),
  device: deviceArb,
  busy: fc.double({ min: 0, max: 1, noNaN: true }),
  zone: fc.constantFrom("a", "b", "c"),
  rack: fc.integer({ min: 1, max: 5 }),
  preemptible: fc.boolean(),
});

const CONSTRAINTS: readonly Constraint[] = [
  { key: "zone", op: "eq", value: "a" },
  { key: "rack", op: "ge", value: 3 },
  { key: "zone", op: "in", values: ["b", "c"], preferred: true },
  { key: "rack", op: "lt", value: 2, preferred: true },
];
const demandArb = fc.constantFrom<Pick<TaskDemand, "deviceType" | "deviceVariant" | "deviceCount">>(
  { deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
  { deviceType: "cpu", deviceVariant: "", deviceCount: 0 },
  { deviceType: "gpu", deviceVariant: "auto", deviceCount: 2 },
  { deviceType: "gpu", deviceVariant: "h100", deviceCount: 1 },
  { deviceType: "tpu", deviceVariant: "v5p-8", deviceCount: 4 },
);
const jobArb = fc.record({
  // Few shapes and mostly no constraints, so jobs that share a shape and a
  // set of eligible workers meet often: the scheduler memoizes per both.
  cpu: fc.constantFrom(0.5, 1, 2, 4),
  memoryGiB: fc.constantFrom(1, 4),
  device: demandArb,
  tasks: fc.integer({ min: 1, max: 5 }),
  gang: fc.boolean(),
  sameZone: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  priority: fc.constantFrom("production" as const, "interactive" as const, "batch" as const),
  constraints: fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.subarray([...CONSTRAINTS], { maxLength: 2 }), weight: 1 }),
  preemptible: fc.boolean(),
});

type Sample<A> = A extends fc.Arbitrary<infer T> ? T : never;

function buildCluster(ws: Array<Sample<typeof workerArb>>, js: Array<Sample<typeof jobArb>>): { workers: SchedulerWorker[]; jobs: PendingJob[] } {
  const workers = ws.map((w, i) =>
    worker(`w${String(i).padStart(2, "0")}`, {
      cpu: w.cpu,
      memory: w.memoryGiB * GiB,
      ...(w.device ? { device: w.device } : {}),
      used: { cpu: Math.floor(w.cpu * w.busy), memory: Math.floor(w.memoryGiB * GiB * w.busy), deviceCount: Math.floor((w.device?.[2] ?? 0) * w.busy) },
      attributes: { zone: w.zone, rack: String(w.rack), preemptible: String(w.preemptible) },
    }),
  );
  const jobs = js.map((j, i) =>
    job(`j${i}`, {
      cpu: j.cpu,
      memory: j.memoryGiB * GiB,
      ...j.device,
      tasks: j.tasks,
      gang: j.gang,
      ...(j.sameZone ? { sameZone: true } : {}),
      priority: j.priority,
      constraints: j.constraints,
      preemptible: j.preemptible,
      sequence: i,
    }),
  );
  return { workers, jobs };
}

/**
 * The same policy written the slow, obvious way: every task scans every
 * worker in rank order. The indexed scheduler must agree with it exactly.
 */
function referenceSchedule(jobs: readonly PendingJob[], workers: readonly SchedulerWorker[]): string[] {
  const free = new Map(workers.map((w) => [w.workerId, {
    cpu: Math.round(w.capacity.cpu * 1000) - Math.round(w.used.cpu * 1000),
    memory: w.capacity.memory - w.used.memory,
    devices: w.capacity.deviceType === "cpu" ? 0 : w.capacity.deviceCount - w.used.deviceCount,
  }]));
  const band = { production: 0, interactive: 1, batch: 2 };
  const accel = (w: SchedulerWorker) => (w.capacity.deviceType === "cpu" ? 0 : 1);
  const baseOrder = [...workers].sort((a, b) =>
    accel(a) - accel(b) || a.capacity.deviceCount - b.capacity.deviceCount || a.capacity.cpu - b.capacity.cpu ||
    a.capacity.memory - b.capacity.memory || a.capacity.disk - b.capacity.disk || a.workerId.localeCompare(b.workerId));
  const out: string[] = [];
  for (const j of [...jobs].sort((a, b) => band[a.priority] - band[b.priority] || a.sequence - b.sequence)) {
    const d = j.demand;
    const need = { cpu: Math.round(d.cpu * 1000), memory: d.memory, devices: d.deviceType === "cpu" ? 0 : d.deviceCount };
    const eligible = baseOrder.filter((w) =>
      (d.deviceType === "cpu" || (w.capacity.deviceType === d.deviceType &&
        (d.deviceVariant === "auto" || w.capacity.deviceVariant.toLowerCase() === d.deviceVariant.toLowerCase()))) &&
      (j.preemptible || w.attributes.preemptible !== "true") &&
      j.constraints.every((c) => c.preferred || matchesConstraint(w, c)));
    const score = (w: SchedulerWorker) => j.constraints.filter((c) => c.preferred && matchesConstraint(w, c)).length;
    const ranked = eligible.map((w, i) => ({ w, i })).sort((a, b) => score(b.w) - score(a.w) || a.i - b.i).map((x) => x.w);
    const groups = j.sameZone ? [...new Set(ranked.map((w) => w.attributes.zone))].map((z) => ranked.filter((w) => w.attributes.zone === z)) : [ranked];
    const allOrNothing = j.gang || j.sameZone === true;
    for (const group of groups) {
      const taken: Array<[string, number]> = [];
      for (const taskIndex of j.taskIndexes) {
        const w = group.find((x) => {
          const f = free.get(x.workerId);
          return f !== undefined && f.cpu >= need.cpu && f.memory >= need.memory && f.devices >= need.devices;
        });
        if (!w) break;
        const f = free.get(w.workerId);
        if (f) {
          f.cpu -= need.cpu;
          f.memory -= need.memory;
          f.devices -= need.devices;
        }
        taken.push([w.workerId, taskIndex]);
      }
      if (!allOrNothing || taken.length === j.taskIndexes.length) {
        for (const [workerId, taskIndex] of taken) out.push(`${j.jobId}/${taskIndex}@${workerId}`);
        break;
      }
      for (const [workerId] of taken) {
        const f = free.get(workerId);
        if (f) {
          f.cpu += need.cpu;
          f.memory += need.memory;
          f.devices += need.devices;
        }
      }
    }
  }
  return out;
}

describe("properties", () => {
  test("placements never exceed free capacity, and gangs are placed whole or not at all", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 25 }), fc.array(jobArb, { maxLength: 40 }), (ws, js) => {
        const { workers, jobs } = buildCluster(ws, js);
        const result = schedule(jobs, workers);
        const byId = new Map(workers.map((w) => [w.workerId, w]));
        const jobsById = new Map(jobs.map((j) => [j.jobId, j]));
        const load = new Map<string, { cpu: number; memory: number; disk: number; devices: number }>();
        const tasksPlaced = new Map<string, Set<number>>();
        for (const p of result.placements) {
          const j = jobsById.get(p.jobId);
          const w = byId.get(p.workerId);
          assert.ok(j && w, "placements name known jobs and workers");
          assert.ok(j.taskIndexes.includes(p.taskIndex), "only pending tasks are placed");
          const seen = tasksPlaced.get(p.jobId) ?? new Set();
          assert.ok(!seen.has(p.taskIndex), "a task is placed once");
          seen.add(p.taskIndex);
          tasksPlaced.set(p.jobId, seen);
          const l = load.get(p.workerId) ?? { cpu: 0, memory: 0, disk: 0, devices: 0 };
          l.cpu += Math.round(j.demand.cpu * 1000);
          l.memory += j.demand.memory;
          l.disk += j.demand.disk;
          l.devices += j.demand.deviceType === "cpu" ? 0 : j.demand.deviceCount;
          load.set(p.workerId, l);
          for (const c of j.constraints) if (!c.preferred) assert.ok(matchesConstraint(w, c), "required constraints hold");
          if (j.demand.deviceType !== "cpu") assert.equal(w.capacity.deviceType, j.demand.deviceType);
          if (!j.preemptible) assert.notEqual(w.attributes.preemptible, "true");
        }
        for (const [workerId, l] of load) {
          const w = byId.get(workerId);
          assert.ok(w);
          assert.ok(l.cpu <= Math.round(w.capacity.cpu * 1000) - Math.round(w.used.cpu * 1000), `cpu on ${workerId}`);
          assert.ok(l.memory <= w.capacity.memory - w.used.memory, `memory on ${workerId}`);
          assert.ok(l.disk <= w.capacity.disk - w.used.disk, `disk on ${workerId}`);
          assert.ok(l.devices <= w.capacity.deviceCount - w.used.deviceCount, `devices on ${workerId}`);
        }
        for (const j of jobs) {
          const count = tasksPlaced.get(j.jobId)?.size ?? 0;
          if (j.gang || j.sameZone) assert.ok(count === 0 || count === j.taskIndexes.length, `gang ${j.jobId} placed ${count}/${j.taskIndexes.length}`);
          if (j.sameZone && count > 0) {
            const zones = new Set(result.placements.filter((p) => p.jobId === j.jobId).map((p) => byId.get(p.workerId)?.attributes.zone));
            assert.equal(zones.size, 1, "a same-zone job sits in one zone");
          }
          assert.equal(result.pending.has(j.jobId), count < j.taskIndexes.length, `pending lists exactly the unfinished jobs (${j.jobId})`);
        }
        for (const [jobId, reason] of result.neverFits) assert.equal(result.pending.get(jobId), reason);
      }),
      { numRuns: 300 },
    );
  });

  test("the indexed scheduler places exactly what a naive scan would", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 40 }), fc.array(jobArb, { maxLength: 60 }), (ws, js) => {
        const { workers, jobs } = buildCluster(ws, js);
        assert.deepEqual(placed(schedule(jobs, workers).placements), referenceSchedule(jobs, workers));
      }),
      { numRuns: 300 },
    );
  });

  test("a job that never fits on an idle cluster also fits nowhere when the cluster is emptied", () => {
    fc.assert(
      fc.property(fc.array(workerArb, { maxLength: 15 }), fc.array(jobArb, { maxLength: 20 }), (ws, js) => {
        const { workers, jobs } = buildCluster(ws, js);
        const result = schedule(jobs, workers);
        const idle = workers.map((w) => ({ ...w, used: { cpu: 0, memory: 0, disk: 0, deviceCount: 0 } }));
        for (const jobId of result.neverFits.keys()) {
          const j = jobs.find((x) => x.jobId === jobId);
          assert.ok(j);
          assert.equal(schedule([j], idle).placements.length, 0, `${jobId}: ${result.neverFits.get(jobId)}`);
        }
      }),
      { numRuns: 200 },
    );
  });
});
