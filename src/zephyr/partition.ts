// Hash partitions on storage, for groupBy past its memory budget (the way
// DuckDB's radix-partitioned aggregation and a Grace hash join split their
// input): records are dealt into up to MAX_FAN_OUT partitions by a hash of
// their key, each record's encoding copied byte for byte, never encoded
// again. A partition is then small enough to group in memory, or is dealt
// again with another hash. The records of one partition keep their input
// order, and each carries its position in the shard's input.
//
// What is held is written as one object per flush, a chunk for each
// partition: one object is written at a time (an object store buffers a
// multipart part for each upload open, so one per partition would not fit
// the budget), and a partition reads its chunks by ranges. An object is
// removed once every partition with a chunk in it has been read.
import { once } from "node:events";
import { FlusterError } from "../core/errors.js";
import { decodeSequence, decodeValue, encodeValue } from "../rpc/codec.js";
import { joinPath, storeFor } from "./fs/index.js";
import type { SpillTarget } from "./spill.js";

/** Partitions one dealing makes, at most. */
export const MAX_FAN_OUT = 64;

/**
 * Decoded records with where each one's encoding lies in `bytes`
 * (record `i` in `bytes[offsets[i]..offsets[i + 1])`) and its position in
 * the shard's input (`seqs[i]`).
 */
export interface RecordSlice {
  readonly records: readonly unknown[];
  readonly offsets: Uint32Array;
  readonly bytes: Uint8Array;
  readonly seqs: Float64Array;
}

/** An object written by one flush: chunks of several partitions. */
interface FlushObject {
  readonly path: string;
  /** Partitions with a chunk in it that have not been removed. */
  holders: number;
}

/** A partition on storage: its chunks, each `[seqs, records as a MessagePack sequence]` in a flush's object. */
export interface Partition {
  /** Its number among the partitions of its dealing (`partitionOf`'s answer). */
  readonly index: number;
  readonly chunks: ReadonlyArray<{ readonly object: FlushObject; readonly start: number; readonly end: number }>;
  /** Records in it. */
  readonly count: number;
  /** The records' encoded bytes. */
  readonly recordBytes: number;
}

/** One partition's records waiting to be written (where their bytes lie in the slices they came from), and what it has written. */
class PendingPartition {
  seqs: number[] = [];
  sources: Buffer[] = [];
  starts: number[] = [];
  ends: number[] = [];
  bytes = 0;
  readonly chunks: Array<{ object: FlushObject; start: number; end: number }> = [];
  count = 0;
  recordBytes = 0;

  /** The pending records as one chunk, emptied. */
  take(): Uint8Array {
    const records = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (let i = 0; i < this.seqs.length; i++) at += (this.sources[i] as Buffer).copy(records, at, this.starts[i], this.ends[i]);
    const chunk = encodeValue([Float64Array.from(this.seqs), records]);
    this.count += this.seqs.length;
    this.recordBytes += this.bytes;
    this.seqs = [];
    this.sources = [];
    this.starts = [];
    this.ends = [];
    this.bytes = 0;
    return chunk;
  }
}

/**
 * Deals records into `fanOut` partitions, writing under the spill target's
 * directory. Slices are held (by reference: their records' bytes are copied
 * only when written) until `flushBytes` of them are, then one object takes
 * every partition's pending records.
 */
export class PartitionWriter {
  private readonly pending: PendingPartition[];
  private readonly objects: FlushObject[] = [];
  private held = 0;

  constructor(
    private readonly target: SpillTarget,
    private readonly prefix: string,
    fanOut: number,
    private readonly flushBytes: number,
  ) {
    if (!Number.isInteger(fanOut) || fanOut < 1 || fanOut > MAX_FAN_OUT) throw new FlusterError(`cannot deal records into ${fanOut} partitions (1 to ${MAX_FAN_OUT})`, "internal");
    this.pending = Array.from({ length: fanOut }, () => new PendingPartition());
  }

  /** Adds a slice's records, record `i` to partition `partitionOf(i)`; writes when enough is held. */
  async add(slice: RecordSlice, partitionOf: (index: number) => number): Promise<void> {
    const source = Buffer.from(slice.bytes.buffer, slice.bytes.byteOffset, slice.bytes.byteLength);
    const { offsets, seqs } = slice;
    for (let i = 0; i < slice.records.length; i++) {
      const part = this.pending[partitionOf(i)] as PendingPartition;
      const start = offsets[i] as number;
      const end = offsets[i + 1] as number;
      part.seqs.push(seqs[i] as number);
      part.sources.push(source);
      part.starts.push(start);
      part.ends.push(end);
      part.bytes += end - start;
    }
    this.held += slice.bytes.byteLength;
    if (this.held > this.flushBytes) await this.flush();
  }

  /** Writes what is held; answers the partitions that got records (in order of their index). */
  async finish(): Promise<Partition[]> {
    await this.flush();
    const done: Partition[] = [];
    for (const [index, part] of this.pending.entries()) {
      if (part.count > 0) done.push({ index, chunks: part.chunks, count: part.count, recordBytes: part.recordBytes });
    }
    this.objects.length = 0; // the partitions own them now
    return done;
  }

  /** After a failure: removes what was written. */
  async abort(): Promise<void> {
    for (const object of this.objects.splice(0)) await storeFor(object.path).remove(object.path).catch(() => undefined);
  }

  private async flush(): Promise<void> {
    this.held = 0;
    const parts = this.pending.filter((part) => part.seqs.length > 0);
    if (parts.length === 0) return;
    const object: FlushObject = { path: joinPath(this.target.dir, `${this.prefix}-f${String(this.objects.length).padStart(5, "0")}.part`), holders: parts.length };
    const sink = await storeFor(object.path).openWrite(object.path);
    this.objects.push(object);
    let written = 0;
    try {
      for (const part of parts) {
        const chunk = part.take();
        part.chunks.push({ object, start: written, end: written + chunk.byteLength });
        written += chunk.byteLength;
        if (!sink.stream.write(chunk)) await once(sink.stream, "drain");
      }
      await sink.commit();
    } catch (err) {
      await sink.abort();
      throw err;
    }
    this.target.stats.runs++;
    this.target.stats.bytes += written;
  }
}

/** A partition's records, a chunk at a time; its objects stay (see {@link removePartition}). */
export async function* readPartition(part: Partition): AsyncIterable<RecordSlice> {
  let read = 0;
  for (const { object, start, end } of part.chunks) {
    const slice = decodeChunk(await storeFor(object.path).readRange(object.path, start, end), object.path, start);
    read += slice.records.length;
    yield slice;
  }
  if (read !== part.count) throw new FlusterError(`a partition holds ${read} records, expected ${part.count}`, "internal");
}

/** Lets go of a partition: each object of its chunks is removed once no partition holds a chunk in it. Call it once per partition. */
export async function removePartition(part: Partition): Promise<void> {
  for (const { object } of part.chunks) {
    if (--object.holders === 0) await storeFor(object.path).remove(object.path);
  }
}

function decodeChunk(data: Uint8Array, path: string, at: number): RecordSlice {
  const chunk = decodeValue(data);
  const [seqs, bytes] = Array.isArray(chunk) ? (chunk as unknown[]) : [];
  if (!(seqs instanceof Float64Array) || !(bytes instanceof Uint8Array)) throw new FlusterError(`${path} holds no partition chunk at byte ${at}`, "internal");
  const { values, offsets } = decodeSequence(bytes);
  if (values.length !== seqs.length) throw new FlusterError(`${path}'s partition chunk at byte ${at} holds ${values.length} records for ${seqs.length} positions`, "internal");
  return { records: values, offsets, bytes, seqs };
}
