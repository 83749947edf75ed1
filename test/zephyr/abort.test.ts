// Cancelling a Zephyr run with execute(ds, { signal }) on each backend: no
// further shard starts, running shards stop (seen through the files they
// write), the run's spilled chunks are removed, and the promise rejects with
// the signal's reason.
import { after, afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJobContext, type JobContext } from "../../src/job/index.js";
import { execute, type ExecuteOptions } from "../../src/zephyr/index.js";
import { slowShards } from "../fixtures/abort/pipelines.js";
import { square } from "../fixtures/job/tasks.js";
import { useLocalCluster } from "../helpers/local-cluster.js";
import { eventually } from "../helpers/index.js";
import { stopsBeating } from "../helpers/heartbeats.js";

const isAbortError = (signal: AbortSignal) => (err: unknown) => err === signal.reason && (err as Error).name === "AbortError";

/** Names in `dir` that start with `prefix-`. */
function files(dir: string, prefix: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${prefix}-`));
}

/** Spilled chunk files of every run under `storagePath`. */
function chunkFiles(storagePath: string): string[] {
  if (!existsSync(storagePath)) return [];
  return readdirSync(storagePath, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".chunk"));
}

describe("execute with an AbortSignal", { timeout: 240_000 }, () => {
  let dir: string;
  let evidence: string;
  let storagePath: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fluster-zephyr-abort-"));
    evidence = join(dir, "evidence");
    mkdirSync(evidence);
    storagePath = join(dir, "storage");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Starts a 4-shard run with 2 shards at once, waits for 2 shards of its
   * second stage to beat (while stage 0's chunks are on disk), aborts it, and
   * checks what every backend promises.
   */
  async function abortMidRun(options: ExecuteOptions): Promise<string[]> {
    const abort = new AbortController();
    const run = execute(slowShards(evidence, 4), { maxParallelism: 2, spillThresholdBytes: 0, storagePath, ...options, signal: abort.signal });
    run.catch(() => undefined);
    await eventually(() => files(evidence, "beat").length === 2, { what: "two shards to beat", timeoutMs: 90_000 });
    assert.ok(chunkFiles(storagePath).length > 0, "stage 0's chunks are on disk while stage 1 runs");
    abort.abort();
    await assert.rejects(run, isAbortError(abort.signal));
    assert.deepEqual(existsSync(storagePath) ? readdirSync(storagePath) : [], [], "the run's intermediate data is gone");
    await stopsBeating(evidence, "every started shard to stop");
    const started = files(evidence, "start").map((f) => f.slice("start-".length)).sort();
    assert.equal(started.length, 2, "the shards waiting for a free slot never started, also after the abort");
    assert.deepEqual(existsSync(storagePath) ? readdirSync(storagePath) : [], [], "no shard wrote after the clean-up");
    return started;
  }

  test("an already-aborted signal starts nothing", async () => {
    const signal = AbortSignal.abort();
    await assert.rejects(execute(slowShards(evidence, 2), { backend: "sync", storagePath, signal }), isAbortError(signal));
    assert.deepEqual(readdirSync(evidence), []);
    assert.equal(existsSync(storagePath), false);
  });

  test("sync: the running shard sees its taskSignal abort; the run rejects and its chunks are removed", async () => {
    const started = await abortMidRun({ backend: "sync", maxParallelism: 2 });
    await eventually(() => files(evidence, "cancelled").length === started.length, { what: "the started shards to see their signal" });
    assert.deepEqual(files(evidence, "cancelled").map((f) => f.slice("cancelled-".length)).sort(), started);
  });

  test("threads: the running shards' threads are terminated; the run rejects and its chunks are removed", async () => {
    await abortMidRun({ backend: "threads" });
  });

  describe("cluster", () => {
    let ctx: JobContext | undefined;
    after(async () => {
      await ctx?.close({ timeoutSeconds: 1 });
    });
    const local = useLocalCluster({ workers: 1, workerCpu: 8, workerMemory: "8g" });

    test("the running shards are cancelled on their pool workers; the context stays usable", async () => {
      ctx = createJobContext("cluster", { cluster: local.cluster, maxWorkers: 2, workerResources: { cpu: 1, memory: "256m" } });
      const started = await abortMidRun({ backend: "cluster", context: ctx });
      await eventually(() => files(evidence, "cancelled").length === started.length, { what: "the started shards to see their signal on the workers", timeoutMs: 15_000 });
      assert.deepEqual(files(evidence, "cancelled").map((f) => f.slice("cancelled-".length)).sort(), started);
      assert.equal(await ctx.get(ctx.run(square, 3)), 9);
    });
  });
});
