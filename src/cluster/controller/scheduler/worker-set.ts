// Sets of workers as bitsets, so a job kind's eligible workers are an AND of its filters.
import type { Slot } from "./amounts.js";
import type { SchedulerWorker } from "./types.js";

/**
 * A set of workers as a bitset over their position in the pass's order.
 * Each filter (a device, a region, a constraint) is evaluated once per pass
 * over all workers; a job's eligible workers are the AND of its filters' sets,
 * which costs a few hundred word operations instead of a scan per job kind.
 */
export class WorkerSet {
  private constructor(private readonly words: Uint32Array) {}

  static where(slots: readonly Slot[], test: (worker: SchedulerWorker) => boolean): WorkerSet {
    const words = new Uint32Array((slots.length + 31) >>> 5);
    slots.forEach((slot, i) => {
      if (test(slot.worker)) words[i >>> 5] = (words[i >>> 5] ?? 0) | (1 << (i & 31));
    });
    return new WorkerSet(words);
  }

  has(slot: Slot): boolean {
    return ((this.words[slot.order >>> 5] ?? 0) & (1 << (slot.order & 31))) !== 0;
  }

  and(other: WorkerSet): WorkerSet {
    return new WorkerSet(this.words.map((word, i) => word & (other.words[i] ?? 0)));
  }

  isEmpty(): boolean {
    return this.words.every((word) => word === 0);
  }

  size(): number {
    let n = 0;
    for (const word of this.words) for (let bits = word; bits !== 0; bits &= bits - 1) n++;
    return n;
  }

  /** The members, in order. */
  members(slots: readonly Slot[]): Slot[] {
    const out: Slot[] = [];
    for (let w = 0; w < this.words.length; w++) {
      // Visit set bits lowest first: `bits & -bits` isolates the lowest one.
      for (let bits = this.words[w] ?? 0; bits !== 0; bits &= bits - 1) {
        const slot = slots[(w << 5) + 31 - Math.clz32(bits & -bits)];
        if (slot) out.push(slot);
      }
    }
    return out;
  }
}

