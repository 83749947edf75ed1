// close() on a job context with tasks still in flight: it waits for them (up
// to its bound), then cancels the rest with a `cancelled` error, and never
// crashes the program (Piscina used to, on a future nobody awaited).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { FlusterError } from "../../src/core/errors.js";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { Counter, sleepFor, square } from "../fixtures/lifecycle/close-in-flight.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { cleanEnv, eventually, runNode } from "../helpers/index.js";

const PROGRAM = "test/fixtures/lifecycle/close-in-flight.ts";

for (const kind of ["threads", "sync"] as const) {
  test(`${kind}: the README snippet closes with a future never awaited, six rounds in one program, and a slow task is cancelled`, { timeout: 120_000 }, async () => {
    const result = await runNode(["--import", "tsx", PROGRAM, kind, "6"], { env: cleanEnv(), timeoutMs: 90_000, timeoutSignal: "SIGKILL" });
    assert.equal(result.code, 0, `the program crashed or hung:\n${result.stderr.slice(-3000)}`);
    for (let i = 0; i < 6; i++) assert.match(result.stdout, new RegExp(`round ${i}: \\[1,4,9\\] chained=1`), "close() waited for the chained task");
    assert.match(result.stdout, /cancel: rejected cancelled: task cancelled: the \w+ job context was closed and the task had not finished 0\.5s later/);
    assert.match(result.stdout, /after close: failed_precondition: cannot run a task: this \w+ job context is closed/);
    assert.match(result.stdout, /closed cleanly/);
    assert.doesNotMatch(result.stderr, /Unexpected message|Terminating worker thread|UnhandledPromiseRejection/);
  });
}

describe("cluster: close() waits for tasks in flight, then cancels", { timeout: 300_000 }, () => {
  let ctx: JobContext | undefined;
  after(async () => {
    await ctx?.close({ timeoutSeconds: 0 });
  });
  const local = useLocalCluster({ workers: 1, workerCpu: 8, workerMemory: "8g" });
  let unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => {
    unhandled = [];
    process.on("unhandledRejection", onUnhandled);
  });
  after(() => {
    process.off("unhandledRejection", onUnhandled);
  });

  test("a quick task left un-awaited settles with its result, a slow one rejects cancelled; nothing is unhandled", async () => {
    ctx = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 1, workerResources: { cpu: 1, memory: "256m" } });
    assert.equal(await ctx.run(square, 3), 9);
    const quick = ctx.run(square, ctx.run(square, 2));
    const slow = ctx.run(sleepFor, 60);
    await ctx.close({ timeoutSeconds: 3 });
    assert.equal(await quick, 16);
    await assert.rejects(async () => slow, (err: unknown) => err instanceof FlusterError && err.code === "cancelled" && /cluster job context was closed/.test(err.message));
    assert.throws(() => ctx!.run(square, 1), /job context is closed/);
    await assert.rejects(ctx.createActor(Counter, [0]), /job context is closed/);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  });

  test("a task with resources of its own is cancelled with the rest, and close() kills its job", async () => {
    ctx = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 1, workerResources: { cpu: 1, memory: "256m" } });
    const wide = ctx.withOptions({ resources: { cpu: 0.5, memory: "128m" } });
    const slow = wide.run(sleepFor, 60);
    let jobId: string | undefined;
    await eventually(
      async () => {
        jobId = (await local.cluster.listJobs({ prefix: "task/sleepFor", states: ["running"] }))[0]?.jobId;
        return jobId !== undefined;
      },
      { what: "the task's own job to run", timeoutMs: 60_000 },
    );
    await ctx.close({ timeoutSeconds: 0.5 });
    await assert.rejects(async () => slow, (err: unknown) => err instanceof FlusterError && err.code === "cancelled");
    assert.equal((await local.cluster.poll(jobId ?? "")).status, "killed", "close() terminated the task's job");
    assert.throws(() => wide.run(square, 1), /job context is closed/);
  });
});
