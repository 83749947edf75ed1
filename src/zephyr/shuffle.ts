// The shuffle operators of a shard — groupBy's reduce, deduplicate, sortBy —
// within a memory budget. While a shard's records fit they run in memory
// as they always did. Past the budget, groupBy deals them into hash
// partitions on storage (partition.ts) and groups one partition at a time;
// deduplicate and sortBy sort by key through an ExternalSorter (spill.ts).
// Either way the output is the same records in the same order.
import { randomUUID } from "node:crypto";
import type { Key, SortKey } from "./dataset.js";
import { compareKeys, hashKey, keyId, rehash } from "./keys.js";
import { MAX_FAN_OUT, PartitionWriter, readPartition, removePartition, type Partition, type RecordSlice } from "./partition.js";
import { ExternalSorter, IN_MEMORY_FACTOR, chunkMemoryBytes, type SpillTarget } from "./spill.js";
import { readChunk, readChunkSpans, type ChunkRef } from "./storage.js";
import { encodeValue } from "../rpc/codec.js";

/** Records moving through a stage, a batch at a time. */
type Batches = AsyncIterable<unknown[]>;

const BATCH = 1024;

/** An entry sorted by key id, then by position in the shard's input. */
type ByIdEntry = [id: string, seq: number, record: unknown];
/** An entry sorted by position in the shard's input. */
type BySeqEntry = [seq: number, record: unknown];

const byIdThenSeq = (a: ByIdEntry, b: ByIdEntry) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);
const bySeq = (a: BySeqEntry, b: BySeqEntry) => a[0] - b[0];

/** Heap bytes a Set of ids spends per id beyond its characters (a rough V8 figure). */
const ID_OVERHEAD = 64;

/** How often the size of an output record is measured again (by encoding it). */
const SAMPLE_EVERY = 64;

/** Estimates the heap size of values by encoding one in every SAMPLE_EVERY. */
class SizeSampler {
  private seen = 0;
  private last = 0;
  bytes(value: unknown): number {
    if (this.seen++ % SAMPLE_EVERY === 0) this.last = encodeValue(value).byteLength * IN_MEMORY_FACTOR;
    return this.last;
  }
}

/** Yields the records of `order` (entries pushed with their first-seen position), in that order. */
async function* inFirstSeenOrder(order: ExternalSorter<BySeqEntry>): Batches {
  for await (const entries of order.sorted()) yield entries.map((e) => e[1]);
}

/**
 * groupBy's second half: one `reducer(key, records)` per key of the chunks'
 * records, groups in first-seen order, records in input order. Chunks whose
 * records fit the budget (their sizes are known before one is read) are
 * grouped in a Map. Past it, see {@link groupPartitioned}.
 */
export async function* groupRecords(refs: readonly ChunkRef[], keyOf: (r: unknown) => Key, reducer: (key: unknown, records: unknown[]) => unknown, spill: SpillTarget): Batches {
  const total = refs.reduce((n, ref) => n + chunkMemoryBytes(ref), 0);
  if (total > spill.memoryLimitBytes) {
    yield* groupPartitioned(refs, keyOf, reducer, spill, total);
    return;
  }
  const groups = new Map<string, Group>();
  for (const ref of refs) groupInto(groups, await readChunk(ref), keyOf);
  let batch: unknown[] = [];
  for (const { key, records } of groups.values()) {
    batch.push(await reducer(key, records));
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** A group of records by key: the key, where it was first seen, the records in order. */
interface Group {
  key: Key;
  /** Its first record's position in the shard's input; 0 where records carry no positions (the in-memory path, which needs none). */
  seq: number;
  records: unknown[];
}

/** Adds records to `groups` by their key's id; a new group takes its first record's position from `seqs`. */
function groupInto(groups: Map<string, Group>, records: readonly unknown[], keyOf: (r: unknown) => Key, seqs?: Float64Array): void {
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    const key = keyOf(record);
    const id = keyId(key);
    const group = groups.get(id);
    if (group) group.records.push(record);
    else groups.set(id, { key, seq: seqs?.[i] ?? 0, records: [record] });
  }
}

/** Times a partition too large to group in memory may be dealt again, each time with another hash. */
const MAX_LEVELS = 4;

/**
 * groupBy past the budget: the records are dealt into hash partitions on
 * storage by their key (partition.ts: their encodings copied, not encoded
 * again), and each partition is grouped in a Map in turn, in half the
 * budget; the reduced results, each with its group's first position, are
 * sorted back into first-seen order in the other half. A partition still
 * over its half is dealt again with another hash (up to MAX_LEVELS deep);
 * one whose records all have one key is grouped whole, as any one group is
 * held whole for its reducer.
 */
async function* groupPartitioned(refs: readonly ChunkRef[], keyOf: (r: unknown) => Key, reducer: (key: unknown, records: unknown[]) => unknown, spill: SpillTarget, total: number): Batches {
  const groupBudget = spill.memoryLimitBytes / 2;
  const order = new ExternalSorter<BySeqEntry>(bySeq, spill, groupBudget);
  const sizes = new SizeSampler();
  const prefix = `group-${randomUUID().slice(0, 8)}`;
  /** Partitions on storage not yet removed (all of them are, whatever happens). */
  const stored = new Set<Partition>();
  let dealings = 0;

  /**
   * Deals slices by their keys' hash for `level` into enough partitions
   * that each should fit `groupBudget`; answers each with whether all its
   * records have one key (no hash can split it).
   */
  const deal = async (slices: AsyncIterable<RecordSlice>, level: number, estimate: number): Promise<Array<{ part: Partition; oneKey: boolean }>> => {
    const fanOut = Math.min(MAX_FAN_OUT, Math.max(2, Math.ceil((1.5 * estimate) / groupBudget)));
    const writer = new PartitionWriter(spill, `${prefix}-${dealings++}`, fanOut, groupBudget);
    /** Each partition's one key id so far; null once it has two. */
    const onlyId: Array<string | null | undefined> = new Array(fanOut);
    try {
      for await (const slice of slices) {
        const { records } = slice;
        await writer.add(slice, (i) => {
          const id = keyId(keyOf(records[i]));
          const index = rehash(hashKey(id), level) % fanOut;
          const seen = onlyId[index];
          if (seen === undefined) onlyId[index] = id;
          else if (seen !== null && seen !== id) onlyId[index] = null;
          return index;
        });
      }
      const parts = await writer.finish();
      for (const part of parts) stored.add(part);
      return parts.map((part) => ({ part, oneKey: typeof onlyId[part.index] === "string" }));
    } catch (err) {
      await writer.abort();
      throw err;
    }
  };

  /** Groups the slices' records in a Map and reduces each group, its result to be put in order by the group's first position. */
  const reduceInMemory = async (slices: AsyncIterable<RecordSlice>): Promise<void> => {
    const groups = new Map<string, Group>();
    for await (const { records, seqs } of slices) groupInto(groups, records, keyOf, seqs);
    for (const [id, group] of groups) {
      groups.delete(id);
      const reduced = await reducer(group.key, group.records);
      if (order.push([group.seq, reduced], sizes.bytes(reduced))) await order.spill();
    }
  };

  const reducePartition = async (part: Partition, level: number, oneKey: boolean): Promise<void> => {
    const estimate = part.recordBytes * IN_MEMORY_FACTOR;
    if (estimate <= groupBudget || oneKey || level >= MAX_LEVELS) {
      await reduceInMemory(readPartition(part));
      await remove(part);
      return;
    }
    const children = await deal(readPartition(part), level, estimate);
    await remove(part);
    for (const child of children) await reducePartition(child.part, level + 1, child.oneKey);
  };

  const remove = async (part: Partition): Promise<void> => {
    stored.delete(part);
    await removePartition(part);
  };

  try {
    for (const { part, oneKey } of await deal(chunkSlices(refs), 0, total)) await reducePartition(part, 1, oneKey);
  } finally {
    for (const part of stored) await removePartition(part).catch(() => undefined);
  }
  yield* inFirstSeenOrder(order);
}

/** The chunks' records with their encodings and input positions, a chunk at a time. */
async function* chunkSlices(refs: readonly ChunkRef[]): AsyncIterable<RecordSlice> {
  let seq = 0;
  for (const ref of refs) {
    const { values, offsets, bytes } = await readChunkSpans(ref);
    const seqs = new Float64Array(values.length);
    for (let i = 0; i < seqs.length; i++) seqs[i] = seq++;
    yield { records: values, offsets, bytes, seqs };
  }
}

/**
 * deduplicate's second half: the first record of each key, in input order.
 * In memory only the ids seen are kept (records stream through); once they
 * pass half the budget the set is frozen, later records with a new id sort
 * by id to storage, and the first of each is sorted back into input order
 * after those already sent.
 */
export async function* dedupeRecords(refs: readonly ChunkRef[], keyOf: (r: unknown) => Key, spill: SpillTarget): Batches {
  const seen = new Set<string>();
  let held = 0;
  let sorter: ExternalSorter<ByIdEntry> | undefined;
  let seq = 0;
  for (const ref of refs) {
    const records = await readChunk(ref);
    if (records.length === 0) continue;
    if (!sorter) {
      const kept: unknown[] = [];
      for (const record of records) {
        const id = keyId(keyOf(record));
        if (seen.has(id)) continue;
        seen.add(id);
        held += 2 * id.length + ID_OVERHEAD;
        kept.push(record);
      }
      if (kept.length > 0) yield kept;
      if (held > spill.memoryLimitBytes / 2) sorter = new ExternalSorter(byIdThenSeq, spill, spill.memoryLimitBytes / 2);
      continue;
    }
    const perRecord = chunkMemoryBytes(ref) / records.length;
    for (const record of records) {
      const id = keyId(keyOf(record));
      if (!seen.has(id) && sorter.push([id, seq++, record], perRecord)) await sorter.spill();
    }
  }
  if (!sorter) return;
  seen.clear();
  const order = new ExternalSorter<BySeqEntry>(bySeq, spill, spill.memoryLimitBytes / 2);
  const sizes = new SizeSampler();
  let last: string | undefined;
  for await (const entries of sorter.sorted()) {
    for (const [id, first, record] of entries) {
      if (id === last) continue;
      last = id;
      if (order.push([first, record], sizes.bytes(record))) await order.spill();
    }
  }
  yield* inFirstSeenOrder(order);
}

/**
 * sortBy within a shard: stable (equal keys keep input order), descending
 * when asked; records past the budget are sorted in runs on storage and merged.
 */
export async function* sortRecords(input: Batches, keyOf: (r: unknown) => SortKey, descending: boolean, spill: SpillTarget): Batches {
  const sign = descending ? -1 : 1;
  type Entry = [key: SortKey, seq: number, record: unknown];
  const sorter = new ExternalSorter<Entry>((a, b) => sign * compareKeys(a[0], b[0]) || a[1] - b[1], spill);
  let seq = 0;
  for await (const batch of input) {
    if (batch.length === 0) continue;
    // One record's encoding stands for the batch's.
    const perRecord = encodeValue(batch[0]).byteLength * IN_MEMORY_FACTOR;
    for (const record of batch) if (sorter.push([keyOf(record), seq++, record], perRecord)) await sorter.spill();
  }
  for await (const entries of sorter.sorted()) yield entries.map((e) => e[2]);
}
