// Global sort by range partitioning: the stage before the sort keeps a
// reservoir sample of sort keys per shard; the driver picks numShards - 1
// boundaries from the weighted samples; each record then goes to the
// partition its key falls in (binary search), and each partition is sorted
// on its own, so the output shards in order are one sorted sequence.
import type { SortKey } from "./dataset.js";
import { keyOrder } from "./keys.js";

/** Sort keys each shard samples. */
export const SAMPLE_SIZE = 1000;

/** What a sampling shard reports: some of its keys and how many records they stand for. */
export interface KeySample {
  readonly keys: SortKey[];
  readonly records: number;
}

/** What a range-partitioning shard needs: the boundaries, and where its records start in the whole input. */
export interface RangeSpec {
  /** numShards - 1 keys, in sort order (reversed when descending). */
  readonly boundaries: SortKey[];
  /** Records before this shard's, over all shards. */
  readonly offset: number;
  /** Records in all shards. */
  readonly total: number;
}

/** A uniform sample of up to SAMPLE_SIZE keys (reservoir sampling, seeded so a re-run samples the same). */
export class KeySampler {
  readonly keys: SortKey[] = [];
  records = 0;
  private state: number;

  constructor(
    private readonly keyOf: (record: unknown) => SortKey,
    seed: number,
  ) {
    this.state = (seed * 0x9e3779b9 + 1) >>> 0;
  }

  /** Offers every record of `batch` to the sample. */
  add(batch: readonly unknown[]): void {
    for (const record of batch) {
      const seen = ++this.records;
      if (this.keys.length < SAMPLE_SIZE) this.keys.push(this.keyOf(record));
      else {
        const slot = Math.floor(this.random() * seen);
        if (slot < SAMPLE_SIZE) this.keys[slot] = this.keyOf(record);
      }
    }
  }

  /** The keys kept and the records they were drawn from. */
  get sample(): KeySample {
    return { keys: this.keys, records: this.records };
  }

  /** mulberry32: a small fast PRNG in [0, 1). */
  private random(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * `numShards - 1` boundaries splitting the sampled keys into equal weights
 * (each shard's keys weigh its records over its sample size); none when
 * nothing was sampled. Boundaries may repeat when a key is frequent.
 */
export function chooseBoundaries(samples: readonly KeySample[], numShards: number, descending: boolean): SortKey[] {
  const weighted = samples.flatMap((s) => s.keys.map((key) => ({ key, weight: s.records / s.keys.length })));
  if (weighted.length === 0 || numShards <= 1) return [];
  const order = keyOrder(descending);
  weighted.sort((a, b) => order(a.key, b.key));
  const total = weighted.reduce((n, w) => n + w.weight, 0);
  const boundaries: SortKey[] = [];
  let cumulative = 0;
  let i = 0;
  for (let b = 1; b < numShards; b++) {
    const target = (total * b) / numShards;
    while (i < weighted.length - 1 && cumulative + (weighted[i] as { weight: number }).weight < target) cumulative += (weighted[i++] as { weight: number }).weight;
    boundaries.push((weighted[i] as { key: SortKey }).key);
  }
  return boundaries;
}

/**
 * The partition of a record: partition p holds keys after boundary p - 1 up
 * to boundary p. A key equal to some boundaries may go to any partition
 * from the first such boundary's to the one after the last; records with
 * such a key are spread over those by their position in the whole input,
 * so a frequent key does not fill one partition and equal keys keep their order.
 */
export function rangePartitioner(spec: RangeSpec, descending: boolean): (key: SortKey, position: number) => number {
  const order = keyOrder(descending);
  const { boundaries, offset, total } = spec;
  const countBefore = (key: SortKey, orEqual: boolean) => {
    let lo = 0;
    let hi = boundaries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = order(boundaries[mid] as SortKey, key);
      if (c < 0 || (orEqual && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return (key, position) => {
    const first = countBefore(key, false);
    if (first >= boundaries.length || order(boundaries[first] as SortKey, key) !== 0) return first;
    const last = countBefore(key, true);
    const spread = last - first + 1;
    return first + Math.min(spread - 1, Math.floor(((offset + position) / Math.max(1, total)) * spread));
  };
}

/** Each range-partitioning shard's spec, from the sampling shards' reports (in shard order). */
export function rangeSpecs(samples: readonly KeySample[], numShards: number, descending: boolean): RangeSpec[] {
  const boundaries = chooseBoundaries(samples, numShards, descending);
  const total = samples.reduce((n, s) => n + s.records, 0);
  let offset = 0;
  return samples.map((s) => {
    const spec = { boundaries, offset, total };
    offset += s.records;
    return spec;
  });
}
