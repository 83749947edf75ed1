// Storage-first chunk references (seed 002). Records move between stages in
// chunks; a chunk whose encoding is smaller than the spill threshold travels
// inline (InlineRef), a larger one is written to an object under the run's
// storage directory — local, or an s3:// or gs:// prefix — and travels as its
// path (StorageRef). A StorageManager owns a run's directory and removes it
// when the run ends.
import { randomUUID } from "node:crypto";
import { mkdir, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { FlusterError, ValidationError } from "../core/errors.js";
import { decodeArrayElements, decodeValue, encodeValue, type DecodedSpans } from "../rpc/codec.js";
import { absolutePath, isObjectUrl, joinPath, storeFor } from "./fs/index.js";

/** A chunk kept in memory: the encoded records. */
export interface InlineRef {
  readonly kind: "inline";
  readonly data: Uint8Array;
  readonly count: number;
}

/** A chunk written to storage: its path (local, or an object URL) and size. */
export interface StorageRef {
  readonly kind: "storage";
  readonly path: string;
  readonly count: number;
  readonly bytes: number;
}

export type ChunkRef = InlineRef | StorageRef;

/** The records of a chunk. */
export async function readChunk(ref: ChunkRef): Promise<unknown[]> {
  const records = decodeValue(await chunkBytes(ref));
  if (!Array.isArray(records) || records.length !== ref.count) throw wrongCount(ref, Array.isArray(records) ? records.length : "no");
  return records;
}

/** The records of a chunk with their encodings: record `i` is `bytes[offsets[i]..offsets[i + 1])`. */
export async function readChunkSpans(ref: ChunkRef): Promise<DecodedSpans & { bytes: Uint8Array }> {
  const bytes = await chunkBytes(ref);
  const { values, offsets } = decodeArrayElements(bytes);
  if (values.length !== ref.count) throw wrongCount(ref, values.length);
  return { values, offsets, bytes };
}

async function chunkBytes(ref: ChunkRef): Promise<Uint8Array> {
  if (ref.kind === "inline") return ref.data;
  try {
    return await storeFor(ref.path).readAll(ref.path);
  } catch (err) {
    if (err instanceof FlusterError && err.code !== "not_found") throw err;
    throw new FlusterError(`chunk file ${ref.path} cannot be read (was the run's storage directory removed, or is it not shared with this worker?)`, "not_found", { cause: err });
  }
}

function wrongCount(ref: ChunkRef, found: number | string): FlusterError {
  return new FlusterError(`chunk ${ref.kind === "storage" ? ref.path : "(inline)"} holds ${found} records, expected ${ref.count}`, "internal");
}

/** Where a stage's shard writes its chunks, and when it spills them. */
export interface ChunkTarget {
  /** Directory (or object prefix) for spilled chunks; a local one is created on first spill. */
  readonly dir: string;
  /** File name prefix, unique to the shard's attempt. */
  readonly prefix: string;
  /** Chunks whose encoding is at least this many bytes go to a file. */
  readonly spillThresholdBytes: number;
  /**
   * A directory above `dir` that the writer never creates: once it is gone
   * (the run ended and removed it), a spill fails instead of bringing it
   * back, so a shard still running after its run was cancelled leaves
   * nothing behind. @default none: every missing directory is created
   */
  readonly root?: string;
}

/** Records per chunk, at most. */
const CHUNK_RECORDS = 8192;

/** Cuts a stream of records into chunks and decides, chunk by chunk, inline or storage. */
export class ChunkWriter {
  private pending: unknown[] = [];
  private readonly refs: ChunkRef[] = [];
  private written = 0;
  private madeDir = false;
  /** Records added so far. */
  records = 0;
  /** Encoded bytes of the chunks so far. */
  bytes = 0;

  constructor(private readonly target: ChunkTarget) {}

  async add(batch: readonly unknown[]): Promise<void> {
    for (const record of batch) {
      this.pending.push(record);
      if (this.pending.length >= CHUNK_RECORDS) await this.flush();
    }
    this.records += batch.length;
  }

  /** Flushes what is pending and returns every chunk, in order. */
  async finish(): Promise<ChunkRef[]> {
    await this.flush();
    return this.refs;
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const records = this.pending;
    this.pending = [];
    const data = encodeValue(records);
    this.bytes += data.byteLength;
    if (data.byteLength < this.target.spillThresholdBytes) {
      this.refs.push({ kind: "inline", data, count: records.length });
      return;
    }
    const local = !isObjectUrl(this.target.dir);
    if (local && !this.madeDir) {
      await makeDirUnder(this.target.dir, this.target.root);
      this.madeDir = true;
    }
    const path = joinPath(this.target.dir, `${this.target.prefix}-${String(this.written++).padStart(5, "0")}.chunk`);
    try {
      // Never brings back a removed local directory: a late shard of a cancelled run fails instead.
      await storeFor(path).writeAll(path, data, { createParents: false });
    } catch (err) {
      if (local && this.target.root !== undefined && err instanceof FlusterError && err.code === "not_found") {
        throw new FlusterError(`the run's storage directory ${this.target.root} is gone (the run ended or was cancelled)`, "cancelled", { cause: err });
      }
      throw err;
    }
    this.refs.push({ kind: "storage", path, count: records.length, bytes: data.byteLength });
  }
}

/** Creates `dir` and its missing parents below `root`; `root` itself must exist (it is never created). */
async function makeDirUnder(dir: string, root: string | undefined): Promise<void> {
  if (root === undefined) {
    await mkdir(dir, { recursive: true });
    return;
  }
  const below = relative(root, dir);
  if (below.startsWith("..") || isAbsolute(below)) throw new FlusterError(`chunk directory ${dir} is not under its run directory ${root}`, "internal");
  let path = root;
  for (const part of below.split(sep).filter((p) => p !== "")) {
    path = join(path, part);
    try {
      await mkdir(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") continue;
      if (code === "ENOENT") throw new FlusterError(`the run's storage directory ${root} is gone (the run ended or was cancelled)`, "cancelled", { cause: err });
      throw err;
    }
  }
}

/** Where runs keep spilled chunks by default. */
export function defaultStoragePath(): string {
  return join(tmpdir(), "fluster-zephyr");
}

/**
 * A run's storage: one directory under the storage path, `run-<runId>` (a
 * local directory, or an `s3://bucket/prefix` or `gs://bucket/prefix` on an
 * object store), holding every stage's spilled chunks; `cleanup()` removes
 * it. The id is random unless the caller names the run (a resumable run),
 * and checked by the caller (see validateRunId). On an object store a shard
 * cancelled while writing may still add objects after the clean-up began;
 * removing the tree lists again, and a later run's clean-up never touches
 * another run's prefix.
 */
export class StorageManager {
  readonly runId: string;
  readonly runDir: string;
  private readonly storagePath: string;
  /** Whether this run created the default storage path (`<tmpdir>/fluster-zephyr`): it then removes it too, when no other run uses it. A path the caller chose stays. */
  private madeStoragePath = false;

  constructor(storagePath: string = defaultStoragePath(), runId: string = randomUUID().slice(0, 8)) {
    if (typeof storagePath !== "string" || storagePath === "") throw new ValidationError("storagePath", "must be a directory path or an s3:// or gs:// prefix");
    this.storagePath = absolutePath(storagePath);
    this.runId = runId;
    this.runDir = joinPath(this.storagePath, `run-${this.runId}`);
  }

  /** Where stage `index` spills its chunks. */
  stageDir(index: number): string {
    return joinPath(this.runDir, `stage-${index}`);
  }

  /** Creates the run's local directory (object stores need none); chunk writers given it as their `root` create only what lies below it. */
  async create(): Promise<void> {
    if (isObjectUrl(this.storagePath)) return;
    // mkdir answers the first directory it had to make: the storage path itself when it was missing.
    const first = await mkdir(this.runDir, { recursive: true });
    this.madeStoragePath = first !== undefined && resolve(first) === this.storagePath && this.storagePath === resolve(defaultStoragePath());
  }

  async cleanup(): Promise<void> {
    await storeFor(this.runDir).removeTree(this.runDir);
    if (!this.madeStoragePath) return;
    // Only when empty: another run may be using it now.
    await rmdir(this.storagePath).catch(() => undefined);
  }
}
