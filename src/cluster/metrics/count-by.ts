// Counting records by a label value, for gauges computed at scrape time.

/**
 * How many of `items` have each key: every key of `keys` is there (at 0 when
 * none has it), so a gauge's series never vanish; `keysOf` gives an item's
 * keys, one per thing counted (a job's tasks, say).
 */
export function countBy<K extends string, T>(keys: readonly K[], items: Iterable<T>, keysOf: (item: T) => readonly K[]): Map<K, number> {
  const counts = new Map<K, number>(keys.map((k) => [k, 0]));
  for (const item of items) for (const key of keysOf(item)) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}
