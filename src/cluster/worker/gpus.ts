// Which of a worker's GPUs each attempt holds, so that a GPU task's
// CUDA_VISIBLE_DEVICES names the GPUs it was given and no other task's.

/** The lowest `count` GPU indexes below `total` that no attempt holds, or undefined when fewer are free. */
export function assignGpus(total: number, held: Iterable<readonly number[]>, count: number): number[] | undefined {
  const taken = new Set<number>();
  for (const list of held) for (const index of list) taken.add(index);
  const out: number[] = [];
  for (let index = 0; index < total && out.length < count; index++) if (!taken.has(index)) out.push(index);
  return out.length === count ? out : undefined;
}

/**
 * `CUDA_VISIBLE_DEVICES` for the GPUs at these indexes. A daemon started
 * with its own `CUDA_VISIBLE_DEVICES` ("2,3") sees only the devices listed
 * there, and its GPU `i` is the `i`-th of them.
 */
export function cudaVisibleDevices(indexes: readonly number[], inherited: string | undefined): string {
  const listed = inherited?.split(",").map((part) => part.trim()).filter((part) => part !== "") ?? [];
  return indexes.map((i) => (listed.length > 0 ? (listed[i] ?? String(i)) : String(i))).join(",");
}
