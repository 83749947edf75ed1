// Cancelling WorkerPool tasks with an AbortSignal on a real LocalCluster:
// queued tasks are never sent, running ones are cancelled on their worker
// (seen through the files the tasks write there), and promises reject with
// the signal's reason.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getEventListeners } from "node:events";
import { WorkerPool } from "../../src/pool/worker-pool.js";
import { ClusterResolver } from "../../src/actor/resolver.js";
import { ValidationError } from "../../src/core/errors.js";
import type { Cluster } from "../../src/cluster/client/cluster.js";
import type { TaskExecutor, TaskExecutorStats } from "../../src/pool/executor.js";
import { heartbeat, heartbeatOf, stubborn } from "../fixtures/abort/tasks.js";
import { square } from "../fixtures/pool/tasks.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { eventually } from "../helpers/index.js";
import { stopsBeating } from "../helpers/heartbeats.js";

/** Files in `dir` whose names start with `prefix`. */
function files(dir: string, prefix: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${prefix}-`));
}

/** Sum of the executors' counts over the pool's workers. */
async function workerStats(local: { cluster: Cluster }, pool: WorkerPool): Promise<TaskExecutorStats> {
  const results = await new ClusterResolver(local.cluster).lookup<TaskExecutor>(pool.name).broadcast().stats();
  const sum: TaskExecutorStats = { started: 0, succeeded: 0, failed: 0, cancelled: 0, running: 0 };
  for (const r of results) {
    assert.equal(r.status, "fulfilled");
    if (r.status !== "fulfilled") continue;
    for (const key of Object.keys(sum) as Array<keyof TaskExecutorStats>) sum[key] += r.value[key];
  }
  return sum;
}

describe("WorkerPool cancellation", { timeout: 180_000 }, () => {
  const pools: WorkerPool[] = [];
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.shutdown()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const local = useLocalCluster({ workers: 2, workerCpu: 4 });
  let pool: WorkerPool;
  before(async () => {
    pool = new WorkerPool(local.cluster, { numWorkers: 2, resources: { cpu: 1, memory: "256m" } });
    pools.push(pool);
    await pool.waitForWorkers(2, { timeoutSeconds: 60 });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "fluster-pool-abort-"));
    dirs.push(dir);
    return dir;
  };

  test("aborting a map cancels its running tasks on the workers and never starts the queued ones", async () => {
    const dir = tempDir();
    const before = await workerStats(local, pool);
    const abort = new AbortController();
    const items = Array.from({ length: 24 }, (_, i): [string, number] => [dir, i]);
    const promises = pool.map(heartbeatOf, items, { signal: abort.signal });
    const all = Promise.all(promises);
    assert.equal(getEventListeners(abort.signal, "abort").length, 1, "one listener for the whole map");
    // Batches run their tasks one after another, so a few run and the rest wait (queued here or in a batch).
    await eventually(() => files(dir, "start").length >= 2 && files(dir, "beat").length >= 2, { what: "tasks to start beating", timeoutMs: 30_000 });
    abort.abort();
    await assert.rejects(all, (err: unknown) => err instanceof Error && err.name === "AbortError");
    const settled = await Promise.allSettled(promises);
    for (const s of settled) {
      assert.equal(s.status, "rejected");
      if (s.status === "rejected") assert.equal(s.reason, abort.signal.reason, "every task rejects with the signal's reason");
    }
    // The cancel message may still be on its way when the promises reject: wait until nothing runs on the workers.
    await eventually(async () => (await workerStats(local, pool)).running === 0, { what: "the workers to have no task running", timeoutMs: 15_000 });
    const started = files(dir, "start").map((f) => f.slice("start-".length)).sort();
    // Every task that began noticed its signal on its worker.
    assert.deepEqual(files(dir, "cancelled").map((f) => f.slice("cancelled-".length)).sort(), started, "every task that began wrote its cancelled marker");
    assert.ok(started.length < items.length, `only some tasks began (${started.length} of ${items.length})`);
    // The heartbeats stopped: their files no longer grow, and no other task began meanwhile.
    await stopsBeating(dir);
    assert.equal(files(dir, "start").length, started.length, "no queued task began after the abort");
    // The workers count what they began and cancelled; what was sent but not begun is cancelled there unrun.
    const after = await workerStats(local, pool);
    assert.equal(after.started - before.started, started.length);
    assert.equal(after.succeeded - before.succeeded, 0);
    assert.ok(after.cancelled - before.cancelled >= started.length);
    assert.equal(pool.stats.queued, 0, "nothing left queued in the pool");
    // The pool is usable afterwards.
    assert.equal(await pool.submit(square, 6), 36);
  });

  test("a running task that ignores its signal finishes on its worker, but its result is dropped and counted cancelled", async () => {
    const dir = tempDir();
    const before = await workerStats(local, pool);
    const abort = new AbortController();
    const reason = new Error("changed my mind");
    const promise = pool.withOptions({ signal: abort.signal }).submit(stubborn, dir, 0, 600);
    await eventually(() => files(dir, "start").length === 1, { what: "the task to start", timeoutMs: 30_000 });
    abort.abort(reason);
    await assert.rejects(promise, (err: unknown) => err === reason);
    await eventually(() => files(dir, "done").length === 1, { what: "the task to run to its end", timeoutMs: 15_000 });
    await eventually(
      async () => {
        const s = await workerStats(local, pool);
        return s.cancelled - before.cancelled === 1 && s.running === 0;
      },
      { what: "the worker to count the task cancelled" },
    );
    const after = await workerStats(local, pool);
    assert.equal(after.succeeded - before.succeeded, 0, "its result was not counted as a success");
  });

  test("an already-aborted signal rejects at once and sends nothing", async () => {
    const dir = tempDir();
    const submitted = pool.stats.submitted;
    const signal = AbortSignal.abort();
    const promises = pool.map(heartbeatOf, [[dir, 0] as [string, number], [dir, 1] as [string, number]], { signal });
    const one = pool.withOptions({ signal }).submit(heartbeat, dir, 2);
    for (const p of [...promises, one]) await assert.rejects(p, (err: unknown) => err === signal.reason && (err as Error).name === "AbortError");
    assert.equal(pool.stats.submitted, submitted, "nothing was submitted");
    assert.deepEqual(readdirSync(dir), [], "no task began");
  });

  test("a signal that never aborts leaves no listener behind once its tasks are done", async () => {
    const abort = new AbortController();
    const results = await Promise.all(pool.map(square, [1, 2, 3], { signal: abort.signal }));
    assert.deepEqual(results, [1, 4, 9]);
    assert.equal(await pool.withOptions({ signal: abort.signal }).submit(square, 5), 25);
    assert.equal(getEventListeners(abort.signal, "abort").length, 0);
  });

  test("a signal that is not an AbortSignal is refused, naming the field", () => {
    assert.throws(() => pool.withOptions({ signal: "stop" as unknown as AbortSignal }), (err: unknown) => err instanceof ValidationError && err.field === "options.signal");
    assert.throws(() => pool.map(square, [1], { signal: {} as AbortSignal }), ValidationError);
  });
});
