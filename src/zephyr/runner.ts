// Runs one shard of one stage: reads its input (source records, a file
// path, or the previous stage's chunks), streams record batches through the
// stage's fused operations and sends them where the stage says (chunks,
// partitions or an output file). The same code runs inline (sync), in a
// worker thread and in a cluster worker; the latter two rebuild the
// pipeline from its definition first.
import { randomUUID } from "node:crypto";
import { FlusterError, ValidationError } from "../core/errors.js";
import { remote, resolveRemote, type RemoteRef } from "../core/remote.js";
import { runWithTaskSignal, taskSignal } from "../core/task-signal.js";
import { encodeValue } from "../rpc/codec.js";
import { Dataset } from "./dataset.js";
import { LineWriter, formatShardPattern, readJsonl, readLines } from "./io.js";
import { ParquetFileWriter, readParquet } from "./parquet.js";
import { hashKey, keyId } from "./keys.js";
import { planStages, type Stage, type StageOp } from "./plan.js";
import { KeySampler, rangePartitioner, type KeySample, type RangeSpec } from "./range.js";
import { dedupeRecords, groupRecords, sortRecords } from "./shuffle.js";
import { defaultMemoryLimitBytes, type SpillStats, type SpillTarget } from "./spill.js";
import { ChunkWriter, readChunk, type ChunkRef } from "./storage.js";

/** Records moving through a stage, a batch at a time. */
type Batches = AsyncIterable<unknown[]>;

const BATCH = 1024;

/** A shard's input as the driver describes it. */
export type ShardInput =
  | { kind: "items"; items: unknown[] }
  | { kind: "file"; path: string }
  /** `range`: the key ranges of a range-partitioning stage (a global sort), picked by the driver. */
  | { kind: "chunks"; refs: ChunkRef[]; range?: RangeSpec };

/** What one shard of a stage produced. */
export type ShardOutput = { kind: "chunks"; refs: ChunkRef[] } | { kind: "partitions"; refs: ChunkRef[][] } | { kind: "file"; path: string };

export interface ShardResult {
  output: ShardOutput;
  /** Records the shard emitted. */
  records: number;
  /** Bytes it wrote: encoded chunks, or the output file's size on disk. */
  bytes: number;
  /** Sort keys sampled for a global sort's boundaries (a `sample` stage). */
  samples?: KeySample;
  /** Sorted runs its out-of-core operators wrote, when they spilled. */
  spilled?: SpillStats;
}

export interface ShardStorage {
  /** Directory for this stage's spilled chunks. */
  dir: string;
  spillThresholdBytes: number;
  /** The run's directory, which shards never create (see ChunkTarget.root). @default none */
  root?: string;
  /** Budget of the shard's groupBy, deduplicate and sortBy before they spill to storage. @default defaultMemoryLimitBytes(1) */
  memoryLimitBytes?: number;
}

/** Everything a worker needs to run a shard of a pipeline it rebuilds from its definition. */
export interface ShardTask {
  definition: { ref: RemoteRef; args: unknown[] };
  sourceShards: number;
  stage: number;
  shard: number;
  input: ShardInput;
  storage: ShardStorage;
}

// ------------------------------------------------------------------ running a stage

/**
 * Runs one shard. When `signal` aborts, the shard stops at its next batch
 * (throwing the signal's reason); the pipeline's own functions may stop
 * sooner by checking `taskSignal()`, which is `signal` while they run.
 */
export async function runShard(stage: Stage, shard: number, input: ShardInput, storage: ShardStorage, signal?: AbortSignal): Promise<ShardResult> {
  signal?.throwIfAborted();
  const spill: SpillTarget = {
    dir: storage.dir,
    ...(storage.root !== undefined ? { root: storage.root } : {}),
    memoryLimitBytes: storage.memoryLimitBytes ?? defaultMemoryLimitBytes(1),
    stats: { runs: 0, bytes: 0 },
  };
  let stream = untilAborted(readInput(stage, input, spill), signal);
  for (const op of stage.ops) stream = untilAborted(applyOp(op, stream, shard, spill), signal);
  const run = async () => {
    const result = await writeOutput(stage, shard, input, stream, storage);
    return spill.stats.runs > 0 ? { ...result, spilled: spill.stats } : result;
  };
  return signal ? runWithTaskSignal(signal, run) : run();
}

/** The batches of `input`, until `signal` aborts: then the next step throws its reason. */
function untilAborted(input: Batches, signal: AbortSignal | undefined): Batches {
  if (!signal) return input;
  return (async function* () {
    for await (const batch of input) {
      signal.throwIfAborted();
      yield batch;
    }
  })();
}

async function* batchesOf(records: readonly unknown[]): Batches {
  for (let i = 0; i < records.length; i += BATCH) yield records.slice(i, i + BATCH);
}

async function* concatChunks(refs: readonly ChunkRef[]): Batches {
  for (const ref of refs) yield* batchesOf(await readChunk(ref));
}

function readInput(stage: Stage, input: ShardInput, spill: SpillTarget): Batches {
  const from = stage.input;
  if (from.kind === "source") {
    if (input.kind === "items") return batchesOf(input.items);
    if (input.kind === "file") return batchesOf([input.path]);
    throw new FlusterError(`stage ${stage.index} reads its source but was given chunks`, "internal");
  }
  if (input.kind !== "chunks") throw new FlusterError(`stage ${stage.index} reads the previous stage but was given ${input.kind}`, "internal");
  switch (from.kind) {
    case "concat":
      return concatChunks(input.refs);
    case "group":
      return groupRecords(input.refs, from.key, from.reducer, spill);
    case "dedupe":
      return dedupeRecords(input.refs, from.key, spill);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as { then?: unknown }).then === "function";
}

/** `fn` over a batch; awaited only when some result is a promise. */
async function mapBatch(batch: readonly unknown[], fn: (record: unknown) => unknown): Promise<unknown[]> {
  const out = new Array<unknown>(batch.length);
  let async = false;
  for (let i = 0; i < batch.length; i++) {
    const value = fn(batch[i]);
    if (!async && isThenable(value)) async = true;
    out[i] = value;
  }
  return async ? Promise.all(out) : out;
}

function applyOp(op: StageOp, input: Batches, shard: number, spill: SpillTarget): Batches {
  switch (op.kind) {
    case "map":
      return (async function* () {
        for await (const batch of input) yield await mapBatch(batch, op.fn);
      })();
    case "filter":
      return (async function* () {
        for await (const batch of input) {
          const verdicts = await mapBatch(batch, op.fn);
          const kept = batch.filter((_, i) => verdicts[i]);
          if (kept.length > 0) yield kept;
        }
      })();
    case "flatMap":
      return (async function* () {
        for await (const batch of input) {
          const out: unknown[] = [];
          for (const record of batch) {
            let many = op.fn(record) as unknown;
            if (isThenable(many)) many = await many;
            if (many === null || typeof (many as Iterable<unknown>)?.[Symbol.iterator] !== "function") {
              throw new ValidationError("flatMap", `function must return an array or another iterable, got ${many === null ? "null" : typeof many}`);
            }
            for (const value of many as Iterable<unknown>) out.push(value);
          }
          if (out.length > 0) yield out;
        }
      })();
    case "loadJsonl":
    case "loadText":
    case "loadParquet":
      return (async function* () {
        for await (const batch of input) {
          for (const path of batch) {
            if (typeof path !== "string") throw new ValidationError(op.kind, `needs file paths (from Dataset.fromFiles), got ${typeof path}`);
            yield* op.kind === "loadJsonl" ? readJsonl(path) : op.kind === "loadText" ? readLines(path) : readParquet(path);
          }
        }
      })();
    case "mapShard":
      return (async function* () {
        async function* records() {
          for await (const batch of input) yield* batch;
        }
        let result = op.fn(records(), shard) as unknown;
        if (isThenable(result)) result = await result;
        let batch: unknown[] = [];
        for await (const value of result as AsyncIterable<unknown>) {
          batch.push(value);
          if (batch.length >= BATCH) {
            yield batch;
            batch = [];
          }
        }
        if (batch.length > 0) yield batch;
      })();
    case "sortBy":
      return sortRecords(input, op.key, op.descending, spill);
    case "take":
      return (async function* () {
        let left = op.n;
        if (left === 0) return;
        for await (const batch of input) {
          if (batch.length >= left) {
            yield batch.slice(0, left);
            return; // ends the upstream generators too (files close)
          }
          left -= batch.length;
          yield batch;
        }
      })();
  }
}

async function writeOutput(stage: Stage, shard: number, input: ShardInput, stream: Batches, storage: ShardStorage): Promise<ShardResult> {
  const output = stage.output;
  if (output.kind === "write" && output.format === "parquet") {
    const writer = await ParquetFileWriter.open(formatShardPattern(output.pattern, shard), output.parquet);
    try {
      for await (const batch of stream) await writer.write(batch);
      const done = await writer.close();
      return { output: { kind: "file", path: done.path }, records: done.rows, bytes: done.bytes };
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }
  if (output.kind === "write") {
    const writer = await LineWriter.open(formatShardPattern(output.pattern, shard));
    try {
      for await (const batch of stream) {
        await writer.write(output.format === "jsonl" ? batch.map((r) => JSON.stringify(r)) : batch.map(textLine));
      }
      const done = await writer.close();
      return { output: { kind: "file", path: done.path }, records: done.lines, bytes: done.bytes };
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }
  // A fresh prefix per attempt: a shard re-run after its worker was lost never meets the old files.
  const prefix = `shard-${String(shard).padStart(5, "0")}-${randomUUID().slice(0, 8)}`;
  const target = (part?: number) => ({
    dir: storage.dir,
    prefix: part === undefined ? prefix : `${prefix}-p${part}`,
    spillThresholdBytes: storage.spillThresholdBytes,
    ...(storage.root !== undefined ? { root: storage.root } : {}),
  });
  if (output.kind === "collect" || output.kind === "single" || output.kind === "sample") {
    const writer = new ChunkWriter(target());
    const sampler = output.kind === "sample" ? new KeySampler(output.key, shard) : undefined;
    for await (const batch of stream) {
      sampler?.add(batch);
      await writer.add(batch);
    }
    const refs = await writer.finish();
    return {
      output: output.kind === "single" ? { kind: "partitions", refs: [refs] } : { kind: "chunks", refs },
      records: writer.records,
      bytes: writer.bytes,
      ...(sampler ? { samples: sampler.sample } : {}),
    };
  }
  let rangeOf: ((record: unknown, position: number) => number) | undefined;
  if (output.kind === "range") {
    if (input.kind !== "chunks" || !input.range) throw new FlusterError(`stage ${stage.index} range-partitions but was given no key ranges`, "internal");
    const partition = rangePartitioner(input.range, output.descending);
    rangeOf = (record, position) => partition(output.key(record), position);
  }
  const writers = Array.from({ length: output.numShards }, (_, p) => new ChunkWriter(target(p)));
  const parts: unknown[][] = writers.map(() => []);
  let position = output.kind === "range" ? 0 : shard;
  for await (const batch of stream) {
    for (const record of batch) {
      const p = output.kind === "hash" ? hashKey(keyId(output.key(record))) % output.numShards : rangeOf ? rangeOf(record, position++) : position++ % output.numShards;
      (parts[p] as unknown[]).push(record);
    }
    for (let p = 0; p < writers.length; p++) {
      const part = parts[p] as unknown[];
      if (part.length > 0) {
        await (writers[p] as ChunkWriter).add(part);
        parts[p] = [];
      }
    }
  }
  const refs = await Promise.all(writers.map((w) => w.finish()));
  return {
    output: { kind: "partitions", refs },
    records: writers.reduce((n, w) => n + w.records, 0),
    bytes: writers.reduce((n, w) => n + w.bytes, 0),
  };
}

function textLine(record: unknown): string {
  if (typeof record !== "string") throw new ValidationError("writeText", `needs string records, got ${typeof record} (map them to strings first, or use writeJsonl)`);
  if (record.includes("\n")) throw new ValidationError("writeText", "records must not contain newlines (use writeJsonl)");
  return record;
}

// ------------------------------------------------------------------ in a worker

const plans = new Map<string, Promise<Stage[]>>();

/** The pipeline's stages, rebuilt from its definition once per process (and arguments). */
function stagesOf(task: ShardTask): Promise<Stage[]> {
  const key = `${task.definition.ref.module}#${task.definition.ref.name}#${task.sourceShards}#${Buffer.from(encodeValue(task.definition.args)).toString("base64")}`;
  let stages = plans.get(key);
  if (!stages) {
    stages = (async () => {
      // A definition whose module runs a pipeline as it loads is refused there (execute → refuseWhileImportingByReference).
      const build = (await resolveRemote(task.definition.ref)) as (...args: unknown[]) => unknown;
      const ds = build(...task.definition.args);
      // instanceof holds also for a Dataset of another copy of fluster (the definition's module may load its own).
      if (!(ds instanceof Dataset)) throw new ValidationError(`dataset ${task.definition.ref.name}`, "must return a Dataset");
      return planStages(ds, task.sourceShards);
    })();
    if (plans.size > 32) plans.clear();
    plans.set(key, stages);
    stages.catch(() => plans.delete(key));
  }
  return stages;
}

/**
 * The task the threads and cluster backends run: one shard of one stage. It
 * stops when its task is cancelled (on a pool worker its taskSignal aborts;
 * a thread is terminated).
 */
export const runShardTask = remote(import.meta.url, async function runShardTask(task: ShardTask): Promise<ShardResult> {
  const stages = await stagesOf(task);
  const stage = stages[task.stage];
  if (!stage) throw new FlusterError(`the rebuilt pipeline ${task.definition.ref.name} has ${stages.length} stages, not ${task.stage + 1}: does its definition build the same pipeline every time?`, "failed_precondition");
  return runShard(stage, task.shard, task.input, task.storage, taskSignal());
});
