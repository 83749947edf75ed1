// WorkerPool on a real LocalCluster: tasks run in other processes, spread
// over workers, errors come back, and a worker SIGKILLed mid-task loses nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WorkerPool } from "../../src/pool/worker-pool.js";
import { ActorError } from "../../src/actor/errors.js";
import { FlusterError, ValidationError } from "../../src/core/errors.js";
import { boom, pausedSquare, slowSquare, square } from "../fixtures/pool/tasks.js";
import { useLocalCluster } from "../helpers/local-cluster.js";

describe("WorkerPool", { timeout: 180_000 }, () => {
  let pool: WorkerPool;
  // Registered before the cluster's after() hook, so it runs first: the pool's workers are jobs on the cluster.
  after(async () => {
    await pool?.shutdown();
  });
  const local = useLocalCluster({ workers: 2, workerCpu: 4 });
  before(async () => {
    pool = new WorkerPool(local.cluster, { numWorkers: 2, resources: { cpu: 1, memory: "256m" } });
    await pool.waitForWorkers(2, { timeoutSeconds: 60 });
  });

  test("submit runs a task in another process", async () => {
    const r: number = await pool.submit(square, 7);
    assert.equal(r, 49);
  });

  test("map runs every item, in order, spread over the workers", async () => {
    const results = await Promise.all(pool.map(pausedSquare, Array.from({ length: 20 }, (_, i) => i)));
    assert.deepEqual(results.map((r) => r.value), Array.from({ length: 20 }, (_, i) => i * i));
    const pids = new Set(results.map((r) => r.pid));
    assert.equal(pids.size, 2, "both workers ran tasks");
    assert.ok(!pids.has(process.pid), "tasks ran outside the test process");
  });

  test("a task that throws rejects with the remote error; the worker stays usable", async () => {
    await assert.rejects(pool.submit(boom, "bad token"), (err: unknown) => {
      assert.ok(err instanceof ActorError);
      assert.equal(err.remoteName, "SyntaxError");
      assert.equal(err.message, "bad token");
      assert.ok(err.cause instanceof SyntaxError);
      return true;
    });
    const mixed = await Promise.allSettled([pool.submit(square, 2), pool.submit(boom, "x"), pool.submit(square, 3)]);
    assert.deepEqual(mixed.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    assert.equal(await pool.submit(square, 9), 81);
  });

  test("a worker SIGKILLed mid-task: every submitted task still resolves", async () => {
    const pids = [...new Set((await Promise.all(pool.map(pausedSquare, [1, 2, 3, 4]))).map((r) => r.pid))];
    assert.equal(pids.length, 2);
    const victim = pids[0] as number;
    const rerunBefore = pool.stats.rerun;
    // Workers run many tasks at once, so every task is long enough to be still
    // running on the victim when it is killed.
    const tasks = Array.from({ length: 16 }, (_, i) => pool.submit(slowSquare, i, 1_500));
    await new Promise((r) => setTimeout(r, 400));
    process.kill(victim, "SIGKILL");
    const results = await Promise.all(tasks);
    assert.deepEqual(results.map((r) => r.value), Array.from({ length: 16 }, (_, i) => i * i));
    assert.ok(pool.stats.rerun > rerunBefore, "the killed worker's unfinished tasks were sent again");
    const byVictim = results.filter((r) => r.pid === victim).length;
    assert.equal(byVictim, 0, "no task finished on the killed worker; its tasks finished elsewhere");
  });

  test("bad input is refused clearly", async () => {
    assert.throws(() => new WorkerPool(local.cluster, { numWorkers: 0 }), ValidationError);
    const notRemote = ((x: number) => x) as unknown as typeof square;
    await assert.rejects(pool.submit(notRemote, 1), /must be a remote function/);
  });

  test("after shutdown, submit is refused", async () => {
    const other = new WorkerPool(local.cluster, { numWorkers: 1, resources: { cpu: 0.5, memory: "128m" } });
    await other.waitForWorkers(1, { timeoutSeconds: 60 });
    assert.equal(await other.submit(square, 4), 16);
    await other.shutdown();
    await assert.rejects(other.submit(square, 1), (err: unknown) => err instanceof FlusterError && /shut down|stopped/.test(err.message));
    for (const id of await other.jobIds()) assert.equal((await local.cluster.poll(id)).status, "killed");
  });
});
