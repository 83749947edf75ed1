// execute(): runs a pipeline stage by stage on a backend. The driver (this
// process) cuts the source into shards, runs every shard of a stage as a
// task (inline, on worker threads, or on a cluster WorkerPool), hands each
// next-stage shard its partitions' chunk references, and finally collects
// the records (or the paths written). A shard that fails with a transient
// error runs again (retries.ts). Spilled chunks live under a run directory
// that is removed when the run ends; a run given a runId records its
// progress there too (manifest.ts) and keeps it after a failure, so that it
// can be resumed.
import { availableParallelism } from "node:os";
import type { Cluster } from "../cluster/client/cluster.js";
import { ValidationError } from "../core/errors.js";
import { parseByteSize } from "../core/quantity.js";
import { abortable, checkSignal } from "../core/abort.js";
import type { BackoffOptions } from "../core/backoff.js";
import { refuseWhileImportingByReference } from "../core/remote.js";
import type { ResourceConfigInit } from "../core/resources.js";
import { createJobContext, type JobContext } from "../job/index.js";
import type { Dataset } from "./dataset.js";
import { expandGlob } from "./io.js";
import { RunManifest, describePlan, validateRunId } from "./manifest.js";
import { listShardCount, planStages, type Stage } from "./plan.js";
import { rangeSpecs, type KeySample } from "./range.js";
import { DEFAULT_RETRY_BACKOFF, runWithRetries, type ShardAttempt, type ShardRetry, type ShardRetryPolicy } from "./retries.js";
import { runShard, runShardTask, type ShardInput, type ShardResult } from "./runner.js";
import { defaultMemoryLimitBytes } from "./spill.js";
import { StorageManager, readChunk, type ChunkRef } from "./storage.js";

export type Backend = "sync" | "threads" | "cluster";

export interface ExecuteOptions {
  /**
   * Where shards run. @default `cluster` inside a Fluster job or when
   * FLUSTER_CLUSTER_ADDRESS is set, else `threads`; `sync` for a pipeline
   * not built by a `dataset()` definition (its functions cannot travel).
   */
  backend?: Backend;
  /** Shards running at once (threads, or pool workers on a cluster). @default the machine's cores (sync: 1) */
  maxParallelism?: number;
  /** Chunks whose encoding reaches this size are written to storage; smaller ones travel inline. @default 1 MiB */
  spillThresholdBytes?: number;
  /**
   * Each shard's budget for the records its groupBy, deduplicate and sortBy
   * hold: past it they spill to storage (under `storagePath`; groupBy as
   * hash partitions, the others as sorted runs to merge), so a partition
   * larger than memory completes. Bytes, or
   * a size such as `"512m"`. It is an estimate (encoded sizes times a
   * factor), and one group is always held whole for its reducer.
   * @default half a shard's share of memory: cluster: half of
   * `workerResources.memory`; threads and sync: half of
   * min(machine memory, V8 heap limit) / maxParallelism
   */
  memoryLimitBytes?: number | string;
  /**
   * Where spilled chunks go: a directory, or an object prefix (`s3://bucket/tmp`,
   * `gs://bucket/tmp`); on a cluster of several machines it must be shared by
   * them, which an object store is. @default `<tmpdir>/fluster-zephyr`
   */
  storagePath?: string;
  /** Run on this job context instead of making one (and leave it open). */
  context?: JobContext;
  /** cluster backend: the cluster. @default currentCluster() */
  cluster?: Cluster;
  /** cluster backend: resources of each pool worker. @default { cpu: 1, memory: "1g" } */
  workerResources?: ResourceConfigInit;
  /**
   * Called in the driver as each shard finishes (a throw fails the run):
   * how a caller shows progress. Zephyr itself never draws.
   */
  onShard?: (event: ShardProgress) => void;
  /**
   * Cancels the run when it aborts: no further shard is started, running
   * shards are cancelled on their backend (sync: they stop at their next
   * batch; threads: their threads are terminated; cluster: their pool
   * tasks are cancelled, and a shard's functions see `taskSignal()` abort),
   * the run's spilled chunks are removed, and the promise rejects with
   * `signal.reason`. An already-aborted signal starts nothing. Files a
   * writeJsonl/writeText/writeParquet stage finished before the abort stay.
   * A run with a `runId` keeps its run directory, to be resumed. @default none
   */
  signal?: AbortSignal;
  /**
   * How many times a shard runs again after an attempt that failed with a
   * retryable error (see `isRetryableError`; `retryOn` may decide instead).
   * 0 runs each shard once. Once retried, a shard that still fails fails the
   * run with "shard S of stage T failed after N attempts: …", the last
   * error as its cause. @default 3
   */
  maxShardRetries?: number;
  /** Waits between a shard's attempts. @default { initialMs: 200 } (then doubling, at most 5 s, 20% jitter) */
  retryBackoff?: BackoffOptions;
  /**
   * Called in the driver when a shard's attempt fails (`attempt` counts from
   * 1): true retries it, false fails the run, undefined leaves it to
   * `isRetryableError`. Not called once the run's signal aborted, nor after
   * the last attempt. @default none
   */
  retryOn?: (error: unknown, info: ShardAttempt) => boolean | undefined;
  /** Called in the driver before a failed shard is run again: how a caller shows retries. @default none */
  onRetry?: (event: ShardRetry) => void;
  /**
   * Names the run: its directory is `<storagePath>/run-<runId>`, and it
   * records there its plan and each finished shard's result, so that a run
   * that fails or is killed can be continued with `resume: true`. The
   * directory is removed when the run succeeds and kept when it fails.
   * 1 to 64 letters, digits, ".", "_" or "-". @default a random id; nothing is recorded
   */
  runId?: string;
  /**
   * Continues the run `runId` from its recorded state: shards it finished are
   * not run again (`onShard` reports them with `resumed: true`). Its plan
   * (stages, shard counts, the source's items or files and sizes, the
   * definition's arguments) must match this pipeline's, else the run fails
   * with `failed_precondition` naming the difference. With no state there,
   * the run simply starts. Without `resume`, state left under `runId` is an
   * error (`already_exists`). @default false
   */
  resume?: boolean;
}

/** One finished shard, as `onShard` sees it. */
export interface ShardProgress {
  /** The stage (0-based) and how many the plan has. */
  stage: number;
  stages: number;
  /** The shard (0-based) within the stage. */
  shard: number;
  /** Shards of this stage finished so far, this one included, and in all. */
  shardsDone: number;
  shardsTotal: number;
  /** Records the shard emitted, and the bytes it wrote (chunks, or the output file). */
  records: number;
  bytes: number;
  /** The file the shard wrote, when the stage ends in writeJsonl, writeText or writeParquet. */
  path?: string;
  /** True for a shard that a resumed run did not run again: its recorded result was used. */
  resumed?: boolean;
  /** Files the shard's groupBy/deduplicate/sortBy spilled past `memoryLimitBytes` (groupBy's hash partitions, sorted runs and merge passes' runs), and their bytes; 0 when it fit. */
  spilledRuns: number;
  spilledBytes: number;
}

const DEFAULT_SPILL_THRESHOLD = 1 << 20;

function chooseBackend(ds: Dataset<unknown>, requested: Backend | undefined): Backend {
  if (requested !== undefined) {
    if (requested !== "sync" && requested !== "threads" && requested !== "cluster") {
      throw new ValidationError("backend", `must be "sync", "threads" or "cluster", got ${JSON.stringify(requested)}`);
    }
    if (requested !== "sync" && !ds.origin) {
      throw new ValidationError(
        "backend",
        `"${requested}" runs shards in other threads or processes, which rebuild the pipeline from its definition; this pipeline has none. ` +
          "Build it in a module-level definition — `export const myPipeline = dataset(import.meta.url, function myPipeline(input: string) { return Dataset.fromFiles(input)... })` — " +
          'and execute `myPipeline(input)`; or use backend: "sync"',
      );
    }
    return requested;
  }
  if (!ds.origin) return "sync";
  return process.env.FLUSTER_JOB_ID || process.env.FLUSTER_CLUSTER_ADDRESS ? "cluster" : "threads";
}

/**
 * Runs `task(0..count-1)` with at most `limit` at once; results in input
 * order. After a failure no new task starts, and the first error is thrown
 * once the running ones have settled (so nothing writes after clean-up).
 * Once `signal` aborts no new task starts either, and its reason is thrown.
 */
async function runLimited<T>(count: number, limit: number, task: (i: number) => Promise<T>, signal: AbortSignal | undefined): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count && !failure && !signal?.aborted) {
      const i = next++;
      try {
        results[i] = await task(i);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(lanes);
  signal?.throwIfAborted();
  if (failure) throw failure.error;
  return results;
}

/**
 * Runs the pipeline and returns its records in shard order — or, for a
 * pipeline ending in `writeJsonl`/`writeText`/`writeParquet`, the paths of the files
 * written. `options.signal` cancels the run (see {@link ExecuteOptions.signal}).
 */
export async function execute<T>(ds: Dataset<T>, options: ExecuteOptions = {}): Promise<T[]> {
  // A module that runs a pipeline as it loads would run it again in every worker that imports it.
  refuseWhileImportingByReference("execute() ran");
  const pipeline = ds as Dataset<unknown>;
  if (options.context && options.backend && options.backend !== options.context.kind) {
    throw new ValidationError("backend", `is "${options.backend}" but the context given is "${options.context.kind}"`);
  }
  const backend = chooseBackend(pipeline, options.backend ?? options.context?.kind);
  const maxParallelism = options.maxParallelism ?? (backend === "sync" ? 1 : availableParallelism());
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1) throw new ValidationError("maxParallelism", `must be a whole number ≥ 1, got ${String(maxParallelism)}`);
  const spillThresholdBytes = options.spillThresholdBytes ?? DEFAULT_SPILL_THRESHOLD;
  if (typeof spillThresholdBytes !== "number" || !(spillThresholdBytes >= 0)) {
    throw new ValidationError("spillThresholdBytes", `must be a number of bytes ≥ 0, got ${String(spillThresholdBytes)}`);
  }
  const memoryLimitBytes = memoryLimitFor(backend, maxParallelism, options);
  const signal = checkSignal(options.signal, "signal");
  const maxShardRetries = options.maxShardRetries ?? 3;
  if (!Number.isInteger(maxShardRetries) || maxShardRetries < 0) throw new ValidationError("maxShardRetries", `must be a whole number ≥ 0, got ${String(maxShardRetries)}`);
  const runId = options.runId === undefined ? undefined : validateRunId(options.runId);
  if (options.resume !== undefined && typeof options.resume !== "boolean") throw new ValidationError("resume", `must be true or false, got ${JSON.stringify(options.resume)}`);
  if (options.resume && runId === undefined) throw new ValidationError("resume", "needs the runId of the run to continue");
  const retryPolicy: ShardRetryPolicy = {
    maxRetries: maxShardRetries,
    backoff: { ...DEFAULT_RETRY_BACKOFF, ...options.retryBackoff },
    retryOn: options.retryOn,
    onRetry: options.onRetry,
    signal,
  };
  signal?.throwIfAborted();

  // Shards of the source: slices of a list, or one file each.
  const source = pipeline.source;
  let sourceInputs: ShardInput[];
  if (source.kind === "list") {
    const n = listShardCount(source.items.length, source.numShards);
    const size = Math.ceil(source.items.length / n);
    sourceInputs = Array.from({ length: n }, (_, i) => ({ kind: "items", items: source.items.slice(i * size, (i + 1) * size) }));
  } else {
    sourceInputs = (await expandGlob(source.pattern)).map((path) => ({ kind: "file", path }));
  }
  const stages = planStages(pipeline, sourceInputs.length);
  signal?.throwIfAborted();

  const storage = new StorageManager(options.storagePath, runId);
  const ownContext = !options.context && backend !== "sync";
  // Shards of a sync run are called inline, with the pipeline's own functions.
  const ctx =
    backend === "sync"
      ? undefined
      : (options.context ??
        createJobContext(backend, {
          maxWorkers: Math.min(maxParallelism, Math.max(...stages.map((s) => s.numShards))),
          ...(options.cluster ? { cluster: options.cluster } : {}),
          workerResources: options.workerResources ?? { cpu: 1, memory: "1g" },
        }));
  let succeeded = false;
  try {
    await storage.create();
    // A named run's directory may hold an earlier attempt's state: it decides whether the run may start, and what it skips.
    const manifest = runId === undefined ? undefined : await RunManifest.open(storage.runDir, runId, await describePlan(pipeline, stages, sourceInputs), options.resume === true);
    // Cancels every shard the run starts, wherever it runs.
    const shards = ctx?.withOptions(signal ? { signal } : {});
    let inputs = sourceInputs;
    let results: ShardResult[] = [];
    for (const stage of stages) {
      let done = 0;
      const shardStorage = { dir: storage.stageDir(stage.index), spillThresholdBytes, root: storage.runDir, memoryLimitBytes };
      const finished = await manifest?.finishedShards(stage, storage.stageDir(stage.index));
      const attempt = async (shard: number): Promise<ShardResult> => {
        const input = inputs[shard] as ShardInput;
        return ctx === undefined || shards === undefined
          ? await abortable(runShard(stage, shard, input, shardStorage, signal), signal)
          : await ctx.get(
              shards.run(runShardTask, {
                definition: { ref: pipeline.origin!.ref, args: [...pipeline.origin!.args] },
                sourceShards: sourceInputs.length,
                stage: stage.index,
                shard,
                input,
                storage: shardStorage,
              }),
              signal ? { signal } : {},
            );
      };
      const run = async (shard: number): Promise<ShardResult> => {
        const recorded = finished?.get(shard);
        const result = recorded ?? (await runWithRetries(stage.index, shard, () => attempt(shard), retryPolicy));
        if (!recorded) await manifest?.record(stage.index, shard, result);
        done += 1;
        options.onShard?.({
          stage: stage.index,
          stages: stages.length,
          shard,
          shardsDone: done,
          shardsTotal: stage.numShards,
          records: result.records,
          bytes: result.bytes,
          ...(result.output.kind === "file" ? { path: result.output.path } : {}),
          ...(recorded ? { resumed: true } : {}),
          spilledRuns: result.spilled?.runs ?? 0,
          spilledBytes: result.spilled?.bytes ?? 0,
        });
        return result;
      };
      results = await runLimited(stage.numShards, maxParallelism, run, signal);
      inputs = nextInputs(stages[stage.index + 1], results);
    }
    const records = (await abortable(collect(results), signal)) as T[];
    succeeded = true;
    return records;
  } finally {
    if (ownContext) await ctx?.close();
    // A named run's directory outlives a failure: it is what `resume` continues from.
    if (runId === undefined || succeeded) await storage.cleanup();
  }
}

/** The budget each shard gets (see ExecuteOptions.memoryLimitBytes). */
function memoryLimitFor(backend: Backend, maxParallelism: number, options: ExecuteOptions): number {
  if (options.memoryLimitBytes !== undefined) {
    const bytes = parseByteSize(options.memoryLimitBytes, "memoryLimitBytes");
    if (bytes <= 0) throw new ValidationError("memoryLimitBytes", `must be more than 0 bytes, got ${String(options.memoryLimitBytes)}`);
    return bytes;
  }
  if (backend !== "cluster") return defaultMemoryLimitBytes(maxParallelism);
  return defaultMemoryLimitBytes(1, parseByteSize(options.workerResources?.memory ?? "1g", "workerResources.memory"));
}

/**
 * The next stage's shard inputs: partition p of every shard, in shard order;
 * after a sampling stage (a global sort), shard i's own chunks with the key
 * ranges picked from every shard's sample.
 */
function nextInputs(next: Stage | undefined, results: readonly ShardResult[]): ShardInput[] {
  if (!next) return [];
  if (next.output.kind === "range") {
    const { descending, numShards } = next.output;
    const specs = rangeSpecs(results.map((r): KeySample => r.samples ?? { keys: [], records: r.records }), numShards, descending);
    return results.map((r, i) => ({ kind: "chunks" as const, refs: r.output.kind === "chunks" ? r.output.refs : [], range: specs[i] as (typeof specs)[number] }));
  }
  return Array.from({ length: next.numShards }, (_, p) => ({
    kind: "chunks" as const,
    refs: results.flatMap((r) => (r.output.kind === "partitions" ? (r.output.refs[p] ?? []) : [])),
  }));
}

async function collect(results: readonly ShardResult[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const result of results) {
    if (result.output.kind === "file") out.push(result.output.path);
    else if (result.output.kind === "chunks") for (const ref of result.output.refs as ChunkRef[]) for (const r of await readChunk(ref)) out.push(r);
  }
  return out;
}
