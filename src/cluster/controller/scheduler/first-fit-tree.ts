// The first-fit index: finds the first worker with room for a demand in O(log n).
import { fits, type Need, type Amounts } from "./amounts.js";

/**
 * Finds the first slot (in list order) with room for a demand in O(log n)
 * typical time: a max-segment tree over the slots' free cpu, memory, disk
 * and devices, as in the classic O(n log n) First Fit bin packing. A subtree
 * whose maxima cannot hold the demand is skipped whole. With four resources
 * the maxima of a subtree may come from different slots, so a search can
 * descend in vain; the caller's per-shape cursor (see Candidates) makes it
 * cross such a stretch once per shape, not once per task.
 *
 * A slot can sit in several lists, and a placement refreshes only the list
 * it went through. The others then hold stale maxima, but free space only
 * shrinks within a pass, so stale values are upper bounds: they may send a
 * search into a subtree in vain (the leaf is re-read and fixed on the way),
 * never past a slot that fits. A gang rollback gives space back, and
 * refreshes that list for those slots; other lists still hold values from
 * before the gang's attempt, which remain upper bounds.
 */
const NOTHING: Readonly<Amounts> = { cpu: -Infinity, memory: -Infinity, disk: -Infinity, devices: -Infinity };

export class FirstFitTree {
  private readonly leaves: number;
  // Per tree node, the largest free amount of each resource below it.
  private readonly cpu: Float64Array;
  private readonly memory: Float64Array;
  private readonly disk: Float64Array;
  private readonly devices: Float64Array;

  constructor(private readonly slots: readonly Readonly<Amounts>[]) {
    let leaves = 1;
    while (leaves < slots.length) leaves *= 2;
    this.leaves = leaves;
    // Inner nodes are all written by the pull below; only the unused leaves need -Infinity.
    this.cpu = new Float64Array(2 * leaves).fill(-Infinity, leaves + slots.length);
    this.memory = new Float64Array(2 * leaves).fill(-Infinity, leaves + slots.length);
    this.disk = new Float64Array(2 * leaves).fill(-Infinity, leaves + slots.length);
    this.devices = new Float64Array(2 * leaves).fill(-Infinity, leaves + slots.length);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i];
      if (slot) this.write(leaves + i, slot);
      else this.write(leaves + i, NOTHING);
    }
    for (let node = leaves - 1; node >= 1; node--) this.pull(node);
  }

  /** Index of the first slot at or after `from` with room for `need`, or -1. */
  findFirst(need: Need, from: number): number {
    return this.search(1, 0, this.leaves, need, from);
  }

  /** Re-reads one slot after its free space changed. */
  refresh(index: number): void {
    const slot = this.slots[index];
    if (!slot) return;
    let node = this.leaves + index;
    this.write(node, slot);
    for (node >>= 1; node >= 1; node >>= 1) this.pull(node);
  }

  /** Searches the subtree `node`, which covers slots `lo` to `lo + size - 1`. */
  private search(node: number, lo: number, size: number, need: Need, from: number): number {
    if (lo + size <= from || !this.mayFit(node, need)) return -1;
    if (size === 1) {
      const slot = this.slots[lo];
      if (!slot) return -1;
      this.write(node, slot); // the maxima here may be stale (see class comment)
      return fits(slot, need) ? lo : -1;
    }
    const half = size / 2;
    let found = this.search(2 * node, lo, half, need, from);
    if (found < 0) found = this.search(2 * node + 1, lo + half, half, need, from);
    this.pull(node);
    return found;
  }

  private mayFit(node: number, need: Need): boolean {
    return (this.cpu[node] ?? -Infinity) >= need.cpu && (this.memory[node] ?? -Infinity) >= need.memory &&
      (this.disk[node] ?? -Infinity) >= need.disk && (this.devices[node] ?? -Infinity) >= need.devices;
  }

  private write(node: number, free: Amounts): void {
    this.cpu[node] = free.cpu;
    this.memory[node] = free.memory;
    this.disk[node] = free.disk;
    this.devices[node] = free.devices;
  }

  private pull(node: number): void {
    const left = 2 * node;
    const right = left + 1;
    this.cpu[node] = Math.max(this.cpu[left] ?? -Infinity, this.cpu[right] ?? -Infinity);
    this.memory[node] = Math.max(this.memory[left] ?? -Infinity, this.memory[right] ?? -Infinity);
    this.disk[node] = Math.max(this.disk[left] ?? -Infinity, this.disk[right] ?? -Infinity);
    this.devices[node] = Math.max(this.devices[left] ?? -Infinity, this.devices[right] ?? -Infinity);
  }
}

