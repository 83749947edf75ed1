// Dataset: an immutable description of a pipeline — a source and the
// operations applied to it. Nothing runs until `execute`; the planner
// (plan.ts) turns the operations into stages.
import { ValidationError } from "../core/errors.js";
import { remote, remoteRef, type RemoteRef } from "../core/remote.js";
import { schemeOf } from "./fs/paths.js";
import { checkParquetWriteOptions, type ParquetWriteOptions } from "./parquet.js";
import { explainDataset, writerName } from "./plan.js";

/**
 * Marks datasets. Symbol.for: a pipeline built by another copy of fluster in
 * the same process (a definition's module may load its own) is still a Dataset.
 */
const DATASET_BRAND: unique symbol = Symbol.for("fluster.Dataset");

/** A value a key function may return: records with equal keys group, deduplicate and partition together. */
export type Key = string | number | bigint | boolean | null | undefined | readonly unknown[] | Record<string, unknown>;
/** A sort key: numbers, bigints and strings compare naturally; arrays compare element by element. */
export type SortKey = string | number | bigint | readonly (string | number | bigint)[];

export type Source = { kind: "list"; items: readonly unknown[]; numShards: number | undefined } | { kind: "files"; pattern: string };

/** One operation of a pipeline, as the planner sees it. */
export type Op =
  | { kind: "map"; fn: (record: unknown) => unknown }
  | { kind: "filter"; fn: (record: unknown) => unknown }
  | { kind: "flatMap"; fn: (record: unknown) => Iterable<unknown> | Promise<Iterable<unknown>> }
  | { kind: "mapShard"; fn: (records: AsyncIterable<unknown>, shard: number) => AsyncIterable<unknown> | Iterable<unknown> | Promise<Iterable<unknown>> }
  | { kind: "loadJsonl" }
  | { kind: "loadText" }
  | { kind: "loadParquet" }
  | { kind: "sortBy"; key: (record: unknown) => SortKey; descending: boolean; global: boolean; numShards: number | undefined }
  | { kind: "take"; n: number }
  | { kind: "reshard"; numShards: number }
  | { kind: "groupBy"; key: (record: unknown) => Key; reducer: (key: unknown, records: unknown[]) => unknown; numShards: number | undefined }
  | { kind: "deduplicate"; key: (record: unknown) => Key; numShards: number | undefined }
  | WriteOp;

/** The last operation of a pipeline that writes files: each shard writes `pattern` with its number. */
export type WriteOp = { kind: "write"; format: "jsonl" | "text"; pattern: string } | { kind: "write"; format: "parquet"; pattern: string; parquet: ParquetWriteOptions };

/**
 * Where a dataset came from when it was built by a {@link dataset}
 * definition: another process rebuilds the same pipeline by calling the
 * definition with the same arguments.
 */
export interface DatasetOrigin {
  readonly ref: RemoteRef;
  readonly args: readonly unknown[];
}

export interface FromListOptions {
  /** Shards to cut the list into. @default min(items, 16), at least 1 */
  numShards?: number;
}

export interface SortOptions {
  /** Largest key first. @default false */
  descending?: boolean;
  /**
   * Sort the whole dataset, not each shard: the shards in order then form
   * one sorted sequence. Costs a shuffle (a sample of keys picks the shards'
   * key ranges) and one more pass over the records. @default false
   */
  global?: boolean;
  /** With `global`: the output shards. @default the input's shard count */
  numShards?: number;
}

export interface ShuffleOptions {
  /** Output shards of the shuffle. @default the input's shard count */
  numShards?: number;
}

function checkFunction(field: string, fn: unknown): void {
  if (typeof fn !== "function") throw new ValidationError(field, `must be a function, got ${fn === null ? "null" : typeof fn}`);
}

function checkCount(field: string, n: unknown, min: number): void {
  if (typeof n !== "number" || !Number.isInteger(n) || n < min) throw new ValidationError(field, `must be a whole number ≥ ${min}, got ${String(n)}`);
}

/**
 * A pipeline over records of type `T`. Every method returns a new Dataset;
 * nothing runs until it is passed to `execute`.
 */
export class Dataset<T> {
  declare private readonly [DATASET_BRAND]: true;

  private constructor(
    readonly source: Source,
    readonly ops: readonly Op[],
    readonly origin: DatasetOrigin | undefined,
  ) {
    Object.defineProperty(this, DATASET_BRAND, { value: true });
  }

  /** True for datasets of any copy of fluster in this process (see DATASET_BRAND). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as { [DATASET_BRAND]?: unknown })[DATASET_BRAND] === true;
  }

  /** A dataset of the given records, cut into `numShards` contiguous shards. */
  static fromList<T>(items: Iterable<T>, options: FromListOptions = {}): Dataset<T> {
    if (items === null || typeof (items as Iterable<T>)?.[Symbol.iterator] !== "function") throw new ValidationError("items", "must be an array or another iterable");
    if (options.numShards !== undefined) checkCount("numShards", options.numShards, 1);
    return new Dataset<T>({ kind: "list", items: [...items], numShards: options.numShards }, [], undefined);
  }

  /**
   * The paths of the files matching `pattern` (a glob, relative to the
   * working directory, or over an object prefix: `"s3://bucket/data/*.jsonl.gz"`,
   * `"gs://bucket/logs/2024-*.jsonl"`), one shard per file, in sorted order. Follow with
   * `loadJsonl()`, `loadText()` or `loadParquet()` to read them.
   */
  static fromFiles(pattern: string): Dataset<string> {
    if (typeof pattern !== "string" || pattern.trim() === "") throw new ValidationError("pattern", "must be a non-empty glob such as \"data/*.jsonl.gz\"");
    schemeOf(pattern); // an unknown scheme fails here, not when the run starts
    return new Dataset<string>({ kind: "files", pattern }, [], undefined);
  }

  private with<U>(op: Op): Dataset<U> {
    const last = this.ops[this.ops.length - 1];
    if (last?.kind === "write") throw new ValidationError(op.kind, `cannot follow ${writerName(last.format)}: writing must be the last operation`);
    return new Dataset<U>(this.source, [...this.ops, op], this.origin);
  }

  /** Reads each path (a record of `fromFiles`) as JSON lines; `.gz` and `.zst` are decompressed by extension. */
  loadJsonl<U = Record<string, unknown>>(this: Dataset<string>): Dataset<U> {
    return this.with<U>({ kind: "loadJsonl" });
  }

  /** Reads each path (a record of `fromFiles`) as lines of text; `.gz` and `.zst` are decompressed by extension. */
  loadText(this: Dataset<string>): Dataset<string> {
    return this.with<string>({ kind: "loadText" });
  }

  /**
   * Reads each path (a record of `fromFiles`) as a Parquet file, a row group
   * at a time; records are plain objects (see readParquet in parquet.ts for
   * how Parquet types become JavaScript values).
   */
  loadParquet<U = Record<string, unknown>>(this: Dataset<string>): Dataset<U> {
    return this.with<U>({ kind: "loadParquet" });
  }

  /** `fn(record)` for every record. `fn` may be async. */
  map<U>(fn: (record: T) => U | Promise<U>): Dataset<U> {
    checkFunction("map", fn);
    return this.with<U>({ kind: "map", fn: fn as (record: unknown) => unknown });
  }

  /** Keeps the records for which `fn` is truthy. `fn` may be async. */
  filter(fn: (record: T) => unknown): Dataset<T> {
    checkFunction("filter", fn);
    return this.with<T>({ kind: "filter", fn: fn as (record: unknown) => unknown });
  }

  /** Every record of `fn(record)` (an array or other iterable) for every record. */
  flatMap<U>(fn: (record: T) => Iterable<U> | Promise<Iterable<U>>): Dataset<U> {
    checkFunction("flatMap", fn);
    return this.with<U>({ kind: "flatMap", fn: fn as (record: unknown) => Iterable<unknown> });
  }

  /** `fn` gets a whole shard as an async iterable (and the shard's index) and returns its new records. */
  mapShard<U>(fn: (records: AsyncIterable<T>, shard: number) => AsyncIterable<U> | Iterable<U> | Promise<Iterable<U>>): Dataset<U> {
    checkFunction("mapShard", fn);
    return this.with<U>({ kind: "mapShard", fn: fn as Extract<Op, { kind: "mapShard" }>["fn"] });
  }

  /**
   * Sorts each shard by `key`, or with `global: true` the whole dataset
   * (range-partitioned into `numShards` shards). Stable: equal keys keep
   * their order. A shard larger than `memoryLimitBytes` sorts in runs on storage.
   */
  sortBy(key: (record: T) => SortKey, options: SortOptions = {}): Dataset<T> {
    checkFunction("sortBy", key);
    if (options.numShards !== undefined) {
      if (!options.global) throw new ValidationError("sortBy numShards", "applies only to a global sort ({ global: true }); a per-shard sort keeps its shards");
      checkCount("numShards", options.numShards, 1);
    }
    return this.with<T>({
      kind: "sortBy",
      key: key as (record: unknown) => SortKey,
      descending: options.descending ?? false,
      global: options.global ?? false,
      numShards: options.numShards,
    });
  }

  /** The first `n` records, in shard order. */
  take(n: number): Dataset<T> {
    checkCount("take", n, 0);
    return this.with<T>({ kind: "take", n });
  }

  /** Redistributes the records over `numShards` shards (round robin). */
  reshard(numShards: number): Dataset<T> {
    checkCount("reshard", numShards, 1);
    return this.with<T>({ kind: "reshard", numShards });
  }

  /**
   * Groups records by `key` across all shards and makes one record per group
   * with `reducer(key, records)`; groups keep first-seen order within a shard.
   * A shard whose records pass `memoryLimitBytes` sorts them by key in runs
   * on storage and reduces each group as the runs merge (same output); one
   * group's records are always held whole for its reducer.
   */
  groupBy<K extends Key, R>(key: (record: T) => K, reducer: (key: K, records: T[]) => R, options: ShuffleOptions = {}): Dataset<R> {
    checkFunction("groupBy key", key);
    checkFunction("groupBy reducer", reducer);
    if (options.numShards !== undefined) checkCount("numShards", options.numShards, 1);
    return this.with<R>({
      kind: "groupBy",
      key: key as (record: unknown) => Key,
      reducer: reducer as (key: unknown, records: unknown[]) => unknown,
      numShards: options.numShards,
    });
  }

  /**
   * Keeps the first record of each `key` across all shards (default key: the
   * record itself). A shard remembers the keys it has seen; past
   * `memoryLimitBytes` the rest sort by key in runs on storage (same output).
   */
  deduplicate(key: (record: T) => Key = (record) => record as Key, options: ShuffleOptions = {}): Dataset<T> {
    checkFunction("deduplicate key", key);
    if (options.numShards !== undefined) checkCount("numShards", options.numShards, 1);
    return this.with<T>({ kind: "deduplicate", key: key as (record: unknown) => Key, numShards: options.numShards });
  }

  /**
   * Writes each shard as JSON lines to `pattern` with the shard number
   * substituted (`"out/part-{shard:05d}.jsonl.gz"`, or an object URL such as
   * `"s3://bucket/out/part-{shard:05d}.jsonl.gz"`); compressed by extension.
   * `execute` returns the paths written.
   */
  writeJsonl(pattern: string): Dataset<string> {
    checkPattern(pattern);
    return this.with<string>({ kind: "write", format: "jsonl", pattern });
  }

  /** Writes each shard's records (strings) as lines of text to `pattern`; see {@link writeJsonl}. */
  writeText(this: Dataset<string>, pattern: string): Dataset<string> {
    checkPattern(pattern);
    return this.with<string>({ kind: "write", format: "text", pattern });
  }

  /**
   * Writes each shard's records (plain objects) as a Parquet file to
   * `pattern` (`"out/part-{shard:05d}.parquet"`), snappy-compressed, a row
   * group at a time. Column types come from `options.schema` and, for fields
   * it does not name, from the first row group's records; nested objects
   * become structs and arrays lists. `execute` returns the paths written.
   */
  writeParquet(pattern: string, options: ParquetWriteOptions = {}): Dataset<string> {
    checkPattern(pattern);
    checkParquetWriteOptions(options);
    return this.with<string>({ kind: "write", format: "parquet", pattern, parquet: options });
  }

  /** The stages this pipeline runs as (see plan.ts), one line per stage. */
  explain(): string {
    return explainDataset(this as Dataset<unknown>);
  }

  /** @internal The same pipeline, remembered as built by a definition. */
  withOrigin(origin: DatasetOrigin): Dataset<T> {
    return new Dataset<T>(this.source, this.ops, origin);
  }
}

function checkPattern(pattern: unknown): void {
  if (typeof pattern !== "string" || pattern === "") throw new ValidationError("pattern", "must be a path such as \"out/part-{shard:05d}.jsonl.gz\"");
  if (!pattern.includes("{shard")) throw new ValidationError("pattern", `must contain {shard} or {shard:05d} so every shard writes its own file, got ${JSON.stringify(pattern)}`);
  schemeOf(pattern); // never a local folder named "foo:"
}

/** A function that builds a Dataset, marked so other processes can rebuild it (see {@link dataset}). */
export type DatasetDefinition<A extends unknown[], T> = ((...args: A) => Dataset<T>) & { readonly ref: RemoteRef };

/**
 * Marks a function that builds a pipeline, so the `threads` and `cluster`
 * backends can rebuild the same pipeline in their workers: a worker imports
 * `moduleUrl` and calls the function with the same arguments (which travel
 * through the value codec). Like {@link remote}, define it at module level:
 *
 * ```ts
 * // pipelines.ts: workers import this module, so it runs nothing when it loads
 * export const longDocs = dataset(import.meta.url, function longDocs(input: string, out: string) {
 *   return Dataset.fromFiles(input).loadJsonl<Doc>().filter((d) => d.text.length > 100).writeJsonl(out);
 * });
 * // main.ts
 * await execute(longDocs("data/*.jsonl.gz", "out/part-{shard:05d}.jsonl.gz"), { backend: "threads" });
 * ```
 */
export function dataset<A extends unknown[], T>(moduleUrl: string, build: (...args: A) => Dataset<T>): DatasetDefinition<A, T> {
  const marked = remote(moduleUrl, build);
  const ref = remoteRef(marked);
  const definition = (...args: A): Dataset<T> => {
    const built = marked(...args);
    if (!(built instanceof Dataset)) throw new ValidationError(`dataset ${ref.name}`, "must return a Dataset");
    return built.withOrigin({ ref, args });
  };
  Object.defineProperty(definition, "name", { value: build.name });
  Object.defineProperty(definition, "ref", { value: ref, enumerable: true });
  return definition as DatasetDefinition<A, T>;
}
