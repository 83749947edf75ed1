// The planner: cuts a pipeline into stages. Per-record and per-shard
// operations fuse into the stage they follow; a shuffle (groupBy,
// deduplicate, reshard, a global sort) and a global take end a stage, whose shards then
// hand their records to the next stage's shards through storage.
import type { Dataset, Key, Op, SortKey, WriteOp } from "./dataset.js";

/** How a stage's shard starts: from the source, or from the previous stage's partitions. */
export type StageInput =
  | { kind: "source" }
  /** The partition's chunks from every upstream shard, in shard order. */
  | { kind: "concat" }
  /** As concat, then one record per key: `reducer(key, records)`. */
  | { kind: "group"; key: (record: unknown) => Key; reducer: (key: unknown, records: unknown[]) => unknown }
  /** As concat, keeping each key's first record. */
  | { kind: "dedupe"; key: (record: unknown) => Key };

/** Where a stage's shard sends its records. */
export type StageOutput =
  | { kind: "collect" }
  | WriteOp
  | { kind: "hash"; key: (record: unknown) => Key; numShards: number }
  | { kind: "roundRobin"; numShards: number }
  | { kind: "single" }
  /** As collect, reporting a sample of sort keys; the next stage's shard i reads shard i's chunks. */
  | { kind: "sample"; key: (record: unknown) => SortKey }
  /** Range-partitioned by sort key, with boundaries the driver picks from the samples (range.ts). */
  | { kind: "range"; key: (record: unknown) => SortKey; descending: boolean; numShards: number };

/** Operations run inside a stage, on a stream of record batches. */
export type StageOp = Exclude<Op, { kind: "reshard" | "groupBy" | "deduplicate" | "write" }>;

export interface Stage {
  readonly index: number;
  readonly numShards: number;
  readonly input: StageInput;
  readonly ops: readonly StageOp[];
  readonly output: StageOutput;
}

/** The Dataset method that writes `format`, for messages and explain(). */
export function writerName(format: WriteOp["format"]): string {
  return format === "jsonl" ? "writeJsonl" : format === "text" ? "writeText" : "writeParquet";
}

/** The default shard count of `fromList`. */
export function listShardCount(items: number, requested: number | undefined): number {
  return requested ?? Math.max(1, Math.min(items, 16));
}

/** Stages for `ds` when its source has `sourceShards` shards. */
export function planStages(ds: Dataset<unknown>, sourceShards: number): Stage[] {
  const stages: Stage[] = [];
  let numShards = sourceShards;
  let input: StageInput = { kind: "source" };
  let ops: StageOp[] = [];
  const close = (output: StageOutput) => {
    stages.push({ index: stages.length, numShards, input, ops, output });
    ops = [];
  };
  for (const op of ds.ops) {
    switch (op.kind) {
      case "reshard":
        close({ kind: "roundRobin", numShards: op.numShards });
        numShards = op.numShards;
        input = { kind: "concat" };
        break;
      case "groupBy": {
        const n = op.numShards ?? numShards;
        close({ kind: "hash", key: op.key, numShards: n });
        numShards = n;
        input = { kind: "group", key: op.key, reducer: op.reducer };
        break;
      }
      case "deduplicate": {
        const n = op.numShards ?? numShards;
        close({ kind: "hash", key: op.key, numShards: n });
        numShards = n;
        input = { kind: "dedupe", key: op.key };
        break;
      }
      case "sortBy": {
        if (!op.global) {
          ops.push(op);
          break;
        }
        // Sample keys, then range-partition the same shards' records, then sort each range.
        close({ kind: "sample", key: op.key });
        input = { kind: "concat" };
        close({ kind: "range", key: op.key, descending: op.descending, numShards: op.numShards ?? numShards });
        numShards = op.numShards ?? numShards;
        input = { kind: "concat" };
        ops.push({ ...op, global: false });
        break;
      }
      case "take":
        // Each shard stops after n; then one shard takes the first n of their concatenation.
        ops.push(op);
        if (numShards > 1) {
          close({ kind: "single" });
          numShards = 1;
          input = { kind: "concat" };
          ops.push(op);
        }
        break;
      case "write":
        close(op);
        return stages;
      default:
        ops.push(op);
    }
  }
  close({ kind: "collect" });
  return stages;
}

function describeInput(stage: Stage, ds: Dataset<unknown>): string {
  switch (stage.input.kind) {
    case "source":
      return ds.source.kind === "files" ? `files ${ds.source.pattern}` : `list of ${ds.source.items.length} records`;
    case "concat":
      return `stage ${stage.index - 1}`;
    case "group":
      return `stage ${stage.index - 1}, grouped by key`;
    case "dedupe":
      return `stage ${stage.index - 1}, first of each key`;
  }
}

function describeOutput(output: StageOutput): string {
  switch (output.kind) {
    case "collect":
      return "collect";
    case "write":
      return `${writerName(output.format)} ${output.pattern}`;
    case "hash":
      return `hash-partition into ${output.numShards}`;
    case "roundRobin":
      return `round-robin into ${output.numShards}`;
    case "single":
      return "gather into 1";
    case "sample":
      return "sample sort keys";
    case "range":
      return `range-partition into ${output.numShards}${output.descending ? " (descending)" : ""}`;
  }
}

/** One line per stage: its shards, where its records come from, its fused operations, where they go. */
export function explainStages(ds: Dataset<unknown>, stages: readonly Stage[]): string {
  return stages
    .map((stage) => {
      const ops = stage.ops.map((op) => (op.kind === "take" ? `take(${op.n})` : op.kind === "sortBy" && op.descending ? "sortBy (descending)" : op.kind));
      const shards = stage.index === 0 && ds.source.kind === "files" ? "one shard per file" : `${stage.numShards} shard${stage.numShards === 1 ? "" : "s"}`;
      return `stage ${stage.index} (${shards}): ${[describeInput(stage, ds), ...ops, describeOutput(stage.output)].join(" → ")}`;
    })
    .join("\n");
}

/** `ds.explain()`: its stages before execution, when the number of input files is not known yet. */
export function explainDataset(ds: Dataset<unknown>): string {
  // Shard counts after a shuffle follow from the source's, so one file stands for them.
  const sourceShards = ds.source.kind === "list" ? listShardCount(ds.source.items.length, ds.source.numShards) : 1;
  return explainStages(ds, planStages(ds, sourceShards));
}
