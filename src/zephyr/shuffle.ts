// The shuffle operators of a shard — groupBy's reduce, deduplicate, sortBy —
// within a memory budget. While a shard's records fit they run in memory
// as they always did; past the budget they sort by key through an
// ExternalSorter (spill.ts) and then restore first-seen order, so the
// output is the same records in the same order either way.
import type { Key, SortKey } from "./dataset.js";
import { compareKeys, keyId } from "./keys.js";
import { ExternalSorter, IN_MEMORY_FACTOR, chunkMemoryBytes, type SpillTarget } from "./spill.js";
import { readChunk, type ChunkRef } from "./storage.js";
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
 * records, groups in first-seen order, records in input order. Past the
 * budget, records sort by key id to storage; each group is then reduced as
 * it comes out of the merge (a single group is held whole for its reducer,
 * however large) and the results are sorted back into first-seen order.
 */
export async function* groupRecords(refs: readonly ChunkRef[], keyOf: (r: unknown) => Key, reducer: (key: unknown, records: unknown[]) => unknown, spill: SpillTarget): Batches {
  const groups = new Map<string, { key: Key; records: unknown[] }>();
  let held = 0;
  let heldRecords = 0;
  let sorter: ExternalSorter<ByIdEntry> | undefined;
  let seq = 0;
  for (const ref of refs) {
    const records = await readChunk(ref);
    if (records.length === 0) continue;
    if (!sorter) {
      for (const record of records) {
        const key = keyOf(record);
        const id = keyId(key);
        const group = groups.get(id);
        if (group) group.records.push(record);
        else groups.set(id, { key, records: [record] });
      }
      held += chunkMemoryBytes(ref);
      heldRecords += records.length;
      if (held <= spill.memoryLimitBytes) continue;
      // Over budget: the groups so far move to the sorter, numbered so that both
      // the records of a group and the groups' first records keep their order.
      sorter = new ExternalSorter(byIdThenSeq, spill);
      const perRecord = held / heldRecords;
      for (const [id, group] of groups) {
        for (const record of group.records) if (sorter.push([id, seq++, record], perRecord)) await sorter.spill();
        groups.delete(id);
      }
      continue;
    }
    const perRecord = chunkMemoryBytes(ref) / records.length;
    for (const record of records) if (sorter.push([keyId(keyOf(record)), seq++, record], perRecord)) await sorter.spill();
  }

  if (!sorter) {
    let batch: unknown[] = [];
    for (const { key, records } of groups.values()) {
      batch.push(await reducer(key, records));
      if (batch.length >= BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
    return;
  }

  // Half the budget for the merge's chunks, half for the reduced records awaiting their order.
  const order = new ExternalSorter<BySeqEntry>(bySeq, spill, spill.memoryLimitBytes / 2);
  const sizes = new SizeSampler();
  let current: { id: string; seq: number; records: unknown[] } | undefined;
  const reduce = async (group: { seq: number; records: unknown[] }) => {
    const reduced = await reducer(keyOf(group.records[0]), group.records);
    if (order.push([group.seq, reduced], sizes.bytes(reduced))) await order.spill();
  };
  for await (const entries of sorter.sorted()) {
    for (const [id, first, record] of entries) {
      if (current?.id === id) current.records.push(record);
      else {
        if (current) await reduce(current);
        current = { id, seq: first, records: [record] };
      }
    }
  }
  if (current) await reduce(current);
  yield* inFirstSeenOrder(order);
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
