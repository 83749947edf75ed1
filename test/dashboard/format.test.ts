// The dashboard's pure parts, without a browser: formatting of durations,
// ages, sizes and resources, the pages' summaries, hash routes, and the
// reconnect delays of the live feed and the log tail.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import {
  DeviceSpecSchema,
  EndpointSchema,
  JobSchema,
  JobSpecSchema,
  JobState,
  ResourceSpecSchema,
  TaskSchema,
  TaskState,
  WorkerResourcesSchema,
} from "../../src/rpc/gen/fluster/cluster/v1/types_pb.js";
import { elapsedMs, enumName, formatAge, formatBytes, formatDuration, formatResources, workerUse } from "../../src/dashboard/format.js";
import { parseRoute, jobHref } from "../../src/dashboard/route.js";
import { RECONNECT_MAX_MS, reconnectDelayMs } from "../../src/dashboard/reconnect.js";
import { byNamespace, entrypointSummary, taskSummary } from "../../src/dashboard/summaries.js";

describe("dashboard formatting", () => {
  test("durations", () => {
    const cases: [number, string][] = [
      [0, "0 ms"],
      [850, "850 ms"],
      [12_400, "12 s"],
      [184_000, "3 m 04 s"],
      [7_500_000, "2 h 05 m"],
      [273_600_000, "3 d 4 h"],
      [-1, "—"],
      [Number.NaN, "—"],
    ];
    for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, `${ms} ms`);
  });

  test("elapsed time runs to the controller's now until the end, and is absent before the start", () => {
    const start = new Date(1_000_000);
    assert.equal(elapsedMs(start, new Date(1_003_000), new Date(9_000_000)), 3_000);
    assert.equal(elapsedMs(start, undefined, new Date(1_005_000)), 5_000);
    assert.equal(elapsedMs(undefined, undefined, new Date()), undefined);
    // A start after now (clock skew) is never negative.
    assert.equal(elapsedMs(start, undefined, new Date(999_000)), 0);
  });

  test("ages are measured on the controller's clock", () => {
    const now = new Date(2_000_000);
    assert.equal(formatAge(new Date(1_999_500), now), "just now");
    assert.equal(formatAge(new Date(1_993_000), now), "7 s ago");
    assert.equal(formatAge(undefined, now), "never");
  });

  test("bytes in binary units", () => {
    assert.equal(formatBytes(0n), "0 B");
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(64n * 1024n * 1024n), "64 MiB");
    assert.equal(formatBytes(1536n * 1024n * 1024n), "1.5 GiB");
  });

  test("enum names in lower case", () => {
    assert.equal(enumName(JobState, JobState.SUCCEEDED), "succeeded");
    assert.equal(enumName(TaskState, TaskState.WORKER_FAILED), "worker failed");
    assert.equal(enumName(JobState, 99), "99");
  });

  test("a job's resources, with replicas and accelerators", () => {
    assert.equal(formatResources(create(ResourceSpecSchema, { cpu: 0.25, memoryBytes: 64n * 1024n * 1024n })), "0.25 cpu · 64 MiB");
    const gpu = create(DeviceSpecSchema, { device: { case: "gpu", value: { variant: "H100", count: 8 } } });
    assert.equal(formatResources(create(ResourceSpecSchema, { cpu: 4, replicas: 2, device: gpu })), "2 × 4 cpu · gpu H100 ×8");
    assert.equal(formatResources(undefined), "—");
  });

  test("a worker's use: used, total and free of each resource", () => {
    const total = create(WorkerResourcesSchema, { cpu: 8, memoryBytes: 16n * 1024n ** 3n, deviceCount: 4, device: create(DeviceSpecSchema, { device: { case: "gpu", value: { variant: "A100", count: 4 } } }) });
    const used = create(WorkerResourcesSchema, { cpu: 2, memoryBytes: 4n * 1024n ** 3n, deviceCount: 1 });
    assert.deepEqual(workerUse(total, used), [
      { name: "cpu", used: "2", total: "8", free: "6", fraction: 0.25 },
      { name: "memory", used: "4 GiB", total: "16 GiB", free: "12 GiB", fraction: 0.25 },
      { name: "gpu", used: "1", total: "4", free: "3", fraction: 0.25 },
    ]);
    // A worker whose attempts hold more than it has (a shrunk worker) shows nothing free, never a negative.
    assert.equal(workerUse(create(WorkerResourcesSchema, { cpu: 1 }), create(WorkerResourcesSchema, { cpu: 2 }))[0]?.free, "0");
  });
});

describe("dashboard summaries", () => {
  test("a job's tasks: succeeded of all, and running while some run", () => {
    const job = (...states: TaskState[]) => create(JobSchema, { tasks: states.map((state, taskIndex) => create(TaskSchema, { taskIndex, state })) });
    assert.equal(taskSummary(job(TaskState.SUCCEEDED, TaskState.SUCCEEDED, TaskState.FAILED)), "2/3 succeeded");
    assert.equal(taskSummary(job(TaskState.RUNNING, TaskState.RUNNING)), "2/2 running");
    assert.equal(taskSummary(job(TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.PENDING)), "1/3 running, 1 succeeded");
    assert.equal(taskSummary(job()), "0/0 succeeded");
  });

  test("what a job runs: its argv, quoted where a shell would need it, or its function", () => {
    const command = create(JobSpecSchema, { entrypoint: { kind: { case: "command", value: { argv: ["sh", "-c", "echo hi; exit 3"] } } } });
    assert.equal(entrypointSummary(command), 'sh -c "echo hi; exit 3"');
    const fn = create(JobSpecSchema, { entrypoint: { kind: { case: "function", value: { module: "file:///app/train.ts", name: "train" } } } });
    assert.equal(entrypointSummary(fn), "train() from file:///app/train.ts");
    assert.equal(entrypointSummary(undefined), "—");
  });

  test("endpoints by namespace, namespaces and names in order", () => {
    const endpoint = (namespace: string, name: string, address: string) => create(EndpointSchema, { namespace, name, address });
    const grouped = byNamespace([endpoint("b", "y", "2"), endpoint("a", "z", "1"), endpoint("b", "x", "3"), endpoint("b", "x", "1")]);
    assert.deepEqual(
      grouped.map(([ns, list]) => [ns, list.map((e) => `${e.name}@${e.address}`)]),
      [
        ["a", ["z@1"]],
        ["b", ["x@1", "x@3", "y@2"]],
      ],
    );
  });
});

describe("dashboard routes", () => {
  test("hashes map to pages; the empty hash is the jobs page", () => {
    assert.deepEqual(parseRoute(""), { page: "jobs" });
    assert.deepEqual(parseRoute("#/"), { page: "jobs" });
    assert.deepEqual(parseRoute("#/jobs"), { page: "jobs" });
    assert.deepEqual(parseRoute("#/workers/"), { page: "workers" });
    assert.deepEqual(parseRoute("#/reservations"), { page: "reservations" });
    assert.deepEqual(parseRoute("#/nope"), { page: "not-found", path: "/nope" });
    assert.deepEqual(parseRoute("#/workers/x"), { page: "not-found", path: "/workers/x" });
  });

  test("a job's page round-trips its id", () => {
    const id = "train a/b-1";
    assert.deepEqual(parseRoute(jobHref(id)), { page: "job", jobId: id });
  });
});

describe("dashboard reconnect delays", () => {
  test("double from 0.5 s up to 10 s, within ±20 %", () => {
    const middle = () => 0.5;
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelayMs(n, middle)), [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    assert.equal(reconnectDelayMs(0, () => 0), 400);
    assert.equal(reconnectDelayMs(9, () => 0.999_999), Math.round(RECONNECT_MAX_MS * 1.2));
  });
});
