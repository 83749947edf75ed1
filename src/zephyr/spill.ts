// The external sorter behind out-of-core shuffles: entries gather in a
// buffer whose size is estimated as they come; when the estimate passes the
// memory budget the buffer is sorted and written to storage as a run (one
// object of encoded chunks, through the store of its path); at the end the
// runs are k-way merged, one chunk per run in memory (in passes of at most
// MERGE_FAN_IN runs), and each run is removed once merged. Nothing is
// written while everything fits.
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { totalmem } from "node:os";
import { getHeapStatistics } from "node:v8";
import { FlusterError } from "../core/errors.js";
import { decodeValue, encodeValue } from "../rpc/codec.js";
import { joinPath, storeFor } from "./fs/index.js";
import type { ChunkRef } from "./storage.js";

/**
 * Roughly how many bytes of heap a record takes per byte of its encoding
 * (objects, strings and arrays weigh more in V8 than in msgpack). The
 * budget is checked against encoded sizes times this factor.
 */
export const IN_MEMORY_FACTOR = 3;

/** Runs merged at once; more runs are merged in passes. */
export const MERGE_FAN_IN = 64;

/** Encoded bytes a run's write may have queued before it waits for the store (small writes one by one are slow). */
const WRITE_AHEAD = 1 << 20;

/** Entries per batch handed out by a merge. */
const BATCH = 1024;

/** Where a shard's out-of-core operators spill, their budget, and what they spilled. */
export interface SpillTarget {
  /** The stage's chunk directory: runs are written below it. */
  readonly dir: string;
  /** The run's directory, which is never created (see ChunkTarget.root). @default none */
  readonly root?: string;
  /** The shard's memory budget for buffered records, in bytes. */
  readonly memoryLimitBytes: number;
  /** Runs written and their encoded bytes, merge passes included; shared by the shard's operators. */
  readonly stats: SpillStats;
}

/** What a shard's out-of-core operators wrote. */
export interface SpillStats {
  /** Sorted runs written, merge passes' runs included. */
  runs: number;
  /** Their encoded bytes. */
  bytes: number;
}

/** The in-memory size estimate of a chunk's records: its encoded size times {@link IN_MEMORY_FACTOR}. */
export function chunkMemoryBytes(ref: ChunkRef): number {
  return (ref.kind === "inline" ? ref.data.byteLength : ref.bytes) * IN_MEMORY_FACTOR;
}

/**
 * The default per-shard budget: half the memory a shard may use, leaving
 * the rest for the records in flight, the merge and the runtime. A cluster
 * pool worker runs one shard at a time in `workerMemoryBytes`; worker
 * threads and inline shards share this process, so its memory (the smaller
 * of the machine's and V8's heap limit) is divided by the shards running at once.
 */
export function defaultMemoryLimitBytes(parallelism: number, workerMemoryBytes?: number): number {
  if (workerMemoryBytes !== undefined) return Math.floor(workerMemoryBytes / 2);
  const processMemory = Math.min(totalmem(), getHeapStatistics().heap_size_limit);
  return Math.floor(processMemory / Math.max(1, parallelism) / 2);
}

/** A sorted run in storage: one object, its chunks' byte ranges, and the estimated heap bytes of one entry. */
interface Run {
  readonly path: string;
  readonly chunks: ReadonlyArray<{ readonly start: number; readonly end: number; readonly count: number }>;
  readonly entryBytes: number;
}

/**
 * Reads a run a few chunks at a time (up to `readBytes` encoded, at least
 * one chunk), the next read under way while the current one is merged; the
 * run's object is removed once read.
 */
class RunCursor<E> {
  private chunk: E[] = [];
  private pos = -1;
  private next = 0;
  private prefetched: Promise<E[] | undefined> | undefined;

  constructor(
    private readonly run: Run,
    /** Breaks ties between cursors: the earlier run first. */
    readonly order: number,
    private readonly readBytes: number,
  ) {}

  /** The current entry; valid after `step()` or `load()` answered true. */
  get head(): E {
    return this.chunk[this.pos] as E;
  }

  /** Moves to the next entry of the chunk in memory; false when the chunk is spent (then `load()`). */
  step(): boolean {
    return ++this.pos < this.chunk.length;
  }

  /** Moves to the run's next entry past the chunks in memory; false when the run is done. */
  async load(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      const entries = await (this.prefetched ?? this.read());
      this.prefetched = undefined;
      if (entries === undefined) {
        this.chunk = [];
        await storeFor(this.run.path).remove(this.run.path);
        return false;
      }
      this.chunk = entries;
      this.pos = 0;
      if (this.next < this.run.chunks.length) {
        const next = this.read();
        next.catch(() => undefined); // reported when awaited; a merge given up early never awaits it
        this.prefetched = next;
      }
    }
    return true;
  }

  /** The entries of the next chunks, read in one range; undefined after the last. */
  private async read(): Promise<E[] | undefined> {
    const first = this.run.chunks[this.next];
    if (first === undefined) return undefined;
    let last = this.next;
    while (last + 1 < this.run.chunks.length && (this.run.chunks[last + 1] as { end: number }).end - first.start <= this.readBytes) last++;
    const chunks = this.run.chunks.slice(this.next, last + 1);
    this.next = last + 1;
    const end = (chunks[chunks.length - 1] as { end: number }).end;
    const data = await storeFor(this.run.path).readRange(this.run.path, first.start, end);
    const out: E[] = [];
    for (const chunk of chunks) {
      const entries = decodeValue(data.subarray(chunk.start - first.start, chunk.end - first.start));
      if (!Array.isArray(entries) || entries.length !== chunk.count) {
        throw new FlusterError(`spilled run ${this.run.path} holds ${Array.isArray(entries) ? entries.length : "no"} entries at bytes ${chunk.start}-${chunk.end}, expected ${chunk.count}`, "internal");
      }
      for (const entry of entries as E[]) out.push(entry);
    }
    return out;
  }
}

/**
 * Sorts more entries than fit in memory. `push` entries with their
 * estimated heap size; when it answers true, `await spill()`. Then iterate
 * `sorted()` once: when nothing was spilled it is an in-memory sort. Ties
 * keep no particular order: make `compare` total (entries carry a sequence
 * number for that).
 */
export class ExternalSorter<E> {
  private buffer: E[] = [];
  private bufferBytes = 0;
  private readonly runs: Run[] = [];
  private readonly prefix = `spill-${randomUUID().slice(0, 8)}`;
  private written = 0;
  private spilledAny = false;
  /** The last spilled run, encoded and being written while the next buffer fills. */
  private writing: Promise<void> | undefined;

  constructor(
    private readonly compare: (a: E, b: E) => number,
    private readonly target: SpillTarget,
    /** This sorter's budget, in estimated heap bytes. @default target.memoryLimitBytes */
    private readonly budget: number = target.memoryLimitBytes,
  ) {}

  /** Whether a run was spilled (written, or being written). */
  get spilled(): boolean {
    return this.spilledAny;
  }

  /** Adds an entry taking about `bytes` of heap; true when the buffer is over budget and should be spilled. */
  push(entry: E, bytes: number): boolean {
    this.buffer.push(entry);
    this.bufferBytes += bytes;
    return this.bufferBytes > this.budget;
  }

  /**
   * Sorts the buffer and writes it to storage as a run. The run is encoded
   * at once (its entries let go) and written while the next buffer fills:
   * memory holds at most one run's encoding besides the budget.
   */
  async spill(): Promise<void> {
    if (this.buffer.length === 0) return;
    await this.settle();
    const entries = this.buffer;
    const entryBytes = this.bufferBytes / entries.length;
    this.buffer = [];
    this.bufferBytes = 0;
    this.spilledAny = true;
    entries.sort(this.compare);
    const encoded = [...encodeChunks([entries], this.chunkEntries(entryBytes))];
    const writing = this.writeRun(encoded, entryBytes).then((run) => {
      this.runs.push(run);
    });
    writing.catch(() => undefined); // reported by settle()
    this.writing = writing;
  }

  /** Waits for the run being written; throws its error. */
  private async settle(): Promise<void> {
    const writing = this.writing;
    this.writing = undefined;
    await writing;
  }

  /** Every entry pushed, in order, a batch at a time; the runs' files are removed as they are read. */
  async *sorted(): AsyncIterable<E[]> {
    if (!this.spilled) {
      const entries = this.buffer;
      this.buffer = [];
      this.bufferBytes = 0;
      entries.sort(this.compare);
      for (let i = 0; i < entries.length; i += BATCH) yield entries.slice(i, i + BATCH);
      return;
    }
    await this.spill();
    await this.settle();
    // Passes over the oldest runs until one merge can take them all.
    while (this.runs.length > MERGE_FAN_IN) {
      const group = this.runs.splice(0, MERGE_FAN_IN);
      const entryBytes = group.reduce((n, r) => n + r.entryBytes, 0) / group.length;
      this.runs.push(await this.writeRun(encodeChunksAsync(this.merge(group), this.chunkEntries(entryBytes)), entryBytes));
    }
    yield* this.merge(this.runs.splice(0));
  }

  /** Entries per chunk of a run: small enough that a merge of MERGE_FAN_IN runs holds about the budget, one chunk of each. */
  private chunkEntries(entryBytes: number): number {
    return Math.max(16, Math.min(8192, Math.floor(this.budget / MERGE_FAN_IN / Math.max(1, entryBytes))));
  }

  /** Writes encoded chunks (of sorted entries) as one run. */
  private async writeRun(encoded: Iterable<EncodedChunk> | AsyncIterable<EncodedChunk>, entryBytes: number): Promise<Run> {
    const path = joinPath(this.target.dir, `${this.prefix}-r${String(this.written++).padStart(5, "0")}.run`);
    const sink = await storeFor(path).openWrite(path);
    const chunks: Array<{ start: number; end: number; count: number }> = [];
    let offset = 0;
    try {
      for await (const { data, count } of encoded) {
        chunks.push({ start: offset, end: offset + data.byteLength, count });
        offset += data.byteLength;
        if (!sink.stream.write(data) && sink.stream.writableLength > WRITE_AHEAD) await once(sink.stream, "drain");
      }
      await sink.commit();
    } catch (err) {
      await sink.abort();
      throw err;
    }
    this.target.stats.runs++;
    this.target.stats.bytes += offset;
    return { path, chunks, entryBytes };
  }

  /** A k-way merge of `runs` over a binary heap of cursors. */
  private async *merge(runs: readonly Run[]): AsyncIterable<E[]> {
    if (runs.length > MERGE_FAN_IN) throw new FlusterError(`cannot merge ${runs.length} runs at once (at most ${MERGE_FAN_IN})`, "internal");
    const before = (a: RunCursor<E>, b: RunCursor<E>) => {
      const c = this.compare(a.head, b.head);
      return c < 0 || (c === 0 && a.order < b.order);
    };
    const heap: RunCursor<E>[] = [];
    // Each run's share of the budget, in encoded bytes: two reads in memory per run (one merging, one prefetched).
    const readBytes = this.budget / IN_MEMORY_FACTOR / Math.max(1, runs.length) / 2;
    for (const [i, run] of runs.entries()) {
      const cursor = new RunCursor<E>(run, i, readBytes);
      if (cursor.step() || (await cursor.load())) heap.push(cursor);
    }
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(heap, i, before);
    let batch: E[] = [];
    while (heap.length > 0) {
      const top = heap[0] as RunCursor<E>;
      batch.push(top.head);
      if (batch.length >= BATCH) {
        yield batch;
        batch = [];
      }
      if (!top.step() && !(await top.load())) {
        const last = heap.pop() as RunCursor<E>;
        if (heap.length === 0) break;
        heap[0] = last;
      }
      siftDown(heap, 0, before);
    }
    if (batch.length > 0) yield batch;
  }
}

/** Some entries of a run, encoded. */
interface EncodedChunk {
  readonly data: Uint8Array;
  readonly count: number;
}

function* encodeChunks<E>(batches: Iterable<E[]>, chunkEntries: number): Iterable<EncodedChunk> {
  for (const batch of batches) {
    for (let i = 0; i < batch.length; i += chunkEntries) {
      const chunk = batch.slice(i, i + chunkEntries);
      yield { data: encodeValue(chunk), count: chunk.length };
    }
  }
}

async function* encodeChunksAsync<E>(batches: AsyncIterable<E[]>, chunkEntries: number): AsyncIterable<EncodedChunk> {
  let pending: E[] = [];
  for await (const batch of batches) {
    for (const entry of batch) {
      pending.push(entry);
      if (pending.length >= chunkEntries) {
        yield { data: encodeValue(pending), count: pending.length };
        pending = [];
      }
    }
  }
  if (pending.length > 0) yield { data: encodeValue(pending), count: pending.length };
}

function siftDown<T>(heap: T[], index: number, before: (a: T, b: T) => boolean): void {
  let i = index;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) return;
    const right = left + 1;
    const child = right < heap.length && before(heap[right] as T, heap[left] as T) ? right : left;
    if (!before(heap[child] as T, heap[i] as T)) return;
    [heap[i], heap[child]] = [heap[child] as T, heap[i] as T];
    i = child;
  }
}
