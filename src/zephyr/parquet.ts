// Parquet files for Zephyr pipelines: a reader that streams a file one row
// group at a time, and a writer that buffers one row group at a time and
// streams it into a store's atomic sink. Built on hyparquet (read) and
// hyparquet-writer (write); every byte goes through storeFor, so local
// paths, s3:// and gs:// work alike.
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData, type SchemaTree } from "hyparquet";
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import { decompress as zstdDecompress } from "zstd-napi";
import { FlusterError, ValidationError, describeValue } from "../core/errors.js";
import { absolutePath, storeFor, type ObjectSink } from "./fs/index.js";

/**
 * A column type for {@link ParquetWriteOptions.schema}. Scalars: `BOOLEAN`;
 * `INT32`, `INT64` (safe-integer numbers or bigints); `FLOAT`, `DOUBLE`
 * (numbers); `STRING`; `BYTES` (Uint8Array); `TIMESTAMP` (Date, stored as
 * milliseconds); `JSON` (any JSON value, stored as text). Nested:
 * `{ list: T }` (arrays, a Parquet LIST) and `{ struct: { field: T } }`
 * (plain objects, a Parquet group). Every column, element and field may be null.
 */
export type ParquetColumnType =
  | "BOOLEAN"
  | "INT32"
  | "INT64"
  | "FLOAT"
  | "DOUBLE"
  | "STRING"
  | "BYTES"
  | "TIMESTAMP"
  | "JSON"
  | { readonly list: ParquetColumnType }
  | { readonly struct: { readonly [field: string]: ParquetColumnType } };

/** Column types by field name (see {@link ParquetColumnType}). */
export type ParquetSchema = { readonly [field: string]: ParquetColumnType };

/** Options of `writeParquet` and {@link ParquetFileWriter}. */
export interface ParquetWriteOptions {
  /**
   * Types of some or all columns. A field not named here takes the type
   * inferred from the records of the first row group. @default all inferred
   */
  schema?: ParquetSchema;
  /** Records per row group at most. @default 100000 */
  rowGroupSize?: number;
  /**
   * Approximate bytes of record data per row group at most (strings count
   * their length, numbers 8): bounds memory when records are large. @default 64 MiB
   */
  rowGroupBytes?: number;
}

const DEFAULT_ROW_GROUP_SIZE = 100_000;
const DEFAULT_ROW_GROUP_BYTES = 64 << 20;
/** Records per batch out of the reader, as the line readers do. */
const READ_BATCH = 1024;
const SCALARS = new Set<unknown>(["BOOLEAN", "INT32", "INT64", "FLOAT", "DOUBLE", "STRING", "BYTES", "TIMESTAMP", "JSON"]);

/** Decompressors beyond hyparquet's built-in snappy: what DuckDB, Spark and pyarrow commonly write. */
const DECOMPRESSORS: Compressors = {
  GZIP: (input) => gunzipSync(input),
  BROTLI: (input) => brotliDecompressSync(input),
  ZSTD: (input) => zstdDecompress(input),
};

// ------------------------------------------------------------------ reading

/** The object at `path` as hyparquet's AsyncBuffer: ranged reads through its store. */
async function asyncBufferOf(path: string): Promise<AsyncBuffer> {
  const store = storeFor(path);
  const size = await store.size(path);
  if (size === undefined) throw new FlusterError(`${path} does not exist`, "not_found");
  return {
    byteLength: size,
    slice: async (start, end = size) => {
      const bytes = await store.readRange(path, start, end);
      // hyparquet wants an ArrayBuffer of exactly these bytes; a pooled Buffer is a view into a larger one.
      return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? (bytes.buffer as ArrayBuffer)
        : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    },
  };
}

/** A hyparquet failure as a FlusterError naming the file; a store's own errors pass unchanged. */
function readError(path: string, what: string, err: unknown): FlusterError {
  if (err instanceof FlusterError) return err;
  return new FlusterError(`${path}: ${what}: ${(err as Error).message ?? String(err)}`, "invalid_argument", { cause: err });
}

/**
 * The records of the Parquet file at `path`, in batches, read one row group
 * at a time (so memory holds one row group, not the file). Records are plain
 * objects: a LIST is an array, a group an object, a null stays null. INT64
 * values are numbers when they are safe integers and bigints otherwise;
 * timestamps and dates are Dates; JSON columns are parsed; strings are
 * strings and other byte arrays Uint8Arrays. Snappy, gzip, brotli and zstd
 * pages are read. Throws a FlusterError naming the file when it is missing
 * or is not Parquet.
 */
export async function* readParquet<T = Record<string, unknown>>(path: string): AsyncIterable<T[]> {
  const file = await asyncBufferOf(path);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw readError(path, "not a Parquet file", err);
  }
  const int64Columns = parquetSchema(metadata).children.filter(hasInt64Leaf).map((c) => c.element.name);
  let rowStart = 0;
  for (const [i, group] of metadata.row_groups.entries()) {
    const rowEnd = rowStart + Number(group.num_rows);
    if (rowEnd === rowStart) continue;
    let rows: Record<string, unknown>[];
    try {
      // utf8: false keeps a BYTE_ARRAY without a string annotation as bytes; annotated strings still decode.
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors: DECOMPRESSORS, utf8: false });
    } catch (err) {
      throw readError(path, `reading row group ${i} failed`, err);
    }
    rowStart = rowEnd;
    for (const name of int64Columns) for (const row of rows) row[name] = safeNumbers(row[name]);
    for (let b = 0; b < rows.length; b += READ_BATCH) yield rows.slice(b, b + READ_BATCH) as T[];
  }
}

function hasInt64Leaf(node: SchemaTree): boolean {
  return node.children.length === 0 ? node.element.type === "INT64" : node.children.some(hasInt64Leaf);
}

/** `value` with every bigint that is a safe integer turned into a number, in place. */
function safeNumbers(value: unknown): unknown {
  if (typeof value === "bigint") return value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER ? Number(value) : value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = safeNumbers(value[i]);
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) value[key] = safeNumbers(value[key]);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

// ------------------------------------------------------------------ options and schemas

/** Checks writeParquet's options once, up front; throws a ValidationError naming the bad field. */
export function checkParquetWriteOptions(options: ParquetWriteOptions): void {
  if (typeof options !== "object" || options === null) throw new ValidationError("options", `must be an object, got ${describeValue(options)}`);
  for (const key of ["rowGroupSize", "rowGroupBytes"] as const) {
    const n = options[key];
    if (n !== undefined && (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1)) throw new ValidationError(key, `must be a whole number ≥ 1, got ${describeValue(n)}`);
  }
  if (options.schema !== undefined) {
    if (!isPlainObject(options.schema)) throw new ValidationError("schema", `must be an object of column types, got ${describeValue(options.schema)}`);
    for (const [name, type] of Object.entries(options.schema)) checkColumnType(`schema.${name}`, type);
  }
}

function checkColumnType(field: string, type: unknown): void {
  if (typeof type === "string" && SCALARS.has(type)) return;
  if (isPlainObject(type) && "list" in type && Object.keys(type).length === 1) return checkColumnType(`${field}.list`, type.list);
  if (isPlainObject(type) && "struct" in type && Object.keys(type).length === 1 && isPlainObject(type.struct)) {
    const fields = Object.entries(type.struct);
    if (fields.length === 0) throw new ValidationError(field, "is a struct with no fields (Parquet has no empty groups; use \"JSON\")");
    for (const [name, child] of fields) checkColumnType(`${field}.${name}`, child);
    return;
  }
  throw new ValidationError(field, `must be one of ${[...SCALARS].join(", ")}, { list: T } or { struct: { field: T } }, got ${describeValue(type)}`);
}

/** A column type as inference sees it: undefined where only nulls were seen so far. */
type Draft = Extract<ParquetColumnType, string> | undefined | { list: Draft } | { struct: Record<string, Draft> };

/** The narrowest type admitting both: ints and doubles make DOUBLE, structs merge their fields, anything else mixed makes JSON. */
function merge(a: Draft, b: Draft): Draft {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  if (typeof a === "string" || typeof b === "string") return (a === "INT64" || a === "DOUBLE") && (b === "INT64" || b === "DOUBLE") ? "DOUBLE" : "JSON";
  if ("list" in a && "list" in b) return { list: merge(a.list, b.list) };
  if ("struct" in a && "struct" in b) {
    const fields = { ...a.struct };
    for (const [key, type] of Object.entries(b.struct)) fields[key] = merge(fields[key], type);
    return { struct: fields };
  }
  return "JSON";
}

function draftOf(value: unknown, field: string): Draft {
  switch (typeof value) {
    case "undefined":
      return undefined;
    case "boolean":
      return "BOOLEAN";
    case "number":
      return Number.isSafeInteger(value) ? "INT64" : "DOUBLE";
    case "bigint":
      return "INT64";
    case "string":
      return "STRING";
    case "object":
      if (value === null) return undefined;
      if (value instanceof Date) return "TIMESTAMP";
      if (value instanceof Uint8Array) return "BYTES";
      if (Array.isArray(value)) {
        let element: Draft;
        for (const item of value) if (element !== "JSON") element = merge(element, draftOf(item, `${field}[]`));
        return { list: element };
      }
      if (isPlainObject(value)) {
        const fields: Record<string, Draft> = {};
        for (const key in value) fields[key] = draftOf(value[key], `${field}.${key}`);
        return { struct: fields };
      }
  }
  throw new ValidationError(field, `cannot be stored in Parquet: got ${describeValue(value)} (use plain objects, arrays, strings, numbers, bigints, booleans, Dates, Uint8Arrays or null)`);
}

/** A finished type: JSON where only nulls (or empty objects) were seen, since a JSON column takes any later value. */
function settle(draft: Draft): ParquetColumnType {
  if (draft === undefined) return "JSON";
  if (typeof draft === "string") return draft;
  if ("list" in draft) return { list: settle(draft.list) };
  const fields = Object.entries(draft.struct);
  return fields.length === 0 ? "JSON" : { struct: Object.fromEntries(fields.map(([key, type]) => [key, settle(type)])) };
}

/** The file's columns: the user's types, then the other fields of the first row group's records, inferred. */
function inferSchema(records: readonly Record<string, unknown>[], given: ParquetSchema): Map<string, ParquetColumnType> {
  const drafts = new Map<string, Draft>();
  for (const record of records) {
    for (const key in record) {
      if (Object.hasOwn(given, key)) continue;
      const current = drafts.get(key);
      if (current !== "JSON") drafts.set(key, merge(current, draftOf(record[key], key)));
    }
  }
  const schema = new Map<string, ParquetColumnType>(Object.entries(given));
  for (const [key, draft] of drafts) schema.set(key, settle(draft));
  return schema;
}

/** A Parquet schema node as hyparquet-writer takes it (it carries its own copy of hyparquet's types). */
type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]["schema"][number];

/** The flat Parquet schema (depth first) for `columns`; every node optional. */
function schemaElements(columns: ReadonlyMap<string, ParquetColumnType>): SchemaElement[] {
  const elements: SchemaElement[] = [{ name: "root", num_children: columns.size }];
  const add = (name: string, type: ParquetColumnType): void => {
    if (typeof type === "string") {
      elements.push({ name, repetition_type: "OPTIONAL", ...PHYSICAL[type] });
    } else if ("list" in type) {
      elements.push({ name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 });
      elements.push({ name: "list", repetition_type: "REPEATED", num_children: 1 });
      add("element", type.list);
    } else {
      const fields = Object.entries(type.struct);
      elements.push({ name, repetition_type: "OPTIONAL", num_children: fields.length });
      for (const [child, childType] of fields) add(child, childType);
    }
  };
  for (const [name, type] of columns) add(name, type);
  return elements;
}

const PHYSICAL = {
  BOOLEAN: { type: "BOOLEAN" },
  INT32: { type: "INT32" },
  INT64: { type: "INT64" },
  FLOAT: { type: "FLOAT" },
  DOUBLE: { type: "DOUBLE" },
  STRING: { type: "BYTE_ARRAY", converted_type: "UTF8" },
  BYTES: { type: "BYTE_ARRAY" },
  TIMESTAMP: { type: "INT64", converted_type: "TIMESTAMP_MILLIS" },
  JSON: { type: "BYTE_ARRAY", converted_type: "JSON" },
} as const satisfies Record<string, Pick<SchemaElement, "type" | "converted_type">>;

/** Says which value of which record did not fit the schema. */
class Mismatch extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

function typeName(type: ParquetColumnType): string {
  return typeof type === "string" ? type : "list" in type ? "a list" : "a struct";
}

function mismatch(value: unknown, type: ParquetColumnType, field: string): Mismatch {
  return new Mismatch(field, `is ${describeValue(value)}, but the column is ${typeName(type)}`);
}

const int64Inside = new WeakMap<object, boolean>();

/** True when the nested type has an INT64 somewhere, whose numbers must become bigints. */
function hasInt64(type: ParquetColumnType): boolean {
  if (typeof type === "string") return type === "INT64";
  let known = int64Inside.get(type);
  if (known === undefined) {
    known = "list" in type ? hasInt64(type.list) : Object.values(type.struct).some(hasInt64);
    int64Inside.set(type, known);
  }
  return known;
}

/**
 * `value` checked against `type` and made what hyparquet-writer takes:
 * INT64 numbers as bigints (lists and structs holding them are copied;
 * others are passed as they are).
 */
function prepare(value: unknown, type: ParquetColumnType, field: string): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "BOOLEAN":
      if (typeof value === "boolean") return value;
      break;
    case "INT32":
      if (typeof value === "number" && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) return value;
      break;
    case "INT64":
      if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
      if (typeof value === "bigint" && value >= -(2n ** 63n) && value < 2n ** 63n) return value;
      break;
    case "FLOAT":
    case "DOUBLE":
      if (typeof value === "number") return value;
      break;
    case "STRING":
      if (typeof value === "string") return value;
      break;
    case "BYTES":
      if (value instanceof Uint8Array) return value;
      break;
    case "TIMESTAMP":
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
      break;
    case "JSON":
      return value;
    default:
      if ("list" in type) {
        if (!Array.isArray(value)) break;
        const copy = hasInt64(type) ? new Array<unknown>(value.length) : undefined;
        for (let i = 0; i < value.length; i++) {
          const item = prepare(value[i], type.list, field);
          if (copy) copy[i] = item;
        }
        return copy ?? value;
      }
      if (!isPlainObject(value)) break;
      for (const key in value) {
        if (!Object.hasOwn(type.struct, key) && value[key] !== undefined) throw new Mismatch(`${field}.${key}`, `is not a field of the struct (its fields: ${Object.keys(type.struct).join(", ")})`);
      }
      const copy: Record<string, unknown> | undefined = hasInt64(type) ? {} : undefined;
      for (const key in type.struct) {
        const child = prepare(value[key], type.struct[key] as ParquetColumnType, `${field}.${key}`);
        if (copy) copy[key] = child;
      }
      return copy ?? value;
  }
  throw mismatch(value, type, field);
}

/** A rough size of a record's data, for rowGroupBytes. */
function approxBytes(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (typeof value !== "object" || value === null) return 8;
  if (value instanceof Uint8Array) return value.byteLength;
  let n = 0;
  if (Array.isArray(value)) for (const item of value) n += approxBytes(item);
  else for (const key in value) n += approxBytes((value as Record<string, unknown>)[key]);
  return n;
}

// ------------------------------------------------------------------ writing

/**
 * hyparquet-writer's byte buffer, emptied into a sink's stream after each
 * row group (ParquetWriter awaits `flush`) and at the end: memory holds at
 * most one encoded row group.
 */
class SinkWriter extends ByteWriter {
  constructor(private readonly sink: ObjectSink) {
    super(1 << 20);
  }

  flush(): Promise<void> {
    if (this.index === 0) return Promise.resolve();
    const bytes = new Uint8Array(this.buffer.slice(0, this.index));
    this.index = 0;
    const stream = this.sink.stream;
    if (stream.write(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error | null) => {
        stream.off("drain", done);
        stream.off("error", done);
        stream.off("close", done);
        if (err) reject(err);
        else if (stream.destroyed && !stream.writableFinished) reject(stream.errored ?? new Error("the stream closed"));
        else resolve();
      };
      stream.on("drain", done);
      stream.on("error", done);
      stream.on("close", done);
    });
  }

  override finish(): Promise<void> {
    return this.flush();
  }
}

/**
 * - `open`: taking records.
 * - `closing`: close() is writing the last row group and the footer.
 * - `closed`: committed; the file is at its path.
 * - `aborted`: abort() or a failed write or close; nothing is at the path.
 */
type ParquetWriterState = "open" | "closing" | "closed" | "aborted";

/**
 * Writes records (plain objects) to a Parquet file at `path` in any store,
 * a row group at a time: records are buffered until `rowGroupSize` records
 * or `rowGroupBytes` of data, then encoded (snappy) and streamed into the
 * store. The schema is `options.schema` plus the types inferred from the
 * first row group's records (see {@link ParquetWriteOptions}); a later
 * record with a field outside it or a value of another type throws a
 * ValidationError naming the field and the record. Nothing is visible at
 * `path` until close() commits.
 */
export class ParquetFileWriter {
  private state: ParquetWriterState = "open";
  private pending: Record<string, unknown>[] = [];
  private pendingBytes = 0;
  private rows = 0;
  private columns: Map<string, ParquetColumnType> | undefined;
  private parquet: ParquetWriter | undefined;
  private readonly rowGroupSize: number;
  private readonly rowGroupBytes: number;

  private constructor(
    /** The final path, made absolute. */
    readonly path: string,
    private readonly sink: ObjectSink,
    private readonly schema: ParquetSchema,
    options: ParquetWriteOptions,
  ) {
    this.rowGroupSize = options.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE;
    this.rowGroupBytes = options.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES;
  }

  /** Opens a writer for `path` (parent directories are made as needed); throws a ValidationError for bad options. */
  static async open(path: string, options: ParquetWriteOptions = {}): Promise<ParquetFileWriter> {
    checkParquetWriteOptions(options);
    const target = absolutePath(path);
    const sink = await storeFor(target).openWrite(target);
    return new ParquetFileWriter(target, sink, options.schema ?? {}, options);
  }

  /** Adds records; writes a row group whenever one is full. */
  async write(records: readonly unknown[]): Promise<void> {
    this.assertOpen("write");
    for (const record of records) {
      if (!isPlainObject(record)) {
        await this.abort();
        throw new ValidationError("writeParquet", `needs plain-object records, got ${describeValue(record)} in record ${this.rows + this.pending.length} of ${this.path}`);
      }
      this.pending.push(record);
      this.pendingBytes += approxBytes(record);
      if (this.pending.length >= this.rowGroupSize || this.pendingBytes >= this.rowGroupBytes) await this.guard(() => this.writeRowGroup());
    }
  }

  /** Writes what is buffered and the footer, then commits; resolves with the final path, its bytes and the records written. */
  async close(): Promise<{ path: string; bytes: number; rows: number }> {
    this.assertOpen("close");
    this.state = "closing";
    const bytes = await this.guard(async () => {
      if (this.pending.length > 0 || !this.parquet) await this.writeRowGroup();
      await (this.parquet as ParquetWriter).finish();
      return this.sink.commit();
    });
    this.state = "closed";
    return { path: this.path, bytes, rows: this.rows };
  }

  /** Discards the file; safe after a failure and more than once. */
  async abort(): Promise<void> {
    if (this.state === "closed" || this.state === "aborted") return;
    this.state = "aborted";
    this.pending = [];
    await this.sink.abort();
  }

  private assertOpen(action: string): void {
    if (this.state !== "open") throw new FlusterError(`cannot ${action} ${this.path}: the writer is ${this.state}`, "failed_precondition");
  }

  /** Runs `step`; on failure aborts, and reports a schema mismatch as a ValidationError naming the record. */
  private async guard<R>(step: () => Promise<R>): Promise<R> {
    try {
      return await step();
    } catch (err) {
      await this.abort();
      if (err instanceof FlusterError) throw err;
      throw new FlusterError(`writing ${this.path} failed: ${(err as Error).message ?? String(err)}`, "internal", { cause: err });
    }
  }

  private async writeRowGroup(): Promise<void> {
    const records = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.columns) {
      this.columns = inferSchema(records, this.schema);
      // No records and no schema: a file of no columns (hyparquet reads it; DuckDB refuses it, so give a schema when shards may be empty).
      if (this.columns.size === 0 && records.length > 0) throw new ValidationError("writeParquet", `${this.path}: the records have no fields`);
      this.parquet = new ParquetWriter({ writer: new SinkWriter(this.sink), schema: schemaElements(this.columns), codec: "SNAPPY" });
    }
    if (records.length === 0) return;
    const columnData = this.columnsOf(records);
    this.rows += records.length;
    await (this.parquet as ParquetWriter).write({ columnData, rowGroupSize: records.length });
  }

  /** The records as hyparquet-writer's columns, each value checked against the schema. */
  private columnsOf(records: readonly Record<string, unknown>[]): { name: string; data: unknown[] }[] {
    const columns = this.columns as Map<string, ParquetColumnType>;
    const at = (i: number) => `record ${this.rows + i} of ${this.path}`;
    for (const [i, record] of records.entries()) {
      for (const key in record) {
        if (!columns.has(key) && record[key] !== undefined) {
          throw new ValidationError(key, `of ${at(i)} is not a column of the file (its columns: ${[...columns.keys()].join(", ")}; they come from options.schema and the first row group)`);
        }
      }
    }
    return [...columns].map(([name, type]) => {
      const data = new Array<unknown>(records.length);
      for (let i = 0; i < records.length; i++) {
        try {
          data[i] = prepare((records[i] as Record<string, unknown>)[name], type, name);
        } catch (err) {
          if (err instanceof Mismatch) throw new ValidationError(err.field, `of ${at(i)} ${err.detail} (options.schema sets a column's type)`);
          throw err;
        }
      }
      return { name, data };
    });
  }
}
