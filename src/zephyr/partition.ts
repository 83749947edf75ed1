// Hash partitions on storage, for groupBy past its memory budget (the way
// DuckDB's radix-partitioned aggregation and a Grace hash join split their
// input): records are dealt into up to MAX_FAN_OUT partitions by a hash of
// their key, each record's encoding copied byte for byte, never encoded
// again. A partition is then small enough to group in memory, or is dealt
// again with another hash. The records of one partition keep their input
// order, and each carries its position in the shard's input.
//
// A dealing writes one object, appending a chunk for each partition at each
// flush: one write is open at a time (an object store buffers a multipart
// part for each open upload, so one per partition would not fit the budget),
// and a partition reads its chunks as ranges of it. The object is removed
// once every partition in it has been read.
import { once } from "node:events";
import { FlusterError } from "../core/errors.js";
import { decodeSequence, encodeValue } from "../rpc/codec.js";
import { joinPath, storeFor, type ObjectSink } from "./fs/index.js";
import type { SpillTarget } from "./spill.js";

/** Partitions one dealing makes, at most. */
export const MAX_FAN_OUT = 64;

/** Records shorter than this are copied byte by byte (a call to copy them costs more). */
const SHORT_RECORD = 64;

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

/** The object a dealing wrote. */
interface DealtObject {
  readonly path: string;
  /** Partitions in it that have not been removed. */
  holders: number;
}

/**
 * A partition on storage: ranges of its dealing's object, each a chunk
 * written as a MessagePack sequence — the records' input positions (a
 * Float64Array), then the records.
 */
export interface Partition {
  /** Its number among the partitions of its dealing (`partitionOf`'s answer). */
  readonly index: number;
  readonly object: DealtObject;
  readonly chunks: ReadonlyArray<{ readonly start: number; readonly end: number }>;
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
  readonly chunks: Array<{ start: number; end: number }> = [];
  count = 0;
  recordBytes = 0;

  /** The encoding of the pending records' positions, to go before them. */
  header(): Uint8Array {
    return encodeValue(Float64Array.from(this.seqs));
  }

  /** Copies the pending records' bytes into `target` at `at`, and empties. */
  take(target: Buffer, at: number): void {
    const { sources, starts, ends } = this;
    for (let i = 0; i < sources.length; i++) {
      const source = sources[i] as Buffer;
      const start = starts[i] as number;
      const end = ends[i] as number;
      if (end - start < SHORT_RECORD) for (let j = start; j < end; j++) target[at++] = source[j] as number;
      else at += source.copy(target, at, start, end);
    }
    this.count += this.seqs.length;
    this.recordBytes += this.bytes;
    this.seqs = [];
    this.sources = [];
    this.starts = [];
    this.ends = [];
    this.bytes = 0;
  }
}

/**
 * Deals records into `fanOut` partitions, written as one object under the
 * spill target's directory. Slices are held (by reference: their records'
 * bytes are copied only when written) until `flushBytes` of them are, then
 * every partition's pending records are appended as a chunk.
 */
export class PartitionWriter {
  private readonly pending: PendingPartition[];
  private readonly object: DealtObject;
  private sink: ObjectSink | undefined;
  private written = 0;
  private held = 0;

  constructor(
    private readonly target: SpillTarget,
    name: string,
    fanOut: number,
    private readonly flushBytes: number,
  ) {
    if (!Number.isInteger(fanOut) || fanOut < 1 || fanOut > MAX_FAN_OUT) throw new FlusterError(`cannot deal records into ${fanOut} partitions (1 to ${MAX_FAN_OUT})`, "internal");
    this.pending = Array.from({ length: fanOut }, () => new PendingPartition());
    this.object = { path: joinPath(target.dir, `${name}.part`), holders: 0 };
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

  /** Writes what is held and commits the object; answers the partitions that got records, in order of their index. */
  async finish(): Promise<Partition[]> {
    await this.flush();
    if (!this.sink) return [];
    await this.sink.commit();
    this.sink = undefined;
    this.target.stats.runs++;
    this.target.stats.bytes += this.written;
    const parts: Partition[] = [];
    for (const [index, part] of this.pending.entries()) {
      if (part.count > 0) parts.push({ index, object: this.object, chunks: part.chunks, count: part.count, recordBytes: part.recordBytes });
    }
    this.object.holders = parts.length;
    return parts;
  }

  /** After a failure: abandons the object. */
  async abort(): Promise<void> {
    const sink = this.sink;
    this.sink = undefined;
    await sink?.abort().catch(() => undefined);
  }

  /** Appends every partition's pending records to the object, one buffer for all. */
  private async flush(): Promise<void> {
    this.held = 0;
    const parts = this.pending.filter((part) => part.seqs.length > 0);
    if (parts.length === 0) return;
    const headers = parts.map((part) => part.header());
    const data = Buffer.allocUnsafe(parts.reduce((n, part, i) => n + (headers[i] as Uint8Array).byteLength + part.bytes, 0));
    let at = 0;
    for (const [i, part] of parts.entries()) {
      const header = headers[i] as Uint8Array;
      const start = at;
      data.set(header, at);
      at += header.byteLength;
      const bytes = part.bytes;
      part.take(data, at);
      at += bytes;
      part.chunks.push({ start: this.written + start, end: this.written + at });
    }
    this.sink ??= await storeFor(this.object.path).openWrite(this.object.path);
    this.written += data.byteLength;
    if (!this.sink.stream.write(data)) await once(this.sink.stream, "drain");
  }
}

/** A partition's records, a chunk at a time; its object stays (see {@link removePartition}). */
export async function* readPartition(part: Partition): AsyncIterable<RecordSlice> {
  const { path } = part.object;
  let read = 0;
  let chunk = 0;
  for await (const data of storeFor(path).readRanges(path, part.chunks)) {
    const at = (part.chunks[chunk++] as { start: number }).start;
    const { values, offsets } = decodeSequence(data);
    const seqs = values[0];
    if (!(seqs instanceof Float64Array) || seqs.length !== values.length - 1) {
      throw new FlusterError(`${path} holds no partition chunk of ${values.length - 1} records at byte ${at}`, "internal");
    }
    read += seqs.length;
    yield { records: values.slice(1), offsets: offsets.subarray(1), bytes: data, seqs };
  }
  if (read !== part.count) throw new FlusterError(`a partition in ${path} holds ${read} records, expected ${part.count}`, "internal");
}

/** Lets go of a partition: its dealing's object is removed once no partition in it is left. Call it once per partition. */
export async function removePartition(part: Partition): Promise<void> {
  if (--part.object.holders === 0) await storeFor(part.object.path).remove(part.object.path);
}
