// Keys of shuffles and sorts: a string id equal for equal keys (grouping,
// deduplication, hash partitioning) and the order of sort keys.
import { ValidationError } from "../core/errors.js";
import { encodeValue } from "../rpc/codec.js";
import type { Key, SortKey } from "./dataset.js";

/** A string equal for equal keys (by value, as the codec encodes them), so keys can group in a Map. */
export function keyId(key: Key): string {
  switch (typeof key) {
    case "string":
      return `s${key}`;
    case "number":
      return `n${Object.is(key, -0) ? 0 : key}`;
    case "bigint":
      return `b${key}`;
    case "boolean":
      return key ? "t" : "f";
    case "undefined":
      return "u";
    default:
      return key === null ? "z" : `c${Buffer.from(encodeValue(key)).toString("latin1")}`;
  }
}

/** FNV-1a over a key's id: the same partition in every process. */
export function hashKey(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A second hash of a key, one for each `seed`, from its {@link hashKey}
 * (murmur3's finalizer): spreads keys that one hash put together (a
 * shard's records all share hashKey modulo the shard count).
 */
export function rehash(hash: number, seed: number): number {
  let h = (hash ^ Math.imul(seed + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Orders sort keys: numbers and bigints numerically, strings by code unit, arrays element by element. */
export function compareKeys(a: SortKey, b: SortKey): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = compareKeys(a[i] as SortKey, b[i] as SortKey);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) return a < b ? -1 : a > b ? 1 : 0;
  throw new ValidationError("sortBy", `keys must be all numbers, all strings or arrays of them; cannot compare ${typeof a} with ${typeof b}`);
}

/** `compareKeys`, reversed when `descending`. */
export function keyOrder(descending: boolean): (a: SortKey, b: SortKey) => number {
  return descending ? (a, b) => compareKeys(b, a) : compareKeys;
}
