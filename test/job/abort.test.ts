// Cancelling job-context tasks with ctx.withOptions({ signal }), and stopping
// get/wait with a signal, on every context: sync (the task's taskSignal
// aborts), threads (the thread is terminated, a queued task never starts)
// and cluster (a pool task is cancelled on its worker; a task job is killed).
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { getEventListeners } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ValidationError } from "../../src/core/errors.js";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { heartbeat } from "../fixtures/abort/tasks.js";
import { slowIdentity, square } from "../fixtures/job/tasks.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { eventually } from "../helpers/index.js";
import { stopsBeating } from "../helpers/heartbeats.js";

const isAbortError = (signal: AbortSignal) => (err: unknown) => err === signal.reason && (err as Error).name === "AbortError";

describe("JobContext cancellation", { timeout: 240_000 }, () => {
  let ctx: JobContext | undefined;
  let dir: string;
  let unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => process.on("unhandledRejection", onUnhandled));
  after(() => process.off("unhandledRejection", onUnhandled));
  beforeEach(() => {
    unhandled = [];
    dir = mkdtempSync(join(tmpdir(), "fluster-job-abort-"));
  });
  afterEach(async () => {
    await ctx?.close({ timeoutSeconds: 1 });
    ctx = undefined;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, [], "no unhandled rejection");
    rmSync(dir, { recursive: true, force: true });
  });

  test("sync: an aborted signal starts nothing; an aborting one aborts the task's taskSignal and rejects with the reason", async () => {
    ctx = createJobContext("sync");
    let ran = false;
    const aborted = AbortSignal.abort();
    // The sync context runs any function; the cast only satisfies run's remote-function type.
    const never = ctx.withOptions({ signal: aborted }).run((() => {
      ran = true;
    }) as unknown as typeof square, 1);
    await assert.rejects(async () => never, isAbortError(aborted));
    assert.equal(ran, false);
    const abort = new AbortController();
    const beating = ctx.withOptions({ signal: abort.signal }).run(heartbeat, dir, 0);
    await eventually(() => existsSync(join(dir, "beat-0")), { what: "the task to beat" });
    abort.abort();
    await assert.rejects(async () => beating, isAbortError(abort.signal));
    await eventually(() => existsSync(join(dir, "cancelled-0")), { what: "the task to see its signal" });
    await stopsBeating(dir);
    assert.equal(getEventListeners(abort.signal, "abort").length, 0);
  });

  test("threads: the running task's thread is terminated and a queued task never starts; the context stays usable", async () => {
    ctx = createJobContext("threads", { maxWorkers: 1 });
    const abort = new AbortController();
    const view = ctx.withOptions({ signal: abort.signal });
    const running = view.run(heartbeat, dir, 0);
    const queued = view.run(heartbeat, dir, 1);
    await eventually(() => existsSync(join(dir, "beat-0")), { what: "the first task to beat", timeoutMs: 30_000 });
    abort.abort();
    await assert.rejects(async () => running, isAbortError(abort.signal));
    await assert.rejects(async () => queued, isAbortError(abort.signal));
    await stopsBeating(dir);
    assert.equal(existsSync(join(dir, "start-1")), false, "the queued task never started");
    assert.equal(await ctx.get(ctx.run(square, 5)), 25);
    assert.equal(getEventListeners(abort.signal, "abort").length, 0);
  });

  test("get and wait: an aborted signal rejects at once, an aborting one stops the wait; the task runs on", async () => {
    ctx = createJobContext("sync");
    const future = ctx.run(slowIdentity, "value", 800);
    const aborted = AbortSignal.abort();
    await assert.rejects(ctx.get(future, { signal: aborted }), isAbortError(aborted));
    await assert.rejects(ctx.wait([future], { signal: aborted }), isAbortError(aborted));
    const abort = new AbortController();
    const getting = ctx.get([future, future], { signal: abort.signal });
    const waiting = ctx.wait([future], { signal: abort.signal });
    abort.abort();
    await assert.rejects(getting, isAbortError(abort.signal));
    await assert.rejects(waiting, isAbortError(abort.signal));
    assert.equal(await future, "value", "the task itself ran on");
    // A signal that never aborts is let go once the wait is over.
    const idle = new AbortController();
    assert.equal(await ctx.get(ctx.run(slowIdentity, "again", 10), { signal: idle.signal }), "again");
    const { done } = await ctx.wait([ctx.run(slowIdentity, 1, 10)], { signal: idle.signal });
    assert.equal(done.length, 1);
    assert.equal(getEventListeners(idle.signal, "abort").length, 0);
  });

  test("a signal that is not an AbortSignal is refused, naming the field", async () => {
    ctx = createJobContext("sync");
    assert.throws(() => ctx!.withOptions({ signal: 1 as unknown as AbortSignal }), (err: unknown) => err instanceof ValidationError && err.field === "options.signal");
    await assert.rejects(ctx.get(ctx.put(1), { signal: {} as AbortSignal }), ValidationError);
  });

  describe("cluster", () => {
    const local = useLocalCluster({ workers: 1, workerCpu: 8, workerMemory: "8g" });

    test("a pool task is cancelled on its worker: its taskSignal aborts there", async () => {
      ctx = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 1, workerResources: { cpu: 1, memory: "256m" } });
      const abort = new AbortController();
      const beating = ctx.withOptions({ signal: abort.signal }).run(heartbeat, dir, 0);
      await eventually(() => existsSync(join(dir, "beat-0")), { what: "the task to beat on its worker", timeoutMs: 90_000 });
      abort.abort();
      await assert.rejects(async () => beating, isAbortError(abort.signal));
      await eventually(() => existsSync(join(dir, "cancelled-0")), { what: "the task to see its signal on the worker", timeoutMs: 15_000 });
      await stopsBeating(dir);
    });

    test("a task with resources of its own has its job terminated: the job ends killed", async () => {
      ctx = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 1, workerResources: { cpu: 1, memory: "256m" } });
      const abort = new AbortController();
      const beating = ctx.withOptions({ resources: { cpu: 0.5, memory: "128m" }, signal: abort.signal }).run(heartbeat, dir, 1);
      await eventually(() => existsSync(join(dir, "beat-1")), { what: "the task's job to beat", timeoutMs: 90_000 });
      const [job] = await local.cluster.listJobs({ prefix: "task/heartbeat", states: ["running"] });
      assert.ok(job, "the task runs as a job of its own");
      abort.abort();
      await assert.rejects(async () => beating, isAbortError(abort.signal));
      await eventually(async () => (await local.cluster.poll(job.jobId)).status === "killed", { what: "the task's job to be killed", timeoutMs: 30_000 });
      await stopsBeating(dir);
    });
  });
});
